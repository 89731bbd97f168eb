"""The DSL's area: the landing page, the events explorer (filters, keyset pages, a streamed CSV
export) and one user's timeline around an incident, as pages and under /api. The alerts queue,
incident notes, sanctions and reports have modules of their own; their routers are included
here, so the app mounts the whole area as one. Everything is behind `require_role(Role.DSL)`:
pupils' browsing is for the safeguarding side only (not the Business Manager, not IT).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import func, select

from schoolgate.admin_api import alerts, evidence, incidents, reports, sanctions, words
from schoolgate.admin_api.deps import Db, Dsl, Now, Res, Scope, looks_like_id
from schoolgate.admin_api.errors import InvalidInput, NotFound
from schoolgate.admin_api.forms import validate
from schoolgate.admin_api.monitoring_deps import Zone, school_time
from schoolgate.admin_api.monitoring_schemas import (
    EventPagePublic,
    EventPublic,
    EventQuery,
    TimelinePublic,
)
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.services import alerts as alert_service
from schoolgate.admin_api.services import audit
from schoolgate.admin_api.services import monitoring as service
from schoolgate.admin_api.services import sanctions as sanction_service
from schoolgate.admin_api.services.monitoring import Cursor, EventFilter
from schoolgate.admin_api.services.people import (
    display_names,
    group_members,
    known_groups,
    named,
)
from schoolgate.admin_api.services.reports import day_bounds
from schoolgate.policy.hostnames import HostError, normalise_host
from schoolgate.store.models import EventRow
from schoolgate.store.school_scope import scoped_sessions

router = APIRouter(tags=["monitoring"])
api = APIRouter(prefix="/api/monitoring", tags=["monitoring"])
for _area in (alerts, incidents, sanctions, reports):
    router.include_router(_area.router)
    api.include_router(_area.api)
router.include_router(evidence.router)  # the annual review: for the DSL, IT and the bursar

PagesDep = Annotated[Pages, Depends(get_pages)]
Text = Annotated[str, Query(max_length=300)]
CursorText = Annotated[str, Query(max_length=200)]
Minutes = Annotated[int, Query(ge=1, le=service.MAX_TIMELINE_MINUTES)]


def event_query(
    user: Text = "",
    ip: Text = "",
    host: Text = "",
    category: Text = "",
    verdict: Text = "",
    technique: Text = "",
    group: Annotated[str, Query(max_length=200)] = "",
    from_day: Annotated[str, Query(alias="from", max_length=30)] = "",
    to_day: Annotated[str, Query(alias="to", max_length=30)] = "",
) -> dict[str, str]:
    """The filters as typed (checked by `parse_filters`, which explains any mistake)."""
    return {
        "user": user,
        "ip": ip,
        "host": host,
        "category": category,
        "verdict": verdict,
        "technique": technique,
        "group": group,
        "from": from_day,
        "to": to_day,
    }


Filters = Annotated[dict[str, str], Depends(event_query)]


def with_names(filters: EventFilter, resources: Resources) -> EventFilter:
    """The page's "Who" also finds people by their name in the directory ('Pupil One')."""
    if not filters.user_contains:
        return filters
    return replace(filters, users_named=named(resources, filters.user_contains))


def in_group(
    filters: EventFilter, group: str, resources: Resources, viewer: SignedInUser | None = None
) -> EventFilter:
    """Only the members of the class or group `group` (as the directory names it); a class
    the directory does not have, or a directory that cannot list its classes, is explained
    (InvalidInput), never read as "everyone"."""
    group = group.strip()
    if not group:
        return filters
    if group_members(resources, group) is None:
        raise InvalidInput(
            {
                "group": "the school directory here cannot list who is in a class, so events "
                "cannot be shown by class; type the person's name in Who instead"
            }
        )
    offered = {g.casefold(): g for g in known_groups(resources, viewer)}
    if group.casefold() not in offered:
        choices = ", ".join(offered.values()) or "none"
        raise InvalidInput(
            {
                "group": f"there is no class or group called {group} in the school directory; "
                f"choose one of: {choices}"
            }
        )
    return replace(filters, users_in=group_members(resources, group))


def parse_filters(raw: dict[str, str], zone: ZoneInfo, *, loose: bool = False) -> EventFilter:
    """The filter for the query; InvalidInput (field -> what is wrong) otherwise. `loose`
    (the DSL's pages): part of a name, a site with its subdomains, categories and techniques
    by their names in words ('social media', 'proxy'), favicons left out."""
    query = validate(EventQuery, {k: v.strip() for k, v in raw.items() if v.strip()})
    if loose:
        return _loose_filter(query, zone)
    host = None
    if query.host:
        found = normalise_host(query.host)
        if isinstance(found, HostError):
            raise InvalidInput(
                {"host": f"{found.message}; type a site's name, for example www.tiktok.com"}
            )
        host = found.name
    since = until = None
    if query.from_day:
        since = day_bounds(query.from_day, query.from_day, zone)[0]
    if query.to_day:
        until = day_bounds(query.to_day, query.to_day, zone)[1]
    return EventFilter(
        user=query.user or None,
        client_ip=query.ip or None,
        host=host,
        category=query.category or None,
        verdict=query.verdict,
        technique=query.technique or None,
        since=since,
        until=until,
    )


def _loose_filter(query: EventQuery, zone: ZoneInfo) -> EventFilter:
    site = query.host.strip().lower().rstrip(".").removeprefix("www.") or None
    since = until = None
    if query.from_day:
        since = day_bounds(query.from_day, query.from_day, zone)[0]
    if query.to_day:
        until = day_bounds(query.to_day, query.to_day, zone)[1]

    def codes(typed: str, table: dict[str, str]) -> tuple[str, ...] | None:
        if not typed:
            return None
        return tuple(words.codes_matching(typed, table)) or (typed,)

    return EventFilter(
        user_contains=query.user or None,
        client_ip=query.ip or None,
        host_within=site,
        categories=codes(query.category, words.CATEGORIES),
        verdict=query.verdict,
        techniques=codes(query.technique, words.TECHNIQUES),
        since=since,
        until=until,
        skip_favicons=True,
    )


def parse_cursor(text: str, field: str) -> Cursor | None:
    if not text:
        return None
    try:
        return Cursor.decode(text)
    except ValueError as error:
        raise InvalidInput({field: str(error)}) from None


@router.get("/monitoring", include_in_schema=False)
def monitoring_page(
    request: Request, pages: PagesDep, user: Dsl, session: Db, now: Now
) -> Response:
    view = sanction_service.sanctions_view(session, at=now)
    return pages.render(
        request,
        "monitoring.html",
        user=user,
        open_alerts=alert_service.count_open(session),
        in_force=len(view.in_force),
        recommended=len(view.recommended),
    )


@router.get("/monitoring/events", include_in_schema=False)
def events_page(
    request: Request,
    pages: PagesDep,
    user: Dsl,
    session: Db,
    resources: Res,
    zone: Zone,
    raw: Filters,
    older: CursorText = "",
    newer: CursorText = "",
) -> Response:
    errors: dict[str, str] = {}
    page = service.EventPage([], None, None)
    try:
        filters = in_group(
            with_names(parse_filters(raw, zone, loose=True), resources),
            raw["group"],
            resources,
            user,
        )
        page = service.events_page(
            session,
            filters=filters,
            older=parse_cursor(older, "older"),
            newer=parse_cursor(newer, "newer"),
        )
    except InvalidInput as error:
        errors = error.problems
    query = {k: v for k, v in raw.items() if v}
    return pages.render(
        request,
        "monitoring_events.html",
        user=user,
        page=page,
        names=display_names(resources, (row.user for row in page.rows)),
        groups=known_groups(resources, user),
        values=raw,
        errors=errors,
        query=query,
        first_page=not (older or newer),
        status=422 if errors else 200,
    )


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


CSV_COLUMNS = (
    "at_utc",
    "at_local",
    "user",
    "role",
    "client_ip",
    "device",
    "method",
    "scheme",
    "host",
    "port",
    "path",
    "query",
    "search_terms",
    "category",
    "verdict",
    "reason",
    "rule",
    "technique",
    "intercepted",
    "id",
)


def _csv_lines(rows: Iterator[EventRow], zone: ZoneInfo) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for number, row in enumerate(rows):
        writer.writerow(
            [
                row.at.isoformat(),
                row.at.astimezone(zone).isoformat(),
                *(csv_cell(getattr(row, name)) for name in CSV_COLUMNS[2:14]),
                row.verdict.value,
                csv_cell(row.reason),
                csv_cell(row.rule),
                csv_cell(row.technique),
                "yes" if row.intercepted else "no",
                row.id,
            ]
        )
        if number % 200 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


@router.get("/monitoring/events.csv", include_in_schema=False)
def events_csv(
    user: Dsl, session: Db, resources: Res, zone: Zone, now: Now, raw: Filters, scope: Scope
) -> Response:
    """Every matching event, newest first, streamed (the export is in the audit log)."""
    filters = in_group(
        with_names(parse_filters(raw, zone, loose=True), resources), raw["group"], resources, user
    )
    audit.record(
        session,
        actor=user,
        action="events.export",
        target="events",
        at=now,
        after={k: v for k, v in raw.items() if v},
    )
    session.commit()
    rows = service.walk_events(scoped_sessions(resources.sessions, scope), filters=filters)
    return StreamingResponse(
        _csv_lines(rows, zone),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": "attachment; filename="
            f'"schoolgate-events-{now:%Y%m%d-%H%M}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _timeline(
    session: Db,
    zone: ZoneInfo,
    *,
    user: str,
    at: str,
    event: str,
    minutes: int,
    now: datetime,
    skip_favicons: bool = False,
) -> service.Timeline:
    if event:
        row = session.get(EventRow, event) if looks_like_id(event) else None
        if row is None:
            raise NotFound(f"there is no event {event[:36]!r} (it may have been purged)")
        if row.user is None:
            raise InvalidInput({"event": "the gateway did not know who made this request"})
        return service.timeline(
            session, user=row.user, around=row.at, minutes=minutes, skip_favicons=skip_favicons
        )
    problems = {}
    if not user.strip():
        problems["user"] = "Please type whose timeline to show (their user name)"
    around = now
    if at.strip():
        try:
            around = school_time(datetime.fromisoformat(at.strip()), zone)
        except ValueError:
            problems["at"] = (
                "Please give the time as a day and a time, for example "
                "2026-12-18 10:30 (or leave it empty for their latest visits)"
            )
    elif user.strip():  # no time: around this person's latest visit
        latest = session.scalar(select(func.max(EventRow.at)).where(EventRow.user == user.strip()))
        if latest is not None:
            around = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
    if problems:
        raise InvalidInput(problems)
    return service.timeline(
        session, user=user.strip(), around=around, minutes=minutes, skip_favicons=skip_favicons
    )


@router.get("/monitoring/timeline", include_in_schema=False)
def timeline_page(
    request: Request,
    pages: PagesDep,
    user: Dsl,
    session: Db,
    resources: Res,
    zone: Zone,
    now: Now,
    who: Annotated[str, Query(alias="user", max_length=200)] = "",
    at: Annotated[str, Query(max_length=40)] = "",
    event: Annotated[str, Query(max_length=40)] = "",
    minutes: Minutes = 30,
) -> Response:
    errors: dict[str, str] = {}
    found = None
    if who or at or event:
        try:
            found = _timeline(
                session,
                zone,
                user=who,
                at=at,
                event=event,
                minutes=minutes,
                now=now,
                skip_favicons=True,  # one act shown once, as on the events page
            )
        except InvalidInput as error:
            errors = error.problems
    values = {"user": who, "at": at, "minutes": minutes}
    if found is not None:  # show what was found (e.g. around an event) in the form
        middle = found.start + (found.end - found.start) / 2
        values |= {
            "user": found.user,
            "at": middle.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds"),
        }
    return pages.render(
        request,
        "monitoring_timeline.html",
        user=user,
        timeline=found,
        names=display_names(resources, [found.user] if found else []),
        errors=errors,
        values=values,
        status=422 if errors else 200,
    )


@api.get("/events", response_model=EventPagePublic)
def list_events(
    user: Dsl,
    session: Db,
    resources: Res,
    zone: Zone,
    raw: Filters,
    older: CursorText = "",
    newer: CursorText = "",
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 100,
) -> EventPagePublic:
    """Events matching the filters, newest first, `limit` at a time. Dates (`from`, `to`) are
    the school's days; `to` is included. `group`: only the members of that class or group in
    the directory (for example Year5). Follow `older` for the next page."""
    page = service.events_page(
        session,
        filters=in_group(parse_filters(raw, zone), raw["group"], resources, user),
        older=parse_cursor(older, "older"),
        newer=parse_cursor(newer, "newer"),
        limit=limit,
    )
    return EventPagePublic(
        events=[EventPublic.model_validate(r) for r in page.rows],
        older=page.older.encode() if page.older else None,
        newer=page.newer.encode() if page.newer else None,
    )


@api.get("/timeline", response_model=TimelinePublic)
def get_timeline(
    user: Dsl,
    session: Db,
    zone: Zone,
    now: Now,
    who: Annotated[str, Query(alias="user", max_length=200)] = "",
    at: Annotated[str, Query(max_length=40)] = "",
    event: Annotated[str, Query(max_length=40)] = "",
    minutes: Minutes = 30,
) -> TimelinePublic:
    """One user's events, attempts and incident notes from `minutes` before to `minutes` after
    `at` (school time if no zone is given), or around one event (`event`)."""
    found = _timeline(session, zone, user=who, at=at, event=event, minutes=minutes, now=now)
    return TimelinePublic.model_validate(found, from_attributes=True)
