"""Versions of the policy file and of the local lists (text, hash, author, time, reason, diff),
and the differences a policy running in shadow records.

Revision ID: 0006_policy_versions
Revises: 0004_throttle
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schoolgate.store.models import UTCDateTime

revision: str = "0006_policy_versions"
down_revision: str | None = "0005_attempt_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("diff", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
    )
    op.create_index("ix_policy_versions_kind_id", "policy_versions", ["kind", "id"])
    op.create_table(
        "shadow_differences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shadow_sha256", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("host", sa.String(300), nullable=False),
        sa.Column("live", sa.String(16), nullable=False),
        sa.Column("shadow", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_differences")),
    )
    op.create_index("ix_shadow_differences_sha_at", "shadow_differences", ["shadow_sha256", "at"])


def downgrade() -> None:
    op.drop_index("ix_shadow_differences_sha_at", table_name="shadow_differences")
    op.drop_table("shadow_differences")
    op.drop_index("ix_policy_versions_kind_id", table_name="policy_versions")
    op.drop_table("policy_versions")
