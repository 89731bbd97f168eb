"""The trust summary (docs/trust.md): each school's week side by side, counted through the
request's scoped session, so a school's staff count only their own school's rows and the
trust's roles every school's (and the rows of no school, from before the trust or from a
client in no school's subnets)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from schoolgate.admin_api.services.reports import day_bounds, week_of
from schoolgate.policy.model import Verdict
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.models import (
    AlertRow,
    AlertState,
    CircumventionAttemptRow,
    EventRow,
    SanctionRow,
    SanctionState,
)

# A school's tables in words, for the page that asks before deleting them (a table given a
# school column later is shown by its own name until it is added here).
TABLE_WORDS = {
    "events": "websites visited",
    "circumvention_attempts": "tries to get round the filter",
    "alerts": "alerts",
    "sanctions": "sanctions",
    "supervised_sessions": "supervised sessions",
    "exceptions": "access granted (exceptions)",
    "unblock_requests": "unblock requests",
    "incident_notes": "incident notes",
    "audit_log": "audit log entries",
    "local_list": "local list entries",
}
COUNTS = ("events", "blocked", "attempts", "open_alerts", "pending_requests", "active_sanctions")


@dataclass(slots=True)
class SchoolWeek:
    """One school's row of the summary; `school` None: rows of no school."""

    school: str | None
    name: str
    events: int = 0
    blocked: int = 0
    attempts: int = 0
    open_alerts: int = 0
    pending_requests: int = 0
    active_sanctions: int = 0


@dataclass(frozen=True, slots=True)
class TrustSummary:
    since: datetime  # the Monday the week began, in the school's zone
    rows: list[SchoolWeek]


def _per_school(session: Session, model: Any, *where: ColumnElement[bool]) -> dict[str | None, int]:
    found = session.execute(
        select(model.school, func.count()).where(*where).group_by(model.school)
    ).all()
    return {school: int(n) for school, n in found}


def trust_summary(
    session: Session,
    *,
    schools: dict[str, str],
    at: datetime,
    zone: ZoneInfo,
    every_school: bool,
) -> TrustSummary:
    """A row per school in `schools` ({id: name}), in that order, and, for the trust's roles
    (`every_school`), a last row for rows of no school or of a school no longer in the trust
    when there are any. Events, blocks and attempts count this week (from Monday, `zone`);
    alerts not closed, pending requests and sanctions in force count now."""
    monday = week_of(at.astimezone(zone).date())
    start, _ = day_bounds(monday, monday + timedelta(days=6), zone)
    not_ended = or_(SanctionRow.ends.is_(None), SanctionRow.ends > at)
    counted = {
        "events": _per_school(session, EventRow, EventRow.at >= start),
        "blocked": _per_school(
            session, EventRow, EventRow.at >= start, EventRow.verdict == Verdict.BLOCK
        ),
        "attempts": _per_school(
            session, CircumventionAttemptRow, CircumventionAttemptRow.at >= start
        ),
        "open_alerts": _per_school(session, AlertRow, AlertRow.state != AlertState.CLOSED),
        "pending_requests": _per_school(
            session, UnblockRequestRow, UnblockRequestRow.state == RequestState.PENDING
        ),
        "active_sanctions": _per_school(
            session,
            SanctionRow,
            SanctionRow.state == SanctionState.PLACED,
            SanctionRow.starts <= at,
            not_ended,
        ),
    }
    rows = [SchoolWeek(school, name) for school, name in schools.items()]
    other = SchoolWeek(None, "No school (before the trust, or a device in no school's subnets)")
    by_id = {row.school: row for row in rows}
    for key, per_school in counted.items():
        for school, n in per_school.items():
            row = by_id.get(school, other)
            setattr(row, key, getattr(row, key) + n)
    if every_school and any(getattr(other, key) for key in COUNTS):
        rows.append(other)
    return TrustSummary(since=start, rows=rows)
