"""The sanction threshold's counts per user, shared by every gateway worker and replica.

Revision ID: 0005_attempt_counts
Revises: 0004_throttle
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schoolgate.store.models import UTCDateTime

revision: str = "0005_attempt_counts"
down_revision: str | None = "0004_throttle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attempt_counts",
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("times", sa.JSON(), nullable=False),
        sa.Column("updated", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user", name=op.f("pk_attempt_counts")),
    )


def downgrade() -> None:
    op.drop_table("attempt_counts")
