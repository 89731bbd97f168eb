"""The request page in people's words (UX review findings 5, 8 and 9): the "Why it is blocked"
box is for the Business Manager who decides (and never ends by telling them to ask the Business
Manager); the person who asked is not shown the rule's technical text, which contradicted an
approval; and what was given reads as a sentence, not "host www.tiktok.com for user pupil1"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from schoolgate.admin_api.resources import Resources
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from tests.admin_api.conftest import blocked_site, client_for
from tests.admin_api.test_requests import stored_request


def test_the_request_page_speaks_to_each_reader(app: FastAPI) -> None:
    host = f"v{uuid.uuid4().hex[:6]}.tiktok.com"  # social media, and a site of its own
    pupil, csrf = client_for(app, "pupil")
    sent = pupil.post(
        "/api/requests",
        headers={"X-CSRF-Token": csrf},
        json={"host": host, "why": "A dance video for our PE topic."},
    )
    assert sent.status_code == 201, sent.text
    request_id = sent.json()["id"]
    bursar, csrf = client_for(app, "business_manager")
    deciding = bursar.get(f"/requests/{request_id}").text
    assert "Why it is blocked" in deciding
    assert "ask the Business Manager" not in deciding
    assert "only an approved request opens it." in deciding  # words chosen for her
    approved = bursar.post(
        f"/api/requests/{request_id}/approve",
        headers={"X-CSRF-Token": csrf},
        json={"scope": "user", "target_kind": "host", "duration": "hours", "hours": 1},
    )
    assert approved.status_code == 200, approved.text
    decided = bursar.get(f"/requests/{request_id}").text
    assert f"{host} for pupil1, until" in decided
    assert f"host {host} for user" not in decided
    pupil, _ = client_for(app, "pupil")
    mine = pupil.get(f"/requests/{request_id}").text
    assert "you can use it until" in mine
    assert "Why it is blocked" not in mine
    assert "does not open at any time" not in mine


def test_my_requests_say_which_class_day_and_lesson(app: FastAPI, resources: Resources) -> None:
    # UX review: the teacher's "My requests" left out the class, day and period, so lesson
    # requests looked alike; and each row's only link was its date.
    cal = resources.policy.calendar
    day = datetime.now(cal.timezone).date() + timedelta(days=1)
    while not cal.day_timeline(day):
        day += timedelta(days=1)
    start, end, _, _ = cal.day_timeline(day)[-1]
    host = f"v{uuid.uuid4().hex[:6]}.tiktok.com"
    teacher, csrf = client_for(app, "staff")
    sent = teacher.post(
        "/api/requests",
        headers={"X-CSRF-Token": csrf},
        json={
            "host": host,
            "why": "A dance video for our PE topic.",
            "for_group": "Year5",
            "wanted_on": day.isoformat(),
            "wanted_period": f"{start:%H:%M}-{end:%H:%M}",
        },
    )
    assert sent.status_code == 201, sent.text
    mine = teacher.get("/requests/mine").text
    row = mine[mine.index(host) - 400 : mine.index(host) + 400]
    assert "for Year5" in row
    assert f"{day:%A} {day.day} {day:%B}" in row
    assert f"{start:%H:%M}" in row
    assert f'<a href="/requests/{sent.json()["id"]}">{host}</a>' in mine  # named by its site


def test_the_header_names_the_role_once_and_the_monitoring_menu_marks_the_page(
    app: FastAPI,
) -> None:
    # UX review: "Business Manager (Business Manager)"; the monitoring menu did not say
    # which page was open.
    bursar, _ = client_for(app, "business_manager")
    assert "Business Manager (Business Manager)" not in bursar.get("/").text
    assert "Business Manager" in bursar.get("/").text
    dsl, _ = client_for(app, "dsl")
    page = dsl.get("/monitoring/sanctions").text
    assert '<a href="/monitoring/sanctions" aria-current="page">Sanctions</a>' in page


def test_an_approval_written_by_an_older_version_still_shows(
    app: FastAPI, resources: Resources
) -> None:
    # Walked in Chromium: a grant stored without its "label" (older versions) was a 500 page.
    host = blocked_site()
    request_id = stored_request(resources, host)
    ends = datetime.now(UTC) + timedelta(hours=2)
    with resources.sessions() as session:
        row = session.get_one(UnblockRequestRow, request_id)
        row.state = RequestState.APPROVED
        row.reviewed_by, row.reviewed_at = "bursar1", datetime.now(UTC)
        row.grant = {
            "scope": "user",
            "who": "pupil1",
            "target_kind": "host",
            "target": host,
            "ends": ends.isoformat(),
        }
        session.commit()
    for role in ("business_manager", "pupil"):
        app.dependency_overrides.clear()
        client, _ = client_for(app, role)
        page = client.get(f"/requests/{request_id}")
        assert page.status_code == 200, page.text
        assert f"{host} for pupil1, until" in page.text
