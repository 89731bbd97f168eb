"""The DSL's incident notes: what happened, the action taken and the outcome.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schoolgate.store.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_notes",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("written_by", sa.String(200), nullable=False),
        sa.Column("happened_at", UTCDateTime(), nullable=True),
        sa.Column("what_happened", sa.Text(), nullable=False),
        sa.Column("action_taken", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("alert_id", sa.String(36), nullable=True),
        sa.Column("event_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_notes")),
    )
    op.create_index("ix_incident_notes_user_at", "incident_notes", ["user", "at"])
    op.create_index("ix_incident_notes_at", "incident_notes", ["at"])
    op.create_index("ix_incident_notes_alert_id", "incident_notes", ["alert_id"])


def downgrade() -> None:
    op.drop_table("incident_notes")
