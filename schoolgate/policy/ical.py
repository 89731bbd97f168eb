"""Reading a local authority's term dates from an iCalendar (.ics, RFC 5545) file into dated
items (terms, holidays, INSET days, closures), each saying how it was understood, so a person
can check and correct them before anything is saved.

Pure: the file's bytes and the school's calendar (for its time zone and its bank holidays) are
passed in. The `icalendar` package reads the file; this module maps its events to the school's
dates by the plain rules of `schoolgate.policy.term_dates.kind_of_name`, plus term start and end markers
("Autumn term starts" ... "Autumn term ends") paired into one term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import icalendar
from dateutil.rrule import rrulestr

from schoolgate.policy.calendar import Calendar
from schoolgate.policy.term_dates import KIND_WORDS, MAX_ITEMS, DatedItem, DateKind, kind_of_name

MAX_ICS_BYTES = 1_000_000  # under the admin's body limit; term dates take a few kB
MAX_EVENTS = 2000
MAX_OCCURRENCES = 60  # of one repeating event inside the file's span
_START = r"starts?|begins?|opens?|commences?|first day"
_END = r"ends?|finish(?:es)?|closes?|last day"
_MARKER = re.compile(
    rf"^(?:(?P<pre>{_START}|{_END}|start|end)\s+(?:of\s+)?)?(?P<term>.*?)"
    rf"\s*(?:[-:,]\s*)?(?P<post>{_START}|{_END})?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Understood:
    """One event of the file and what it was taken to be: `item` None means left out."""

    summary: str
    start: date
    end: date
    item: DatedItem | None
    why: str  # in words: which rule decided, or why it was left out


@dataclass(frozen=True, slots=True)
class IcsImport:
    understood: tuple[Understood, ...]
    problems: tuple[str, ...]  # the file as a whole (not iCalendar, nothing found, ...)

    def items(self) -> tuple[DatedItem, ...]:
        return tuple(sorted(u.item for u in self.understood if u.item is not None))


@dataclass(frozen=True, slots=True)
class _Event:
    summary: str
    start: date
    end: date  # inclusive


def parse_term_dates_ics(raw: bytes, cal: Calendar) -> IcsImport:
    """The term dates in an .ics file, as `cal`'s school would keep them."""
    if len(raw) > MAX_ICS_BYTES:
        return IcsImport(
            (),
            (
                f"the file is larger than {MAX_ICS_BYTES // 1_000_000} MB: a "
                "term-dates calendar is far smaller; is it the right file?",
            ),
        )
    text, note = _text(raw)
    try:
        parsed = icalendar.Calendar.from_ical(text)
    except Exception as error:  # any malformed file gets words, never a crash
        return IcsImport(
            (),
            (
                f"this is not an iCalendar (.ics) file ({_short(error)}); "
                "download the term dates again as .ics or iCal",
            ),
        )
    events, problems = _events(parsed, cal)
    if note:
        problems.insert(0, note)
    if not events:
        problems.append("the file has no events with dates: nothing to import")
    return IcsImport(tuple(_understand(events, cal)), tuple(problems))


def _text(raw: bytes) -> tuple[str, str]:
    """The file as text, its folded lines joined. Joined as bytes, before decoding: a line may
    be folded inside a multi-byte UTF-8 character (RFC 5545 section 3.1 folds octets)."""
    unfolded = re.sub(rb"\r?\n[ \t]", b"", raw)
    try:
        return unfolded.decode("utf-8-sig"), ""
    except UnicodeDecodeError:
        return (
            unfolded.decode("cp1252", errors="replace"),
            "the file is not UTF-8 text, so it was read as Windows text: check the names",
        )


def _short(error: Exception) -> str:
    return " ".join(str(error).split())[:120] or type(error).__name__


def _events(parsed: icalendar.Component, cal: Calendar) -> tuple[list[_Event], list[str]]:
    problems: list[str] = []
    single: list[tuple[icalendar.Event, date, date]] = []
    repeating: list[tuple[icalendar.Event, date, date]] = []
    for n, component in enumerate(parsed.walk("VEVENT")):
        if not isinstance(component, icalendar.Event):
            continue
        if n >= MAX_EVENTS:
            problems.append(f"only the first {MAX_EVENTS} events were read")
            break
        if str(component.get("STATUS", "")).upper() == "CANCELLED":
            continue
        try:
            start, end = _day_span(component.start, component.end, cal)
        except Exception as error:
            problems.append(
                f"the event {_summary(component)!r} has no readable dates "
                f"({_short(error)}): left out"
            )
            continue
        (repeating if component.rrules else single).append((component, start, end))
    found = [_Event(_summary(c), s, e) for c, s, e in single]
    first = last = date.min  # the span repeating events are read in: the file's own dates
    if single:
        first, last = min(s for _, s, _ in single), max(e for _, _, e in single)
    elif repeating:
        first = min(s for _, s, _ in repeating)
        last = first + timedelta(days=365)
    for component, start, end in repeating:
        try:
            days = _occurrences(component, start, first, last)
        except Exception as error:
            problems.append(
                f"the repeating event {_summary(component)!r} could not be read "
                f"({_short(error)}): left out"
            )
            continue
        length = end - start
        found += [_Event(_summary(component), day, day + length) for day in days]
    return sorted(found, key=lambda e: (e.start, e.end, e.summary)), problems


def _summary(component: icalendar.Component) -> str:
    """The event's title on one line, without hidden or control characters."""
    text = "".join(
        c if c.isprintable() else " " if c.isspace() else ""
        for c in str(component.get("SUMMARY", ""))
    )
    return " ".join(text.split())[:100] or "(no title)"


def _local_day(value: date | datetime, cal: Calendar, *, end: bool) -> date:
    """The school day a start or (exclusive) end falls on: an aware time read in the school's
    zone, a floating one as the school's wall clock; an end at midnight ends the day before."""
    if not isinstance(value, datetime):
        return value - timedelta(days=1) if end else value
    local = value.astimezone(cal.timezone) if value.utcoffset() is not None else value
    if end and local.time() == time(0):
        return local.date() - timedelta(days=1)
    return local.date()


def _day_span(start: date | datetime, end: date | datetime, cal: Calendar) -> tuple[date, date]:
    first = _local_day(start, cal, end=False)
    last = _local_day(end, cal, end=True) if end != start else first
    return first, max(first, last)


def _occurrences(
    component: icalendar.Event,
    start: date,
    first: date,
    last: date,
) -> list[date]:
    """The days a repeating event falls on from `first` to `last`, by its RRULE and EXDATEs
    (read in whole days: a bank holiday is a day, whatever its time)."""
    excluded = {d.date() if isinstance(d, datetime) else d for d in component.exdates}
    days: set[date] = set()
    for rule in component.rrules:
        text = rule.to_ical().decode("ascii")
        # Whole days: an UNTIL with a time (often in UTC) is read as its date.
        text = re.sub(r"UNTIL=(\d{8})T\d{6}Z?", r"UNTIL=\1", text)
        recurrence = rrulestr(text, dtstart=datetime.combine(start, time(0)))
        for moment in recurrence.between(
            datetime.combine(first, time(0)), datetime.combine(last, time(0)), inc=True
        ):
            days.add(moment.date())
            if len(days) > MAX_OCCURRENCES:
                break
    return sorted(days - excluded)


def _understand(events: list[_Event], cal: Calendar) -> list[Understood]:
    """Each event with what it was taken to be; start and end markers paired into terms."""
    found: list[Understood] = []
    open_terms: dict[str, tuple[_Event, str]] = {}  # by name in lower case: (start, name)
    for event in events:
        marker = _marker(event.summary)
        if marker is not None:
            name, is_start = marker
            if is_start:
                open_terms[name.casefold()] = (event, name)
                continue
            opened = open_terms.pop(name.casefold(), None) or (
                open_terms.pop(next(iter(open_terms))) if len(open_terms) == 1 else None
            )
            if opened is not None:
                begun, name = opened
                term = DatedItem(begun.start, event.end, DateKind.TERM, name or "Term")
                found.append(
                    Understood(
                        f"{begun.summary} ... {event.summary}",
                        begun.start,
                        event.end,
                        term,
                        "a term: from its start to its end",
                    )
                )
                continue
            found.append(
                Understood(
                    event.summary,
                    event.start,
                    event.end,
                    None,
                    "the end of a term with no start before it: left out",
                )
            )
            continue
        found.append(_one(event, cal))
    for begun, _ in open_terms.values():
        found.append(
            Understood(
                begun.summary,
                begun.start,
                begun.end,
                None,
                "the start of a term with no end after it: left out",
            )
        )
    if sum(u.item is not None for u in found) > MAX_ITEMS:
        found = found[:MAX_ITEMS]
    return sorted(found, key=lambda u: (u.start, u.end, u.summary))


def _marker(summary: str) -> tuple[str, bool] | None:
    """(term name, True for a start) for "Autumn term starts", "Start of spring term", "First
    day of term"...; None for anything else."""
    match = _MARKER.match(summary)
    if match is None or not re.search(r"\bterm\b", summary, re.IGNORECASE):
        return None
    edge = (match["pre"] or match["post"] or "").casefold()
    if not edge:
        return None
    name = " ".join(match["term"].split()).strip(" -:,")
    name = re.sub(r"^(?:the|of)\s+", "", name, flags=re.IGNORECASE)
    return name[:1].upper() + name[1:], bool(re.fullmatch(rf"{_START}|start", edge))


def _one(event: _Event, cal: Calendar) -> Understood:
    days = [event.start + timedelta(days=n) for n in range((event.end - event.start).days + 1)]
    known = [cal.bank_holiday(day) for day in days]
    if all(known):
        return Understood(
            event.summary,
            event.start,
            event.end,
            None,
            f"a bank holiday schoolgate already knows ({known[0]}): left out",
        )
    kind = kind_of_name(event.summary)
    if kind is None:
        return Understood(
            event.summary,
            event.start,
            event.end,
            None,
            "its name says no term, holiday, INSET day or closure: left out "
            "(choose what it is to keep it)",
        )
    item = DatedItem(event.start, event.end, kind, event.summary)
    return Understood(
        event.summary, event.start, event.end, item, f"{KIND_WORDS[kind]}, by its name"
    )
