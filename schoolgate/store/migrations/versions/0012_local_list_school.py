"""Each school's own local lists: `local_list` gets a `school` column (NULL: the trust's lists,
or the one school's without a trust file) and a number as its key, since a host may now be on
the trust's list and on several schools' lists; a host is on each list once (docs/trust.md,
"Local lists per school").

Not expand-only: the release before keys the lists by host alone and would apply every school's
entries to every client, so it must not run on this schema (it stops with its schema message).
The table is made anew and its rows copied (SQLite cannot change a primary key in place); its
change-counter triggers are made again. The downgrade keeps the trust's rows only: a school's
own entries have no place in the one list of the release before.

Revision ID: 0012_local_list_school
Revises: 0011_school_column
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schoolgate.store.models import UTCDateTime

revision: str = "0012_local_list_school"
down_revision: str | None = "0011_school_column"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

expand_only = False

COPIED = "host, verdict, note, added_by, added_at"
OLD = "local_list_before_0012"
BUMP = "UPDATE changes SET counter = counter + 1 WHERE id = 1"


def _verdict_check() -> sa.CheckConstraint:
    return sa.CheckConstraint("verdict IN ('allow', 'block')", name="verdict")


def _common_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("host", sa.String(300), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
    ]


def _set_aside() -> None:
    """Rename the table (and, on PostgreSQL, its primary key's index, whose name is global)."""
    op.rename_table("local_list", OLD)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER INDEX pk_local_list RENAME TO pk_{OLD}")


def _copy_and_drop(where: str = "") -> None:
    # constants of this module only
    op.execute(f"INSERT INTO local_list ({COPIED}) SELECT {COPIED} FROM {OLD}{where}")  # noqa: S608
    op.drop_table(OLD)  # its triggers go with it
    _create_triggers()


def _create_triggers() -> None:
    """As 0001 made them: every write to the lists bumps the change counter."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER local_list_bump_changes AFTER INSERT OR UPDATE OR DELETE "
            "OR TRUNCATE ON local_list FOR EACH STATEMENT "
            "EXECUTE FUNCTION schoolgate_bump_changes()"
        )
        return
    for action in ("insert", "update", "delete"):
        op.execute(
            f"CREATE TRIGGER local_list_{action}_bump_changes AFTER {action.upper()} "
            f"ON local_list BEGIN {BUMP}; END"
        )


def upgrade() -> None:
    _set_aside()
    op.create_table(
        "local_list",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_common_columns(),
        sa.Column("school", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_local_list"),
        _verdict_check(),
    )
    op.create_index(
        "uq_local_list_host_no_school",
        "local_list",
        ["host"],
        unique=True,
        sqlite_where=sa.text("school IS NULL"),
        postgresql_where=sa.text("school IS NULL"),
    )
    op.create_index(
        "uq_local_list_school_host",
        "local_list",
        ["school", "host"],
        unique=True,
        sqlite_where=sa.text("school IS NOT NULL"),
        postgresql_where=sa.text("school IS NOT NULL"),
    )
    _copy_and_drop()


def downgrade() -> None:
    _set_aside()
    op.create_table(
        "local_list",
        *_common_columns(),
        sa.PrimaryKeyConstraint("host", name="pk_local_list"),
        _verdict_check(),
    )
    _copy_and_drop(" WHERE school IS NULL")
