"""The oldest schema revision whose code still works on this database (`schema_compat`), written
by every `schoolgate db upgrade`, so that a replica of the previous release keeps working after
an expand-only migration during a rolling upgrade (docs/upgrading.md).

Revision ID: 0007_schema_compat
Revises: 0006_policy_versions
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_schema_compat"
down_revision: str | None = "0006_policy_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Only adds a table: the previous release's code works on the result (store/db.py).
expand_only = True


def upgrade() -> None:
    op.create_table(
        "schema_compat",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("oldest_compatible", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schema_compat")),
    )


def downgrade() -> None:
    op.drop_table("schema_compat")
