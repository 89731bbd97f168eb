"""Each school's own data: a `school` column (the school's id from the trust file) on the tables
that hold a school's rows, indexed with the time they are listed by. NULL is a single-school
install, as before: existing rows keep NULL (docs/trust.md, "Keeping schools' data apart").

Revision ID: 0011_school_column
Revises: 0010_alert_closed_at
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_school_column"
down_revision: str | None = "0010_alert_closed_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Adds nullable columns and indexes: code of the release before still works on this schema.
expand_only = True

# table -> the time column its school index pairs with (the order pages list rows in)
SCHOOL_INDEXES = {
    "events": "at",
    "circumvention_attempts": "at",
    "sanctions": "starts",
    "supervised_sessions": "starts",
    "exceptions": "starts",
    "alerts": "at",
    "unblock_requests": "created_at",
    "incident_notes": "at",
    "audit_log": "at",
}


def upgrade() -> None:
    for table, when in SCHOOL_INDEXES.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("school", sa.String(40), nullable=True))
            batch.create_index(f"ix_{table}_school_{when}", ["school", when])


def downgrade() -> None:
    for table, when in SCHOOL_INDEXES.items():
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_school_{when}")
            batch.drop_column("school")
