"""The gateway's shared counts carry the school too: `attempt_counts` (a person's acts in the
sanction window) and `act_marks` (acts in progress, the last alert per person and technique)
get a nullable `school`, so a school's rows can be exported or removed with the rest of its
data (docs/trust.md). No index: both tables are small and prune themselves.

Revision ID: 0013_school_on_counts
Revises: 0012_local_list_school
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_school_on_counts"
down_revision: str | None = "0012_local_list_school"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Adds nullable columns: code of the release before still works on this schema.
expand_only = True

TABLES = ("attempt_counts", "act_marks")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("school", sa.String(40), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("school")
