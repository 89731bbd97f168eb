"""The admin's own tables on the shared metadata: written unblock requests and the audit log.

Requests follow the school's words: "Requests may be made to access erroneously blocked content
by submitting a written request to the Business Manager". Timestamps are aware UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from schoolgate.store.models import Base, enum_column, school_column


class RequestState(StrEnum):
    PENDING = "pending"  # waiting for the Business Manager
    APPROVED = "approved"
    DENIED = "denied"


class UnblockRequestRow(Base):
    """A written request to unblock a site (or, from a teacher, to open a category for a class
    in advance of a lesson), and the Business Manager's decision on it."""

    __tablename__ = "unblock_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime]
    requester: Mapped[str] = mapped_column(String(200), index=True)  # who wrote it (signed in)
    requester_name: Mapped[str] = mapped_column(String(200))  # their display name
    requester_role: Mapped[str] = mapped_column(String(100))  # their policy role then
    blocked_user: Mapped[str | None] = mapped_column(String(200))  # from the block page
    blocked_role: Mapped[str | None] = mapped_column(String(100))
    blocked_at: Mapped[datetime | None]
    block_reason: Mapped[str | None] = mapped_column(String(32))
    from_block_page: Mapped[bool] = mapped_column(Boolean)  # a genuine signed link pre-filled it
    host: Mapped[str] = mapped_column(String(300))  # normalised
    category: Mapped[str | None] = mapped_column(String(100))
    why: Mapped[str] = mapped_column(Text)
    # A teacher's advance request for a class or group (a curriculum activity).
    for_group: Mapped[str | None] = mapped_column(String(200))
    wanted_on: Mapped[date | None] = mapped_column(Date)
    wanted_period: Mapped[str | None] = mapped_column(String(32))  # "HH:MM-HH:MM" on wanted_on
    state: Mapped[RequestState] = mapped_column(enum_column(RequestState, "state"))
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None]
    review_note: Mapped[str | None] = mapped_column(Text)  # the reason for a denial, or a note
    grant: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # what was granted, for people
    exception_id: Mapped[str | None] = mapped_column(String(36))
    local_list_host: Mapped[str | None] = mapped_column(String(300))
    school: Mapped[str | None] = school_column()

    __table_args__ = (
        Index("ix_unblock_requests_state_created_at", "state", "created_at"),
        Index("ix_unblock_requests_school_created_at", "school", "created_at"),
    )


class AuditEntryRow(Base):
    """One admin action: who did what to which thing, when, and the thing before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    actor_roles: Mapped[str] = mapped_column(String(200))  # comma-separated admin roles
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(400))  # e.g. "unblock_request:<id>"
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    school: Mapped[str | None] = school_column()

    __table_args__ = (Index("ix_audit_log_school_at", "school", "at"),)
