"""The school calendar: turns an aware instant into school facts (school day, lesson, break, ...).

Pure code: the instant is always passed in, and wall-clock times are read in the calendar's own
`ZoneInfo`, so a 10:30 break stays at 10:30 local time on both sides of a daylight-saving change.
"""

from __future__ import annotations

import functools
import heapq
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import NoReturn
from zoneinfo import ZoneInfo

import holidays

from schoolgate.policy.model import DateRange, Period, PeriodKind, When

LESSON = "lesson"
BREAK = "break"
SCHOOL_DAY = "school_day"
OUTSIDE_SCHOOL_DAY = "outside_school_day"
RESERVED_WINDOWS = frozenset({LESSON, BREAK, SCHOOL_DAY, OUTSIDE_SCHOOL_DAY})

_MIDNIGHT = time(0)
_NOT_SCHOOL: frozenset[str] = frozenset({OUTSIDE_SCHOOL_DAY})
_DAY_CACHE_LIMIT = 4096  # distinct dates remembered per calendar before the memo starts over
_WEEKEND = frozenset({5, 6})


class BankHolidayRegion(StrEnum):
    ENGLAND_AND_WALES = "england-and-wales"
    SCOTLAND = "scotland"
    NORTHERN_IRELAND = "northern-ireland"


# ISO 3166-2:GB subdivision codes as the `holidays` package spells them. Wales has the same bank
# holidays as England, so England's list serves both.
_SUBDIVISION = {
    BankHolidayRegion.ENGLAND_AND_WALES: "ENG",
    BankHolidayRegion.SCOTLAND: "SCT",
    BankHolidayRegion.NORTHERN_IRELAND: "NIR",
}


@functools.lru_cache(maxsize=256)
def bank_holidays_for(region: BankHolidayRegion, year: int) -> Mapping[date, str]:
    """The region's bank holidays in `year`, date -> name (one-off ones included).

    The `holidays` package computes them from rules, so any year works; cached because building
    a year's list costs far more than the per-request look-up that needs it."""
    found = holidays.country_holidays("GB", subdiv=_SUBDIVISION[region], years=year)
    return MappingProxyType({day: str(name) for day, name in found.items()})


@dataclass(frozen=True, slots=True)
class Calendar:
    """When school is on, and how the school day is cut into lessons and breaks.

    Times of day are wall-clock times in `timezone`. `terms` empty means every school weekday is
    in term. The private fields hold a precomputed form of the day so `matches` stays cheap."""

    timezone: ZoneInfo
    school_days: frozenset[int]  # Monday=0 .. Sunday=6
    day_start: time  # inclusive
    day_end: time  # exclusive
    periods: tuple[Period, ...] = ()
    terms: tuple[DateRange, ...] = ()
    closures: tuple[DateRange, ...] = ()
    bank_holidays: BankHolidayRegion | None = BankHolidayRegion.ENGLAND_AND_WALES

    # A school day cut at every boundary (midnight, day start/end, period starts/ends): segment i
    # runs from _starts[i] to _starts[i+1] and has the window names in _windows[i].
    _starts: tuple[time, ...] = field(init=False, repr=False, compare=False)
    _windows: tuple[frozenset[str], ...] = field(init=False, repr=False, compare=False)
    # date -> the segment windows for that date (or None when it is not a school day). Hashing
    # the whole calendar per call would cost more than the look-up, hence a memo per instance.
    _days: dict[date, tuple[frozenset[str], ...] | None] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.timezone, ZoneInfo):
            raise TypeError(
                f"Calendar.timezone must be a zoneinfo.ZoneInfo, got {self.timezone!r}; "
                "use ZoneInfo('Europe/London')"
            )
        cuts = {_MIDNIGHT, self.day_start, self.day_end}
        for period in self.periods:
            cuts.update((period.start, period.end))
        starts = tuple(sorted(cuts))
        object.__setattr__(self, "_starts", starts)
        object.__setattr__(self, "_windows", tuple(self._windows_at(t) for t in starts))
        object.__setattr__(self, "_days", {})

    def _windows_at(self, t: time) -> frozenset[str]:
        """The window names true at wall-clock time `t` of a school day."""
        names: set[str] = set()
        in_break = False
        for period in self.periods:
            if period.start <= t < period.end:
                names.add(period.name)
                in_break = in_break or period.kind is PeriodKind.BREAK
        if in_break:
            names.add(BREAK)
        if self.day_start <= t < self.day_end:
            names.add(SCHOOL_DAY)
            if not in_break:
                names.add(LESSON)
        else:
            names.add(OUTSIDE_SCHOOL_DAY)
        return frozenset(names)

    # --- days ------------------------------------------------------------------------------

    def bank_holiday(self, day: date) -> str | None:
        """The bank holiday's name if `day` is one in this calendar's region, else None."""
        if self.bank_holidays is None:
            return None
        return bank_holidays_for(self.bank_holidays, day.year).get(day)

    def closure(self, day: date) -> DateRange | None:
        """The first closure (INSET day, snow day, ...) covering `day`, if any."""
        for closure in self.closures:
            if closure.start <= day <= closure.end:
                return closure
        return None

    def in_term(self, day: date) -> bool:
        """True if `day` falls in a term (always true when the calendar has no terms)."""
        return not self.terms or any(term.start <= day <= term.end for term in self.terms)

    def is_school_day(self, day: date) -> bool:
        """A school weekday, inside a term (if any terms), not a closure, not a bank holiday."""
        return self._day_windows(day) is not None

    def _day_windows(self, day: date) -> tuple[frozenset[str], ...] | None:
        try:
            return self._days[day]
        except KeyError:
            pass
        school = (
            day.weekday() in self.school_days
            and self.in_term(day)
            and self.closure(day) is None
            and self.bank_holiday(day) is None
        )
        if len(self._days) >= _DAY_CACHE_LIMIT:
            self._days.clear()
        windows = self._windows if school else None
        self._days[day] = windows
        return windows

    # --- windows ---------------------------------------------------------------------------

    def window_names(self) -> frozenset[str]:
        """Every name a `When` may use with this calendar."""
        return RESERVED_WINDOWS | {period.name for period in self.periods}

    def _active(self, local: datetime) -> frozenset[str]:
        windows = self._day_windows(local.date())
        if windows is None:
            return _NOT_SCHOOL
        return windows[bisect_right(self._starts, local.time()) - 1]

    def matches(self, when: When, at: datetime) -> bool:
        """True if `at` falls in any of `when`'s windows; an empty `When` always matches."""
        if at.utcoffset() is None:
            _refuse_naive(at)
        if not when.windows:
            return True
        return not self._active(at.astimezone(self.timezone)).isdisjoint(when.windows)

    def next_change(self, when: When, at: datetime, *, horizon_days: int = 400) -> datetime | None:
        """The first instant strictly after `at` at which `matches(when, .)` differs from
        `matches(when, at)`, in this calendar's zone; None if there is none within
        `horizon_days` days of `at`. (Arithmetic on a zoned datetime is wall-clock arithmetic:
        convert to UTC first to step by real seconds.)"""
        current = self.matches(when, at)
        if when.always:
            return None
        limit = at + timedelta(days=horizon_days)
        for instant in self._boundaries(when, at, limit):
            if instant > limit:
                return None
            if instant > at and self.matches(when, instant) != current:
                return instant.astimezone(self.timezone)
        return None

    def next_match(self, when: When, at: datetime, *, horizon_days: int = 400) -> datetime | None:
        """The first instant at or after `at` at which `matches(when, .)` is true, in this
        calendar's zone; None if there is none within `horizon_days` days of `at`."""
        if self.matches(when, at):
            return at.astimezone(self.timezone)
        return self.next_change(when, at, horizon_days=horizon_days)

    def _boundaries(self, when: When, at: datetime, limit: datetime) -> Iterator[datetime]:
        """Every instant (UTC, ascending) from about `at` to past `limit` at which the value of
        `when` may change: the start of a day next to a school day, each cut where the
        school-day value changes, and each change of UTC offset (where wall-clock time jumps).

        Candidates from a later local date can sort before earlier ones only by the spread of
        UTC offsets (under a day), so each is released once no later date can undercut it."""
        tz = self.timezone
        values = [not names.isdisjoint(when.windows) for names in self._windows]
        cuts = [self._starts[i] for i in range(1, len(values)) if values[i] != values[i - 1]]
        day = at.astimezone(tz).date() - timedelta(days=2)
        last = limit.astimezone(tz).date() + timedelta(days=2)
        pending: list[datetime] = []
        midnight = _instant_of(day, _MIDNIGHT, tz)
        offset = midnight.astimezone(tz).utcoffset()
        school_before = True  # unknown: treat the first day's start as a possible change
        while day <= last:
            following = day + timedelta(days=1)
            school = self.is_school_day(day)
            # Between two days off the value is the same on both sides of midnight.
            wall_times = [*cuts] if school else []
            if school or school_before:
                wall_times.append(_MIDNIGHT)
            for wall in wall_times:
                for instant in _instants_at(day, wall, tz):
                    heapq.heappush(pending, instant)
            next_midnight = _instant_of(following, _MIDNIGHT, tz)
            next_offset = next_midnight.astimezone(tz).utcoffset()
            if next_offset != offset:
                heapq.heappush(pending, _offset_change(midnight, next_midnight, tz))
            released = datetime.combine(day, _MIDNIGHT, tzinfo=UTC)
            while pending and pending[0] < released:
                yield heapq.heappop(pending)
            day, midnight, offset, school_before = following, next_midnight, next_offset, school
        while pending:
            yield heapq.heappop(pending)

    # --- words and pictures for people -----------------------------------------------------

    def describe(self, at: datetime) -> str:
        """What part of the school calendar `at` falls in, in words for people."""
        if at.utcoffset() is None:
            _refuse_naive(at)
        local = at.astimezone(self.timezone)
        day = local.date()
        if day.weekday() not in self.school_days:
            return "weekend" if day.weekday() in _WEEKEND else "not a school day"
        holiday = self.bank_holiday(day)
        if holiday is not None:
            return f"bank holiday ({holiday})"
        closure = self.closure(day)
        if closure is not None:
            return f"closure ({closure.name})"
        if not self.in_term(day):
            return "school holiday"
        now = local.time()
        if now < self.day_start:
            return "before school"
        if now >= self.day_end:
            return "after school"
        for period in self.periods:
            if period.start <= now < period.end:
                return period.name
        return LESSON

    def day_timeline(self, day: date) -> tuple[tuple[time, time, str, PeriodKind | None], ...]:
        """The school day cut into consecutive segments from day_start to day_end, as
        (start, end, name, kind); gaps between periods are lessons. Empty if not a school day."""
        if not self.is_school_day(day) or not self.day_start < self.day_end:
            return ()
        segments: list[tuple[time, time, str, PeriodKind | None]] = []
        cursor = self.day_start
        for period in sorted(self.periods, key=lambda p: (p.start, p.end)):
            start = max(period.start, cursor)
            end = min(period.end, self.day_end)
            if end <= start:
                continue  # outside the day, empty, or overlapped by an earlier period
            if cursor < start:
                segments.append((cursor, start, LESSON, PeriodKind.LESSON))
            segments.append((start, end, period.name, period.kind))
            cursor = end
        if cursor < self.day_end:
            segments.append((cursor, self.day_end, LESSON, PeriodKind.LESSON))
        return tuple(segments)


# --- checking a calendar ---------------------------------------------------------------------


def calendar_problems(cal: Calendar) -> list[tuple[str, str]]:
    """Every problem in `cal`, each as (place, message), for the policy parser to report."""
    problems: list[tuple[str, str]] = []
    if not cal.school_days:
        problems.append(("school_days", "no school days: list at least one weekday"))
    for weekday in sorted(cal.school_days):
        if not 0 <= weekday <= 6:
            problems.append(
                ("school_days", f"{weekday} is not a weekday number (Monday=0 .. Sunday=6)")
            )
    day_ok = cal.day_start < cal.day_end
    if not day_ok:
        problems.append(
            (
                "day",
                f"day_start {_hm(cal.day_start)} is not before day_end {_hm(cal.day_end)}",
            )
        )
    seen: dict[str, int] = {}
    for i, period in enumerate(cal.periods):
        place = f"periods[{i}]"
        if not period.name.strip():
            problems.append((place, "a period needs a name"))
        elif period.name in RESERVED_WINDOWS:
            problems.append(
                (
                    place,
                    f"period name '{period.name}' is reserved for a window "
                    f"({', '.join(sorted(RESERVED_WINDOWS))}); choose another name",
                )
            )
        if period.name in seen:
            problems.append(
                (
                    place,
                    f"duplicate period name '{period.name}' (also periods[{seen[period.name]}])",
                )
            )
        else:
            seen[period.name] = i
        if not period.start < period.end:
            problems.append(
                (
                    place,
                    f"'{period.name}' ends at {_hm(period.end)}, "
                    f"which is not after it starts at {_hm(period.start)}",
                )
            )
        elif day_ok and not (cal.day_start <= period.start and period.end <= cal.day_end):
            problems.append(
                (
                    place,
                    f"'{period.name}' {_span(period)} lies outside the school day "
                    f"{_hm(cal.day_start)}-{_hm(cal.day_end)}",
                )
            )
    for i, j in _overlapping(cal.periods):
        first, second = cal.periods[i], cal.periods[j]
        problems.append(
            (
                f"periods[{i}]",
                f"'{first.name}' ({_span(first)}) overlaps '{second.name}' ({_span(second)})",
            )
        )
    problems.extend(_range_problems("terms", cal.terms))
    for i, j in _overlapping_ranges(cal.terms):
        earlier, later = cal.terms[i], cal.terms[j]
        problems.append(
            (
                f"terms[{j}]",
                f"'{later.name}' ({later.start}..{later.end}) overlaps "
                f"'{earlier.name}' ({earlier.start}..{earlier.end})",
            )
        )
    problems.extend(_range_problems("closures", cal.closures))
    return problems


def _overlapping(periods: tuple[Period, ...]) -> Iterator[tuple[int, int]]:
    """Index pairs (i < j) of well-formed periods that share a second (ends are exclusive)."""
    for i, first in enumerate(periods):
        for j in range(i + 1, len(periods)):
            other = periods[j]
            proper = first.start < first.end and other.start < other.end
            if proper and first.start < other.end and other.start < first.end:
                yield i, j


def _overlapping_ranges(ranges: tuple[DateRange, ...]) -> Iterator[tuple[int, int]]:
    """Index pairs (i < j) of well-formed date ranges that share a day (ends are inclusive)."""
    for i, first in enumerate(ranges):
        for j in range(i + 1, len(ranges)):
            other = ranges[j]
            proper = first.start <= first.end and other.start <= other.end
            if proper and first.start <= other.end and other.start <= first.end:
                yield i, j


def _range_problems(name: str, ranges: tuple[DateRange, ...]) -> Iterator[tuple[str, str]]:
    for i, item in enumerate(ranges):
        if item.start > item.end:
            yield (
                f"{name}[{i}]",
                f"'{item.name}' starts after it ends ({item.start} is after {item.end}); "
                "swap the dates",
            )


def _hm(t: time) -> str:
    return t.strftime("%H:%M:%S" if t.second or t.microsecond else "%H:%M")


def _span(period: Period) -> str:
    return f"{_hm(period.start)}-{_hm(period.end)}"


# --- instants and wall-clock time --------------------------------------------------------------


def _refuse_naive(at: datetime) -> NoReturn:
    raise ValueError(
        f"at must be an aware datetime (with a timezone), got naive {at.isoformat()}; "
        "pass e.g. datetime(2026, 9, 7, 10, 30, tzinfo=ZoneInfo('Europe/London'))"
    )


def _instant_of(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """An instant near `wall` on `day` (the earlier reading in a fold, a guess in a gap)."""
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def _instants_at(day: date, wall: time, tz: ZoneInfo) -> set[datetime]:
    """Every UTC instant whose local wall-clock reading is `wall` on `day`: one normally, two
    in a fold (clocks going back), none in a gap (clocks going forward)."""
    local = datetime.combine(day, wall)
    found = set()
    for fold in (0, 1):
        instant = local.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == local:
            found.add(instant)
    return found


def _offset_change(start: datetime, end: datetime, tz: ZoneInfo) -> datetime:
    """The instant in (start, end] at which the zone's UTC offset changes, given that it does.

    Zones change offset at most once a day, and on whole seconds, so one bisection suffices."""
    before = start.astimezone(tz).utcoffset()
    low, high = int(start.timestamp()), int(end.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)
