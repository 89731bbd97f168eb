"""The school calendar pages (admin_api/calendar.py), on SQLite and PostgreSQL: the year view
for IT, the Business Manager and the DSL; the editor (IT only) saving through the policy's
version path (reason, located errors in words, file untouched on error, diff in the audit
log); "What would change?" naming the days; the .ics import shown for checking before saving."""

from __future__ import annotations

import html
import re
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.resources import make_resources
from schoolgate.policy.term_dates import DateKind, DayKind, day_of, items_of
from schoolgate.store import policy_versions as versions
from schoolgate.store.admin_models import AuditEntryRow
from schoolgate.store.policy_files import load_policy
from tests.admin_api import test_policy_pages
from tests.admin_api.conftest import client_for, settings_for
from tests.admin_api.test_hostile import HOSTILE as FORM_HOSTILE
from tests.admin_api.test_policy_pages import Admin

admin = test_policy_pages.admin  # the same fixture: a school copy of the seed, the time fixed
ICS = Path(__file__).resolve().parents[1] / "policy" / "ics"
SNOW_DAY = date(2026, 12, 4)


def _rows(page: str) -> list[tuple[str, str, str, str]]:
    """(kind, name, first day, last day) of each filled row of the editor."""
    found = []
    for i in range(int(re.search(r'name="rows" value="(\d+)"', page)[1])):  # type: ignore[index]
        kind = re.search(
            rf'<select id="kind_{i}" name="kind_{i}">.*?<option value="(\w+)" '
            "selected",
            page,
            re.S,
        )
        values = [
            re.search(
                rf'id="{f}_{i}" name="{f}_{i}" type="\w+"(?: maxlength="\d+")? '
                r'value="([^"]*)"',
                page,
            )
            for f in ("name", "start", "end")
        ]
        if kind and all(values) and values[0][1]:  # type: ignore[index]
            found.append((kind[1], *(html.unescape(v[1]) for v in values)))  # type: ignore[index]
    return found


def _form(token: str, rows: list[tuple[str, str, str, str]], **extra: str) -> dict[str, str]:
    data = {
        "csrf_token": token,
        "rows": str(len(rows)),
        "bank_holidays": "england-and-wales",
        "days": "7",
        **extra,
    }
    for i, (kind, name, start, end) in enumerate(rows):
        data |= {f"kind_{i}": kind, f"name_{i}": name, f"start_{i}": start, f"end_{i}": end}
    return data


YEAR = [
    ("term", "Autumn term", "2026-09-03", "2026-12-18"),
    ("holiday", "October half term", "2026-10-26", "2026-10-30"),
]


def _save(admin: Admin, rows: list[tuple[str, str, str, str]], reason: str = "LA dates"):
    client, token = client_for(admin.app, "it_technician")
    return client.post("/calendar/edit", data=_form(token, rows, reason=reason, action="save"))


@pytest.mark.parametrize("role", ["it_technician", "business_manager", "dsl"])
def test_the_year_view_is_for_it_the_business_manager_and_the_dsl(admin: Admin, role: str) -> None:
    client, _ = client_for(admin.app, role)
    page = client.get("/calendar")
    assert page.status_code == 200
    assert "School calendar, 2026 to 2027" in page.text
    captions = re.findall(r"<caption>(.*?)</caption>", page.text)
    assert captions[0] == "September 2026"
    assert captions[-1] == "August 2027"
    # Today is marked in words and for screen readers, not only by its look.
    assert re.search(r'aria-current="date">.*?Monday 23 November: school day \(today\)', page.text)
    assert "Friday 25 December: Christmas Day (bank holiday)" in page.text
    assert ("Change the dates" in page.text) is (role == "it_technician")


@pytest.mark.parametrize("role", ["pupil", "staff"])
def test_pupils_and_staff_do_not_see_the_calendar(admin: Admin, role: str) -> None:
    client, _token = client_for(admin.app, role)
    assert client.get("/calendar").status_code == 403
    assert client.get("/calendar/edit").status_code == 403


@pytest.mark.parametrize("role", ["business_manager", "dsl"])
def test_only_it_may_change_the_dates(admin: Admin, role: str) -> None:
    client, token = client_for(admin.app, role)
    assert client.get("/calendar/edit").status_code == 403
    answer = client.post("/calendar/edit", data=_form(token, YEAR, reason="x", action="save"))
    assert answer.status_code == 403
    assert "terms: []" in admin.path.read_text(encoding="utf-8")


def test_a_save_is_a_new_policy_version_with_the_diff_in_the_audit_log(admin: Admin) -> None:
    client, _token = client_for(admin.app, "it_technician")
    assert _rows(client.get("/calendar/edit").text) == []  # the seed has no dates
    answer = _save(
        admin,
        [*YEAR, ("closure", "Snow day", SNOW_DAY.isoformat(), "")],
        reason="the county's dates",
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith("/calendar?saved=version-")
    text = admin.path.read_text(encoding="utf-8")
    assert '    - {name: "Snow day", start: 2026-12-04}' in text
    assert "# Term dates and closures are the school's to fill in." in text  # comments kept
    cal = load_policy(admin.path).calendar
    assert day_of(cal, SNOW_DAY).kind is DayKind.CLOSURE
    assert admin.resources.policy.calendar.closure(SNOW_DAY) is not None  # the admin's view
    with admin.resources.sessions() as session:
        row = versions.latest(session, versions.POLICY)
        assert row is not None
        assert row.text == text
        assert (row.author, row.reason) == ("it1", "school calendar: the county's dates")
        entry = session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.action == "policy.change")
        ).all()[-1]
        assert '+    - {name: "Autumn term", start: 2026-09-03, end: 2026-12-18}' in str(
            entry.after
        )
    page = client.get(answer.headers["location"]).text
    assert "Saved as version" in page
    assert "Friday 4 December: Snow day (school closed)" in page
    assert "<strong>Autumn term</strong> (term): Thursday 3 September to Friday 18 December" in page
    assert ("term", "Autumn term", "2026-09-03", "2026-12-18") in _rows(
        client.get("/calendar/edit").text
    )


def test_the_editor_and_year_view_show_dates_edited_on_the_server(admin: Admin) -> None:
    # Saving the form must not drop dates someone wrote into the file by hand meanwhile.
    client, _ = client_for(admin.app, "it_technician")
    client.get("/calendar")
    text = admin.path.read_text(encoding="utf-8").replace(
        "  closures: []", '  closures:\n    - {name: "Boiler broken", start: 2026-12-04}'
    )
    admin.path.write_text(text, encoding="utf-8")
    assert ("closure", "Boiler broken", "2026-12-04", "") in _rows(
        client.get("/calendar/edit").text
    )
    assert "Friday 4 December: Boiler broken (school closed)" in client.get("/calendar").text


def test_a_policy_file_broken_on_the_server_is_said_plainly(admin: Admin) -> None:
    client, _ = client_for(admin.app, "it_technician")
    client.get("/calendar")
    admin.path.write_text(
        admin.path.read_text(encoding="utf-8").replace("default: ", "defualt: "), encoding="utf-8"
    )
    answer = _save(admin, YEAR)
    assert answer.status_code == 422
    assert "defualt: unknown key" in answer.text
    assert 'href="#text"' not in answer.text  # the calendar page has no policy text box


@pytest.mark.parametrize(
    ("rows", "reason", "field", "words"),
    [
        (YEAR, "", "reason", "Say why the policy is changing"),
        (
            [("closure", "Snow day", "2026-12-05", "2026-12-04")],
            "x",
            "end_0",
            "Row 1 (Snow day): it ends (Friday 4 December 2026) before it starts (Saturday 5 "
            "December 2026): swap the dates",
        ),
        (
            [("closure", "Snow day", "4/12/2026", "")],
            "x",
            "start_0",
            "Row 1 (Snow day): the first day '4/12/2026' is not a date: write it like 2027-01-05",
        ),
        (
            [("closure", "", "2026-12-04", "")],
            "x",
            "name_0",
            "Row 1: give it a name, like 'Autumn term' or 'Snow day'",
        ),
        (
            [*YEAR, ("term", "Spring term", "2026-12-01", "2027-03-26")],
            "x",
            "start_2",
            "Row 3 (Spring term): 'Spring term' overlaps the term 'Autumn term'",
        ),
        # the place comes from the check, not from words in the message ("name" in a name)
        (
            [*YEAR, ("term", "Surname term", "2026-12-01", "2027-03-26")],
            "x",
            "start_2",
            "Row 3 (Surname term): 'Surname term' overlaps the term 'Autumn term'",
        ),
        (
            [("closure", "x" * 101, "2026-12-04", "")],
            "x",
            "name_0",
            "keep the name under 100 characters",
        ),
    ],
)
def test_bad_dates_are_refused_in_words_and_the_file_is_left_alone(
    admin: Admin, rows: list[tuple[str, str, str, str]], reason: str, field: str, words: str
) -> None:
    before = admin.path.read_text(encoding="utf-8")
    answer = _save(admin, rows, reason=reason)
    assert answer.status_code == 422
    assert words.replace("'", "&#39;") in answer.text
    assert f'<a href="#{field}">' in answer.text
    assert admin.path.read_text(encoding="utf-8") == before


def test_an_unknown_bank_holiday_region_is_refused(admin: Admin) -> None:
    client, token = client_for(admin.app, "it_technician")
    data = _form(token, YEAR, reason="x", action="save") | {"bank_holidays": "wales-only"}
    answer = client.post("/calendar/edit", data=data)
    assert answer.status_code == 422
    assert "Choose the bank holidays of a part of the UK, or none" in answer.text


def test_what_would_change_names_the_days_and_saves_nothing(admin: Admin) -> None:
    client, token = client_for(admin.app, "it_technician")
    before = admin.path.read_text(encoding="utf-8")
    answer = client.post(
        "/calendar/edit",
        data=_form(token, [("closure", "Snow day", SNOW_DAY.isoformat(), "")], action="preview"),
    )
    assert answer.status_code == 200, answer.text
    assert "Friday 4 December 2026: school day, would be school closed (Snow day)" in answer.text
    assert "recorded decisions from the last 7 days replayed" in answer.text
    assert admin.path.read_text(encoding="utf-8") == before


def test_leave_out_removes_a_row(admin: Admin) -> None:
    assert _save(admin, YEAR).status_code == 303
    assert (
        _save(admin, [YEAR[0], ("leave", *YEAR[1][1:])], reason="no half term").status_code == 303
    )
    cal = load_policy(admin.path).calendar
    assert (len(cal.terms), cal.closures) == (1, ())


def test_add_rows_keeps_what_was_typed(admin: Admin) -> None:
    client, token = client_for(admin.app, "it_technician")
    answer = client.post("/calendar/edit", data=_form(token, YEAR, action="add"))
    assert answer.status_code == 200
    assert _rows(answer.text) == YEAR
    assert 'name="rows" value="6"' in answer.text  # two rows, three added, one always blank


def test_an_ics_import_is_shown_for_checking_then_saved_as_corrected(admin: Admin) -> None:
    client, token = client_for(admin.app, "it_technician")
    raw = (ICS / "all_day_google_style.ics").read_bytes()
    answer = client.post(
        "/calendar/import",
        data={"csrf_token": token},
        files={"file": ("term-dates.ics", raw, "text/calendar")},
    )
    assert answer.status_code == 200, answer.text
    assert "What the file says" in answer.text
    assert '"Parents&#39; evening", Thursday 12 November: its name says no term' in answer.text
    rows = _rows(answer.text)
    assert ("term", "Autumn term", "2026-09-03", "2026-12-18") in rows
    assert ("inset", "INSET day (school closed to pupils)", "2026-09-02", "") in rows
    assert ("leave", "Parents' evening", "2026-11-12", "") in rows  # offered, left out
    assert "terms: []" in admin.path.read_text(encoding="utf-8")  # nothing saved yet
    # Correct one item (parents' evening is, this year, a closure) and save.
    fixed = [
        ("closure", n, s, e) if n == "Parents' evening" else (k, n, s, e) for k, n, s, e in rows
    ]
    assert _save(admin, fixed, reason="county term dates").status_code == 303
    cal = load_policy(admin.path).calendar
    assert [(i.kind, i.name) for i in items_of(cal) if i.start == date(2026, 11, 12)] == [
        (DateKind.CLOSURE, "Parents' evening")
    ]
    assert len(cal.terms) == 2
    assert not cal.is_school_day(date(2026, 10, 27))


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"name: not a calendar\n", "The file could not be imported: this is not an iCalendar"),
        (b"", "Choose the term dates file (.ics) to import"),
    ],
)
def test_a_file_that_is_not_term_dates_is_refused_in_words(
    admin: Admin, raw: bytes, words: str
) -> None:
    client, token = client_for(admin.app, "it_technician")
    files = {"file": ("dates.ics", raw, "text/calendar")} if raw else None
    answer = client.post("/calendar/import", data={"csrf_token": token}, files=files)
    assert answer.status_code == 422
    assert words in answer.text


def test_with_the_seed_policy_the_editor_says_how_to_get_a_school_copy(
    database_url: str, tmp_path: Path
) -> None:
    made = make_resources(settings_for(database_url, tmp_path / "data"))
    app = make_app(resources=made)
    try:
        client, _ = client_for(app, "it_technician")
        answer = client.get("/calendar/edit")
        assert answer.status_code == 409
        assert "SCHOOLGATE_POLICY_FILE" in answer.text
        assert client.get("/calendar").status_code == 200
    finally:
        app.dependency_overrides.clear()
        made.close()


HOSTILE = FORM_HOSTILE | {
    "yaml": "x}\n  - {name: evil, start: 2026-12-25}\n#",
    "number": "99999999999999999999",
}


def _post_hostile(admin: Admin, field: str, value: str) -> None:
    client, token = client_for(admin.app, "it_technician")
    before = admin.path.read_text(encoding="utf-8")
    for action in ("preview", "save"):
        data = _form(
            token, [("closure", "Snow day", "2026-12-04", "")], reason="x", action=action
        ) | {field: value}
        answer = client.post("/calendar/edit", data=data)
        assert answer.status_code < 500, answer.text[-2000:]
        assert "<script>alert" not in answer.text
        assert 'onmouseover="alert(1)"' not in answer.text
    text = admin.path.read_text(encoding="utf-8")
    if text != before:  # saved: then the text is a valid policy holding what was meant
        cal = load_policy(admin.path).calendar
        assert [c.name for c in cal.closures] in (["Snow day"], [" ".join(value.split())])
        assert all(c.isprintable() for c in "".join(x.name for x in cal.closures))


# The form is checked before the database is reached: SQLite is enough for the whole table.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "field", ["kind_0", "name_0", "start_0", "end_0", "reason", "bank_holidays", "rows", "days"]
)
@pytest.mark.parametrize("value", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_input_gets_words_never_a_crash(admin: Admin, field: str, value: str) -> None:
    _post_hostile(admin, field, HOSTILE[value])


# A NUL cannot even be stored in PostgreSQL: refused in words there too, never a 500.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("field", ["name_0", "reason"])
def test_control_characters_get_words_on_postgresql_too(admin: Admin, field: str) -> None:
    _post_hostile(admin, field, HOSTILE["control"])


def test_a_hostile_ics_is_shown_escaped_and_a_huge_one_refused(admin: Admin) -> None:
    client, token = client_for(admin.app, "it_technician")
    raw = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        b"DTSTART;VALUE=DATE:20261204\r\nSUMMARY:<script>alert('x')</script> snow\x00 day"
        b"\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    answer = client.post(
        "/calendar/import",
        data={"csrf_token": token},
        files={"file": ("x.ics", raw, "text/calendar")},
    )
    assert answer.status_code == 200
    assert "<script>alert" not in answer.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; snow day" in answer.text
    huge = b"BEGIN:VCALENDAR\r\n" + b"X-FILL:" + b"a" * 1_200_000 + b"\r\nEND:VCALENDAR\r\n"
    answer = client.post(
        "/calendar/import",
        data={"csrf_token": token},
        files={"file": ("x.ics", huge, "text/calendar")},
    )
    assert answer.status_code == 422
    assert "larger than 1 MB" in answer.text
