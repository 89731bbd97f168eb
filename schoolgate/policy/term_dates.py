"""The school's dates as people edit them: terms, holidays, INSET days, closures and extra bank
holidays; what each day of a school year is; and writing edited dates back into a policy text.

A policy keeps terms under `calendar.terms` and everything else under `calendar.closures`; the
kind of a closure is read from its name by plain rules (`closure_kind`), so no new key is
needed and a hand-written policy reads the same way. Pure: no I/O, no clock (today is passed in).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

import yaml

from schoolgate.policy.calendar import Calendar

MAX_ITEMS = 200  # a school year has a few dozen; more is a mistake or an attack


class DateKind(StrEnum):
    """What a dated item is. TERM goes to `calendar.terms`; the rest to `calendar.closures`."""

    TERM = "term"
    HOLIDAY = "holiday"  # half terms and the holidays between terms
    INSET = "inset"  # staff training days: pupils off, school shut to them
    CLOSURE = "closure"  # snow days, polling days, any other day the school is shut
    BANK_HOLIDAY = "bank_holiday"  # one the `holidays` package does not know (a one-off)


KIND_WORDS = {
    DateKind.TERM: "term",
    DateKind.HOLIDAY: "holiday",
    DateKind.INSET: "INSET day",
    DateKind.CLOSURE: "closure",
    DateKind.BANK_HOLIDAY: "bank holiday",
}

# The plain rules, first match wins, on the name in lower case with "-" and "_" read as spaces.
# They are the same for a closure's name in the policy and an event's summary in an .ics file.
_RULES: tuple[tuple[DateKind, re.Pattern[str]], ...] = (
    (
        DateKind.INSET,
        re.compile(
            r"\binset\b|training day|staff (?:development|training)|"
            r"teacher (?:day|training)|non pupil|professional development|"
            r"\bpd day\b|\bcpd\b"
        ),
    ),
    (DateKind.BANK_HOLIDAY, re.compile(r"bank holiday|\bcoronation\b|\bjubilee\b")),
    (
        DateKind.HOLIDAY,
        re.compile(
            r"half term|\bholidays?\b|\bvacation\b|"
            r"\bchristmas\b|\beaster\b|\bwhitsun\b|\bmidterm\b"
        ),
    ),
    (
        DateKind.CLOSURE,
        re.compile(
            r"\bclos(?:ed|ure)\b|\bsnow\b|\bpolling\b|\belection\b|"
            r"\bshut\b|\bstrike\b|\bemergency\b"
        ),
    ),
    (DateKind.TERM, re.compile(r"\bterm\b|\bsemester\b")),
)


def _words(name: str) -> str:
    return " ".join(re.sub(r"[-_/]", " ", name.casefold()).split())


def kind_of_name(name: str) -> DateKind | None:
    """The kind a name says by the plain rules, or None if it says none."""
    words = _words(name)
    for kind, pattern in _RULES:
        if pattern.search(words):
            return kind
    return None


def closure_kind(name: str) -> DateKind:
    """The kind of a closure in a policy, from its name: INSET, bank holiday or holiday by the
    rules, anything else (a snow day, "Polling day", a term-like name) a closure."""
    kind = kind_of_name(name)
    return kind if kind not in (None, DateKind.TERM) else DateKind.CLOSURE


def name_for(kind: DateKind, name: str) -> str:
    """`name`, made to say its kind when the rules would read it as another (so the kind
    survives being written into the policy): "Staff training" as an INSET day stays, "Pupils
    off" as an INSET day becomes "Pupils off (INSET day)"."""
    name = " ".join(name.split())
    if not name or kind is DateKind.TERM or closure_kind(name) is kind:
        return name  # (a missing name is for `item_problems` to report)
    return f"{name} ({KIND_WORDS[kind]})"


@dataclass(frozen=True, slots=True, order=True)
class DatedItem:
    """One term, holiday, INSET day, closure or extra bank holiday; both dates included."""

    start: date
    end: date
    kind: DateKind
    name: str

    def days(self) -> int:
        return (self.end - self.start).days + 1

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


def items_of(cal: Calendar) -> tuple[DatedItem, ...]:
    """A calendar's terms and closures as dated items, in date order."""
    found = [DatedItem(t.start, t.end, DateKind.TERM, t.name) for t in cal.terms]
    found += [DatedItem(c.start, c.end, closure_kind(c.name), c.name) for c in cal.closures]
    return tuple(sorted(found))


def item_problems(items: tuple[DatedItem, ...]) -> list[tuple[int, str, str]]:
    """What is wrong with edited items, each as (index, "name", "start" or "end", message in
    words); empty when fine."""
    problems: list[tuple[int, str, str]] = []
    if len(items) > MAX_ITEMS:
        problems.append((MAX_ITEMS, "name", f"keep to {MAX_ITEMS} dates at most"))
    for i, item in enumerate(items):
        if not item.name.strip():
            problems.append((i, "name", "give it a name, like 'Autumn term' or 'Snow day'"))
        elif len(item.name) > 100:
            problems.append((i, "name", "keep the name under 100 characters"))
        elif not all(c.isprintable() for c in item.name):
            problems.append(
                (
                    i,
                    "name",
                    "the name has a hidden or control character (a line break, "
                    "a direction mark, ...): type it again",
                )
            )
        if item.end < item.start:
            problems.append(
                (
                    i,
                    "end",
                    f"it ends ({_day(item.end)}) before it starts "
                    f"({_day(item.start)}): swap the dates",
                )
            )
    terms = [(i, t) for i, t in enumerate(items) if t.kind is DateKind.TERM and t.start <= t.end]
    for n, (_, first) in enumerate(terms):
        for j, second in terms[n + 1 :]:
            if first.start <= second.end and second.start <= first.end:
                problems.append(
                    (
                        j,
                        "start",
                        f"'{second.name}' overlaps the term '{first.name}' "
                        f"({_day(first.start)} to {_day(first.end)}): terms "
                        "may not share a day",
                    )
                )
    return problems


def _day(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


# --- what each day is -------------------------------------------------------------------------


class DayKind(StrEnum):
    """What a day of the year view is, in order of precedence."""

    WEEKEND = "weekend"  # not one of the school's days of the week
    BANK_HOLIDAY = "bank_holiday"
    INSET = "inset"
    CLOSURE = "closure"
    HOLIDAY = "holiday"  # a closure named as a holiday, or outside every term
    TERM = "term"


DAY_WORDS = {
    DayKind.WEEKEND: "weekend",
    DayKind.BANK_HOLIDAY: "bank holiday",
    DayKind.INSET: "INSET day (no pupils)",
    DayKind.CLOSURE: "school closed",
    DayKind.HOLIDAY: "holiday",
    DayKind.TERM: "school day",
}
_CLOSURE_DAYS = {
    DateKind.INSET: DayKind.INSET,
    DateKind.BANK_HOLIDAY: DayKind.BANK_HOLIDAY,
    DateKind.HOLIDAY: DayKind.HOLIDAY,
    DateKind.CLOSURE: DayKind.CLOSURE,
}


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    kind: DayKind
    note: str  # the term's, closure's or bank holiday's name; empty for a weekend
    school: bool  # the gateway treats it as a school day (lesson and break rules apply)

    def words(self) -> str:
        """The day for a screen reader or a list: 'Friday 4 December: snow day (school
        closed)'."""
        what = DAY_WORDS[self.kind]
        note = f"{self.note} ({what})" if self.note else what
        return f"{self.day:%A} {self.day.day} {self.day:%B}: {note}"


def day_of(cal: Calendar, day: date) -> Day:
    """What `day` is in `cal`, with the name that makes it so, as the gateway sees it."""
    school = cal.is_school_day(day)
    if day.weekday() not in cal.school_days:
        return Day(day, DayKind.WEEKEND, "", school)
    holiday = cal.bank_holiday(day)
    if holiday is not None:
        return Day(day, DayKind.BANK_HOLIDAY, holiday, school)
    closure = cal.closure(day)
    if closure is not None:
        return Day(day, _CLOSURE_DAYS[closure_kind(closure.name)], closure.name, school)
    term = next((t for t in cal.terms if t.start <= day <= t.end), None)
    if term is not None or not cal.terms:
        return Day(day, DayKind.TERM, term.name if term else "", school)
    return Day(day, DayKind.HOLIDAY, "", school)


def school_year_start(day: date) -> int:
    """The calendar year in which the school year holding `day` began (it runs September to
    August)."""
    return day.year if day.month >= 9 else day.year - 1


def year_months(cal: Calendar, first_year: int) -> tuple[tuple[date, tuple[Day, ...]], ...]:
    """The school year September `first_year` to August the year after, as (first day of the
    month, its days)."""
    months = []
    for offset in range(12):
        year, month = first_year + (8 + offset) // 12, (8 + offset) % 12 + 1
        first = date(year, month, 1)
        following = date(year + month // 12, month % 12 + 1, 1)
        days = tuple(
            day_of(cal, first + timedelta(days=n)) for n in range((following - first).days)
        )
        months.append((first, days))
    return tuple(months)


@dataclass(frozen=True, slots=True)
class Change:
    """Days from `first` to `last` (weekends between them are unchanged) that were `before`
    and would be `after`: 'Monday 26 October to Friday 30 October: school day, would be
    holiday (October half term)'."""

    first: date
    last: date
    before: Day
    after: Day

    def sentence(self) -> str:
        span = (
            _day(self.first)
            if self.first == self.last
            else f"{_day(self.first)} to {_day(self.last)}"
        )
        return f"{span}: {_what(self.before)}, would be {_what(self.after)}"


def _what(day: Day) -> str:
    words = DAY_WORDS[day.kind]
    return f"{words} ({day.note})" if day.note else words


def changed_days(old: Calendar, new: Calendar, start: date, end: date) -> list[Change]:
    """The days from `start` to `end` that the change from `old` to `new` makes different,
    runs of the same change (across unchanged weekends) taken together."""
    found: list[Change] = []
    day = start
    while day <= end:
        before, after = day_of(old, day), day_of(new, day)
        if (before.kind, before.note, before.school) != (after.kind, after.note, after.school):
            last = found[-1] if found else None
            same = last is not None and (
                last.before.kind,
                last.before.note,
                last.after.kind,
                last.after.note,
            ) == (before.kind, before.note, after.kind, after.note)
            gap = _days_between(last.last, day) if last is not None else []
            if last is not None and same and all(d.weekday() not in new.school_days for d in gap):
                found[-1] = Change(last.first, day, last.before, last.after)
            else:
                found.append(Change(day, day, before, after))
        day += timedelta(days=1)
    return found


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range(1, (last - first).days)]


def merged(
    existing: tuple[DatedItem, ...],
    imported: tuple[DatedItem, ...],
) -> tuple[DatedItem, ...]:
    """The imported items in place of the existing ones they cover: an existing item that
    shares a day with the imported file's span (its first to its last date) is replaced; the
    rest (another school year's dates) is kept."""
    if not imported:
        return existing
    first, last = min(i.start for i in imported), max(i.end for i in imported)
    kept = [i for i in existing if i.end < first or i.start > last]
    return tuple(sorted([*kept, *imported]))


# --- writing the dates back into a policy text ------------------------------------------------


class CannotRewrite(ValueError):
    """The policy text is not laid out so its dates can be replaced (say how to fix it)."""


def with_dates(
    text: str,
    items: tuple[DatedItem, ...],
    *,
    bank_holidays: str | None = None,
) -> str:
    """`text` with its `calendar.terms` and `calendar.closures` replaced by `items` (and
    `calendar.bank_holidays` by `bank_holidays` when given); every other line, comments
    included, is left as it was."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise CannotRewrite(
            f"the policy is not valid YAML ({error}); fix it on the Policy page first"
        ) from None
    calendar = _value(root, "calendar")
    if not isinstance(calendar, yaml.MappingNode) or calendar.flow_style:
        raise CannotRewrite(
            "the policy's calendar is not written as a block of keys "
            "('calendar:' on its own line, one key a line below it); write it "
            "so on the Policy page first"
        )
    indent = " " * calendar.value[0][0].start_mark.column
    terms = [i for i in items if i.kind is DateKind.TERM]
    closures = [i for i in items if i.kind is not DateKind.TERM]
    wanted = {
        "terms": _sequence("terms", terms, indent),
        "closures": _sequence("closures", closures, indent),
    }
    if bank_holidays is not None:
        wanted["bank_holidays"] = f"bank_holidays: {bank_holidays}"
    edits: list[tuple[int, int, str]] = []  # (start, end, new text), applied from the end
    for key, value in calendar.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name in wanted:
            edits.append((key.start_mark.index, _content_end(value), wanted.pop(name)))
    if wanted:
        at = _content_end(calendar.value[-1][1])
        edits.append((at, at, "".join(f"\n{indent}{line}" for line in wanted.values())))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def with_calendar_of(text: str, source: str) -> str:
    """`text` (a school's override in a trust) as it is if it has a `calendar:` of its own,
    else with the `calendar:` block of `source` (the trust's base policy) added at its end,
    as written there: the school's own calendar starts as a copy of the trust's."""
    try:
        if _value(yaml.compose(text, Loader=yaml.SafeLoader), "calendar") is not None:
            return text
        root = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise CannotRewrite(
            f"the policy is not valid YAML ({error}); fix it on the Policy page first"
        ) from None
    if not isinstance(root, yaml.MappingNode):
        raise CannotRewrite("the trust's base policy has no calendar to start from")
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "calendar":
            block = source[key.start_mark.index : _content_end(value)]
            kept = text.rstrip()
            return f"{kept}\n{block}\n" if kept else f"{block}\n"
    raise CannotRewrite("the trust's base policy has no calendar to start from")


def _value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next(
        (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None
    )


def _content_end(node: yaml.Node) -> int:
    """Where a value's own text ends: a block collection's end mark lies past the comments
    and blank lines after it, which belong to what follows, so take its last child's end."""
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1])
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1][1])
    return int(node.end_mark.index)


def _sequence(key: str, items: list[DatedItem], indent: str) -> str:
    if not items:
        return f"{key}: []"
    lines = [f"{key}:"]
    for item in sorted(items):
        end = (
            ""
            if item.end == item.start and item.kind is not DateKind.TERM
            else f", end: {item.end.isoformat()}"
        )
        lines.append(
            f"{indent}  - {{name: {json.dumps(item.name, ensure_ascii=False)}, "
            f"start: {item.start.isoformat()}{end}}}"
        )
    return "\n".join(lines)
