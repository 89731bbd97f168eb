"""When an alert was closed: retention counts from its closing, and an alert not closed is kept
(ops review L4: open, never-reviewed alerts were deleted after 365 days).

Revision ID: 0010_alert_closed_at
Revises: 0009_act_marks
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schoolgate.store.models import UTCDateTime

revision: str = "0010_alert_closed_at"
down_revision: str | None = "0009_act_marks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Adds one nullable column: code of the release before still works on this schema.
expand_only = True


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("closed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("closed_at")
