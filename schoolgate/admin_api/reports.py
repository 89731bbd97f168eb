"""The DSL's reports, as pages and under /api/monitoring: charts (blocked requests per day by
category, circumvention attempts per day, top users by attempts; inline SVG drawn on the
server) and the weekly summary, also as CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from schoolgate.admin_api import words
from schoolgate.admin_api.deps import Db, Dsl, Now
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.monitoring_deps import Zone
from schoolgate.admin_api.monitoring_schemas import (
    ChartsPublic,
    DailySeriesPublic,
    WeeklySummaryPublic,
)
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.services import reports as service
from schoolgate.admin_api.svg import ranking_bars, stacked_bars

router = APIRouter(tags=["reports"])
api = APIRouter(tags=["reports"])
PagesDep = Annotated[Pages, Depends(get_pages)]
DEFAULT_DAYS = 14


def _day(text: str, field: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput({field: "must be a date (YYYY-MM-DD)"}) from None


def span(first_text: str, last_text: str, now: datetime, zone: ZoneInfo) -> tuple[date, date]:
    """The days asked for: by default the last two weeks up to today (school time)."""
    last = _day(last_text, "to") or now.astimezone(zone).date()
    first = _day(first_text, "from") or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise InvalidInput({"to": "the 'to' day is before the 'from' day"})
    if (last - first).days >= service.MAX_DAYS:
        raise InvalidInput({"from": f"a report covers {service.MAX_DAYS} days at most"})
    return first, last


def week(text: str, now: datetime, zone: ZoneInfo) -> date:
    """The Monday of the week asked for (by any of its days), by default this week."""
    return service.week_of(_day(text, "week") or now.astimezone(zone).date())


def _series(counts: service.DailyCounts) -> DailySeriesPublic:
    return DailySeriesPublic(
        days=list(counts.days), series={k: list(v) for k, v in counts.series.items()}
    )


def _in_words(
    series: dict[str, tuple[int, ...]],
    *,
    techniques: bool = False,
) -> dict[str, tuple[int, ...]]:
    """The series' names as people know them ('social' -> 'social media')."""
    name = words.technique_words if techniques else words.category_words
    return {
        (name(key) if key != "attempts" else "attempts"): values for key, values in series.items()
    }


@router.get("/monitoring/charts", include_in_schema=False)
def charts_page(
    request: Request,
    pages: PagesDep,
    user: Dsl,
    session: Db,
    now: Now,
    zone: Zone,
    first_text: Annotated[str, Query(alias="from", max_length=30)] = "",
    last_text: Annotated[str, Query(alias="to", max_length=30)] = "",
) -> Response:
    first, last = span(first_text, last_text, now, zone)
    start, end = service.day_bounds(first, last, zone)
    blocked = service.blocked_per_day(session, first=first, last=last, zone=zone)
    attempts = service.attempts_per_day(session, first=first, last=last, zone=zone)
    top = service.top_users_by_attempts(session, start=start, end=end)
    return pages.render(
        request,
        "monitoring_charts.html",
        user=user,
        first=first,
        last=last,
        blocked=blocked,
        attempts=attempts,
        top=top,
        blocked_svg=stacked_bars(
            title="Websites blocked per day, by kind",
            days=blocked.days,
            series=_in_words(blocked.series),
        ),
        attempts_svg=stacked_bars(
            title="Attempts to get round the filter per day",
            days=attempts.days,
            series=_in_words(attempts.series, techniques=True),
        ),
        top_svg=ranking_bars(title="People with the most attempts", items=top),
    )


@router.get("/monitoring/weekly", include_in_schema=False)
def weekly_page(
    request: Request,
    pages: PagesDep,
    user: Dsl,
    session: Db,
    now: Now,
    zone: Zone,
    week_text: Annotated[str, Query(alias="week", max_length=30)] = "",
) -> Response:
    monday = week(week_text, now, zone)
    summary = service.weekly_summary(session, monday=monday, zone=zone)
    return pages.render(
        request,
        "monitoring_weekly.html",
        user=user,
        summary=summary,
        previous=monday - timedelta(days=7),
        following=monday + timedelta(days=7),
        blocked_svg=stacked_bars(
            title="Websites blocked per day, by kind",
            days=summary.blocked_daily.days,
            series=_in_words(summary.blocked_daily.series),
        ),
        attempts_svg=stacked_bars(
            title="Attempts to get round the filter per day",
            days=summary.attempts_daily.days,
            series=_in_words(summary.attempts_daily.series, techniques=True),
        ),
    )


@router.get("/monitoring/weekly.csv", include_in_schema=False)
def weekly_csv(
    user: Dsl,
    session: Db,
    now: Now,
    zone: Zone,
    week_text: Annotated[str, Query(alias="week", max_length=30)] = "",
) -> Response:
    monday = week(week_text, now, zone)
    summary = service.weekly_summary(session, monday=monday, zone=zone)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "item", "value"])
    for section, item, value in summary.rows():
        writer.writerow([section, "'" + item if item[:1] in "=+-@\t\r" and item else item, value])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="schoolgate-week-{monday}.csv"',
            "Cache-Control": "no-store",
        },
    )


@api.get("/charts", response_model=ChartsPublic)
def charts(
    user: Dsl,
    session: Db,
    now: Now,
    zone: Zone,
    first_text: Annotated[str, Query(alias="from", max_length=30)] = "",
    last_text: Annotated[str, Query(alias="to", max_length=30)] = "",
) -> ChartsPublic:
    """The charts' numbers for the school days `from`..`to` (default: the last 14 days)."""
    first, last = span(first_text, last_text, now, zone)
    start, end = service.day_bounds(first, last, zone)
    return ChartsPublic(
        first=first,
        last=last,
        blocked_per_day=_series(
            service.blocked_per_day(session, first=first, last=last, zone=zone)
        ),
        attempts_per_day=_series(
            service.attempts_per_day(session, first=first, last=last, zone=zone)
        ),
        top_users_by_attempts=service.top_users_by_attempts(session, start=start, end=end),
    )


@api.get("/weekly", response_model=WeeklySummaryPublic)
def weekly(
    user: Dsl,
    session: Db,
    now: Now,
    zone: Zone,
    week_text: Annotated[str, Query(alias="week", max_length=30)] = "",
) -> WeeklySummaryPublic:
    """The summary of the week (Monday to Sunday) containing the day `week` (default: now)."""
    s = service.weekly_summary(session, monday=week(week_text, now, zone), zone=zone)
    return WeeklySummaryPublic(
        first=s.first,
        last=s.last,
        events=s.events,
        blocked=s.blocked,
        blocked_by_category=s.blocked_by_category,
        attempts=s.attempts,
        attempts_by_technique=s.attempts_by_technique,
        top_users=s.top_users,
        alerts_by_severity=s.alerts_by_severity,
        alerts_still_open=s.alerts_still_open,
        sanctions_by_state=s.sanctions_by_state,
        incident_notes=s.incident_notes,
        blocked_per_day=_series(s.blocked_daily),
        attempts_per_day=_series(s.attempts_daily),
    )
