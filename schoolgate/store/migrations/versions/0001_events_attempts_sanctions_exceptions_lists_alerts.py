"""Events, circumvention attempts, sanctions, supervised sessions, exceptions, local lists,
alerts, and the change counter (with triggers on the override tables).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schoolgate.store.models import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OVERRIDE_TABLES = ("sanctions", "supervised_sessions", "exceptions", "local_list")


def _check(column: str, values: Sequence[str]) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=column)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("replica", sa.String(100), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("user", sa.String(200), nullable=True),
        sa.Column("role", sa.String(100), nullable=True),
        sa.Column("identity_source", sa.String(32), nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("device", sa.String(200), nullable=True),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("scheme", sa.String(16), nullable=True),
        sa.Column("host", sa.String(300), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("search_terms", sa.Text(), nullable=True),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(200), nullable=True),
        sa.Column("technique", sa.String(64), nullable=True),
        sa.Column("intercepted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        _check("verdict", ("allow", "block")),
    )
    for name, columns in (
        ("user_at", ["user", "at"]),
        ("at", ["at"]),
        ("host_at", ["host", "at"]),
        ("category_at", ["category", "at"]),
        ("verdict_at", ["verdict", "at"]),
    ):
        op.create_index(f"ix_events_{name}", "events", columns)

    op.create_table(
        "circumvention_attempts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("user", sa.String(200), nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("host", sa.String(300), nullable=False),
        sa.Column("technique", sa.String(64), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_circumvention_attempts")),
    )
    op.create_index("ix_circumvention_attempts_user_at", "circumvention_attempts", ["user", "at"])

    op.create_table(
        "sanctions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("starts", UTCDateTime(), nullable=False),
        sa.Column("ends", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lifted_by", sa.String(200), nullable=True),
        sa.Column("lifted_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sanctions")),
        _check("state", ("placed", "recommended", "lifted")),
    )
    op.create_index("ix_sanctions_user", "sanctions", ["user"])

    op.create_table(
        "supervised_sessions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("starts", UTCDateTime(), nullable=False),
        sa.Column("ends", UTCDateTime(), nullable=False),
        sa.Column("opened_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supervised_sessions")),
    )
    op.create_index("ix_supervised_sessions_user", "supervised_sessions", ["user"])

    op.create_table(
        "exceptions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("who", sa.String(200), nullable=True),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("starts", UTCDateTime(), nullable=False),
        sa.Column("ends", UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exceptions")),
        _check("scope", ("user", "group", "role", "everyone")),
        _check("target_kind", ("host", "category")),
    )

    op.create_table(
        "local_list",
        sa.Column("host", sa.String(300), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("host", name=op.f("pk_local_list")),
        _check("verdict", ("allow", "block")),
    )

    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("user", sa.String(200), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.Column("action_taken", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("pushed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        _check("severity", ("low", "medium", "high")),
        _check("state", ("open", "acknowledged", "closed")),
    )
    op.create_index("ix_alerts_state_at", "alerts", ["state", "at"])

    changes = op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
    )
    op.bulk_insert(changes, [{"id": 1, "counter": 0}])
    _create_change_triggers()


def _create_change_triggers() -> None:
    """Every write to an override table bumps the counter in the same transaction, even raw
    SQL from outside schoolgate, so no change can go unnoticed by the gateway."""
    bump = "UPDATE changes SET counter = counter + 1 WHERE id = 1"
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION schoolgate_bump_changes() RETURNS trigger AS $$
            BEGIN
                {bump};
                RETURN NULL;
            END;
            $$ LANGUAGE plpgsql""")
        for table in OVERRIDE_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_bump_changes AFTER INSERT OR UPDATE OR DELETE "
                f"OR TRUNCATE ON {table} FOR EACH STATEMENT "
                "EXECUTE FUNCTION schoolgate_bump_changes()"
            )
        return
    for table in OVERRIDE_TABLES:
        for action in ("insert", "update", "delete"):
            op.execute(
                f"CREATE TRIGGER {table}_{action}_bump_changes AFTER {action.upper()} "
                f"ON {table} BEGIN {bump}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in OVERRIDE_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_changes ON {table}")
        op.execute("DROP FUNCTION IF EXISTS schoolgate_bump_changes()")
    for table in (
        "changes",
        "alerts",
        "local_list",
        "exceptions",
        "supervised_sessions",
        "sanctions",
        "circumvention_attempts",
        "events",
    ):
        op.drop_table(table)
