"""A subject access export: everything schoolgate holds about one person, as one JSON document
(UK GDPR article 15): their browsing events, circumvention attempts, alerts, sanctions and
supervised sessions, incident notes, unblock requests, exceptions, local-list entries they
added, and the audit entries of their own actions or about their records. Names match as the
directory does, ignoring case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import DeclarativeBase, Session

from schoolgate.store.admin_models import AuditEntryRow, UnblockRequestRow
from schoolgate.store.incident_models import IncidentNoteRow
from schoolgate.store.models import (
    AlertRow,
    CircumventionAttemptRow,
    EventRow,
    ExceptionRow,
    LocalListRow,
    SanctionRow,
    SupervisedSessionRow,
)
from schoolgate.store.school_data import plain_value

LIMIT = 200_000  # rows per table: far more than one person's year of browsing at school


def _rows(session: Session, table: type[DeclarativeBase], condition: Any) -> list[dict[str, Any]]:
    columns = table.__table__.columns
    found = session.scalars(select(table).where(condition).limit(LIMIT)).all()
    return [
        {column.key: plain_value(getattr(row, column.key)) for column in columns} for row in found
    ]


def subject_access(session: Session, *, user: str, at: datetime) -> dict[str, Any]:
    """Everything held about `user` (compared ignoring case)."""
    name = user.strip().casefold()

    def same(column: Any) -> Any:
        return func.lower(column) == name

    return {
        "subject": user.strip(),
        "made_at": at.isoformat(),
        "browsing_events": _rows(session, EventRow, same(EventRow.user)),
        "circumvention_attempts": _rows(
            session, CircumventionAttemptRow, same(CircumventionAttemptRow.user)
        ),
        "alerts": _rows(session, AlertRow, same(AlertRow.user)),
        "sanctions": _rows(session, SanctionRow, same(SanctionRow.user)),
        "supervised_sessions": _rows(
            session, SupervisedSessionRow, same(SupervisedSessionRow.user)
        ),
        "incident_notes": _rows(session, IncidentNoteRow, same(IncidentNoteRow.user)),
        "unblock_requests": _rows(
            session,
            UnblockRequestRow,
            or_(same(UnblockRequestRow.requester), same(UnblockRequestRow.blocked_user)),
        ),
        "exceptions": _rows(
            session, ExceptionRow, or_(same(ExceptionRow.who), same(ExceptionRow.created_by))
        ),
        "local_list_entries_added": _rows(session, LocalListRow, same(LocalListRow.added_by)),
        "audit_entries": _rows(session, AuditEntryRow, same(AuditEntryRow.actor)),
    }
