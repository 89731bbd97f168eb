"""policy/ical.py: local authorities' term dates (.ics) read into terms, holidays, INSET days
and closures. The files under tests/policy/ics/ were written by hand for these tests in the
shapes RFC 5545 allows and calendar programs produce (no real council's file was copied):
all-day events with an exclusive DTEND (RFC 5545 3.6.1, 3.8.2.2), dates with a TZID from a
VTIMEZONE (3.2.19, 3.6.5; Outlook's "GMT Standard Time"), UTC and floating times (3.3.5),
repeating bank holidays (RRULE 3.3.10, EXDATE 3.8.5.1), a cancelled event (STATUS 3.8.1.11),
lines folded with a space or a tab, inside a multi-byte UTF-8 character (3.1), and bare LF
line ends."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from schoolgate.policy.calendar import BankHolidayRegion, Calendar
from schoolgate.policy.ical import MAX_ICS_BYTES, parse_term_dates_ics
from schoolgate.policy.term_dates import DatedItem, DateKind

FILES = Path(__file__).parent / "ics"
LONDON = ZoneInfo("Europe/London")


def calendar(
    zone: ZoneInfo = LONDON, region: BankHolidayRegion | None = BankHolidayRegion.ENGLAND_AND_WALES
) -> Calendar:
    return Calendar(
        timezone=zone,
        school_days=frozenset(range(5)),
        day_start=time(8, 45),
        day_end=time(15, 15),
        bank_holidays=region,
    )


def read(name: str, cal: Calendar | None = None) -> dict[str, tuple[date, date, str | None]]:
    found = parse_term_dates_ics((FILES / name).read_bytes(), cal or calendar())
    assert found.problems == ()
    return {
        u.summary: (u.start, u.end, u.item.kind.value if u.item else None) for u in found.understood
    }


def test_all_day_events_end_the_day_before_their_dtend() -> None:
    got = read("all_day_google_style.ics")
    assert got["Autumn term"] == (date(2026, 9, 3), date(2026, 12, 18), "term")
    assert got["October half term"] == (date(2026, 10, 26), date(2026, 10, 30), "holiday")
    assert got["INSET day (school closed to pupils)"] == (
        date(2026, 9, 2),
        date(2026, 9, 2),
        "inset",
    )
    assert got["Christmas holidays"] == (date(2026, 12, 21), date(2027, 1, 4), "holiday")
    assert got["Spring term"] == (date(2027, 1, 5), date(2027, 3, 26), "term")


def test_what_is_not_understood_or_already_known_is_left_out_saying_why() -> None:
    found = parse_term_dates_ics((FILES / "all_day_google_style.ics").read_bytes(), calendar())
    why = {u.summary: u.why for u in found.understood if u.item is None}
    assert why == {
        "Parents' evening": "its name says no term, holiday, INSET day or closure: left out "
        "(choose what it is to keep it)",
        "Christmas Day": "a bank holiday schoolgate already knows (Christmas Day): left out",
    }
    assert len(found.items()) == 5


def test_a_bank_holiday_is_kept_where_the_region_has_no_such_day() -> None:
    # Without bank holidays from the `holidays` package, the file's own one is a bank holiday.
    found = parse_term_dates_ics(
        (FILES / "all_day_google_style.ics").read_bytes(), calendar(region=None)
    )
    assert [u.item.kind for u in found.understood if u.summary == "Christmas Day" and u.item] == [
        DateKind.HOLIDAY
    ]  # "Christmas" names a holiday by the plain rules


def test_outlook_zone_midnight_to_midnight_and_term_start_and_end_markers() -> None:
    got = read("outlook_timezone_utf8.ics")
    # "Summer Term Starts" (12 April) and "Summer Term Ends" (21 July) make one term.
    assert got["Summer Term Starts ... Summer Term Ends"] == (
        date(2027, 4, 12),
        date(2027, 7, 21),
        "term",
    )
    # 00:00 on 31 May to 00:00 on 5 June (local, British Summer Time): 31 May to 4 June.
    assert got["Half Term"] == (date(2027, 5, 31), date(2027, 6, 4), "holiday")


def test_a_line_folded_inside_a_utf8_character_is_read_whole() -> None:
    got = read("outlook_timezone_utf8.ics")
    assert got["Staff training day – no pupils ✏"] == (date(2027, 6, 7), date(2027, 6, 7), "inset")


def test_floating_and_utc_times_are_read_on_the_school_clock() -> None:
    got = read("floating_rrule_lf.ics")
    # Floating 08:30-15:30 (tab-folded summary): that day.
    assert got["Teacher training day (floating time)"] == (
        date(2026, 9, 1),
        date(2026, 9, 1),
        "inset",
    )
    # 23:00Z on 21 October is midnight on the 22nd in London (summer time): the 22nd only.
    assert got["School closed: polling station"] == (
        date(2026, 10, 22),
        date(2026, 10, 22),
        "closure",
    )


def test_a_utc_time_falls_on_the_day_of_the_schools_own_zone() -> None:
    got = read("floating_rrule_lf.ics", calendar(zone=ZoneInfo("America/New_York")))
    # 23:00Z on 21 October is 19:00 on the 21st in New York; its end (23:00Z on the 22nd) is
    # 19:00 on the 22nd: both days.
    assert got["School closed: polling station"] == (
        date(2026, 10, 21),
        date(2026, 10, 22),
        "closure",
    )


def test_repeating_events_are_expanded_within_the_files_dates_without_excluded_days() -> None:
    found = parse_term_dates_ics((FILES / "floating_rrule_lf.ics").read_bytes(), calendar())
    works = [
        (u.start, u.item.kind if u.item else None)
        for u in found.understood
        if u.summary == "School closed for building works"
    ]
    # Weekly, three times from 2 November, but 9 November is an EXDATE.
    assert works == [(date(2026, 11, 2), DateKind.CLOSURE), (date(2026, 11, 16), DateKind.CLOSURE)]
    # Christmas Day repeats yearly from 2025: only this file's year, and it is already known.
    christmas = [(u.start, u.item) for u in found.understood if "Christmas" in u.summary]
    assert christmas == [(date(2026, 12, 25), None)]
    # The Early May bank holiday's one date in the file's span (3 May 2027) is excluded.
    assert not [u for u in found.understood if "Early May" in u.summary]


def test_a_cancelled_event_is_not_imported_and_a_one_off_bank_holiday_is() -> None:
    got = read("floating_rrule_lf.ics")
    assert "Snow day" not in got
    assert got["Extra bank holiday for the royal jubilee"] == (
        date(2027, 9, 20),
        date(2027, 9, 20),
        "bank_holiday",
    )
    assert got["Sports day"] == (date(2027, 6, 18), date(2027, 6, 18), None)  # DURATION:P1D


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"not a calendar at all", "this is not an iCalendar (.ics) file"),
        (
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
            "the file has no events with dates: nothing to import",
        ),
        (b"x" * (MAX_ICS_BYTES + 1), "the file is larger than 1 MB"),
    ],
)
def test_a_file_that_is_not_term_dates_gets_words_not_a_crash(raw: bytes, says: str) -> None:
    found = parse_term_dates_ics(raw, calendar())
    assert found.understood == ()
    assert any(p.startswith(says) for p in found.problems), found.problems


def test_a_windows_encoded_file_is_read_and_said_to_be() -> None:
    raw = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        "DTSTART;VALUE=DATE:20270215\r\nDTEND;VALUE=DATE:20270220\r\n"
        "SUMMARY:February half term – pupils off\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode("cp1252")
    found = parse_term_dates_ics(raw, calendar())
    assert found.problems == (
        "the file is not UTF-8 text, so it was read as Windows text: check the names",
    )
    assert found.items() == (
        DatedItem(
            date(2027, 2, 15),
            date(2027, 2, 19),
            DateKind.HOLIDAY,
            "February half term – pupils off",
        ),
    )


def test_an_event_without_readable_dates_is_left_out_and_named() -> None:
    raw = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Autumn term\r\n"
        b"END:VEVENT\r\nBEGIN:VEVENT\r\nUID:2\r\nDTSTART;VALUE=DATE:20261102\r\n"
        b"SUMMARY:Snow day\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    found = parse_term_dates_ics(raw, calendar())
    assert len(found.problems) == 1
    assert found.problems[0].startswith("the event 'Autumn term' has no readable dates")
    assert found.items() == (
        DatedItem(date(2026, 11, 2), date(2026, 11, 2), DateKind.CLOSURE, "Snow day"),
    )


@pytest.mark.parametrize(
    ("start", "end", "term"),
    [
        ("Autumn term begins", "Autumn term ends", "Autumn term"),
        ("Start of Spring Term 2", "End of spring term 2", "Spring Term 2"),
        ("First day of term", "Last day of term", "Term"),
    ],
)
def test_term_start_and_end_markers_pair_into_one_term(start: str, end: str, term: str) -> None:
    raw = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
        f"BEGIN:VEVENT\r\nUID:1\r\nDTSTART;VALUE=DATE:20260903\r\nSUMMARY:{start}\r\n"
        "END:VEVENT\r\n"
        f"BEGIN:VEVENT\r\nUID:2\r\nDTSTART;VALUE=DATE:20261218\r\nSUMMARY:{end}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    found = parse_term_dates_ics(raw, calendar())
    assert found.items() == (DatedItem(date(2026, 9, 3), date(2026, 12, 18), DateKind.TERM, term),)


def test_a_term_start_without_an_end_is_left_out_saying_so() -> None:
    raw = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        b"DTSTART;VALUE=DATE:20260903\r\nSUMMARY:Autumn term starts\r\nEND:VEVENT\r\n"
        b"END:VCALENDAR\r\n"
    )
    found = parse_term_dates_ics(raw, calendar())
    assert [(u.item, u.why) for u in found.understood] == [
        (None, "the start of a term with no end after it: left out")
    ]


@pytest.mark.parametrize(
    ("start", "end", "first", "last"),
    [
        # The night clocks go back (25 October 2026, a 25-hour day), in UTC: 00:00 BST to 00:00 GMT.
        (
            "DTSTART:20261024T230000Z",
            "DTEND:20261026T000000Z",
            date(2026, 10, 25),
            date(2026, 10, 25),
        ),
        # The night clocks go forward (28 March 2027, a 23-hour day): 00:00 GMT to 00:00 BST.
        (
            "DTSTART:20270328T000000Z",
            "DTEND:20270328T230000Z",
            date(2027, 3, 28),
            date(2027, 3, 28),
        ),
        # The same days with the school's own zone named.
        (
            "DTSTART;TZID=Europe/London:20261025T000000",
            "DTEND;TZID=Europe/London:20261026T000000",
            date(2026, 10, 25),
            date(2026, 10, 25),
        ),
        (
            "DTSTART;TZID=Europe/London:20270328T000000",
            "DTEND;TZID=Europe/London:20270329T000000",
            date(2027, 3, 28),
            date(2027, 3, 28),
        ),
        # One second past midnight is the next day.
        (
            "DTSTART;TZID=Europe/London:20270328T000000",
            "DTEND;TZID=Europe/London:20270329T000001",
            date(2027, 3, 28),
            date(2027, 3, 29),
        ),
    ],
)
def test_days_across_both_daylight_saving_changes(
    start: str, end: str, first: date, last: date
) -> None:
    raw = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        f"{start}\r\n{end}\r\nSUMMARY:Snow day\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    found = parse_term_dates_ics(raw, calendar())
    assert [(u.start, u.end) for u in found.understood] == [(first, last)]
