"""Issue 13, "not asked to sign in twice": the block page's own link lets its own person send
that one request without signing in again (docs/admin.md, "Single sign-on from the block page"),
and nothing more: no session, no other page, one request, a short time, for people the gateway
identified by their own proxy sign-in and the directory still knows; the school can turn it off.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from schoolgate.admin_api.resources import Resources
from schoolgate.store.admin_models import UnblockRequestRow
from schoolgate.store.tokens import AccessClaims, make_access_token
from tests.admin_api.conftest import CSRF, blocked_site, sign_in

WHY = "I need it for my homework about the Romans and their roads."


def link(resources: Resources, *, user: str | None, host: str, role: str = "pupil") -> str:
    claims = AccessClaims(
        host=host, role=role, at=datetime.now(UTC), user=user, category="social", reason="x"
    )
    return make_access_token(resources.access_token_secret, claims)


def old_link(resources: Resources, *, host: str, seconds_ago: int) -> str:
    """A genuine link shown `seconds_ago` (still inside the week a link works for)."""

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds_ago

    serializer = URLSafeTimedSerializer(
        resources.access_token_secret, salt="schoolgate.access-request.v1", signer=Then
    )
    at = datetime.now(UTC).isoformat()
    return str(serializer.dumps({"host": host, "role": "pupil", "at": at, "user": "pupil1"}))


def unique_host() -> str:
    return blocked_site()


def rows_for(resources: Resources, host: str) -> list[UnblockRequestRow]:
    with resources.sessions() as session:
        return list(
            session.scalars(select(UnblockRequestRow).where(UnblockRequestRow.host == host))
        )


def goes_to_sign_in(answer: object) -> bool:
    status = getattr(answer, "status_code", 0)
    location = str(getattr(answer, "headers", {}).get("location", ""))
    return status == 303 and location.startswith("/signin")


def test_the_link_sends_its_one_request_without_a_password_and_opens_nothing_else(
    app: FastAPI, resources: Resources
) -> None:
    host = unique_host()
    token = link(resources, user="pupil1", host=host)
    browser = TestClient(app, follow_redirects=False)  # nobody signed in

    form = browser.get("/requests/new", params={"token": token})
    assert form.status_code == 200, form.text
    assert host in form.text
    assert "do not need to sign in again" in form.text
    assert "Pupil One" in form.text
    assert "Sign out" not in form.text  # not a session: no header, no menu
    assert 'href="/requests/mine"' not in form.text
    csrf = CSRF.search(form.text)
    assert csrf is not None

    sent = browser.post(
        "/requests/new",
        data={
            "token": token,
            "why": WHY,
            "for_group": "Year5",  # not for a link: the one request, for that person
            "csrf_token": csrf.group(1),
        },
    )
    assert sent.status_code == 200, sent.text
    assert "Your request has been sent" in sent.text
    assert "Sign in to see the answer" in sent.text
    (row,) = rows_for(resources, host)
    assert row.requester == "pupil1"
    assert row.requester_role == "pupil"
    assert row.from_block_page
    assert row.for_group is None

    # Single use: the same link cannot send a second request.
    again = browser.post(
        "/requests/new", data={"token": token, "why": WHY, "csrf_token": csrf.group(1)}
    )
    assert again.status_code == 422
    assert "already sent a request from this link" in again.text
    assert len(rows_for(resources, host)) == 1

    # Nothing else is reachable with it: every other page still asks for a sign-in.
    for page in ("/requests/mine", f"/requests/{row.id}", "/requests", "/"):
        answer = browser.get(page)
        assert goes_to_sign_in(answer) or page == "/", (page, answer.status_code)
    assert "Sign out" not in browser.get("/", follow_redirects=True).text
    assert goes_to_sign_in(browser.get("/requests/new"))  # the form without the link
    assert goes_to_sign_in(browser.get("/requests/new", params={"host": host}))


def test_an_admin_is_still_only_a_requester_through_the_link(
    app: FastAPI, resources: Resources
) -> None:
    host = unique_host()
    token = link(resources, user="bursar1", host=host, role="staff")
    browser = TestClient(app, follow_redirects=False)
    form = browser.get("/requests/new", params={"token": token})
    assert form.status_code == 200
    assert "Unblock requests" not in form.text  # no admin menu
    assert goes_to_sign_in(browser.get("/requests"))
    assert goes_to_sign_in(browser.get("/lists"))


@pytest.mark.parametrize(
    "case",
    ["device known by its subnet", "shown too long ago", "unknown to the directory", "turned off"],
)
def test_otherwise_the_link_asks_for_a_sign_in_and_sends_nothing(
    app: FastAPI, resources: Resources, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    host = unique_host()
    token = {
        "device known by its subnet": link(resources, user=None, host=host),
        "shown too long ago": old_link(resources, host=host, seconds_ago=20 * 60),
        "unknown to the directory": link(resources, user="pupil999", host=host),
        "turned off": link(resources, user="pupil1", host=host),
    }[case]
    if case == "turned off":
        monkeypatch.setattr(
            resources,
            "settings",
            resources.settings.model_copy(update={"block_link_sign_in": False}),
        )
    browser = TestClient(app, follow_redirects=False)
    opened = browser.get("/requests/new", params={"token": token})
    assert goes_to_sign_in(opened), opened.status_code
    found = CSRF.search(browser.get("/signin").text)
    assert found is not None
    posted = browser.post(
        "/requests/new", data={"token": token, "why": WHY, "csrf_token": found.group(1)}
    )
    assert goes_to_sign_in(posted), posted.status_code
    assert rows_for(resources, host) == []


def test_a_signed_in_person_still_uses_their_own_session(
    app: FastAPI, resources: Resources
) -> None:
    """Someone else signed in on the same browser: the link is refused for them, as before."""
    host = unique_host()
    teacher = sign_in(app, "teacher1", "teacher1-demo")
    token = link(resources, user="pupil1", host=host)
    csrf = CSRF.search(teacher.get("/requests/new", params={"token": token}).text)
    assert csrf is not None
    posted = teacher.post(
        "/requests/new", data={"token": token, "why": WHY, "csrf_token": csrf.group(1)}
    )
    assert posted.status_code == 422
    assert "someone else" in posted.text
    assert rows_for(resources, host) == []
