"""The unblock-request workflow end to end, in-process: the block page's signed link, the written
request, the Business Manager's decision, the exceptions row and the change counter the gateway
watches, the gateway's own decision afterwards, and what the requester sees."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.services.lists import find_entry
from schoolgate.policy.decide import decide
from schoolgate.policy.model import Reason, Request, Scope, Subject, TargetKind, Verdict
from schoolgate.store.admin_models import AuditEntryRow, RequestState, UnblockRequestRow
from schoolgate.store.models import ChangeCounter, ExceptionRow
from schoolgate.store.overrides_db import DatabaseOverridesSource
from schoolgate.store.tokens import AccessClaims, make_access_token
from tests.admin_api.conftest import (
    FOR_EVERYONE,
    World,
    blocked_site,
    client_for,
    csrf_of,
    first_in_queue,
    sign_in,
)

WHY = "We are studying how people share news online in our literacy lesson."


def counter(resources: Resources) -> int:
    with resources.sessions() as session:
        return int(session.scalars(select(ChangeCounter.counter)).one())


def block_link(
    resources: Resources,
    host: str = "www.tiktok.com",
    user: str = "pupil1",
    category: str = "social",
) -> str:
    claims = AccessClaims(
        host=host,
        role="pupil",
        at=datetime.now(UTC),
        user=user,
        category=category,
        reason="rule_block",
    )
    return make_access_token(resources.access_token_secret, claims)


def request_id_from(location: str) -> str:
    found = re.fullmatch(r"/requests/([0-9a-f-]{36})(?:\?done=sent)?", location)
    assert found is not None, location
    return found.group(1)


def test_block_page_link_to_approval_to_the_gateway_allowing_it(
    app: FastAPI, resources: Resources
) -> None:
    host = blocked_site()  # a TikTok site of its own: no other test's grant covers it
    pupil = sign_in(app, "pupil1", "pupil1-demo")
    token = block_link(resources, host)
    form = pupil.get("/requests/new", params={"token": token})
    assert form.status_code == 200
    assert host in form.text
    assert "social" in form.text
    sent = pupil.post(
        "/requests/new",
        data={
            "token": token,
            "why": WHY,
            "host": "evil.example",  # ignored: the link says
            "csrf_token": csrf_of(pupil),
        },
    )
    assert sent.status_code == 303
    request_id = request_id_from(sent.headers["location"])
    bursar = sign_in(app, "bursar1", "bursar1-demo")
    with first_in_queue(resources, request_id):
        queue = bursar.get("/requests").text
    assert host in queue
    assert "Pupil One" in queue
    detail = bursar.get(f"/requests/{request_id}").text
    assert "pupils-social-media" in detail  # the decision context, in the policy's words
    before = counter(resources)
    approved = bursar.post(
        f"/requests/{request_id}/approve",
        data={
            "scope": "user",
            "target_kind": "host",
            "duration": "hours",
            "hours": "1",
            "note": "For this lesson only",
            "csrf_token": csrf_of(bursar),
        },
    )
    assert approved.status_code == 303
    assert counter(resources) > before

    with resources.sessions() as session:
        row = session.get(UnblockRequestRow, request_id)
        assert row is not None
        assert row.state is RequestState.APPROVED
        assert row.reviewed_by == "bursar1"
        assert row.host == host
        exception = session.get(ExceptionRow, row.exception_id)
        assert exception is not None
        assert (exception.scope, exception.who) == (Scope.USER, "pupil1")
        assert (exception.target_kind, exception.target) == (TargetKind.HOST, host)
        assert exception.ends is not None
        assert timedelta(minutes=59) < exception.ends - exception.starts <= timedelta(hours=1)
        actions = session.scalars(
            select(AuditEntryRow.action).where(AuditEntryRow.target == f"request:{request_id}")
        ).all()
        assert sorted(actions) == ["request.approve", "request.create"]

    # What the gateway reads from the database now lets pupil1 in, and nobody else.
    overrides = DatabaseOverridesSource(resources.engine).load_now()
    now = datetime.now(UTC)
    pupil1 = Subject(role="pupil", user="pupil1", groups=frozenset({"Pupils"}))
    allowed = decide(resources.policy, Request(host), pupil1, overrides, now)
    assert (allowed.verdict, allowed.reason) == (Verdict.ALLOW, Reason.EXCEPTION)
    other = decide(
        resources.policy,
        Request(host),
        Subject(role="pupil", user="pupil2"),
        overrides,
        now,
    )
    assert other.verdict is Verdict.BLOCK
    later = decide(
        resources.policy,
        Request(host),
        pupil1,
        overrides,
        now + timedelta(hours=1, seconds=1),
    )
    assert later.verdict is Verdict.BLOCK  # it expires by itself

    mine = pupil.get("/requests/mine").text
    assert host in mine
    assert "approved" in mine
    assert "For this lesson only" in pupil.get(f"/requests/{request_id}").text


def test_a_denial_and_its_reason_reach_the_requester(app: FastAPI) -> None:
    teacher = sign_in(app, "teacher1", "teacher1-demo")
    sent = teacher.post(
        "/requests/new",
        data={  # for the class: staff may use Reddit at break, pupils never
            "host": "www.reddit.com",
            "why": WHY,
            "for_group": "Year5",
            "csrf_token": csrf_of(teacher),
        },
    )
    request_id = request_id_from(sent.headers["location"])
    bursar = sign_in(app, "bursar1", "bursar1-demo")
    denied = bursar.post(
        f"/requests/{request_id}/deny",
        data={
            "reason": "Please use the school's news sites instead.",
            "confirm": "yes",
            "csrf_token": csrf_of(bursar),
        },
    )
    assert denied.status_code == 303
    page = teacher.get(f"/requests/{request_id}").text
    assert "denied" in page
    assert "Please use the school&#39;s news sites instead." in page
    again = bursar.post(f"/requests/{request_id}/approve", data={"csrf_token": csrf_of(bursar)})
    assert again.status_code == 409  # already decided


def test_a_teacher_asks_for_a_class_for_a_lesson_and_gets_that_period(
    app: FastAPI, resources: Resources
) -> None:
    teacher = sign_in(app, "teacher1", "teacher1-demo")
    cal = resources.policy.calendar
    day = datetime.now(cal.timezone).date() + timedelta(days=1)
    while not cal.day_timeline(day):
        day += timedelta(days=1)
    start, end, _, _ = cal.day_timeline(day)[-1]  # the afternoon's lesson
    host = blocked_site()
    period = f"{start:%H:%M}-{end:%H:%M}"
    sent = teacher.post(
        "/requests/new",
        data={
            "host": host,
            "why": WHY,
            "for_group": "Year5",
            "wanted_on": day.isoformat(),
            "wanted_period": period,
            "csrf_token": csrf_of(teacher),
        },
    )
    assert sent.status_code == 303, sent.text
    request_id = request_id_from(sent.headers["location"])
    bursar = sign_in(app, "bursar1", "bursar1-demo")
    approved = bursar.post(
        f"/requests/{request_id}/approve",
        data={
            "scope": "group",
            "target_kind": "host",
            "duration": "period",
            "period": f"{day.isoformat()} {period}",
            "csrf_token": csrf_of(bursar),
        },
    )
    assert approved.status_code == 303, approved.text
    with resources.sessions() as session:
        row = session.get(UnblockRequestRow, request_id)
        assert row is not None
        assert row.exception_id is not None
        exception = session.get(ExceptionRow, row.exception_id)
        assert exception is not None
        assert (exception.scope, exception.who) == (Scope.GROUP, "Year5")
        assert (exception.target_kind, exception.target) == (TargetKind.HOST, host)
        assert exception.starts == datetime.combine(day, start, cal.timezone)
        assert exception.ends == datetime.combine(day, end, cal.timezone)


def test_a_pupil_cannot_ask_for_a_whole_class(app: FastAPI) -> None:
    pupil, csrf = client_for(app, "pupil")
    answer = pupil.post(
        "/requests/new",
        data={"host": "www.tiktok.com", "why": WHY, "for_group": "Year5", "csrf_token": csrf},
    )
    assert answer.status_code == 403


def test_permanent_for_everyone_is_a_local_allow_entry(app: FastAPI, resources: Resources) -> None:
    host = f"www.museum-{time.time_ns()}.example"
    bursar, csrf = client_for(app, "business_manager")
    blocked = bursar.post(  # blocked by mistake: open by default, so nothing to ask for
        "/api/lists", json={"host": host, "verdict": "block"}, headers={"X-CSRF-Token": csrf}
    )
    assert blocked.status_code == 201, blocked.text
    app.dependency_overrides.clear()
    pupil, csrf = client_for(app, "pupil")
    sent = pupil.post("/requests/new", data={"host": host, "why": WHY, "csrf_token": csrf})
    request_id = request_id_from(sent.headers["location"])
    bursar, csrf = client_for(app, "business_manager")
    approved = bursar.post(
        f"/requests/{request_id}/approve",
        data={
            "scope": "everyone",
            "target_kind": "host",
            "duration": "permanent",
            "confirm_wide": "yes",
            "csrf_token": csrf,
        },
    )
    assert approved.status_code == 303
    with resources.sessions() as session:
        entry = find_entry(session, host, None)
        assert entry is not None
        assert entry.verdict is Verdict.ALLOW


def stored_request(
    resources: Resources, host: str, *, requester: str = "pupil1", role: str = "pupil"
) -> str:
    """A pending request written straight to the database (as an older version let anyone
    send): for the checks made when it is decided."""
    request_id = str(uuid.uuid4())
    category = next(iter(resources.policy.domains.categories(host)), None)
    with resources.sessions() as session:
        session.add(
            UnblockRequestRow(
                id=request_id,
                created_at=datetime.now(UTC),
                requester=requester,
                requester_name=requester,
                requester_role=role,
                blocked_user=requester,
                blocked_role=role,
                blocked_at=datetime.now(UTC),
                from_block_page=True,
                host=host,
                category=category,
                why=WHY,
                state=RequestState.PENDING,
            )
        )
        session.commit()
    return request_id


def _pending(app: FastAPI, role: str, host: str) -> str:
    client, csrf = client_for(app, role)
    sent = client.post("/requests/new", data={"host": host, "why": WHY, "csrf_token": csrf})
    assert sent.status_code == 303, sent.text
    app.dependency_overrides.clear()
    return request_id_from(sent.headers["location"])


def test_nobody_approves_their_own_request(app: FastAPI, resources: Resources) -> None:
    # Blocked for staff at all times (the BM asks for a Facebook site at lunch: not blocked).
    request_id = _pending(app, "business_manager", blocked_site(FOR_EVERYONE))
    bursar, csrf = client_for(app, "business_manager")
    assert "Approve" not in bursar.get(f"/requests/{request_id}").text
    answer = bursar.post(
        f"/requests/{request_id}/approve",
        data={"scope": "user", "duration": "hours", "hours": "1", "csrf_token": csrf},
    )
    assert answer.status_code == 403
    assert "your own request" in answer.text
    api = bursar.post(
        f"/api/requests/{request_id}/deny",
        json={"reason": "mine anyway"},
        headers={"X-CSRF-Token": csrf},
    )
    assert api.status_code == 403
    with resources.sessions() as session:
        row = session.get(UnblockRequestRow, request_id)
        assert row is not None
        assert row.state is RequestState.PENDING


@pytest.mark.parametrize(
    ("host", "form", "words"),
    [
        # X is not unblockable for anyone: not for the pupil, not for everyone.
        ("x.com", {"scope": "user", "target_kind": "host"}, "cannot be unblocked for pupil"),
        ("x.com", {"scope": "everyone", "target_kind": "category"}, "cannot be unblocked for"),
        # web proxies are not unblockable for pupils: a group might hold pupils.
        (
            "www.croxyproxy.com",
            {"scope": "group", "who": "Year5", "target_kind": "host"},
            "cannot be unblocked for pupil",
        ),
        (
            "www.croxyproxy.com",
            {"scope": "role", "who": "pupil", "target_kind": "host"},
            "cannot be unblocked for pupil",
        ),
    ],
)
def test_what_the_policy_forbids_is_refused_with_a_clear_message(
    app: FastAPI, resources: Resources, host: str, form: dict[str, str], words: str
) -> None:
    request_id = stored_request(resources, host)  # a pupil could no longer send it (below)
    bursar, csrf = client_for(app, "business_manager")
    before = counter(resources)
    answer = bursar.post(
        f"/requests/{request_id}/approve",
        data={**form, "duration": "hours", "hours": "1", "csrf_token": csrf},
    )
    assert answer.status_code == 422
    assert words in answer.text
    assert counter(resources) == before
    with resources.sessions() as session:
        row = session.get(UnblockRequestRow, request_id)
        assert row is not None
        assert row.state is RequestState.PENDING


def test_a_locked_category_is_refused(app: FastAPI, resources: Resources) -> None:
    request_id = _pending(app, "pupil", blocked_site())
    with resources.sessions() as session:
        row = session.get(UnblockRequestRow, request_id)
        assert row is not None
        row.category = "illegal_content"  # the locked slot of the seed policy
        session.commit()
    bursar, csrf = client_for(app, "business_manager")
    answer = bursar.post(
        f"/api/requests/{request_id}/approve",
        json={"scope": "user", "target_kind": "category", "duration": "hours", "hours": 1},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 422
    assert answer.json()["error"] == "policy_forbids"
    assert "locked" in answer.json()["message"]


def _old_token(resources: Resources) -> str:
    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 30 * 86400

    serializer = URLSafeTimedSerializer(
        resources.access_token_secret, salt="schoolgate.access-request.v1", signer=Old
    )
    return str(
        serializer.dumps(
            {
                "host": "www.tiktok.com",
                "role": "pupil",
                "at": datetime.now(UTC).isoformat(),
                "user": "pupil1",
            }
        )
    )


@pytest.mark.parametrize(
    ("kind", "words"),
    [("forged", "not genuine"), ("tampered", "not genuine"), ("expired", "older than")],
)
def test_a_forged_or_expired_link_is_refused_and_fills_nothing(
    app: FastAPI, resources: Resources, kind: str, words: str
) -> None:
    genuine = block_link(resources, host="www.snapchat.com")
    token = {
        "forged": make_access_token(
            b"not-the-school-secret" * 2,
            AccessClaims(host="www.snapchat.com", role="pupil", at=datetime.now(UTC)),
        ),
        "tampered": genuine[:-3] + ("AAA" if not genuine.endswith("AAA") else "BBB"),
        "expired": _old_token(resources),
    }[kind]
    pupil, csrf = client_for(app, "pupil")
    page = pupil.get("/requests/new", params={"token": token})
    assert page.status_code == 400
    assert words in page.text
    assert "www.snapchat.com" not in page.text
    posted = pupil.post("/requests/new", data={"token": token, "why": WHY, "csrf_token": csrf})
    assert posted.status_code == 400
    api = pupil.post(
        "/api/requests", json={"token": token, "why": WHY}, headers={"X-CSRF-Token": csrf}
    )
    assert api.status_code == 422
    assert words in api.json()["message"]


def test_revoking_an_exception_ends_it_and_bumps_the_counter(
    app: FastAPI, resources: Resources
) -> None:
    request_id = _pending(app, "pupil", blocked_site())
    bursar, csrf = client_for(app, "business_manager")
    done = bursar.post(
        f"/api/requests/{request_id}/approve",
        headers={"X-CSRF-Token": csrf},
        json={"scope": "user", "duration": "hours", "hours": 3},
    ).json()
    assert done["state"] == "approved"
    with resources.sessions() as session:
        row = session.get(UnblockRequestRow, request_id)
        assert row is not None
        exception_id = row.exception_id
    listed = bursar.get("/api/exceptions").json()
    assert exception_id in {item["id"] for item in listed}
    before = counter(resources)
    revoked = bursar.post(
        f"/exceptions/{exception_id}/revoke",
        data={"reason": "The lesson was cancelled.", "confirm": "yes", "csrf_token": csrf},
    )
    assert revoked.status_code == 303
    assert counter(resources) > before
    assert exception_id not in {item["id"] for item in bursar.get("/api/exceptions").json()}


@pytest.mark.parametrize(
    ("who", "role", "verdict", "rule"),
    [
        (
            "socialmedia1",
            "social_media_manager",
            "allow",
            "official-accounts",
        ),  # from the directory
        ("teacher1", "staff", "block", "staff-social-media-otherwise"),
        ("nobody-known", "pupil", "block", "pupils-social-media"),  # unknown: the default role
    ],
)
def test_explain_takes_a_users_role_from_the_directory(
    app: FastAPI, who: str, role: str, verdict: str, rule: str
) -> None:
    client, _ = client_for(app, "business_manager")
    answer = client.get(
        "/api/explain", params={"who": who, "host": "www.facebook.com", "at": "2026-11-23T09:00"}
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["role"], answer.json()["verdict"], answer.json()["rule"]) == (
        role,
        verdict,
        rule,
    )


def test_explain_sees_the_local_lists_and_exceptions_as_the_gateway_does(
    app: FastAPI, world: World
) -> None:
    client, _ = client_for(app, "business_manager")
    listed = client.get("/api/explain", params={"role": "staff", "host": world.host}).json()
    assert (listed["verdict"], listed["reason"]) == ("block", "local_block")
    opened_host = world.host.replace("listed-", "www.open-")
    for who, reason in (("pupil2", "exception"), ("pupil1", "default_allow")):
        answer = client.get(
            "/api/explain", params={"role": "pupil", "who": who, "host": opened_host}
        ).json()
        assert answer["reason"] == reason, (who, answer)


def test_the_form_from_a_block_page_speaks_in_words(app: FastAPI, resources: Resources) -> None:
    """A pupil's form from the block page's link showed the category's and the role's codes
    ("social", "pupil" in brackets); it names them in words, as every other page does."""
    pupil = sign_in(app, "pupil1", "pupil1-demo")
    claims = AccessClaims(
        host="www.tiktok.com",
        role="social_media_manager",
        at=datetime.now(UTC),
        user="pupil1",
        category="social",
        reason="rule_block",
    )
    token = make_access_token(resources.access_token_secret, claims)
    form = pupil.get("/requests/new", params={"token": token}).text
    assert "<dt>Kind of website</dt><dd>social media</dd>" in form
    assert "<dd>social</dd>" not in form
    assert "(social media manager)" in form
    assert "social_media_manager" not in form
