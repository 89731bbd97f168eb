"""The shared sign-in throttle (gateway and admin) and the admin's session "valid after" stamps.

Revision ID: 0004_throttle
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schoolgate.store.models import UTCDateTime

revision: str = "0004_throttle"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signin_throttle",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("expires", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_signin_throttle")),
    )
    op.create_index(op.f("ix_signin_throttle_expires"), "signin_throttle", ["expires"])
    op.create_table(
        "session_stamps",
        sa.Column("user", sa.String(256), nullable=False),
        sa.Column("valid_after", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user", name=op.f("pk_session_stamps")),
    )


def downgrade() -> None:
    op.drop_table("session_stamps")
    op.drop_index(op.f("ix_signin_throttle_expires"), table_name="signin_throttle")
    op.drop_table("signin_throttle")
