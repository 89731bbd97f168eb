"""The acts in progress per user, shared by every gateway worker and replica: a follow-up
request that another worker saw (the favicon, a reload) is not a new act for the threshold.

Revision ID: 0007_i12_shared_acts
Revises: 0006_policy_versions
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_i12_shared_acts"
down_revision: str | None = "0006_policy_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempt_counts") as batch:
        batch.add_column(sa.Column("acts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempt_counts") as batch:
        batch.drop_column("acts")
