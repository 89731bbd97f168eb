"""Safe by default, for approvals (issue 13; security review findings 7 and 18; UX findings 1,
6, 8, 9): a grant is as narrow as the request unless the reviewer confirms a wider one after
reading its reach in words; the policy forbids some widenings outright; nobody decides their
own request in any field, and a grant to one person is checked with that person's role from the
directory. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from schoolgate.admin_api.resources import Resources
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.models import ExceptionRow
from tests.admin_api.conftest import blocked_site, client_for, csrf_of, sign_in
from tests.admin_api.test_requests import WHY, block_link, request_id_from, stored_request


def _state(resources: Resources, request_id: str) -> UnblockRequestRow:
    with resources.sessions() as session:
        row = session.get(UnblockRequestRow, request_id)
        assert row is not None
        session.expunge(row)
        return row


def _approve(app: FastAPI, request_id: str, **body: object) -> tuple[int, dict[str, object]]:
    bursar, csrf = client_for(app, "business_manager")
    answer = bursar.post(
        f"/api/requests/{request_id}/approve",
        json={"duration": "hours", "hours": 1, **body},
        headers={"X-CSRF-Token": csrf},
    )
    return answer.status_code, answer.json()


# --- nobody decides their own request (finding 7) -----------------------------------------


def test_the_reviewer_cannot_name_themselves_as_the_beneficiary(
    app: FastAPI, resources: Resources
) -> None:
    request_id = stored_request(resources, "www.facebook.com", requester="teacher1", role="staff")
    status, body = _approve(app, request_id, scope="user", who="bursar1", target_kind="category")
    assert status == 422, body
    assert "only be for the person who was blocked or who asked" in str(body)
    assert _state(resources, request_id).state is RequestState.PENDING


def test_a_user_grant_names_only_the_blocked_person_or_the_requester(
    app: FastAPI, resources: Resources
) -> None:
    request_id = stored_request(resources, "www.tiktok.com")
    status, body = _approve(app, request_id, scope="user", who="pupil2")
    assert status == 422
    assert "pupil1" in str(body)
    status, body = _approve(app, request_id, scope="user", who="PUPIL1")  # the same person
    assert status == 200, body
    assert body["grant"]["who"] == "PUPIL1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("scope", "who", "words"),
    [
        ("role", "staff", "you have the role staff"),
        ("group", "businessmanagers", "you are in the group businessmanagers"),
    ],
)
def test_a_role_or_group_grant_that_includes_the_reviewer_is_refused(
    app: FastAPI, resources: Resources, scope: str, who: str, words: str
) -> None:
    request_id = stored_request(
        resources, f"www.museum-{time.time_ns()}.example", requester="teacher1", role="staff"
    )
    status, body = _approve(app, request_id, scope=scope, who=who, confirm_wide=True)
    assert status == 403, body
    assert words in str(body["message"])
    assert _state(resources, request_id).state is RequestState.PENDING


def test_a_user_grant_is_checked_with_that_persons_role_in_the_directory(
    app: FastAPI, resources: Resources
) -> None:
    """Finding 18: the request's recorded role said staff, but pupil2 is a pupil in the
    directory, and VPNs can never be unblocked for pupils."""
    request_id = stored_request(resources, "nordvpn.com", requester="pupil2", role="staff")
    status, body = _approve(app, request_id, scope="user", target_kind="host")
    assert status == 422, body
    assert body["error"] == "policy_forbids"
    assert "pupil" in str(body["message"])
    assert _state(resources, request_id).state is RequestState.PENDING


# --- as narrow as the request; wider only with a confirmation (finding UX 1) ---------------


def test_a_wider_grant_needs_a_confirmation_that_states_its_reach(
    app: FastAPI, resources: Resources
) -> None:
    host = f"www.museum-{time.time_ns()}.example"
    request_id = stored_request(resources, host)
    status, body = _approve(app, request_id, scope="role", who="pupil")
    assert status == 422, body
    reach = str(body["problems"]["confirm_wide"])  # type: ignore[index]
    # The demo directory holds two pupils.
    assert f"This lets all 2 pupils use {host} (and its subdomains) until" in reach
    assert "wider than the request" in reach
    assert _state(resources, request_id).state is RequestState.PENDING
    status, body = _approve(app, request_id, scope="role", who="pupil", confirm_wide=True)
    assert status == 200, body
    assert body["state"] == "approved"


def test_longer_than_a_day_needs_a_confirmation(app: FastAPI, resources: Resources) -> None:
    request_id = stored_request(resources, f"www.museum-{time.time_ns()}.example")
    until = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    status, body = _approve(app, request_id, scope="user", duration="until", until=until)
    assert status == 422
    assert "for longer than a day" in str(body["problems"])
    status, body = _approve(
        app, request_id, scope="user", duration="until", until=until, confirm_wide=True
    )
    assert status == 200, body


def test_the_narrow_grant_needs_no_confirmation(app: FastAPI, resources: Resources) -> None:
    request_id = stored_request(resources, "www.tiktok.com")
    status, body = _approve(app, request_id, scope="user", target_kind="host")
    assert status == 200, body


@pytest.mark.parametrize(
    "body",
    [
        {"scope": "everyone", "target_kind": "host"},  # everyone-wide
        {"scope": "role", "who": "pupil", "target_kind": "host"},
        {"scope": "user", "target_kind": "category"},  # category-wide, even for one pupil
        {"scope": "group", "who": "Year5", "target_kind": "category"},
    ],
)
def test_the_seed_policy_forbids_wide_openings_of_social_media_for_pupils(
    app: FastAPI, resources: Resources, body: dict[str, str]
) -> None:
    request_id = stored_request(resources, "www.tiktok.com")
    status, answer = _approve(app, request_id, confirm_wide=True, **body)
    assert status == 422, answer
    assert answer["error"] == "policy_forbids"
    assert "does not allow opening 'social'" in str(answer["message"])
    with resources.sessions() as session:
        assert session.query(ExceptionRow).filter_by(request_id=request_id).count() == 0


def test_the_page_asks_for_the_confirmation_and_then_approves(
    app: FastAPI, resources: Resources
) -> None:
    host = f"www.museum-{time.time_ns()}.example"
    request_id = stored_request(resources, host)
    bursar = sign_in(app, "bursar1", "bursar1-demo")
    fields = {"scope": "everyone", "target_kind": "host", "duration": "hours", "hours": "2"}
    asked = bursar.post(
        f"/requests/{request_id}/approve", data={**fields, "csrf_token": csrf_of(bursar)}
    )
    assert asked.status_code == 422
    assert "Check before you approve" in asked.text
    assert "This lets all " in asked.text
    assert "people at school (everyone)" in asked.text
    assert 'name="confirm_wide" value="yes"' in asked.text
    done = bursar.post(
        f"/requests/{request_id}/approve",
        data={**fields, "confirm_wide": "yes", "csrf_token": csrf_of(bursar)},
    )
    assert done.status_code == 303
    assert done.headers["location"].endswith("?done=approved")
    assert "Approved." in bursar.get(done.headers["location"]).text


# --- requests that cannot work are refused where they are typed (UX 4, 6; finding 21) --------


def test_a_request_for_a_site_that_can_never_be_unblocked_is_refused_before_it_is_queued(
    app: FastAPI, resources: Resources
) -> None:
    pupil, csrf = client_for(app, "pupil")
    answer = pupil.post(
        "/requests/new", data={"host": "https://x.com/home", "why": WHY, "csrf_token": csrf}
    )
    assert answer.status_code == 422
    assert "This site, x.com, can never be unblocked at school, even if you ask" in answer.text
    api = pupil.post(
        "/api/requests",
        json={"host": "www.croxyproxy.com", "why": WHY},
        headers={"X-CSRF-Token": csrf},
    )
    assert api.status_code == 422
    assert "can never be unblocked" in api.json()["message"]


def test_a_pasted_address_is_understood_as_its_site(app: FastAPI) -> None:
    site = blocked_site()
    pupil, csrf = client_for(app, "pupil")
    answer = pupil.post(
        "/api/requests",
        json={"host": f"https://{site.upper()}/@bbcbitesize/video?x=1#top", "why": WHY},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["host"] == site


def test_after_sending_the_pupil_is_told_what_happens_next_and_later_until_when(
    app: FastAPI, resources: Resources
) -> None:
    pupil = sign_in(app, "pupil1", "pupil1-demo")
    token = block_link(resources, host=blocked_site())
    sent = pupil.post(
        "/requests/new", data={"token": token, "why": WHY, "csrf_token": csrf_of(pupil)}
    )
    assert sent.status_code == 303
    page = pupil.get(sent.headers["location"]).text
    assert "Sent - the Business Manager will look at it" in page
    assert "You will see the answer" in page
    request_id = request_id_from(sent.headers["location"])
    status, body = _approve(app, request_id, scope="user", target_kind="host")
    assert status == 200, body
    app.dependency_overrides.clear()
    assert "you can use it until" in pupil.get(f"/requests/{request_id}").text
    assert "until " in pupil.get("/requests/mine").text


def test_a_block_page_link_is_tied_to_its_person_and_single_use(
    app: FastAPI, resources: Resources
) -> None:
    token = block_link(resources, host="www.snapchat.com", user="pupil1")
    other = sign_in(app, "pupil2", "pupil2-demo")
    refused = other.post(
        "/requests/new", data={"token": token, "why": WHY, "csrf_token": csrf_of(other)}
    )
    assert refused.status_code == 422
    assert "made for someone else" in refused.text
    owner = sign_in(app, "pupil1", "pupil1-demo")
    first = owner.post(
        "/requests/new", data={"token": token, "why": WHY, "csrf_token": csrf_of(owner)}
    )
    assert first.status_code == 303
    again = owner.post(
        "/requests/new", data={"token": token, "why": WHY, "csrf_token": csrf_of(owner)}
    )
    assert again.status_code == 422
    assert "already sent a request from this link" in again.text


def test_deny_asks_for_a_reason_and_a_confirmation(app: FastAPI, resources: Resources) -> None:
    request_id = stored_request(resources, "www.tiktok.com")
    bursar = sign_in(app, "bursar1", "bursar1-demo")
    unconfirmed = bursar.post(
        f"/requests/{request_id}/deny",
        data={"reason": "Not for school work.", "csrf_token": csrf_of(bursar)},
    )
    assert unconfirmed.status_code == 422
    assert "Tick the box to confirm" in unconfirmed.text
    assert _state(resources, request_id).state is RequestState.PENDING
    done = bursar.post(
        f"/requests/{request_id}/deny",
        data={"reason": "Not for school work.", "confirm": "yes", "csrf_token": csrf_of(bursar)},
    )
    assert done.status_code == 303
    assert "Denied." in bursar.get(done.headers["location"]).text


def test_a_typed_end_time_is_never_silently_ignored(app: FastAPI, resources: Resources) -> None:
    """UX finding 8: an "Until" typed while "For 1 hour" stays chosen was dropped."""
    request_id = stored_request(resources, "www.tiktok.com")
    until = (datetime.now(UTC) + timedelta(hours=5)).isoformat()
    status, body = _approve(app, request_id, scope="user", duration="hours", until=until)
    assert status == 422
    assert "You typed an end time" in str(body["problems"])
    assert _state(resources, request_id).state is RequestState.PENDING


def test_after_deciding_the_next_request_is_one_click_away(
    app: FastAPI, resources: Resources
) -> None:
    request_id = stored_request(resources, "www.tiktok.com")
    bursar = sign_in(app, "bursar1", "bursar1-demo")
    done = bursar.post(
        f"/requests/{request_id}/approve",
        data={
            "scope": "user",
            "target_kind": "host",
            "duration": "hours",
            "hours": "1",
            "csrf_token": csrf_of(bursar),
        },
    )
    assert done.status_code == 303
    assert 'href="/requests">Next request in the queue' in bursar.get(done.headers["location"]).text


def test_a_request_or_grant_through_a_page_rewriting_proxy_is_judged_by_the_site_inside(
    app: FastAPI, resources: Resources
) -> None:
    """Security finding 2, admin side: an ordinary approval opened Instagram through
    www-instagram-com.translate.goog."""
    pupil, csrf = client_for(app, "pupil")
    typed = pupil.post(
        "/api/requests",
        json={"host": "www-instagram-com.translate.goog", "why": WHY},
        headers={"X-CSRF-Token": csrf},
    )
    assert typed.status_code == 422
    assert "can never be unblocked" in typed.json()["message"]
    request_id = stored_request(resources, "www-instagram-com.translate.goog")  # already queued
    status, body = _approve(app, request_id, scope="user", target_kind="host")
    assert status == 422, body
    assert body["error"] == "policy_forbids"
    assert _state(resources, request_id).state is RequestState.PENDING


def test_a_class_request_is_explained_for_the_class_not_the_teacher(
    app: FastAPI, resources: Resources
) -> None:
    """UX finding 5: the approval page explained Year 6's TikTok request for the teacher
    ("Allowed ... for teacher1 (staff)")."""
    teacher, csrf = client_for(app, "staff")
    sent = teacher.post(
        "/requests/new",
        data={"host": "www.tiktok.com", "why": WHY, "for_group": "Year5", "csrf_token": csrf},
    )
    assert sent.status_code == 303, sent.text
    request_id = request_id_from(sent.headers["location"])
    app.dependency_overrides.clear()
    bursar, _ = client_for(app, "business_manager")
    page = bursar.get(f"/requests/{request_id}").text
    assert "For the class or group Year5 (pupils)" in page
    assert "pupils-social-media" in page
    assert "for teacher1" not in page


def test_a_request_for_a_whole_ending_is_refused_and_never_becomes_a_local_allow(
    app: FastAPI, resources: Resources
) -> None:
    pupil, csrf = client_for(app, "pupil")
    typed = pupil.post(
        "/api/requests", json={"host": "co.uk", "why": WHY}, headers={"X-CSRF-Token": csrf}
    )
    assert typed.status_code == 422
    assert "a whole ending shared by many websites" in typed.json()["message"]
    request_id = stored_request(resources, "co.uk")  # queued before this check existed
    status, body = _approve(
        app, request_id, scope="everyone", duration="permanent", confirm_wide=True
    )
    assert status == 422, body
    assert _state(resources, request_id).state is RequestState.PENDING
