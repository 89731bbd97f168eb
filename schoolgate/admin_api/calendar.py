"""The school calendar: the year view (what each day is, for IT, the Business Manager and the
DSL), and for IT technicians the editor of terms, holidays, INSET days and closures with an
import of the local authority's term dates (.ics). A change is saved as a new policy version
through the policy editor's own path (reason, checks, diff, audit, file, gateway reload)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from schoolgate.admin_api.deps import (
    Db,
    ItTechnician,
    Now,
    Place,
    PolicyEditor,
    Res,
    require_role,
)
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.policy_view import preview_against_history
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.admin_api.services import policy_versions as service
from schoolgate.admin_api.services.policy_view import running_version
from schoolgate.admin_api.services.school_policy import (
    PolicyPlace,
    after_save,
    check_place_text,
    place_policy,
    save_place,
    schools_to_choose,
)
from schoolgate.policy.calendar import BankHolidayRegion, Calendar
from schoolgate.policy.ical import MAX_ICS_BYTES, IcsImport, parse_term_dates_ics
from schoolgate.policy.term_dates import (
    DAY_WORDS,
    KIND_WORDS,
    MAX_ITEMS,
    CannotRewrite,
    DatedItem,
    DateKind,
    Day,
    DayKind,
    changed_days,
    item_problems,
    items_of,
    merged,
    name_for,
    school_year_start,
    with_calendar_of,
    with_dates,
    year_months,
)
from schoolgate.store import policy_versions as versions

router = APIRouter(tags=["calendar"])
PagesDep = Annotated[Pages, Depends(get_pages)]
CalendarReader = Annotated[
    SignedInUser, Depends(require_role(Role.IT_TECHNICIAN, Role.BUSINESS_MANAGER, Role.DSL))
]
LEAVE_OUT = "leave"
KIND_CHOICES = [(k.value, KIND_WORDS[k].capitalize()) for k in DateKind] + [
    (LEAVE_OUT, "Leave out")
]
REGIONS = [
    (r.value, r.value.replace("-", " ").title().replace(" And ", " and "))
    for r in BankHolidayRegion
] + [("none", "None")]
BLANK_ROWS = 3
SAVED = r"^(version-[0-9]+|unchanged)?$"
# A letter for each kind of day, beside its colour and border, so none is told by colour alone.
DAY_CODES = {
    DayKind.TERM: "S",
    DayKind.HOLIDAY: "H",
    DayKind.INSET: "I",
    DayKind.CLOSURE: "C",
    DayKind.BANK_HOLIDAY: "B",
    DayKind.WEEKEND: "-",
}
WEEKDAYS = [
    ("Mon", "Monday"),
    ("Tue", "Tuesday"),
    ("Wed", "Wednesday"),
    ("Thu", "Thursday"),
    ("Fri", "Friday"),
    ("Sat", "Saturday"),
    ("Sun", "Sunday"),
]


@dataclass
class Row:
    """One row of the editor as typed (kept as text, so a mistake is shown as written)."""

    kind: str
    name: str
    start: str
    end: str
    why: str = ""  # how an imported row was understood

    @classmethod
    def of(cls, item: DatedItem, why: str = "") -> Row:
        end = "" if item.end == item.start else item.end.isoformat()
        return cls(item.kind.value, item.name, item.start.isoformat(), end, why)


def running_calendar(
    session: Db, resources: Resources, now: datetime, place: PolicyPlace
) -> Calendar:
    """The calendar of the policy file as it is now (an edit made on the server is noticed
    and used: the form must not drop dates written into the file by hand), else the admin's
    own policy's; a school's in a trust, from the trust's files as they are now."""
    path = place.path
    if place.school is not None:
        running_version(session, resources, now, place)
        return place_policy(resources, place).calendar
    if path is None:
        return resources.policy.calendar
    running_version(session, resources, now, place)
    latest = versions.latest(session, place.kind)
    found = _calendar_of(latest.text, path) if latest is not None else None
    return found or resources.policy.calendar


@functools.lru_cache(maxsize=4)
def _calendar_of(text: str, path: Path) -> Calendar | None:
    try:
        return service.check_text(text, path=path).policy.calendar
    except InvalidInput:
        return None  # a file broken on the server: saving says what is wrong with it


def _region(cal: Calendar) -> str:
    return cal.bank_holidays.value if cal.bank_holidays else "none"


# --- the year view ----------------------------------------------------------------------------


@router.get("/calendar", include_in_schema=False)
def year_page(
    request: Request,
    pages: PagesDep,
    user: CalendarReader,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    saved: Annotated[str, Query(max_length=40, pattern=SAVED)] = "",
) -> Response:
    """The school year as months of days, each marked in words."""
    cal = running_calendar(session, resources, now, place)
    today = now.astimezone(cal.timezone).date()
    first_year = year if year is not None else school_year_start(today)
    it = Role.IT_TECHNICIAN in user.roles
    months = [(first, _weeks(days)) for first, days in year_months(cal, first_year)]
    return pages.render(
        request,
        "calendar.html",
        user=user,
        months=months,
        first_year=first_year,
        today=today,
        codes=list(DAY_CODES.items()),
        code_of=DAY_CODES,
        words=DAY_WORDS,
        weekdays=WEEKDAYS,
        items=[i for i in items_of(cal) if _in_year(i, first_year)],
        kind_words=KIND_WORDS,
        region=dict(REGIONS)[_region(cal)],
        saved=saved,
        version=running_version(session, resources, now, place) if it else None,
        can_edit=it,
        school=place.school,
        query=place.query,
        schools=schools_to_choose(resources, user),
        bank_holidays=_bank_holidays(cal, first_year),
    )


def _weeks(days: tuple[Day, ...]) -> list[list[Day | None]]:
    """A month's days as weeks, Monday first, with blanks before the 1st and after the last."""
    cells: list[Day | None] = [None] * days[0].day.weekday() + list(days)
    cells += [None] * (-len(cells) % 7)
    return [cells[i : i + 7] for i in range(0, len(cells), 7)]


def _in_year(item: DatedItem, first_year: int) -> bool:
    return item.end >= date(first_year, 9, 1) and item.start <= date(first_year + 1, 8, 31)


def _bank_holidays(cal: Calendar, first_year: int) -> list[tuple[date, str]]:
    found = []
    day = date(first_year, 9, 1)
    while day <= date(first_year + 1, 8, 31):
        name = cal.bank_holiday(day)
        if name is not None:
            found.append((day, name))
        day += timedelta(days=1)
    return found


# --- the editor -------------------------------------------------------------------------------


def _editor(
    request: Request,
    pages: Pages,
    user: SignedInUser,
    resources: Resources,
    *,
    place: PolicyPlace,
    session: Db,
    now: datetime,
    rows: list[Row],
    region: str,
    reason: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
    preview: dict[str, Any] | None = None,
    imported: IcsImport | None = None,
) -> Response:
    version = running_version(session, resources, now, place)
    return pages.render(
        request,
        "calendar_edit.html",
        user=user,
        rows=rows,
        region=region,
        reason=reason,
        errors=errors or {},
        status=status,
        preview=preview,
        imported=imported,
        version=version,
        kinds=KIND_CHOICES,
        regions=REGIONS,
        kind_words=KIND_WORDS,
        max_ics=MAX_ICS_BYTES,
        blank=BLANK_ROWS,
    )


@router.get("/calendar/edit", include_in_schema=False)
def edit_page(
    request: Request,
    pages: PagesDep,
    user: ItTechnician,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
) -> Response:
    """The terms, holidays, INSET days and closures of the running policy, to change."""
    place.editable()
    cal = running_calendar(session, resources, now, place)
    return _editor(
        request,
        pages,
        user,
        resources,
        place=place,
        session=session,
        now=now,
        rows=[Row.of(i) for i in items_of(cal)],
        region=_region(cal),
    )


def rows_from_form(form: dict[str, str]) -> list[Row]:
    """The editor's rows as typed; a row with nothing in it is dropped."""
    rows = []
    for i in range(min(_count(form.get("rows", "")), MAX_ITEMS + BLANK_ROWS)):
        row = Row(
            *(
                form.get(f"{field}_{i}", "").strip()[:200]
                for field in ("kind", "name", "start", "end")
            )
        )
        if row.name or row.start or row.end:
            rows.append(row)
    return rows


def _count(raw: str) -> int:
    return int(raw) if raw.isdigit() and len(raw) < 5 else 0


def items_from_rows(rows: list[Row]) -> tuple[DatedItem, ...]:
    """The rows as dated items (left-out rows dropped), or InvalidInput naming each bad row
    and field in words."""
    problems: dict[str, str] = {}
    items: list[DatedItem] = []
    places: list[int] = []
    for i, row in enumerate(rows):
        label = f"Row {i + 1}" + (f" ({row.name})" if row.name else "")
        if row.kind == LEAVE_OUT:
            continue
        try:
            kind = DateKind(row.kind)
        except ValueError:
            problems[f"kind_{i}"] = f"{label}: choose what it is (a term, a holiday, ...)"
            continue
        start = _date(row.start, f"start_{i}", f"{label}: the first day", problems)
        end = _date(row.end, f"end_{i}", f"{label}: the last day", problems) if row.end else start
        if start is None or end is None:
            continue
        name = name_for(kind, row.name)
        items.append(DatedItem(start, end, kind, name))
        places.append(i)
    for index, field, message in item_problems(tuple(items)):
        i = places[index] if index < len(places) else len(rows)
        label = f"Row {i + 1}" + (f" ({rows[i].name})" if i < len(rows) and rows[i].name else "")
        problems.setdefault(f"{field}_{i}", f"{label}: {message}")
    if problems:
        raise InvalidInput(problems)
    return tuple(sorted(items))


def _date(raw: str, field: str, words: str, problems: dict[str, str]) -> date | None:
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        problems[field] = (
            f"{words} is missing: give a date"
            if not raw
            else f"{words} '{raw}' is not a date: write it like 2027-01-05"
        )
        return None
    if not 2000 <= day.year <= 2100:
        problems[field] = f"{words} ({raw}) is too far away: give a date this century"
        return None
    return day


def calendar_text(
    session: Db,
    resources: Resources,
    place: PolicyPlace,
    items: tuple[DatedItem, ...],
    region: str,
    *,
    now: datetime,
) -> str:
    """The running policy's text with these dates (and bank-holiday region) in its calendar;
    a school's own file in a trust, given the trust's calendar first if it has none."""
    if region not in {r for r, _ in REGIONS}:
        raise InvalidInput(
            {"bank_holidays": "choose the bank holidays of a part of the UK, or none"}
        )
    running_version(session, resources, now, place)  # notices an edit made on the server first
    latest = versions.latest(session, place.kind)
    if latest is None:
        raise InvalidInput({"form": "The policy file could not be read; look at the Policy page"})
    try:
        text = latest.text
        if place.school is not None:
            text = with_calendar_of(text, _base_text(resources))
        return with_dates(text, items, bank_holidays=region)
    except CannotRewrite as error:
        raise InvalidInput({"form": str(error)[:1].upper() + str(error)[1:]}) from None


def _base_text(resources: Resources) -> str:
    """The trust's base policy as written (a school's calendar starts as a copy of its)."""
    trust, trust_file = resources.trust, resources.settings.trust_file
    if trust is None or trust_file is None:
        raise InvalidInput({"form": "This admin runs no trust"})
    try:
        return versions.read_policy_text(trust_file.parent / trust.base)
    except (OSError, UnicodeDecodeError):
        raise InvalidInput(
            {"form": "The trust's base policy could not be read; ask the trust's IT team"}
        ) from None


def calendar_preview(
    session: Db, resources: Resources, place: PolicyPlace, text: str, *, days: int, now: datetime
) -> dict[str, Any]:
    """'What would change?' for a calendar: the days that change (this school year and the
    next, and as far as any date reaches), then the recorded history replayed."""
    old = running_calendar(session, resources, now, place)
    new = check_place_text(place, text).policy.calendar
    today = now.astimezone(old.timezone).date()
    reach = [*items_of(old), *items_of(new)]
    first = min([date(school_year_start(today), 9, 1), *(i.start for i in reach)])
    last = max([date(school_year_start(today) + 2, 8, 31), *(i.end for i in reach)])
    found = preview_against_history(session, resources, text, place=place, days=days, now=now)
    return {**found, "changes": changed_days(old, new, first, last)}


async def _form(request: Request, *, files: int = 0) -> Any:
    try:
        return await request.form(
            max_files=files,
            max_fields=4 * (MAX_ITEMS + BLANK_ROWS) + 20,
            max_part_size=MAX_ICS_BYTES + 1,
        )
    except Exception:
        raise InvalidInput(
            {"form": "The form could not be read; reload the page and try again"}
        ) from None


def _texts(form: Any) -> dict[str, str]:
    return {key: value for key, value in form.items() if isinstance(value, str)}


@router.post("/calendar/edit", include_in_schema=False)
async def edit_post(
    request: Request,
    pages: PagesDep,
    user: PolicyEditor,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
) -> Response:
    """'Add rows', 'What would change?' (action=preview) or 'Save' (action=save)."""
    place.editable()
    form = _texts(await _form(request))
    rows, region = rows_from_form(form), form.get("bank_holidays", "")
    reason, action = form.get("reason", ""), form.get("action", "")
    try:
        if action == "add":
            rows += [Row("", "", "", "") for _ in range(BLANK_ROWS)]
            return _editor(
                request,
                pages,
                user,
                resources,
                place=place,
                session=session,
                now=now,
                rows=rows,
                region=region,
                reason=reason,
            )
        text = calendar_text(session, resources, place, items_from_rows(rows), region, now=now)
        if action == "save":
            why = " ".join(reason.split())
            row, policy = save_place(
                session,
                place,
                actor=user,
                text=text,
                reason=f"school calendar: {why}" if why else "",
                at=now,
            )
            if place.school is None:
                resources.policy = policy  # the admin's own view; the gateway reloads the file
            done = f"version-{row.id}" if row is not None else "unchanged"
            return RedirectResponse(after_save("/calendar", place, done), status_code=303)
        preview = calendar_preview(
            session, resources, place, text, days=_days(form.get("days", "")), now=now
        )
    except InvalidInput as error:
        session.rollback()
        # The whole policy's problems (a file broken on the server) have no box here.
        problems = {
            ("form" if field == "text" else field): message
            for field, message in error.problems.items()
        }
        if "form" in problems and "text" in error.problems:
            problems["form"] = f"The policy file has a problem: {problems['form']}"
        return _editor(
            request,
            pages,
            user,
            resources,
            place=place,
            session=session,
            now=now,
            rows=rows,
            region=region,
            reason=reason,
            errors=problems,
            status=422,
        )
    return _editor(
        request,
        pages,
        user,
        resources,
        place=place,
        session=session,
        now=now,
        rows=rows,
        region=region,
        reason=reason,
        preview=preview,
    )


def _days(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 31:
        raise InvalidInput({"days": "Give a whole number of days of history, 1 to 31"})
    return int(raw)


@router.post("/calendar/import", include_in_schema=False)
async def import_post(
    request: Request,
    pages: PagesDep,
    user: PolicyEditor,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
) -> Response:
    """Read an uploaded .ics and show the editor with its dates in place of those it covers,
    each saying how it was understood. Nothing is saved until 'Save'."""
    place.editable()
    cal = running_calendar(session, resources, now, place)
    rows, region = [Row.of(i) for i in items_of(cal)], _region(cal)
    try:
        form = await _form(request, files=1)
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise InvalidInput({"file": "Choose the term dates file (.ics) to import"})
        raw = await upload.read(MAX_ICS_BYTES + 1)
        found = parse_term_dates_ics(raw, cal)
        if not found.understood:
            raise InvalidInput(
                {"file": "The file could not be imported: " + "; ".join(found.problems)}
            )
    except InvalidInput as error:
        return _editor(
            request,
            pages,
            user,
            resources,
            place=place,
            session=session,
            now=now,
            rows=rows,
            region=region,
            errors=error.problems,
            status=422,
        )
    imported = found.items()
    kept = merged(items_of(cal), imported)
    why = {(u.item.start, u.item.end, u.item.name): u.why for u in found.understood if u.item}
    rows = [Row.of(i, why.get((i.start, i.end, i.name), "")) for i in kept]
    # What was left out is offered too, so a person can choose what it is.
    rows += [
        Row(
            LEAVE_OUT,
            u.summary,
            u.start.isoformat(),
            "" if u.end == u.start else u.end.isoformat(),
            u.why,
        )
        for u in found.understood
        if u.item is None
    ]
    rows.sort(key=lambda row: (row.start, row.end))
    return _editor(
        request,
        pages,
        user,
        resources,
        place=place,
        session=session,
        now=now,
        rows=rows,
        region=region,
        imported=found,
    )
