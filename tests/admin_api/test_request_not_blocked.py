"""A request for a site that is open (UX review finding 6, last part): a pupil's request for a
site the policy does not block, a teacher's for a class at a lesson when the site is open to
that class, or for themselves at a break when staff may use it, would wait in the Business
Manager's queue for nothing. It is refused in plain words where it is typed, on the form and
through the API, and nothing is queued. What is blocked at the time asked (a local block of a
site open by default, a lesson time) is still sent."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import Response
from sqlalchemy import select

from schoolgate.admin_api.resources import Resources
from schoolgate.store.admin_models import UnblockRequestRow
from tests.admin_api.conftest import blocked_site, client_for
from tests.admin_api.test_requests import WHY

NOT_BLOCKED = "is not blocked for you: you can use it now. Nothing has been sent."


def queued(resources: Resources, host: str) -> list[str]:
    with resources.sessions() as session:
        return list(
            session.scalars(select(UnblockRequestRow.id).where(UnblockRequestRow.host == host))
        )


def ask(app: FastAPI, role: str, host: str, **more: str) -> Response:
    """`role` asks for `host` through the API (`more`: a class, a day, a period)."""
    app.dependency_overrides.clear()
    client, csrf = client_for(app, role)
    return client.post(
        "/api/requests", json={"host": host, "why": WHY, **more}, headers={"X-CSRF-Token": csrf}
    )


def granted(app: FastAPI, host: str) -> list[dict[str, Any]]:
    """A pupil asks for `host` and the Business Manager gives them it for an hour; the
    exceptions in force after it (the Business Manager's client is left signed in)."""
    sent = ask(app, "pupil", host)
    assert sent.status_code == 201, sent.text
    request_id = sent.json()["id"]
    app.dependency_overrides.clear()
    bursar, csrf = client_for(app, "business_manager")
    approved = bursar.post(
        f"/api/requests/{request_id}/approve",
        json={"scope": "user", "target_kind": "host", "duration": "hours", "hours": 1},
        headers={"X-CSRF-Token": csrf},
    )
    assert approved.status_code == 200, approved.text
    return list(bursar.get("/api/exceptions").json())


def open_site() -> str:
    return f"www.museum-{uuid.uuid4().hex[:8]}.example"  # no list names it: open by default


def test_a_pupils_request_for_an_open_site_is_refused_and_not_queued(
    app: FastAPI, resources: Resources
) -> None:
    host = open_site()
    pupil, csrf = client_for(app, "pupil")
    form = pupil.post(
        "/requests/new", data={"host": f"https://{host}/vikings", "why": WHY, "csrf_token": csrf}
    )
    assert form.status_code == 422
    assert f"This site, {host}, {NOT_BLOCKED}" in form.text
    api = ask(app, "pupil", host)
    assert api.status_code == 422
    assert NOT_BLOCKED in api.json()["message"]
    assert queued(resources, host) == []


def test_a_site_open_to_the_pupil_by_an_exception_is_refused_too(
    app: FastAPI, resources: Resources
) -> None:
    host = blocked_site()
    granted(app, host)
    again = ask(app, "pupil", host)
    assert again.status_code == 422
    assert NOT_BLOCKED in again.json()["message"]
    assert len(queued(resources, host)) == 1


def test_a_locally_blocked_site_is_still_sent(app: FastAPI, resources: Resources) -> None:
    host = open_site()
    bursar, csrf = client_for(app, "business_manager")
    listed = bursar.post(
        "/api/lists", json={"host": host, "verdict": "block"}, headers={"X-CSRF-Token": csrf}
    )
    assert listed.status_code == 201, listed.text
    sent = ask(app, "pupil", host)
    assert sent.status_code == 201, sent.text
    assert len(queued(resources, host)) == 1


def next_school_day(resources: Resources) -> date:
    cal = resources.policy.calendar
    day = datetime.now(cal.timezone).date() + timedelta(days=1)
    while not cal.day_timeline(day):
        day += timedelta(days=1)
    return day


def period(resources: Resources, day: date, name: str) -> tuple[time, time]:
    for start, end, segment, _ in resources.policy.calendar.day_timeline(day):
        if segment == name:
            return start, end
    raise AssertionError(f"no {name} on {day}")


def test_a_teacher_is_told_when_the_time_asked_is_open(app: FastAPI, resources: Resources) -> None:
    # Staff may use social media at morning break (the seed policy), not in lessons.
    day = next_school_day(resources)
    start, end = period(resources, day, "morning break")
    host = blocked_site("facebook.com")
    teacher, csrf = client_for(app, "staff")

    def on_the_form(begins: time, ends: time) -> Response:
        return teacher.post(
            "/requests/new",
            data={
                "host": host,
                "why": WHY,
                "wanted_on": day.isoformat(),
                "wanted_period": f"{begins:%H:%M}-{ends:%H:%M}",
                "csrf_token": csrf,
            },
        )

    at_break = on_the_form(start, end)
    assert at_break.status_code == 422
    assert (
        f"This site, {host}, is not blocked for you on {day:%A} {day.day} {day:%B}, "
        f"morning break, {start:%H:%M}–{end:%H:%M}: you can use it then. Nothing has been sent."
    ) in at_break.text
    assert queued(resources, host) == []
    lesson_start, lesson_end, _, _ = resources.policy.calendar.day_timeline(day)[-1]
    in_lesson = on_the_form(lesson_start, lesson_end)
    assert in_lesson.status_code == 303, in_lesson.text
    assert len(queued(resources, host)) == 1


def test_a_class_request_for_a_site_open_to_the_class_is_refused(
    app: FastAPI, resources: Resources
) -> None:
    day = next_school_day(resources)
    start, end, _, _ = resources.policy.calendar.day_timeline(day)[-1]
    host = open_site()
    answer = ask(
        app,
        "staff",
        host,
        for_group="Year5",
        wanted_on=day.isoformat(),
        wanted_period=f"{start:%H:%M}-{end:%H:%M}",
    )
    assert answer.status_code == 422
    assert "is not blocked for the class or group Year5 on" in answer.json()["message"]
    assert "they can use it then" in answer.json()["message"]
    assert queued(resources, host) == []
