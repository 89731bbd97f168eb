"""policy/term_dates.py: the kind of a dated item from its name (the plain rules), checks of
edited dates, what each day of a school year is, the days a change makes different, and the
dates written back into a policy text with everything else (comments too) left as it was."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from schoolgate.policy.calendar import BankHolidayRegion, Calendar
from schoolgate.policy.model import DateRange, Policy
from schoolgate.policy.term_dates import (
    CannotRewrite,
    DatedItem,
    DateKind,
    DayKind,
    changed_days,
    closure_kind,
    day_of,
    item_problems,
    items_of,
    kind_of_name,
    merged,
    name_for,
    with_calendar_of,
    with_dates,
    year_months,
)
from schoolgate.store.policy_files import load_policy, seed_policy_path

LONDON = ZoneInfo("Europe/London")
AUTUMN = DatedItem(date(2026, 9, 3), date(2026, 12, 18), DateKind.TERM, "Autumn term")
HALF_TERM = DatedItem(date(2026, 10, 26), date(2026, 10, 30), DateKind.HOLIDAY, "October half term")
INSET = DatedItem(date(2026, 9, 2), date(2026, 9, 2), DateKind.INSET, "INSET day")
SNOW = DatedItem(date(2026, 12, 4), date(2026, 12, 4), DateKind.CLOSURE, "Snow day")


def seed_text() -> str:
    return seed_policy_path().read_text(encoding="utf-8")


def parse_text(text: str, folder: Path) -> Policy:
    path = folder / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


def calendar(*items: DatedItem) -> Calendar:
    return Calendar(
        timezone=LONDON,
        school_days=frozenset(range(5)),
        day_start=time(8, 45),
        day_end=time(15, 15),
        bank_holidays=BankHolidayRegion.ENGLAND_AND_WALES,
        terms=tuple(DateRange(i.name, i.start, i.end) for i in items if i.kind is DateKind.TERM),
        closures=tuple(
            DateRange(i.name, i.start, i.end) for i in items if i.kind is not DateKind.TERM
        ),
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("INSET day", DateKind.INSET),
        ("Inset Day (school closed to pupils)", DateKind.INSET),
        ("Staff training day – no pupils", DateKind.INSET),
        ("Teacher day", DateKind.INSET),
        ("Non-pupil day", DateKind.INSET),
        ("Professional development day", DateKind.INSET),
        ("Extra bank holiday: coronation", DateKind.BANK_HOLIDAY),
        ("October half-term", DateKind.HOLIDAY),
        ("Half_Term", DateKind.HOLIDAY),
        ("Christmas holidays", DateKind.HOLIDAY),
        ("Easter", DateKind.HOLIDAY),
        ("Summer holiday", DateKind.HOLIDAY),
        ("Snow day", DateKind.CLOSURE),
        ("School closed: polling station", DateKind.CLOSURE),
        ("Closure for building works", DateKind.CLOSURE),
        ("Autumn term", DateKind.TERM),
        ("Summer Term 2", DateKind.TERM),
        ("Parents' evening", None),
        ("Sports day", None),
        ("School breaks up", None),  # no rule: a person chooses
    ],
)
def test_the_plain_rules_read_a_kind_from_a_name(name: str, kind: DateKind | None) -> None:
    assert kind_of_name(name) is kind


def test_a_closure_whose_name_says_nothing_or_term_is_a_closure() -> None:
    assert closure_kind("Sports day") is DateKind.CLOSURE
    assert closure_kind("Term 3 delayed start") is DateKind.CLOSURE
    assert closure_kind("Whitsun half term") is DateKind.HOLIDAY


@pytest.mark.parametrize(
    ("kind", "name", "written"),
    [
        (DateKind.INSET, "Staff training", "Staff training"),
        (DateKind.INSET, "Pupils off", "Pupils off (INSET day)"),
        (DateKind.HOLIDAY, "Snow  day", "Snow day (holiday)"),
        (DateKind.CLOSURE, "Sports day", "Sports day"),
        (DateKind.INSET, " ", ""),
        (DateKind.TERM, "Whatever", "Whatever"),
    ],
)
def test_a_name_is_made_to_say_its_kind(kind: DateKind, name: str, written: str) -> None:
    assert name_for(kind, name) == written
    if kind is not DateKind.TERM and written:
        assert closure_kind(written) is kind


def test_items_of_a_calendar_come_back_with_their_kinds_in_date_order() -> None:
    cal = calendar(SNOW, AUTUMN, HALF_TERM, INSET)
    assert items_of(cal) == (INSET, AUTUMN, HALF_TERM, SNOW)


def test_item_problems_say_which_row_and_what_to_do() -> None:
    spring = DatedItem(date(2026, 12, 1), date(2027, 3, 26), DateKind.TERM, "Spring term")
    backwards = DatedItem(date(2026, 12, 5), date(2026, 12, 4), DateKind.CLOSURE, "Snow day")
    nameless = DatedItem(date(2027, 1, 4), date(2027, 1, 4), DateKind.INSET, " ")
    assert item_problems((AUTUMN, spring, backwards, nameless)) == [
        (
            2,
            "end",
            "it ends (Friday 4 December 2026) before it starts (Saturday 5 December "
            "2026): swap the dates",
        ),
        (3, "name", "give it a name, like 'Autumn term' or 'Snow day'"),
        (
            1,
            "start",
            "'Spring term' overlaps the term 'Autumn term' (Thursday 3 September 2026 "
            "to Friday 18 December 2026): terms may not share a day",
        ),
    ]
    assert item_problems((AUTUMN, HALF_TERM, INSET, SNOW)) == []
    hidden = DatedItem(SNOW.start, SNOW.end, SNOW.kind, "Snow\u202eyad")
    assert item_problems((hidden,)) == [
        (
            0,
            "name",
            "the name has a hidden or control character "
            "(a line break, a direction mark, ...): "
            "type it again",
        )
    ]


@pytest.mark.parametrize(
    ("day", "kind", "note", "school"),
    [
        (date(2026, 9, 2), DayKind.INSET, "INSET day", False),
        (date(2026, 9, 3), DayKind.TERM, "Autumn term", True),
        (date(2026, 9, 5), DayKind.WEEKEND, "", False),
        (date(2026, 10, 27), DayKind.HOLIDAY, "October half term", False),
        (date(2026, 12, 4), DayKind.CLOSURE, "Snow day", False),
        (date(2026, 12, 25), DayKind.BANK_HOLIDAY, "Christmas Day", False),
        (date(2026, 12, 21), DayKind.HOLIDAY, "", False),  # outside every term
    ],
)
def test_what_a_day_is(day: date, kind: DayKind, note: str, school: bool) -> None:
    got = day_of(calendar(AUTUMN, HALF_TERM, INSET, SNOW), day)
    assert (got.kind, got.note, got.school) == (kind, note, school)


def test_without_terms_every_weekday_is_a_school_day_and_words_say_what_a_day_is() -> None:
    got = day_of(calendar(SNOW), date(2026, 12, 3))
    assert (got.kind, got.school) == (DayKind.TERM, True)
    assert got.words() == "Thursday 3 December: school day"
    assert (
        day_of(calendar(SNOW), date(2026, 12, 4)).words()
        == "Friday 4 December: Snow day (school closed)"
    )


def test_a_school_year_runs_september_to_august() -> None:
    months = year_months(calendar(AUTUMN), 2026)
    assert [first for first, _ in months][::11] == [date(2026, 9, 1), date(2027, 8, 1)]
    assert sum(len(days) for _, days in months) == 365
    assert months[5][1][-1].day == date(2027, 2, 28)


def test_changed_days_are_taken_together_across_weekends() -> None:
    before = calendar(AUTUMN)
    after = calendar(AUTUMN, HALF_TERM, SNOW)
    changes = changed_days(before, after, date(2026, 9, 1), date(2026, 12, 31))
    assert [c.sentence() for c in changes] == [
        "Monday 26 October 2026 to Friday 30 October 2026: school day (Autumn term), would be "
        "holiday (October half term)",
        "Friday 4 December 2026: school day (Autumn term), would be school closed (Snow day)",
    ]
    two_weeks = DatedItem(date(2026, 11, 2), date(2026, 11, 13), DateKind.HOLIDAY, "Holiday")
    spans = changed_days(before, calendar(AUTUMN, two_weeks), date(2026, 9, 1), date(2026, 12, 31))
    assert [(c.first, c.last) for c in spans] == [(date(2026, 11, 2), date(2026, 11, 13))]


def test_imported_dates_replace_the_existing_ones_in_their_span_only() -> None:
    summer_2026 = DatedItem(date(2026, 4, 13), date(2026, 7, 22), DateKind.TERM, "Summer 2026")
    old_autumn = DatedItem(date(2026, 9, 1), date(2026, 12, 17), DateKind.TERM, "Old autumn")
    assert merged((summer_2026, old_autumn), (INSET, AUTUMN)) == (summer_2026, INSET, AUTUMN)
    assert merged((summer_2026,), ()) == (summer_2026,)


# --- writing the dates into a policy text -------------------------------------------------


def test_the_seed_gets_the_dates_and_keeps_every_other_line() -> None:
    seed = seed_text()
    text = with_dates(seed, (AUTUMN, HALF_TERM, INSET, SNOW), bank_holidays="scotland")
    new_lines = [line for line in text.splitlines() if line not in seed.splitlines()]
    assert new_lines == [
        "  terms:",
        '    - {name: "Autumn term", start: 2026-09-03, end: 2026-12-18}',
        "  closures:",
        '    - {name: "INSET day", start: 2026-09-02}',
        '    - {name: "October half term", start: 2026-10-26, end: 2026-10-30}',
        '    - {name: "Snow day", start: 2026-12-04}',
        "  bank_holidays: scotland",
    ]
    gone = [line for line in seed.splitlines() if line not in text.splitlines()]
    assert gone == ["  terms: []", "  closures: []", "  bank_holidays: england-and-wales"]


def test_dates_written_read_back_the_same(tmp_path: Path) -> None:
    text = with_dates(seed_text(), (AUTUMN, HALF_TERM, INSET, SNOW))
    cal = parse_text(text, tmp_path).calendar
    assert items_of(cal) == (INSET, AUTUMN, HALF_TERM, SNOW)
    again = with_dates(text, (AUTUMN,))  # block sequences are replaced in their turn
    assert items_of(parse_text(again, tmp_path).calendar) == (AUTUMN,)
    assert "closures: []" in again
    assert again.count("# Term dates and closures are the school's to fill in.") == 1


def test_missing_keys_are_added_under_the_calendar() -> None:
    text = (
        "name: x\ncalendar:\n  school_day: {start: '08:45', end: '15:15'}\n"
        "  # the periods\n  periods: []\nrules: []\n"
    )
    got = with_dates(text, (SNOW,), bank_holidays="none")
    assert got == (
        "name: x\ncalendar:\n  school_day: {start: '08:45', end: '15:15'}\n"
        "  # the periods\n  periods: []\n  terms: []\n  closures:\n"
        '    - {name: "Snow day", start: 2026-12-04}\n  bank_holidays: none\n'
        "rules: []\n"
    )


def test_names_with_quotes_and_colons_are_written_safely(tmp_path: Path) -> None:
    odd = DatedItem(
        date(2026, 12, 4), date(2026, 12, 4), DateKind.CLOSURE, 'Closed: "boiler" #broken, {again}'
    )
    cal = parse_text(with_dates(seed_text(), (odd,)), tmp_path).calendar
    assert cal.closures == (DateRange('Closed: "boiler" #broken, {again}', odd.start, odd.end),)


@pytest.mark.parametrize(
    "text",
    [
        "name: x\ncalendar: {school_day: {start: '08:45', end: '15:15'}}\n",
        "name: x\ncalendar: [\n",
        "name: x\n",
    ],
)
def test_a_text_whose_calendar_cannot_be_rewritten_says_what_to_do(text: str) -> None:
    with pytest.raises(CannotRewrite, match="on the Policy page"):
        with_dates(text, (SNOW,))


BASE = (
    "name: base\ncalendar:\n  timezone: Europe/London  # the trust's zone\n  terms: []\nrules: []\n"
)
BLOCK = "calendar:\n  timezone: Europe/London  # the trust's zone\n  terms: []"


@pytest.mark.parametrize(
    ("school", "expected"),
    [
        ("", f"{BLOCK}\n"),  # an empty override: the trust's calendar, as written
        ("# Oak\nrules: []\n", f"# Oak\nrules: []\n{BLOCK}\n"),  # kept, then the calendar
        ("calendar:\n  terms: []\n", "calendar:\n  terms: []\n"),  # its own: left alone
    ],
)
def test_a_schools_calendar_starts_as_a_copy_of_the_trusts(school: str, expected: str) -> None:
    assert with_calendar_of(school, BASE) == expected


@pytest.mark.parametrize(("school", "base"), [("rules: [\n", BASE), ("", "rules: []\n")])
def test_no_calendar_to_copy_is_said_in_words(school: str, base: str) -> None:
    with pytest.raises(CannotRewrite, match=r"not valid YAML|no calendar to start from"):
        with_calendar_of(school, base)
