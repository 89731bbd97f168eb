"""Retention: delete what is older than the school keeps it, table by table, in bounded batches
so that a purge never holds a long lock over the gateway's writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Engine, and_, delete, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from store.models import (
    AlertRow,
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
    alerts: int = 365
    sanctions: int = 365  # sanctions (and supervised sessions) after they ended

    def __post_init__(self) -> None:
        for name in ("events", "attempts", "alerts", "sanctions"):
            if getattr(self, name) < 1:
                raise ValueError(f"retention for {name} must be at least 1 day, not "
                                 f"{getattr(self, name)}")


def purge(engine: Engine, *, now: datetime, days: RetentionDays | None = None,
          batch: int = BATCH) -> dict[str, int]:
    """Delete records older than their retention; returns how many rows went, per table."""
    days = days or RetentionDays()

    def before(n: int) -> datetime:
        return now - timedelta(days=n)

    ended = before(days.sanctions)
    return {
        "events": _delete(engine, EventRow, EventRow.id, EventRow.at < before(days.events), batch),
        "circumvention_attempts": _delete(
            engine, CircumventionAttemptRow, CircumventionAttemptRow.id,
            CircumventionAttemptRow.at < before(days.attempts), batch),
        "alerts": _delete(engine, AlertRow, AlertRow.id, AlertRow.at < before(days.alerts), batch),
        # A sanction goes once it ended (or was lifted, or only recommended) long enough ago;
        # one with no end stays.
        "sanctions": _delete(engine, SanctionRow, SanctionRow.id, or_(
            and_(SanctionRow.ends.is_not(None), SanctionRow.ends < ended),
            and_(SanctionRow.state == SanctionState.LIFTED, SanctionRow.lifted_at < ended),
            and_(SanctionRow.state == SanctionState.RECOMMENDED, SanctionRow.starts < ended)),
                             batch),
        "supervised_sessions": _delete(engine, SupervisedSessionRow, SupervisedSessionRow.id,
                                       SupervisedSessionRow.ends < ended, batch),
    }


def _delete(engine: Engine, table: type[Base], key: InstrumentedAttribute[str],
            old: ColumnElement[bool], batch: int) -> int:
    total = 0
    while True:
        with engine.begin() as conn:
            ids = select(key).where(old).limit(batch).scalar_subquery()
            count = conn.execute(delete(table).where(key.in_(ids))).rowcount
        total += count
        if count < batch:
            return total
