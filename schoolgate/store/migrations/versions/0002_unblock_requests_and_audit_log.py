"""The admin's tables: written unblock requests and the audit log of every admin action.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schoolgate.store.models import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unblock_requests",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("requester_name", sa.String(200), nullable=False),
        sa.Column("requester_role", sa.String(100), nullable=False),
        sa.Column("blocked_user", sa.String(200), nullable=True),
        sa.Column("blocked_role", sa.String(100), nullable=True),
        sa.Column("blocked_at", UTCDateTime(), nullable=True),
        sa.Column("block_reason", sa.String(32), nullable=True),
        sa.Column("from_block_page", sa.Boolean(), nullable=False),
        sa.Column("host", sa.String(300), nullable=False),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("for_group", sa.String(200), nullable=True),
        sa.Column("wanted_on", sa.Date(), nullable=True),
        sa.Column("wanted_period", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reviewed_by", sa.String(200), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.Column("grant", sa.JSON(), nullable=True),
        sa.Column("exception_id", sa.String(36), nullable=True),
        sa.Column("local_list_host", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unblock_requests")),
        sa.CheckConstraint("state IN ('pending', 'approved', 'denied')", name="state"),
    )
    op.create_index("ix_unblock_requests_requester", "unblock_requests", ["requester"])
    op.create_index(
        "ix_unblock_requests_state_created_at", "unblock_requests", ["state", "created_at"]
    )

    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_roles", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("unblock_requests")
