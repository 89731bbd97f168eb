"""The DSL's reports: blocked requests per day by category, circumvention attempts per day, the
users with most attempts, and a weekly summary. Days are the school's days (its time zone);
the database groups by UTC hour (one portable expression per dialect) and Python folds the
hours into local days, so a daylight-saving change moves no event to the wrong day.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from schoolgate.policy.model import Verdict
from schoolgate.store.incident_models import IncidentNoteRow
from schoolgate.store.models import AlertRow, CircumventionAttemptRow, EventRow, SanctionRow

MAX_DAYS = 92  # one report spans at most a term
SERIES_SHOWN = 7  # categories drawn separately; the rest are "other"
UNCATEGORISED = "(no category)"


@dataclass(frozen=True, slots=True)
class DailyCounts:
    """Counts per local day for each named series (same length as `days`)."""

    days: tuple[date, ...]
    series: dict[str, tuple[int, ...]]

    @property
    def total(self) -> int:
        return sum(sum(values) for values in self.series.values())

    def rows(self) -> Iterable[tuple[date, str, int]]:
        for name, values in self.series.items():
            for day, value in zip(self.days, values, strict=True):
                yield day, name, value


def day_bounds(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in the school's zone, as UTC."""
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def _hour(column: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", column))
    return func.strftime("%Y-%m-%d %H:00:00", column)  # SQLite keeps UTC text


def _as_utc(value: datetime | str) -> datetime:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _days(first: date, last: date) -> tuple[date, ...]:
    return tuple(first + timedelta(days=n) for n in range((last - first).days + 1))


def _fold(
    rows: Iterable[Sequence[Any]],
    days: tuple[date, ...],
    zone: ZoneInfo,
) -> dict[str, Counter[date]]:
    """(utc hour, series, n) rows -> series -> local day -> n."""
    found: dict[str, Counter[date]] = defaultdict(Counter)
    for hour, name, count in rows:
        found[str(name)][_as_utc(hour).astimezone(zone).date()] += int(count)
    return found


def _as_series(
    found: dict[str, Counter[date]], days: tuple[date, ...], keep: int | None = None
) -> dict[str, tuple[int, ...]]:
    ranked = sorted(found, key=lambda name: (-sum(found[name].values()), name))
    shown, rest = (
        (ranked, []) if keep is None or len(ranked) <= keep + 1 else (ranked[:keep], ranked[keep:])
    )
    series = {name: tuple(found[name][day] for day in days) for name in shown}
    if rest:
        series["other"] = tuple(sum(found[name][day] for name in rest) for day in days)
    return series


def blocked_per_day(
    session: Session,
    *,
    first: date,
    last: date,
    zone: ZoneInfo,
) -> DailyCounts:
    """Blocked requests per school day, one series per category (the biggest few)."""
    start, end = day_bounds(first, last, zone)
    hour = _hour(EventRow.at, session.get_bind().dialect.name)
    category = func.coalesce(EventRow.category, UNCATEGORISED)
    rows = session.execute(
        select(hour, category, func.count())
        .where(EventRow.verdict == Verdict.BLOCK, EventRow.at >= start, EventRow.at < end)
        .group_by(hour, category)
    ).all()
    days = _days(first, last)
    return DailyCounts(days, _as_series(_fold(rows, days, zone), days, SERIES_SHOWN))


def attempts_per_day(
    session: Session,
    *,
    first: date,
    last: date,
    zone: ZoneInfo,
) -> DailyCounts:
    """Circumvention attempts per school day: those that count towards a sanction, and the
    widgets of blocked platforms on allowed pages (recorded, never counted)."""
    start, end = day_bounds(first, last, zone)
    hour = _hour(CircumventionAttemptRow.at, session.get_bind().dialect.name)
    rows = session.execute(
        select(hour, CircumventionAttemptRow.counted, func.count())
        .where(CircumventionAttemptRow.at >= start, CircumventionAttemptRow.at < end)
        .group_by(hour, CircumventionAttemptRow.counted)
    ).all()
    named = [(h, "attempts" if counted else "widgets (not counted)", n) for h, counted, n in rows]
    days = _days(first, last)
    found = _fold(named, days, zone)
    found.setdefault("attempts", Counter())
    return DailyCounts(days, _as_series(found, days))


def top_users_by_attempts(
    session: Session, *, start: datetime, end: datetime, limit: int = 10
) -> list[tuple[str, int]]:
    """The users with most counted attempts in [start, end), most first."""
    count = func.count().label("n")
    rows = session.execute(
        select(CircumventionAttemptRow.user, count)
        .where(
            CircumventionAttemptRow.at >= start,
            CircumventionAttemptRow.at < end,
            CircumventionAttemptRow.counted.is_(True),
            CircumventionAttemptRow.user.is_not(None),
        )
        .group_by(CircumventionAttemptRow.user)
        .order_by(count.desc(), CircumventionAttemptRow.user)
        .limit(limit)
    ).all()
    return [(str(user), int(n)) for user, n in rows]


def _counts(
    session: Session, column: Any, *where: ColumnElement[bool], limit: int = 20
) -> list[tuple[str, int]]:
    count = func.count().label("n")
    rows = session.execute(
        select(column, count)
        .where(*where)
        .group_by(column)
        .order_by(count.desc(), column)
        .limit(limit)
    ).all()
    return [(str(name) if name is not None else UNCATEGORISED, int(n)) for name, n in rows]


@dataclass(frozen=True, slots=True)
class WeeklySummary:
    """One school week (Monday to Sunday, the school's zone) in numbers."""

    first: date
    last: date
    events: int
    blocked: int
    blocked_by_category: list[tuple[str, int]]
    attempts: int
    attempts_by_technique: list[tuple[str, int]]
    top_users: list[tuple[str, int]]
    alerts_by_severity: list[tuple[str, int]]
    alerts_still_open: int
    sanctions_by_state: list[tuple[str, int]]
    incident_notes: int
    blocked_daily: DailyCounts
    attempts_daily: DailyCounts

    def rows(self) -> Iterable[tuple[str, str, int]]:
        """(section, item, value): the summary as one flat table (the CSV)."""
        yield "totals", "events", self.events
        yield "totals", "blocked requests", self.blocked
        yield "totals", "circumvention attempts", self.attempts
        yield "totals", "alerts still open", self.alerts_still_open
        yield "totals", "incident notes written", self.incident_notes
        for section, items in (
            ("blocked by category", self.blocked_by_category),
            ("attempts by technique", self.attempts_by_technique),
            ("top users by attempts", self.top_users),
            ("alerts by severity", self.alerts_by_severity),
            ("sanctions by state", self.sanctions_by_state),
        ):
            for name, value in items:
                yield section, name, value
        for day, name, value in self.blocked_daily.rows():
            yield f"blocked on {day.isoformat()}", name, value
        for day, name, value in self.attempts_daily.rows():
            yield f"attempts on {day.isoformat()}", name, value


def week_of(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def weekly_summary(session: Session, *, monday: date, zone: ZoneInfo) -> WeeklySummary:
    first, last = monday, monday + timedelta(days=6)
    start, end = day_bounds(first, last, zone)
    in_week = (EventRow.at >= start, EventRow.at < end)
    attempts_in_week = (CircumventionAttemptRow.at >= start, CircumventionAttemptRow.at < end)
    alerts_in_week = (AlertRow.at >= start, AlertRow.at < end)
    return WeeklySummary(
        first=first,
        last=last,
        events=session.scalar(select(func.count()).select_from(EventRow).where(*in_week)) or 0,
        blocked=session.scalar(
            select(func.count())
            .select_from(EventRow)
            .where(*in_week, EventRow.verdict == Verdict.BLOCK)
        )
        or 0,
        blocked_by_category=_counts(
            session, EventRow.category, *in_week, EventRow.verdict == Verdict.BLOCK
        ),
        attempts=session.scalar(
            select(func.count()).select_from(CircumventionAttemptRow).where(*attempts_in_week)
        )
        or 0,
        attempts_by_technique=_counts(
            session, CircumventionAttemptRow.technique, *attempts_in_week
        ),
        top_users=top_users_by_attempts(session, start=start, end=end),
        alerts_by_severity=_counts(session, AlertRow.severity, *alerts_in_week),
        alerts_still_open=session.scalar(
            select(func.count())
            .select_from(AlertRow)
            .where(*alerts_in_week, AlertRow.state != "closed")
        )
        or 0,
        sanctions_by_state=_counts(
            session, SanctionRow.state, SanctionRow.starts >= start, SanctionRow.starts < end
        ),
        incident_notes=session.scalar(
            select(func.count())
            .select_from(IncidentNoteRow)
            .where(IncidentNoteRow.at >= start, IncidentNoteRow.at < end)
        )
        or 0,
        blocked_daily=blocked_per_day(session, first=first, last=last, zone=zone),
        attempts_daily=attempts_per_day(session, first=first, last=last, zone=zone),
    )
