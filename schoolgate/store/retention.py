"""Retention: delete what is older than the school keeps it, table by table, in bounded batches
so that a purge never holds a long lock over the gateway's writes. Every table that holds
personal data has a period (docs/admin.md, "Records and retention", gives the guidance each
default follows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, delete, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from schoolgate.store.admin_models import AuditEntryRow, UnblockRequestRow
from schoolgate.store.incident_models import IncidentNoteRow
from schoolgate.store.models import (
    AlertRow,
    AlertState,
    Base,
    CircumventionAttemptRow,
    EventRow,
    SanctionRow,
    SanctionState,
    SupervisedSessionRow,
)

BATCH = 5_000


@dataclass(frozen=True, slots=True)
class RetentionDays:
    """How many days each kind of record is kept (after it happened, or after it ended)."""

    events: int = 90  # browsing events
    attempts: int = 365  # circumvention attempts
    alerts: int = 365  # after the alert was closed (one not closed is kept)
    sanctions: int = 365  # sanctions (and supervised sessions) after they ended
    # The admin's records. Audit log: three years, so that each annual filtering review (DfE
    # filtering and monitoring standards) and the one after can read the year's decisions.
    audit_log: int = 3 * 365
    # Unblock requests (pupils' names and reasons): one year, the review's period.
    requests: int = 365
    # Incident notes are safeguarding records: the IRMS toolkit for schools keeps child
    # protection records until the child's 25th birthday; 25 years from the note is never
    # shorter than that for a primary pupil. Set it to the school's records policy.
    incident_notes: int = 25 * 365

    def __post_init__(self) -> None:
        for name in (
            "events",
            "attempts",
            "alerts",
            "sanctions",
            "audit_log",
            "requests",
            "incident_notes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"retention for {name} must be at least 1 day, not {getattr(self, name)}"
                )


def purge(
    engine: Engine, *, now: datetime, days: RetentionDays | None = None, batch: int = BATCH
) -> dict[str, int]:
    """Delete records older than their retention; returns how many rows went, per table."""
    days = days or RetentionDays()

    def before(n: int) -> datetime:
        return now - timedelta(days=n)

    ended = before(days.sanctions)
    return {
        "events": _delete(engine, EventRow, EventRow.id, EventRow.at < before(days.events), batch),
        "circumvention_attempts": _delete(
            engine,
            CircumventionAttemptRow,
            CircumventionAttemptRow.id,
            CircumventionAttemptRow.at < before(days.attempts),
            batch,
        ),
        # An alert is kept until the DSL closes it, then `alerts` days from its closing (from
        # when it was raised if it was closed before the closing time was stored).
        "alerts": _delete(
            engine,
            AlertRow,
            AlertRow.id,
            and_(
                AlertRow.state == AlertState.CLOSED,
                func.coalesce(AlertRow.closed_at, AlertRow.at) < before(days.alerts),
            ),
            batch,
        ),
        # A sanction goes once it ended (or was lifted, or only recommended) long enough ago;
        # one with no end stays.
        "sanctions": _delete(
            engine,
            SanctionRow,
            SanctionRow.id,
            or_(
                and_(SanctionRow.ends.is_not(None), SanctionRow.ends < ended),
                and_(SanctionRow.state == SanctionState.LIFTED, SanctionRow.lifted_at < ended),
                and_(SanctionRow.state == SanctionState.RECOMMENDED, SanctionRow.starts < ended),
            ),
            batch,
        ),
        "supervised_sessions": _delete(
            engine,
            SupervisedSessionRow,
            SupervisedSessionRow.id,
            SupervisedSessionRow.ends < ended,
            batch,
        ),
        "audit_log": _delete(
            engine,
            AuditEntryRow,
            AuditEntryRow.id,
            AuditEntryRow.at < before(days.audit_log),
            batch,
        ),
        "unblock_requests": _delete(
            engine,
            UnblockRequestRow,
            UnblockRequestRow.id,
            UnblockRequestRow.created_at < before(days.requests),
            batch,
        ),
        "incident_notes": _delete(
            engine,
            IncidentNoteRow,
            IncidentNoteRow.id,
            IncidentNoteRow.at < before(days.incident_notes),
            batch,
        ),
    }


def _delete(
    engine: Engine,
    table: type[Base],
    key: InstrumentedAttribute[Any],
    old: ColumnElement[bool],
    batch: int,
) -> int:
    total = 0
    while True:
        with engine.begin() as conn:
            ids = select(key).where(old).limit(batch).scalar_subquery()
            count = conn.execute(delete(table).where(key.in_(ids))).rowcount
        total += count
        if count < batch:
            return total


def refresh_statistics(engine: Engine) -> None:
    """Refresh the query planner's statistics after a purge. SQLite keeps none until `ANALYZE`
    runs, and without them it may walk the wrong index for a school's or a pupil's page
    (docs/trust.md, measured 20x slower); `analysis_limit` keeps it to a sample per index, so
    it takes a moment however big the tables are. PostgreSQL's autovacuum does this on its own.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        conn.exec_driver_sql("ANALYZE")
