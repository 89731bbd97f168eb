"""Plain words on every form (admin_api/forms.py, errors.py) and times as people read them
(admin_api/render.py `when`): no raw validation text, a pasted address read as its site."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.forms import site_of, validate
from schoolgate.admin_api.render import Pages
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.schemas import LocalListEntryCreate, UnblockRequestCreate
from schoolgate.admin_api.words import roles_words
from schoolgate.store.admin_models import UnblockRequestRow
from tests.admin_api.conftest import blocked_site, client_for, sign_in
from tests.admin_api.test_requests import stored_request

LONDON = ZoneInfo("Europe/London")
RAW = (
    "Value should have",
    "after validation",
    "items",
    "U+002F",
    "SOLIDUS",
    "YYYY-MM-DD",
    "is required",
)


def pages(now: datetime = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)) -> Pages:
    return Pages(school_name="Test Primary", zone=LONDON, now=lambda: now)


@pytest.mark.parametrize(
    ("value", "kwargs", "shown"),
    [
        (datetime(2026, 12, 18, 10, 30, tzinfo=UTC), {}, "Friday 18 December, 10:30"),
        # British Summer Time: stored 09:30 UTC is 10:30 at school
        (datetime(2026, 6, 19, 9, 30, tzinfo=UTC), {}, "Friday 19 June, 10:30"),
        (
            datetime(2027, 1, 4, 8, 5, 7, tzinfo=UTC),
            {"seconds": True},
            "Monday 4 January 2027, 08:05:07",
        ),
        (datetime(2026, 12, 18, 10, 30, tzinfo=UTC), {"with_day": False}, "10:30"),
        ("2026-12-18T10:30:00+00:00", {}, "Friday 18 December, 10:30"),
        (None, {}, "—"),
    ],
)
def test_when_reads_as_people_say_it(
    value: datetime | str | None, kwargs: dict[str, bool], shown: str
) -> None:
    assert pages().when(value, **kwargs) == shown


def test_a_day_has_its_name_and_the_year_only_when_not_this_year() -> None:
    assert pages().day(date(2026, 12, 18)) == "Friday 18 December"
    assert pages().day(date(2025, 12, 18)) == "Thursday 18 December 2025"


@pytest.mark.parametrize(
    ("typed", "site"),
    [
        ("https://www.bbc.co.uk/newsround/123?x=1#top", "www.bbc.co.uk"),
        ("www.bbc.co.uk/newsround", "www.bbc.co.uk"),
        ("http://user@Example.org:8080/a", "example.org"),
        ("www.bbc.co.uk", "www.bbc.co.uk"),
        ("not a site", "not a site"),
        ("http://[::1/oops", "http://[::1/oops"),  # not understood: left for the host checks
    ],
)
def test_a_pasted_address_is_read_as_its_site(typed: str, site: str) -> None:
    assert site_of(typed) == site


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (
            {"host": "www.bbc.co.uk", "why": "homework"},
            "why",
            "Please tell us a bit more about why (at least 10 characters)",
        ),
        ({"host": "www.bbc.co.uk"}, "why", "Please tell us why you need this website"),
        (
            {"host": "www.bbc.co.uk", "why": "x" * 2001},
            "why",
            "Please make why you need it shorter (2000 characters at most)",
        ),
        (
            {
                "host": "www.bbc.co.uk",
                "why": "For the Viking project",
                "wanted_on": "next week",
                "wanted_period": "09:00-10:00",
            },
            "wanted_on",
            "Please give the day as a date, for example 2026-12-18",
        ),
    ],
)
def test_form_problems_are_sentences(data: dict[str, str], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate(UnblockRequestCreate, data)
    assert info.value.problems[field] == words
    assert not any(raw in words for raw in RAW)


def test_our_own_checks_name_their_field() -> None:
    with pytest.raises(InvalidInput) as info:
        validate(
            LocalListEntryCreate, {"host": "www.a.org", "verdict": "block", "note": "bad\x00note"}
        )
    assert info.value.problems["note"].startswith("The note contains control characters")


@pytest.mark.parametrize(
    ("field", "text", "words"),
    [
        ("host", "contains a slash", "The website contains a slash"),
        ("reason", "has a hidden character", "The reason has a hidden character"),
        # Instructions and sentences of their own are not glued to the field's name (the walk
        # in Chromium read "Who it is for name the group or class" and "The end time you typed
        # an end time but chose another ...").
        ("who", "name the group or class", "Name the group or class"),
        ("until", "you typed an end time", "You typed an end time"),
        ("days", "give a whole number of days", "Give a whole number of days"),
        ("period", "that period is over", "That period is over"),
        ("form", "the form could not be read", "The form could not be read"),
    ],
)
def test_a_problem_names_its_field_only_when_it_is_about_it(
    field: str, text: str, words: str
) -> None:
    assert InvalidInput({field: text}).problems[field] == words


def test_the_approval_forms_problems_read_as_sentences(app: FastAPI, resources: Resources) -> None:
    request_id = stored_request(resources, blocked_site())
    bursar, csrf = client_for(app, "business_manager")
    answer = bursar.post(
        f"/requests/{request_id}/approve",
        data={"scope": "group", "duration": "hours", "hours": "1", "csrf_token": csrf},
    )
    assert answer.status_code == 422
    assert "Name the group or class" in answer.text
    assert "Who it is for name" not in answer.text
    typed = bursar.post(
        f"/requests/{request_id}/approve",
        data={
            "scope": "user",
            "duration": "hours",
            "hours": "1",
            "until": "2030-01-01T10:00",
            "csrf_token": csrf,
        },
    )
    assert typed.status_code == 422
    assert "You typed an end time but chose another" in typed.text
    assert "The end time you typed" not in typed.text


def test_a_pupils_short_reason_gets_a_plain_sentence_on_the_page(app: FastAPI) -> None:
    client, csrf = client_for(app, "pupil")
    answer = client.post(
        "/requests/new", data={"host": "www.bbc.co.uk", "why": "homework", "csrf_token": csrf}
    )
    assert answer.status_code == 422
    assert "Please tell us a bit more about why (at least 10 characters)" in answer.text
    assert not any(raw in answer.text for raw in RAW[:5])


def test_a_pasted_url_becomes_a_request_for_its_site(app: FastAPI, resources: Resources) -> None:
    client, csrf = client_for(app, "staff")
    tag = uuid.uuid4().hex[:8]
    answer = client.post(
        "/requests/new",
        data={
            "host": f"https://www.site-{tag}.tiktok.com/lesson/plan?id=4",
            "for_group": "Year6",
            "csrf_token": csrf,
            "why": "We need this for the Year 6 lesson on Vikings.",
        },
    )
    assert answer.status_code == 303, answer.text
    with resources.sessions() as session:
        hosts = session.scalars(
            select(UnblockRequestRow.host).where(UnblockRequestRow.host.like(f"%{tag}%"))
        ).all()
    assert hosts == [f"www.site-{tag}.tiktok.com"]


def test_people_with_a_role_are_named_as_people_say_it() -> None:
    assert [roles_words(r) for r in ("pupil", "staff", "social_media_manager")] == [
        "pupils",
        "staff",
        "social media managers",
    ]


def test_what_the_walk_in_chromium_still_read_as_code(app: FastAPI) -> None:
    # A site that can never be unblocked, refused for a member of staff: "staffs", "X.com".
    teacher, csrf = client_for(app, "staff")
    refused = teacher.post(
        "/requests/new",
        data={"host": "x.com", "why": "For our lesson on news.", "csrf_token": csrf},
    )
    assert refused.status_code == 422
    assert "This site, x.com, can never be unblocked at school" in refused.text
    assert "keeps it blocked for staff. Nothing has been sent." in refused.text
    app.dependency_overrides.clear()
    it = sign_in(app, "it1", "it1-demo")  # a real sign-in: an audit entry with its address
    explain = it.get("/explain").text
    assert '<option value="social_media_manager">social media manager</option>' in explain
    system = it.get("/system").text
    assert ".To check it" not in system
    audit = it.get("/audit", params={"action": "signin", "actor": "it1"}).text
    assert "<dt>From the address</dt>" in audit
    assert "<dt>Ip</dt>" not in audit
