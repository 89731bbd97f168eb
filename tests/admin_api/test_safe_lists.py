"""Safe by default, for the local lists and exceptions (issue 13; security review findings 2
(admin side) and 17; UX findings 1, 4, 6, 7): entries that cannot work are refused where they
are typed; a pasted address is its site; a local block wins over a broader allow or exception,
with a warning that shows the conflict; removing and revoking ask for a reason, confirm, and
end with a message. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.services.lists import find_entry
from schoolgate.policy.model import Scope, TargetKind
from schoolgate.store.admin_models import AuditEntryRow
from schoolgate.store.models import ExceptionRow
from tests.admin_api.conftest import client_for, csrf_of, sign_in
from tests.admin_api.test_requests import stored_request


def _add(app: FastAPI, host: str, verdict: str) -> tuple[int, dict[str, object]]:
    client, csrf = client_for(app, "business_manager")
    answer = client.post(
        "/api/lists",
        json={"host": host, "verdict": verdict, "note": "test"},
        headers={"X-CSRF-Token": csrf},
    )
    return answer.status_code, answer.json()


def _explain(app: FastAPI, host: str, **params: str) -> dict[str, str]:
    client, _ = client_for(app, "business_manager")
    answer = client.get("/api/explain", params={"host": host, **params})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.mark.parametrize(
    "host", ["com", "co.uk", "goog", "translate.goog", "github.io", "https://co.uk/"]
)
@pytest.mark.parametrize("verdict", ["allow", "block"])
def test_a_whole_top_level_domain_or_public_suffix_is_refused(
    app: FastAPI, resources: Resources, host: str, verdict: str
) -> None:
    status, body = _add(app, host, verdict)
    assert status == 422, body
    assert "a whole ending shared by many websites" in str(body["message"])
    with resources.sessions() as session:
        assert find_entry(session, host.removeprefix("https://").rstrip("/"), None) is None
    assert _explain(app, "www.tiktok.com", role="pupil")["verdict"] == "block"


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("www.instagram.com", "can never be unblocked for"),  # not unblockable for anyone
        ("x.com", "can never be unblocked for"),
        ("www.croxyproxy.com", "can never be unblocked for pupils"),
        ("https://www.reddit.com/r/all", "does not allow opening 'social'"),  # finding UX 1
    ],
)
def test_a_local_allow_that_could_never_work_or_opens_social_media_is_refused(
    app: FastAPI, resources: Resources, host: str, words: str
) -> None:
    status, body = _add(app, host, "allow")
    assert status == 422, body
    assert words in str(body["message"])
    assert (
        _explain(app, host.split("/")[2] if "//" in host else host, role="pupil")["verdict"]
        == "block"
    )


def test_a_pasted_address_is_understood_as_its_site(app: FastAPI, resources: Resources) -> None:
    tag = uuid.uuid4().hex[:8]
    status, body = _add(app, f"https://www.Bad-{tag}.example/page?x=1", "block")
    assert status == 201, body
    assert body["host"] == f"www.bad-{tag}.example"


def test_a_local_block_wins_over_a_broader_allow_and_exception_and_says_so(
    app: FastAPI, resources: Resources
) -> None:
    tag = uuid.uuid4().hex[:8]
    parent, site = f"museum-{tag}.example", f"www.museum-{tag}.example"
    assert _add(app, parent, "allow")[0] == 201
    now = datetime.now(UTC)
    with resources.sessions() as session:
        session.add(
            ExceptionRow(
                id=str(uuid.uuid4()),
                scope=Scope.USER,
                who="pupil2",
                target_kind=TargetKind.HOST,
                target=parent,
                starts=now,
                ends=now + timedelta(hours=1),
                created_by="someone",
                created_at=now,
                note="",
            )
        )
        session.commit()
    assert _explain(app, site, role="pupil", who="pupil2")["verdict"] == "allow"
    bursar = sign_in(app, "bursar1", "bursar1-demo")
    added = bursar.post(
        "/lists",
        data={
            "host": site,
            "verdict": "block",
            "note": "reported",
            "csrf_token": csrf_of(bursar, "/lists"),
        },
    )
    assert added.status_code == 200
    assert f"Warning: {site} was also open through the local allow of {parent}" in added.text
    assert f"the exception for {parent} (user pupil2)" in added.text
    app.dependency_overrides.clear()
    for who in ("pupil1", "pupil2"):
        answer = _explain(app, site, role="pupil", who=who)
        assert (answer["verdict"], answer["reason"]) == ("block", "local_block"), who
    assert _explain(app, f"shop.{parent}", role="pupil")["verdict"] == "allow"  # elsewhere
    # An allow that the block covers is refused, with the conflict named.
    status, body = _add(app, f"kids.{site}", "allow")
    assert status == 422
    assert f"covered by the local block of {site}" in str(body["message"])


def test_approving_past_a_local_block_asks_for_a_confirmation(
    app: FastAPI, resources: Resources
) -> None:
    site = f"www.blocked-{time.time_ns()}.example"
    assert _add(app, site, "block")[0] == 201
    request_id = stored_request(resources, site)
    bursar, csrf = client_for(app, "business_manager")
    answer = bursar.post(
        f"/api/requests/{request_id}/approve",
        json={"scope": "user", "duration": "hours", "hours": 1},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 422
    assert f"past the local block of {site}" in str(answer.json()["problems"])
    confirmed = bursar.post(
        f"/api/requests/{request_id}/approve",
        json={"scope": "user", "duration": "hours", "hours": 1, "confirm_wide": True},
        headers={"X-CSRF-Token": csrf},
    )
    assert confirmed.status_code == 200, confirmed.text
    assert _explain(app, site, role="pupil", who="pupil1")["verdict"] == "allow"


def test_remove_asks_for_a_reason_confirms_and_says_what_happened(
    app: FastAPI, resources: Resources
) -> None:
    host = f"www.gone-{uuid.uuid4().hex[:8]}.example"
    assert _add(app, host, "block")[0] == 201
    bursar = sign_in(app, "bursar1", "bursar1-demo")
    listed = bursar.get("/lists").text
    assert f'href="/lists/remove?host={host}"' in listed
    confirm = bursar.get("/lists/remove", params={"host": host})
    assert confirm.status_code == 200
    assert f"Yes, remove {host}" in confirm.text
    csrf = csrf_of(bursar, "/lists")
    no_reason = bursar.post(
        "/lists/remove", data={"host": host, "confirm": "yes", "csrf_token": csrf}
    )
    assert no_reason.status_code == 422
    with resources.sessions() as session:
        assert find_entry(session, host, None) is not None
    done = bursar.post(
        "/lists/remove",
        data={"host": host, "confirm": "yes", "reason": "It was a mistake", "csrf_token": csrf},
    )
    assert done.status_code == 303
    assert "Removed from the local lists" in bursar.get(done.headers["location"]).text
    with resources.sessions() as session:
        assert find_entry(session, host, None) is None
        entry = session.scalars(
            select(AuditEntryRow).where(
                AuditEntryRow.target == f"list:{host}", AuditEntryRow.action == "list.remove"
            )
        ).one()
        assert entry.after == {"reason": "It was a mistake"}


def test_revoke_asks_for_a_reason_confirms_and_says_what_happened(
    app: FastAPI, resources: Resources
) -> None:
    now = datetime.now(UTC)
    exception_id = str(uuid.uuid4())
    with resources.sessions() as session:
        session.add(
            ExceptionRow(
                id=exception_id,
                scope=Scope.USER,
                who="pupil2",
                target_kind=TargetKind.HOST,
                target=f"www.open-{exception_id[:8]}.example",
                starts=now,
                ends=now + timedelta(hours=1),
                created_by="someone",
                created_at=now,
                note="",
            )
        )
        session.commit()
    bursar = sign_in(app, "bursar1", "bursar1-demo")
    assert f'href="/exceptions/{exception_id}/revoke"' in bursar.get("/exceptions").text
    assert "Yes, revoke it" in bursar.get(f"/exceptions/{exception_id}/revoke").text
    csrf = csrf_of(bursar, "/exceptions")
    refused = bursar.post(
        f"/exceptions/{exception_id}/revoke", data={"reason": "Lesson over", "csrf_token": csrf}
    )
    assert refused.status_code == 422  # not confirmed
    done = bursar.post(
        f"/exceptions/{exception_id}/revoke",
        data={"reason": "Lesson over", "confirm": "yes", "csrf_token": csrf},
    )
    assert done.status_code == 303
    assert "Revoked." in bursar.get(done.headers["location"]).text
    with resources.sessions() as session:
        row = session.get(ExceptionRow, exception_id)
        assert row is not None
        assert row.ends is not None
        entry = session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.target == f"exception:{exception_id}")
        ).one()
        assert entry.after is not None
        assert entry.after["reason"] == "Lesson over"


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("www-instagram-com.translate.goog", "can never be unblocked for"),
        ("x-com.cdn.ampproject.org", "can never be unblocked for"),
        ("www-croxyproxy-com.translate.goog", "can never be unblocked for pupils"),
        ("cdn.ampproject.org", "is a page-rewriting proxy"),
    ],
)
def test_a_local_allow_through_a_page_rewriting_proxy_is_judged_by_the_site_inside(
    app: FastAPI, host: str, words: str
) -> None:
    """Security finding 2, admin side: a local allow opened X, Instagram and web proxies for
    everyone through Google Translate and AMP host names."""
    status, body = _add(app, host, "allow")
    assert status == 422, body
    assert words in str(body["message"])
    assert _explain(app, "www-x-com.translate.goog", role="pupil")["verdict"] == "block"


def test_the_lists_page_says_which_categories_cannot_be_allowed_here(app: FastAPI) -> None:
    client, _ = client_for(app, "business_manager")
    page = client.get("/lists").text
    assert "Sites in these categories cannot be allowed for everyone here" in page
    for name in ("x", "instagram", "social", "web_proxy", "illegal_content"):
        assert re.search(rf"[ :,]{name}[,.]", page), name
