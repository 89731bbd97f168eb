"""Tests for policy/calendar.py: windows to the second, both daylight-saving changes, terms,
closures, bank holidays, next_change/next_match, describe, day_timeline and calendar_problems."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schoolgate.policy.calendar import (
    BankHolidayRegion,
    Calendar,
    bank_holidays_for,
    calendar_problems,
)
from schoolgate.policy.model import DateRange, Period, PeriodKind, When

LONDON = ZoneInfo("Europe/London")
BREAK, LESSON = PeriodKind.BREAK, PeriodKind.LESSON

MORNING_BREAK = Period("morning break", BREAK, time(10, 30), time(10, 45))
LUNCH = Period("lunch", BREAK, time(12, 0), time(13, 0))

# Like the seed policy: Mon-Fri 08:45-15:15 with two breaks, 2026-27 terms, an INSET day.
SEED = Calendar(
    timezone=LONDON,
    school_days=frozenset(range(5)),
    day_start=time(8, 45),
    day_end=time(15, 15),
    periods=(MORNING_BREAK, LUNCH),
    terms=(
        DateRange("Spring 2026", date(2026, 1, 5), date(2026, 4, 2)),  # spans 2026-03-29
        DateRange("Autumn", date(2026, 9, 3), date(2026, 12, 18)),  # spans 2026-10-25
        DateRange("Spring", date(2027, 1, 5), date(2027, 3, 26)),
        DateRange("Summer", date(2027, 4, 12), date(2027, 7, 21)),
        DateRange("Autumn 2027", date(2027, 9, 2), date(2027, 12, 17)),  # spans 2027-10-31
    ),
    closures=(
        DateRange("INSET day", date(2027, 1, 5), date(2027, 1, 5)),
        DateRange("Polling day", date(2027, 5, 6), date(2027, 5, 6)),
    ),
)


def seed(**changes: Any) -> Calendar:
    """SEED with some fields changed."""
    return dataclasses.replace(SEED, **changes)


# Every weekday is a school day: for dates (like one-off bank holidays) outside SEED's terms.
NO_TERMS = seed(terms=(), closures=())

W_BREAK = When(("break",))
W_LESSON = When(("lesson",))
W_LUNCH = When(("lunch",))
W_MORNING = When(("morning break",))
W_SCHOOL = When(("school_day",))
W_OUTSIDE = When(("outside_school_day",))
W_ALWAYS = When()
ALL_WINDOWS = (W_BREAK, W_LESSON, W_LUNCH, W_MORNING, W_SCHOOL, W_OUTSIDE)


SCOTTISH = dataclasses.replace(NO_TERMS, bank_holidays=BankHolidayRegion.SCOTLAND)
NORTHERN_IRISH = dataclasses.replace(NO_TERMS, bank_holidays=BankHolidayRegion.NORTHERN_IRELAND)
MON_TO_THU = seed(school_days=frozenset({0, 1, 2, 3}))
ENGLAND = BankHolidayRegion.ENGLAND_AND_WALES


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[arg-type,misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]


# Wednesday 2026-09-16 (BST) and Wednesday 2027-01-13 (GMT) are ordinary school days.
SECOND_BY_SECOND = [
    # (wall time, windows that are true); every other window in ALL_WINDOWS must be false
    (time(0, 0), {W_OUTSIDE}),
    (time(8, 44, 59), {W_OUTSIDE}),
    (time(8, 45), {W_SCHOOL, W_LESSON}),
    (time(10, 29, 59), {W_SCHOOL, W_LESSON}),
    (time(10, 29, 59, 999999), {W_SCHOOL, W_LESSON}),
    (time(10, 30), {W_SCHOOL, W_BREAK, W_MORNING}),
    (time(10, 44, 59), {W_SCHOOL, W_BREAK, W_MORNING}),
    (time(10, 45), {W_SCHOOL, W_LESSON}),
    (time(11, 59, 59), {W_SCHOOL, W_LESSON}),
    (time(12, 0), {W_SCHOOL, W_BREAK, W_LUNCH}),
    (time(12, 59, 59), {W_SCHOOL, W_BREAK, W_LUNCH}),
    (time(13, 0), {W_SCHOOL, W_LESSON}),
    (time(15, 14, 59), {W_SCHOOL, W_LESSON}),
    (time(15, 15), {W_OUTSIDE}),
    (time(23, 59, 59), {W_OUTSIDE}),
]


@pytest.mark.parametrize("day", [date(2026, 9, 16), date(2027, 1, 13)])
@pytest.mark.parametrize(("wall", "true_windows"), SECOND_BY_SECOND)
def test_windows_open_and_close_on_the_second(
    day: date, wall: time, true_windows: set[When]
) -> None:
    at = datetime.combine(day, wall, tzinfo=LONDON)
    got = {when for when in ALL_WINDOWS if SEED.matches(when, at)}
    assert got == true_windows
    assert SEED.matches(W_ALWAYS, at)


DST_INSTANTS = [
    # Spring 2026: clocks go forward on Sunday 2026-03-29.
    (utc(2026, 3, 27, 10, 30), True),  # Friday 10:30 GMT
    (utc(2026, 3, 27, 9, 30), False),  # Friday 09:30 GMT
    (utc(2026, 3, 30, 9, 30), True),  # Monday 10:30 BST
    (utc(2026, 3, 30, 10, 30), False),  # Monday 11:30 BST
    (utc(2026, 3, 30, 9, 29, 59), False),  # Monday 10:29:59 BST
    (utc(2026, 3, 30, 9, 44, 59), True),
    (utc(2026, 3, 30, 9, 45), False),
    # Autumn 2026: clocks go back on Sunday 2026-10-25.
    (utc(2026, 10, 23, 9, 30), True),  # Friday 10:30 BST
    (utc(2026, 10, 23, 10, 30), False),  # Friday 11:30 BST
    (utc(2026, 10, 26, 10, 30), True),  # Monday 10:30 GMT
    (utc(2026, 10, 26, 9, 30), False),  # Monday 09:30 GMT
    (utc(2026, 10, 26, 12, 59, 59), True),  # Monday 12:59:59 GMT, lunch
    (utc(2026, 10, 26, 11, 59, 59), False),
    # Spring 2027: clocks go forward on Sunday 2027-03-28 (Easter holiday; check either side).
    (utc(2027, 3, 25, 10, 30), True),  # Thursday 10:30 GMT
    (utc(2027, 4, 12, 9, 30), True),  # Monday 10:30 BST
    (utc(2027, 4, 12, 10, 30), False),
    # Autumn 2027: clocks go back on Sunday 2027-10-31.
    (utc(2027, 10, 29, 9, 30), True),  # Friday 10:30 BST
    (utc(2027, 11, 1, 10, 30), True),  # Monday 10:30 GMT
    (utc(2027, 11, 1, 9, 30), False),
]


@pytest.mark.parametrize(("at", "in_break"), DST_INSTANTS)
def test_breaks_keep_their_wall_clock_time_across_daylight_saving(
    at: datetime, in_break: bool
) -> None:
    assert SEED.matches(W_BREAK, at) is in_break
    assert SEED.matches(W_LESSON, at) is not in_break


DAYS = [
    # (calendar, local 10:30 on this date, school day?)
    (SEED, date(2026, 9, 16), True),
    (SEED, date(2026, 9, 19), False),  # Saturday
    (SEED, date(2026, 9, 20), False),  # Sunday
    (SEED, date(2027, 1, 5), False),  # INSET day
    (SEED, date(2027, 1, 6), True),
    (SEED, date(2027, 5, 6), False),  # polling day
    (SEED, date(2027, 5, 3), False),  # Early May bank holiday, in term
    (SEED, date(2027, 5, 4), True),
    (SEED, date(2027, 5, 31), False),  # Spring bank holiday, in term
    (SEED, date(2027, 3, 26), False),  # Good Friday, last day of term
    (SEED, date(2027, 4, 5), False),  # Easter holiday, between terms
    (SEED, date(2026, 12, 21), False),  # Christmas holiday
    (SEED, date(2026, 9, 2), False),  # the day before term
    (SEED, date(2026, 9, 3), True),  # first day of term (inclusive)
    (SEED, date(2027, 7, 21), True),  # last day of term (inclusive)
    (SEED, date(2027, 7, 22), False),
    (NO_TERMS, date(2022, 9, 19), False),  # State funeral of Queen Elizabeth II (one-off)
    (NO_TERMS, date(2023, 5, 8), False),  # Coronation of King Charles III (one-off)
    (NO_TERMS, date(2023, 5, 9), True),
    (NO_TERMS, date(2060, 12, 27), False),  # Christmas Day (observed), far in the future
    (NO_TERMS, date(2060, 12, 29), True),
    (dataclasses.replace(NO_TERMS, bank_holidays=None), date(2027, 5, 3), True),
    (SCOTTISH, date(2027, 1, 4), False),
    (NO_TERMS, date(2027, 1, 4), True),  # 2 January substitute is Scotland only
    (SCOTTISH, date(2027, 8, 30), True),
    (NO_TERMS, date(2027, 8, 30), False),  # Summer bank holiday, England and Wales
    (NORTHERN_IRISH, date(2027, 3, 17), False),  # Saint Patrick's Day
    (MON_TO_THU, date(2027, 5, 7), False),
]  # fmt: skip


@pytest.mark.parametrize(("cal", "day", "school"), DAYS)
def test_school_days(cal: Calendar, day: date, school: bool) -> None:
    assert cal.is_school_day(day) is school
    at = datetime.combine(day, time(10, 30), tzinfo=LONDON)
    assert cal.matches(W_BREAK, at) is school
    assert cal.matches(W_MORNING, at) is school
    assert cal.matches(W_SCHOOL, at) is school
    assert cal.matches(W_OUTSIDE, at) is not school
    assert cal.matches(W_LESSON, at) is False
    assert bool(cal.day_timeline(day)) is school


@pytest.mark.parametrize(
    ("region", "day", "name"),
    [
        (ENGLAND, date(2027, 5, 3), "May Day"),
        (ENGLAND, date(2026, 12, 25), "Christmas Day"),
        (ENGLAND, date(2022, 9, 19), "State Funeral of Queen Elizabeth II"),
        (ENGLAND, date(2023, 5, 8), "Coronation of Charles III"),
        (ENGLAND, date(2027, 11, 30), None),
        (BankHolidayRegion.SCOTLAND, date(2027, 11, 30), "Saint Andrew's Day"),
        (BankHolidayRegion.NORTHERN_IRELAND, date(2027, 7, 12), "Battle of the Boyne"),
        (BankHolidayRegion.SCOTLAND, date(2027, 3, 29), None),  # no Easter Monday in Scotland
    ],
)  # fmt: skip
def test_bank_holidays_by_region(region: BankHolidayRegion, day: date, name: str | None) -> None:
    assert bank_holidays_for(region, day.year).get(day) == name


@pytest.mark.parametrize(
    ("when", "at", "expected"),
    [
        (When(("break", "outside_school_day")), london(2026, 9, 16, 10, 30), True),
        (When(("break", "outside_school_day")), london(2026, 9, 16, 11, 0), False),
        (When(("break", "outside_school_day")), london(2026, 9, 16, 16, 0), True),
        (When(("lunch", "morning break")), london(2026, 9, 16, 12, 30), True),
        (When(("no such window",)), london(2026, 9, 16, 10, 30), False),
        (W_ALWAYS, london(2026, 9, 19, 3, 0), True),  # Saturday night
        (W_ALWAYS, london(2027, 1, 5, 10, 30), True),  # INSET day
    ],
)
def test_several_windows_mean_any_of_them(when: When, at: datetime, expected: bool) -> None:
    assert SEED.matches(when, at) is expected


def test_an_aware_instant_in_another_zone_is_read_in_the_calendars_zone() -> None:
    new_york = ZoneInfo("America/New_York")
    at = datetime(2026, 9, 16, 5, 30, tzinfo=new_york)  # 10:30 BST
    assert SEED.matches(W_BREAK, at)
    assert SEED.describe(at) == "morning break"


@pytest.mark.parametrize(
    "call",
    [
        lambda at: SEED.matches(W_BREAK, at),
        lambda at: SEED.matches(W_ALWAYS, at),
        lambda at: SEED.next_change(W_BREAK, at),
        lambda at: SEED.next_match(W_BREAK, at),
        lambda at: SEED.describe(at),
    ],
    ids=["matches", "matches-always", "next_change", "next_match", "describe"],
)
def test_naive_datetimes_are_refused(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match=r"at must be an aware datetime .*2026-09-16T10:30:00"):
        call(datetime(2026, 9, 16, 10, 30))


NEXT_CHANGE = [
    # (when, at, expected next change)
    (W_BREAK, london(2026, 9, 16, 10, 35), london(2026, 9, 16, 10, 45)),  # inside: its end
    (W_BREAK, london(2026, 9, 16, 10, 29, 59), london(2026, 9, 16, 10, 30)),
    (W_BREAK, london(2026, 9, 16, 10, 30), london(2026, 9, 16, 10, 45)),  # strictly after
    (W_BREAK, london(2026, 9, 16, 10, 44, 59, 500000), london(2026, 9, 16, 10, 45)),
    (W_BREAK, london(2026, 9, 16, 10, 45), london(2026, 9, 16, 12, 0)),
    (W_LUNCH, london(2026, 9, 16, 12, 15), london(2026, 9, 16, 13, 0)),
    (W_LUNCH, london(2026, 9, 16, 10, 30), london(2026, 9, 16, 12, 0)),
    (W_LESSON, london(2026, 9, 16, 8, 0), london(2026, 9, 16, 8, 45)),
    (W_LESSON, london(2026, 9, 16, 13, 0), london(2026, 9, 16, 15, 15)),
    (W_SCHOOL, london(2026, 9, 16, 10, 30), london(2026, 9, 16, 15, 15)),
    # across a weekend
    (W_LESSON, london(2026, 9, 18, 15, 0), london(2026, 9, 18, 15, 15)),
    (W_OUTSIDE, london(2026, 9, 18, 15, 20), london(2026, 9, 21, 8, 45)),
    (W_BREAK, london(2026, 9, 18, 14, 0), london(2026, 9, 21, 10, 30)),
    # across the Christmas holiday and an INSET day (2027-01-05)
    (W_BREAK, london(2026, 12, 18, 14, 0), london(2027, 1, 6, 10, 30)),
    (W_OUTSIDE, london(2026, 12, 18, 16, 0), london(2027, 1, 6, 8, 45)),
    # across daylight-saving changes, exact in UTC
    (W_BREAK, utc(2026, 3, 27, 15, 0), utc(2026, 3, 30, 9, 30)),
    (W_OUTSIDE, utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 7, 45)),
    (W_BREAK, utc(2026, 10, 23, 13, 0), utc(2026, 10, 26, 10, 30)),
    (W_OUTSIDE, utc(2026, 10, 24, 0, 0), utc(2026, 10, 26, 8, 45)),
    (W_BREAK, utc(2027, 3, 25, 13, 30), utc(2027, 4, 12, 9, 30)),  # Easter and DST
    (W_BREAK, utc(2027, 10, 29, 9, 45), utc(2027, 10, 29, 11, 0)),  # lunch, BST
    (W_BREAK, utc(2027, 10, 29, 12, 0), utc(2027, 11, 1, 10, 30)),
    # around a bank holiday Monday and a polling day
    (W_BREAK, london(2027, 4, 30, 13, 0), london(2027, 5, 4, 10, 30)),
    (W_BREAK, london(2027, 5, 5, 13, 0), london(2027, 5, 7, 10, 30)),
    # the summer holiday
    (W_BREAK, london(2027, 7, 21, 12, 30), london(2027, 7, 21, 13, 0)),
    (W_BREAK, london(2027, 7, 21, 13, 0), london(2027, 9, 2, 10, 30)),
]


@pytest.mark.parametrize(("when", "at", "expected"), NEXT_CHANGE)
def test_next_change(when: When, at: datetime, expected: datetime) -> None:
    got = SEED.next_change(when, at)
    assert got == expected
    assert got is not None
    assert got.tzinfo is LONDON
    assert SEED.matches(when, got) is not SEED.matches(when, at)
    just_before = got.astimezone(UTC) - timedelta(microseconds=1)
    assert SEED.matches(when, just_before) is SEED.matches(when, at)


@pytest.mark.parametrize(
    ("when", "at", "expected"),
    [
        (W_BREAK, london(2026, 9, 16, 10, 35), london(2026, 9, 16, 10, 35)),  # now
        (W_BREAK, utc(2026, 10, 26, 10, 30), london(2026, 10, 26, 10, 30)),
        (W_BREAK, london(2026, 9, 16, 10, 45), london(2026, 9, 16, 12, 0)),
        (W_BREAK, london(2026, 9, 18, 15, 0), london(2026, 9, 21, 10, 30)),
        (W_BREAK, london(2026, 12, 18, 14, 0), london(2027, 1, 6, 10, 30)),
        (W_BREAK, utc(2026, 3, 27, 15, 0), utc(2026, 3, 30, 9, 30)),
        (W_BREAK, london(2026, 7, 22, 0, 0), london(2026, 9, 3, 10, 30)),
        (W_ALWAYS, london(2026, 9, 19, 10, 0), london(2026, 9, 19, 10, 0)),
    ],
)
def test_next_match(when: When, at: datetime, expected: datetime) -> None:
    got = SEED.next_match(when, at)
    assert got == expected
    assert got is not None
    assert got.tzinfo is LONDON
    assert SEED.matches(when, got)


def test_horizon_is_counted_from_at() -> None:
    at = london(2026, 7, 22, 0, 0)  # summer holiday; the next break is 2026-09-03 10:30
    assert SEED.next_match(W_BREAK, at, horizon_days=43) is None
    assert SEED.next_match(W_BREAK, at, horizon_days=44) == london(2026, 9, 3, 10, 30)
    assert SEED.next_change(W_BREAK, at, horizon_days=43) is None


@pytest.mark.parametrize(
    ("when", "at"),
    [
        (W_ALWAYS, london(2026, 9, 16, 10, 30)),  # never changes
        (When(("no such window",)), london(2026, 9, 16, 10, 30)),  # never matches
        (W_BREAK, london(2028, 1, 1, 0, 0)),  # no terms after 2027
    ],
)
def test_no_change_within_the_horizon_is_none(when: When, at: datetime) -> None:
    assert SEED.next_change(when, at) is None
    if not SEED.matches(when, at):
        assert SEED.next_match(when, at) is None


# A night-shift calendar whose break straddles the hour the clocks change at (01:00-02:00).
NIGHT = Calendar(
    timezone=LONDON,
    school_days=frozenset(range(7)),
    day_start=time(0, 30),
    day_end=time(23, 0),
    periods=(Period("night break", BREAK, time(1, 30), time(2, 30)),),
    bank_holidays=None,
)

NIGHT_CHANGES = [
    # 2026-03-29: 01:00 GMT jumps to 02:00 BST, straight into the break.
    (utc(2026, 3, 29, 0, 45), utc(2026, 3, 29, 1, 0)),
    (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)),  # 02:30 BST
    # 2026-10-25: 01:00-02:00 happens twice; the break begins twice.
    (utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30)),  # 01:30 BST
    (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0)),  # back to 01:00 GMT
    (utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 30)),  # 01:30 GMT
    (utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 30)),  # 02:30 GMT
]


@pytest.mark.parametrize(("at", "expected"), NIGHT_CHANGES)
def test_next_change_through_the_gap_and_the_fold(at: datetime, expected: datetime) -> None:
    when = When(("night break",))
    got = NIGHT.next_change(when, at)
    assert got is not None
    assert got.tzinfo is LONDON
    # In UTC: an aware datetime inside a fold never compares equal across zones (PEP 495).
    assert got.astimezone(UTC) == expected
    assert NIGHT.matches(when, expected - timedelta(seconds=1)) is NIGHT.matches(when, at)
    assert NIGHT.matches(when, expected) is not NIGHT.matches(when, at)


@pytest.mark.parametrize(
    ("at", "in_break"),
    [
        (utc(2026, 3, 29, 0, 59, 59), False),  # 00:59:59 GMT
        (utc(2026, 3, 29, 1, 0), True),  # 02:00 BST
        (utc(2026, 10, 25, 0, 59, 59), True),  # 01:59:59 BST
        (utc(2026, 10, 25, 1, 0), False),  # 01:00 GMT, the second time round
        (utc(2026, 10, 25, 1, 30), True),  # 01:30 GMT
    ],
)
def test_matches_in_the_gap_and_the_fold(at: datetime, in_break: bool) -> None:
    assert NIGHT.matches(When(("night break",)), at) is in_break


# Zones with awkward changes: at midnight (Havana), by half an hour (Lord Howe), southern.
ZONES = ["Europe/London", "America/Havana", "Australia/Lord_Howe", "America/Santiago"]


def _offset_changes(zone: str) -> list[datetime]:
    """Each hour in 2026-27 at whose end `zone`'s UTC offset changes (scanned hourly)."""
    tz, found = ZoneInfo(zone), []
    hour = utc(2026, 1, 1)
    while hour < utc(2028, 1, 1):
        if (
            hour.astimezone(tz).utcoffset()
            != (hour + timedelta(hours=1)).astimezone(tz).utcoffset()
        ):
            found.append(hour)
        hour += timedelta(hours=1)
    return found


CHANGES = {zone: _offset_changes(zone) for zone in ZONES}


@settings(max_examples=80, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    cuts=st.lists(st.integers(0, 95), min_size=4, max_size=4, unique=True).map(sorted),
    school_days=st.frozensets(st.integers(0, 6), min_size=1),
    window=st.sampled_from(["break", "lesson", "p", "school_day", "outside_school_day"]),
    anywhere=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    near_change=st.integers(0, 3),
    before=st.integers(0, 4 * 24 * 60),
)
def test_next_change_is_the_first_flip(
    zone: str,
    cuts: list[int],
    school_days: frozenset[int],
    window: str,
    anywhere: datetime,
    near_change: int,
    before: int,
) -> None:
    """Against a scan every 5 minutes: the value holds from `at` until the answer, then flips.
    Most examples start up to four days before one of the zone's offset changes."""
    changes = CHANGES[zone]
    start = (
        changes[near_change] - timedelta(minutes=before)
        if near_change < len(changes) and before % 5
        else anywhere
    )
    quarter = [time(c // 4, c % 4 * 15) for c in cuts]
    cal = Calendar(
        timezone=ZoneInfo(zone),
        school_days=school_days,
        day_start=quarter[0],
        day_end=quarter[3],
        periods=(Period("p", BREAK, quarter[1], quarter[2]),),
        bank_holidays=None,
    )
    when = When((window,))
    at = start.replace(second=0, microsecond=0)
    current = cal.matches(when, at)
    got = cal.next_change(when, at, horizon_days=8)
    limit = at + timedelta(days=8) if got is None else got
    probe = at
    while probe < limit:
        assert cal.matches(when, probe) is current, probe
        probe += timedelta(minutes=5)
    if got is not None:
        assert got > at
        assert cal.matches(when, got) is not current
        # Arithmetic in UTC: on a zoned datetime it is wall-clock arithmetic, wrong in a gap.
        assert cal.matches(when, got.astimezone(UTC) - timedelta(seconds=1)) is current


ASSEMBLY = Period("assembly", LESSON, time(9), time(9, 20))
DESCRIBE = [
    (SEED, london(2026, 9, 16, 8, 44, 59), "before school"),
    (SEED, london(2026, 9, 16, 8, 45), "lesson"),
    (SEED, london(2026, 9, 16, 10, 30), "morning break"),
    (SEED, london(2026, 9, 16, 10, 45), "lesson"),
    (SEED, london(2026, 9, 16, 12, 0), "lunch"),
    (SEED, london(2026, 9, 16, 15, 14, 59), "lesson"),
    (SEED, london(2026, 9, 16, 15, 15), "after school"),
    (SEED, utc(2026, 3, 30, 9, 30), "morning break"),
    (SEED, utc(2026, 10, 26, 10, 30), "morning break"),
    (SEED, london(2026, 9, 19, 10, 30), "weekend"),
    (SEED, london(2027, 5, 3, 10, 30), "bank holiday (May Day)"),
    (SEED, london(2026, 12, 25, 10, 30), "bank holiday (Christmas Day)"),
    (NO_TERMS, london(2023, 5, 8, 10, 30), "bank holiday (Coronation of Charles III)"),
    (SEED, london(2027, 1, 5, 10, 30), "closure (INSET day)"),
    (SEED, london(2027, 5, 6, 12, 0), "closure (Polling day)"),
    (SEED, london(2027, 4, 5, 10, 30), "school holiday"),
    (MON_TO_THU, london(2026, 9, 18, 10, 30), "not a school day"),
    (seed(periods=(ASSEMBLY, MORNING_BREAK)), london(2026, 9, 16, 9, 10), "assembly"),
]  # fmt: skip


@pytest.mark.parametrize(("cal", "at", "words"), DESCRIBE)
def test_describe(cal: Calendar, at: datetime, words: str) -> None:
    assert cal.describe(at) == words


def test_day_timeline_of_a_normal_day() -> None:
    assert SEED.day_timeline(date(2026, 9, 16)) == (
        (time(8, 45), time(10, 30), "lesson", LESSON),
        (time(10, 30), time(10, 45), "morning break", BREAK),
        (time(10, 45), time(12, 0), "lesson", LESSON),
        (time(12, 0), time(13, 0), "lunch", BREAK),
        (time(13, 0), time(15, 15), "lesson", LESSON),
    )


def test_day_timeline_with_named_lessons_and_periods_at_the_edges() -> None:
    cal = dataclasses.replace(
        SEED,
        periods=(
            Period("registration", LESSON, time(8, 45), time(9, 0)),
            Period("assembly", LESSON, time(9, 0), time(9, 20)),
            MORNING_BREAK,
            Period("home time", BREAK, time(15, 0), time(15, 15)),
        ),
    )
    assert cal.day_timeline(date(2026, 9, 16)) == (
        (time(8, 45), time(9, 0), "registration", LESSON),
        (time(9, 0), time(9, 20), "assembly", LESSON),
        (time(9, 20), time(10, 30), "lesson", LESSON),
        (time(10, 30), time(10, 45), "morning break", BREAK),
        (time(10, 45), time(15, 0), "lesson", LESSON),
        (time(15, 0), time(15, 15), "home time", BREAK),
    )
    assert cal.day_timeline(date(2026, 9, 19)) == ()  # Saturday


def test_window_names() -> None:
    assert SEED.window_names() == {
        "lesson",
        "break",
        "school_day",
        "outside_school_day",
        "morning break",
        "lunch",
    }


def test_calendars_compare_and_hash_by_their_fields() -> None:
    twin = dataclasses.replace(SEED)
    assert twin == SEED
    assert hash(twin) == hash(SEED)
    assert seed(day_end=time(15, 30)) != SEED


def test_timezone_must_be_a_zoneinfo() -> None:
    with pytest.raises(TypeError, match="ZoneInfo"):
        Calendar(UTC, frozenset({0}), time(9), time(15))  # type: ignore[arg-type]


def _terms(*ranges: tuple[str, date, date]) -> tuple[DateRange, ...]:
    return tuple(DateRange(*r) for r in ranges)


RESERVED = (
    "is reserved for a window (break, lesson, outside_school_day, school_day); choose another name"
)
SWAP = "; swap the dates"
PROBLEMS = [
    (SEED, []),
    (NIGHT, []),
    (
        seed(periods=(MORNING_BREAK, LUNCH, Period("dinner", BREAK, time(12, 30), time(13, 30)))),
        [("periods[1]", "'lunch' (12:00-13:00) overlaps 'dinner' (12:30-13:30)")],
    ),
    (
        seed(day_start=time(15, 15), day_end=time(8, 45)),
        [("day", "day_start 15:15 is not before day_end 08:45")],
    ),
    (
        seed(day_start=time(11, 0)),
        [("periods[0]", "'morning break' 10:30-10:45 lies outside the school day 11:00-15:15")],
    ),
    (
        seed(day_end=time(12, 30)),
        [("periods[1]", "'lunch' 12:00-13:00 lies outside the school day 08:45-12:30")],
    ),
    (
        seed(periods=(MORNING_BREAK, Period("lunch", BREAK, time(13), time(12)))),
        [("periods[1]", "'lunch' ends at 12:00, which is not after it starts at 13:00")],
    ),
    (
        seed(periods=(MORNING_BREAK, Period("lunch", BREAK, time(12), time(12)))),
        [("periods[1]", "'lunch' ends at 12:00, which is not after it starts at 12:00")],
    ),
    (
        seed(periods=(MORNING_BREAK, Period("morning break", BREAK, time(14), time(14, 15)))),
        [("periods[1]", "duplicate period name 'morning break' (also periods[0])")],
    ),
    (
        seed(periods=(Period("break", BREAK, time(10, 30), time(10, 45)),)),
        [("periods[0]", f"period name 'break' {RESERVED}")],
    ),
    (
        seed(periods=(Period(" ", BREAK, time(10, 30), time(10, 45)),)),
        [("periods[0]", "a period needs a name")],
    ),
    (
        seed(school_days=frozenset()),
        [("school_days", "no school days: list at least one weekday")],
    ),
    (
        seed(school_days=frozenset({0, 7})),
        [("school_days", "7 is not a weekday number (Monday=0 .. Sunday=6)")],
    ),
    (
        seed(terms=_terms(
            ("Autumn", date(2026, 9, 3), date(2026, 12, 18)),
            ("Spring", date(2027, 1, 5), date(2027, 3, 26)),
            ("Summer", date(2027, 7, 21), date(2027, 4, 12)),
        )),
        [("terms[2]", f"'Summer' starts after it ends (2027-07-21 is after 2027-04-12){SWAP}")],
    ),
    (
        seed(terms=_terms(
            ("Autumn", date(2026, 9, 3), date(2026, 12, 18)),
            ("Spring", date(2026, 12, 18), date(2027, 3, 26)),
        )),
        [("terms[1]", "'Spring' (2026-12-18..2027-03-26) overlaps 'Autumn' "
                      "(2026-09-03..2026-12-18)")],
    ),
    (
        seed(closures=(DateRange("Snow", date(2027, 1, 8), date(2027, 1, 7)),)),
        [("closures[0]", f"'Snow' starts after it ends (2027-01-08 is after 2027-01-07){SWAP}")],
    ),
    (
        # several problems at once, each reported with its place
        dataclasses.replace(
            SEED,
            school_days=frozenset(),
            day_start=time(16),
            periods=(
                Period("lesson", LESSON, time(9), time(9, 0, 30)),
                Period("lunch", BREAK, time(13), time(12)),
            ),
        ),
        [
            ("school_days", "no school days: list at least one weekday"),
            ("day", "day_start 16:00 is not before day_end 15:15"),
            ("periods[0]", f"period name 'lesson' {RESERVED}"),
            ("periods[1]", "'lunch' ends at 12:00, which is not after it starts at 13:00"),
        ],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("cal", "problems"), PROBLEMS)
def test_calendar_problems(cal: Calendar, problems: list[tuple[str, str]]) -> None:
    assert calendar_problems(cal) == problems
