"""Shared marks of acts in progress and of the last attempt alert per person and technique, so
that whether an attempt is a counted act or a follow-up, and whether it raises the DSL's alert,
is decided once for every gateway worker and replica (store/acts.py).

Revision ID: 0009_act_marks
Revises: 0008_shared_acts
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schoolgate.store.models import UTCDateTime

revision: str = "0009_act_marks"
down_revision: str | None = "0008_shared_acts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Adds one table: code of the release before still works on this schema.
expand_only = True


def upgrade() -> None:
    op.create_table(
        "act_marks",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_act_marks")),
    )
    op.create_index("ix_act_marks_at", "act_marks", ["at"])


def downgrade() -> None:
    op.drop_index("ix_act_marks_at", table_name="act_marks")
    op.drop_table("act_marks")
