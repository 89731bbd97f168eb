"""The whole role x endpoint matrix: every endpoint, every role (and nobody signed in), on SQLite
and PostgreSQL. Allowed roles get the endpoint's success status; others get 403; nobody signed
in gets the sign-in page (pages) or 401 (API)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from schoolgate.admin_api.resources import Resources
from tests.admin_api.conftest import FOR_EVERYONE, ROLES, World, client_for

ALL = frozenset(ROLES) - {"anonymous"}
STAFF_SIDE = ALL - {"pupil"}
BM = frozenset({"business_manager"})
IT = frozenset({"it_technician"})
AUDIT = frozenset({"it_technician", "dsl"})
DSL = frozenset({"dsl"})
OWNER_OR_BM = frozenset({"pupil", "business_manager"})  # the world's request is pupil1's
PUBLIC = frozenset(ROLES)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {request}, {exception}, {host} come from the World
    allowed: frozenset[str]
    ok: int  # the status an allowed role gets
    form: dict[str, str] | None = None
    json: dict[str, Any] | None = None

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


WHY = "I need it for our class project on the Vikings."
ENDPOINTS = [
    # pages
    Endpoint("GET", "/", ALL, 200),
    Endpoint("GET", "/requests/new", ALL, 200),
    Endpoint(
        "POST", "/requests/new", ALL, 303, form={"host": f"{{tag}}.{FOR_EVERYONE}", "why": WHY}
    ),
    Endpoint("GET", "/requests/mine", ALL, 200),
    Endpoint("GET", "/requests", BM, 200),
    Endpoint("GET", "/requests/{request}", OWNER_OR_BM, 200),
    Endpoint(
        "POST",
        "/requests/{request}/approve",
        BM,
        303,
        form={"scope": "user", "target_kind": "host", "duration": "hours", "hours": "1"},
    ),
    Endpoint(
        "POST",
        "/requests/{request}/deny",
        BM,
        303,
        form={"reason": "Not for school.", "confirm": "yes"},
    ),
    Endpoint("GET", "/lists", BM, 200),
    Endpoint(
        "POST",
        "/lists",
        BM,
        303,
        form={"host": "new-{tag}.example", "verdict": "block", "note": "reported by a teacher"},
    ),
    Endpoint(
        "POST",
        "/lists/remove",
        BM,
        303,
        form={"host": "{host}", "reason": "Not needed", "confirm": "yes"},
    ),
    Endpoint("GET", "/exceptions", BM, 200),
    Endpoint(
        "POST",
        "/exceptions/{exception}/revoke",
        BM,
        303,
        form={"reason": "Lesson cancelled", "confirm": "yes"},
    ),
    Endpoint("GET", "/explain?host=www.tiktok.com&role=pupil", STAFF_SIDE, 200),
    Endpoint("GET", "/policy", IT, 200),
    Endpoint("POST", "/policy/check", IT, 200, form={"text": "name: x\n"}),
    Endpoint("GET", "/calendar", AUDIT | BM, 200),
    Endpoint("GET", "/system", IT, 200),
    Endpoint("GET", "/audit", AUDIT, 200),
    Endpoint("GET", "/audit.csv", AUDIT, 200),
    Endpoint("GET", "/monitoring", DSL, 200),
    Endpoint("GET", "/monitoring/events?user=pupil1", DSL, 200),
    Endpoint("GET", "/monitoring/events.csv?user=pupil1", DSL, 200),
    Endpoint("GET", "/monitoring/timeline?user=pupil1&at=2030-01-06T10:00", DSL, 200),
    Endpoint("GET", "/monitoring/alerts", DSL, 200),
    Endpoint("GET", "/monitoring/incidents", DSL, 200),
    Endpoint(
        "POST",
        "/monitoring/incidents",
        DSL,
        303,
        form={
            "user": "pupil-{tag}",
            "what_happened": "Tried a web proxy.",
            "action_taken": "Spoke to them.",
            "outcome": "Understood.",
        },
    ),
    Endpoint("GET", "/monitoring/sanctions", DSL, 200),
    Endpoint(
        "POST",
        "/monitoring/sanctions",
        DSL,
        303,
        form={"user": "it1", "days": "2", "reason": "Repeated proxy use."},
    ),  # known name
    # it1 is in no teacher's class: only the DSL supervises anyone (services/classes.py)
    Endpoint(
        "POST", "/monitoring/supervised-sessions", DSL, 303, form={"user": "it1", "minutes": "30"}
    ),
    Endpoint("GET", "/teacher", STAFF_SIDE, 200),
    Endpoint("POST", "/teacher", DSL, 303, form={"user": "it1", "minutes": "20"}),
    Endpoint("GET", "/monitoring/charts", DSL, 200),
    Endpoint("GET", "/monitoring/weekly", DSL, 200),
    Endpoint("GET", "/monitoring/weekly.csv", DSL, 200),
    # the API
    Endpoint("GET", "/api/me", ALL, 200),
    Endpoint("GET", "/api/requests/mine", ALL, 200),
    Endpoint(
        "POST", "/api/requests", ALL, 201, json={"host": f"{{tag}}.{FOR_EVERYONE}", "why": WHY}
    ),
    Endpoint("GET", "/api/requests", BM, 200),
    Endpoint("GET", "/api/requests/{request}", OWNER_OR_BM, 200),
    Endpoint(
        "POST",
        "/api/requests/{request}/approve",
        BM,
        200,
        json={"scope": "user", "target_kind": "host", "duration": "hours", "hours": 2},
    ),
    Endpoint("POST", "/api/requests/{request}/deny", BM, 200, json={"reason": "Not needed."}),
    Endpoint("GET", "/api/lists", BM, 200),
    Endpoint("POST", "/api/lists", BM, 201, json={"host": "api-{tag}.example", "verdict": "allow"}),
    Endpoint("DELETE", "/api/lists/{host}", BM, 204),
    Endpoint("GET", "/api/exceptions", BM, 200),
    Endpoint("POST", "/api/exceptions/{exception}/revoke", BM, 200, json={}),
    Endpoint("GET", "/api/audit", AUDIT, 200),
    Endpoint("GET", "/api/explain?host=www.tiktok.com&role=pupil", STAFF_SIDE, 200),
    Endpoint("POST", "/api/policy/check", IT, 200, json={"text": "name: x\n"}),
    Endpoint("GET", "/api/policy/table", IT, 200),
    Endpoint("GET", "/api/monitoring/events?user=pupil1", DSL, 200),
    Endpoint("GET", "/api/monitoring/timeline?user=pupil1&at=2030-01-06T10:00", DSL, 200),
    Endpoint("GET", "/api/monitoring/alerts", DSL, 200),
    Endpoint("GET", "/api/monitoring/incidents", DSL, 200),
    Endpoint(
        "POST",
        "/api/monitoring/incidents",
        DSL,
        201,
        json={
            "user": "pupil-{tag}",
            "what_happened": "Tried a web proxy.",
            "action_taken": "Spoke to them.",
            "outcome": "Understood.",
        },
    ),
    Endpoint("GET", "/api/monitoring/sanctions", DSL, 200),
    Endpoint(
        "POST",
        "/api/monitoring/sanctions",
        DSL,
        201,
        json={"user": "it1", "reason": "Repeated proxy use."},
    ),
    Endpoint(
        "POST", "/api/monitoring/supervised-sessions", DSL, 201, json={"user": "it1", "minutes": 30}
    ),
    Endpoint("GET", "/api/monitoring/charts", DSL, 200),
    Endpoint("GET", "/api/monitoring/weekly", DSL, 200),
    # open to everyone
    Endpoint("GET", "/healthz", PUBLIC, 200),
    Endpoint("GET", "/readyz", PUBLIC, 200),
    Endpoint("GET", "/signin", PUBLIC, 200),
    # confirmation pages and records (issue 13)
    Endpoint("GET", "/lists/remove?host={host}", BM, 200),
    Endpoint("GET", "/exceptions/{exception}/revoke", BM, 200),
    Endpoint("GET", "/records", AUDIT, 200),
    Endpoint("POST", "/records/subject-access", AUDIT, 200, form={"user": "pupil1"}),
    Endpoint("POST", "/api/records/subject-access", AUDIT, 200, json={"user": "pupil1"}),
    Endpoint("GET", "/openapi.json", ALL, 200),  # signed in (security finding 22)
    Endpoint("GET", "/docs", ALL, 200),
]


def _fill(text: str, world: World, tag: str) -> str:
    return (
        text.replace("{request}", world.request_id)
        .replace("{exception}", world.exception_id)
        .replace("{host}", world.host)
        .replace("{tag}", tag)
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_role_x_endpoint(
    app: FastAPI, resources: Resources, world: World, endpoint: Endpoint, role: str
) -> None:
    client, csrf = client_for(app, role)
    tag = uuid.uuid4().hex[:8]
    path = _fill(endpoint.path, world, tag)
    kwargs: dict[str, Any] = {}
    if endpoint.form is not None:
        kwargs["data"] = {k: _fill(v, world, tag) for k, v in endpoint.form.items()}
        kwargs["data"]["csrf_token"] = csrf
    elif endpoint.method != "GET":
        kwargs["headers"] = {"X-CSRF-Token": csrf}
        if endpoint.json is not None:
            kwargs["json"] = {
                k: _fill(v, world, tag) if isinstance(v, str) else v
                for k, v in endpoint.json.items()
            }
    answer = client.request(endpoint.method, path, **kwargs)
    if role in endpoint.allowed:
        expected = endpoint.ok
    elif role == "anonymous":
        expected = 401 if endpoint.api else 303
    else:
        expected = 403
    assert answer.status_code == expected, answer.text[:500]
    if role == "anonymous" and not endpoint.api and role not in endpoint.allowed:
        assert answer.headers["location"].startswith("/signin")


@pytest.mark.parametrize("role", ["pupil", "staff", "dsl", "it_technician"])
def test_the_nav_shows_only_what_the_role_may_open(app: FastAPI, role: str) -> None:
    client, _ = client_for(app, role)
    html = client.get("/").text
    links = {
        e.path
        for e in ENDPOINTS
        if e.method == "GET"
        and "{" not in e.path
        and "?" not in e.path
        and e.path not in ("/", "/signin")
        and not e.api
        and not e.path.endswith(".csv")
        and f'href="{e.path}"' in html
        and "<nav" in html
    }
    for path in links:
        allowed = next(e.allowed for e in ENDPOINTS if e.method == "GET" and e.path == path)
        assert role in allowed, f"{role} is shown {path}"
    assert ('href="/requests"' in html) is (role == "business_manager")
