"""The acts in progress per user, shared by every gateway worker and replica: a follow-up
request that another worker saw (the favicon, a reload) is not a new act for the threshold.

Revision ID: 0008_shared_acts
Revises: 0007_schema_compat
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_shared_acts"
down_revision: str | None = "0007_schema_compat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Adds one nullable column: code of the release before still works on this schema.
expand_only = True


def upgrade() -> None:
    with op.batch_alter_table("attempt_counts") as batch:
        batch.add_column(sa.Column("acts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempt_counts") as batch:
        batch.drop_column("acts")
