"""Hostile input in every form and API body: script tags, huge fields, odd unicode, control
characters, SQL and LDAP metacharacters. Never a 5xx; what was typed comes back escaped."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI

from schoolgate.admin_api.resources import Resources
from tests.admin_api.conftest import World, blocked_site, client_for, first_in_queue

HOSTILE = {
    "script": "<script>alert('x')</script>",
    "attribute": '" onmouseover="alert(1)" x="',
    "huge": "A" * 200_000,
    "unicode": "Ωmega 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202egnp.exe \ufeff 😀",
    "control": "line\x00with\x07nul\x1b[31m",
    "sql": "'; DROP TABLE unblock_requests; --",
    "ldap": "*)(uid=*))(|(uid=*",
    "template": "{{ 7*7 }}{% raw %}",
    "newlines": "a\r\nb\nc",
}
FORMS = [
    (
        "staff",
        "/requests/new",
        ["host", "why", "for_group", "wanted_on", "wanted_period"],
        {"host": "www.bbc.co.uk", "why": "A perfectly good reason for it."},
    ),
    (
        "business_manager",
        "/lists",
        ["host", "note", "verdict"],
        {"host": "ok.example", "verdict": "block"},
    ),
    (
        "business_manager",
        "/requests/{request}/approve",
        ["scope", "who", "target_kind", "duration", "hours", "until", "period", "note"],
        {"scope": "user", "duration": "hours", "hours": "1"},
    ),
    ("business_manager", "/requests/{request}/deny", ["reason"], {}),
    ("business_manager", "/lists/remove", ["host"], {}),
    ("it_technician", "/policy/check", ["text"], {}),
    (
        "anonymous",
        "/signin",
        ["username", "password", "next"],
        {"username": "pupil1", "password": "wrong"},
    ),
]


@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize(
    ("role", "path", "fields", "base"), FORMS, ids=[f"{role}:{path}" for role, path, _, _ in FORMS]
)
def test_hostile_form_input_never_crashes_and_comes_back_escaped(
    app: FastAPI,
    world: World,
    role: str,
    path: str,
    fields: list[str],
    base: dict[str, str],
    kind: str,
) -> None:
    client, csrf = client_for(app, role)
    value = HOSTILE[kind]
    for field in fields:
        data = {**base, field: value, "csrf_token": csrf}
        answer = client.post(path.replace("{request}", world.request_id), data=data)
        assert answer.status_code < 500, (field, answer.text[:300])
        body = answer.text
        assert "<script>alert" not in body
        assert 'onmouseover="alert(1)"' not in body


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_query_parameters_never_crash(app: FastAPI, world: World, kind: str) -> None:
    value = HOSTILE[kind][:20_000]  # the client refuses longer URLs
    pupil, _ = client_for(app, "pupil")
    for params in ({"token": value}, {"host": value}):
        answer = pupil.get("/requests/new", params=params)
        assert answer.status_code < 500
        assert "<script>alert" not in answer.text
    app.dependency_overrides.clear()
    it, _ = client_for(app, "it_technician")
    for path, params in (
        ("/explain", {"host": value, "role": "pupil"}),
        ("/explain", {"host": "x.com", "at": value}),
        ("/explain", {"host": "x.com", "role": value}),
        ("/explain", {"host": "x.com", "at": "9999-12-31T23:59"}),
        ("/audit", {"actor": value, "page": "1"}),
        ("/policy", {"date": value}),
        ("/policy", {"date": "0001-01-01"}),
        ("/api/explain", {"host": value}),
        ("/api/audit", {"action": value}),
    ):
        answer = it.get(path, params=params)
        assert answer.status_code < 500, (path, answer.text[:300])
        assert "<script>alert" not in answer.text


@pytest.mark.parametrize(
    "body",
    [
        {"host": "\ud800.example", "why": "lone surrogate in the host name"},
        {"host": "ok.example", "why": "lone surrogate \udfff in the reason"},
        {"host": "ok.example", "why": "nul \x00 in the reason here"},
        {"host": ["a list"], "why": 42},
        {"why": "no host and no token at all"},
        {"host": "ok.example", "why": "x" * 100_000},
        {
            "host": "ok.example",
            "why": "fine reason here",
            "wanted_on": "2026-02-30",
            "wanted_period": "25:00-26:00",
        },
    ],
)
def test_hostile_json_never_crashes(app: FastAPI, body: dict[str, object]) -> None:
    client, csrf = client_for(app, "staff")
    # json.dumps escapes lone surrogates as \\udxxx, as a hostile client would send them
    answer = client.post(
        "/api/requests",
        content=json.dumps(body),
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text[:300]


def test_typed_text_is_escaped_where_staff_read_it(app: FastAPI, resources: Resources) -> None:
    client, csrf = client_for(app, "pupil")
    sent = client.post(
        "/requests/new",
        data={
            "host": blocked_site(),
            "why": "Please <b>now</b> <script>alert(1)</script>",
            "csrf_token": csrf,
        },
    )
    assert sent.status_code == 303
    page = client.get(sent.headers["location"]).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>now</b>" not in page
    app.dependency_overrides.clear()
    bursar, _ = client_for(app, "business_manager")
    with first_in_queue(resources, sent.headers["location"].split("/")[2].split("?")[0]):
        queue = bursar.get("/requests").text
    assert "&lt;script&gt;" in queue
    assert "<script>alert" not in queue


def test_a_request_body_too_large_is_refused_early(app: FastAPI) -> None:
    client, csrf = client_for(app, "it_technician")
    answer = client.post("/policy/check", data={"text": "a" * 2_000_000, "csrf_token": csrf})
    assert answer.status_code == 413


@pytest.mark.parametrize("piece", ["%00", "x%00y", "%27%3B--", "%E2%80%AE", "a" * 300, "..%2F.."])
def test_hostile_ids_in_paths_are_not_found(app: FastAPI, piece: str) -> None:
    client, csrf = client_for(app, "business_manager")
    for method, path in (
        ("GET", f"/requests/{piece}"),
        ("GET", f"/api/requests/{piece}"),
        ("POST", f"/exceptions/{piece}/revoke"),
        ("POST", f"/api/exceptions/{piece}/revoke"),
        ("DELETE", f"/api/lists/{piece}"),
    ):
        answer = client.request(method, path, headers={"X-CSRF-Token": csrf})
        assert answer.status_code in (404, 422), (method, path, answer.text[:200])
