"""Each school's own data in the admin (docs/trust.md): an admin given a trust file of two
schools, Oak and Elm, on SQLite and PostgreSQL. Every route that takes the id of a school's row
or lists such rows, used by each school's staff against the other school's rows, answers 404
(never 403, which would confirm the row exists) or leaves them out, and changes nothing; the
same person sees and acts on their own school's rows; the trust's roles see both schools'.
Like the role matrix (test_permissions.py), with the school as the second axis."""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.evidence import review_gateway
from schoolgate.admin_api.resources import Resources, make_resources
from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.policy.model import Scope, TargetKind, Verdict
from schoolgate.store.admin_models import AuditEntryRow, RequestState, UnblockRequestRow
from schoolgate.store.db import upgrade
from schoolgate.store.directory import hash_password
from schoolgate.store.incident_models import IncidentNoteRow
from schoolgate.store.models import (
    AlertRow,
    AlertSeverity,
    AlertState,
    CircumventionAttemptRow,
    EventRow,
    ExceptionRow,
    LocalListRow,
    SanctionRow,
    SanctionState,
    SupervisedSessionRow,
)
from schoolgate.store.policy_files import seed_policy_path
from schoolgate.store.tokens import AccessClaims, make_access_token
from tests.admin_api.conftest import blocked_site, client_for, settings_for
from tests.admin_api.test_evidence_page import pdf_pages
from tests.support.postgres import postgres_session_url, shared_postgres_url

__all__ = ["postgres_session_url"]

SCHOOLS = ("oak", "elm")
PASSWORD = "correct horse battery staple"
ACCOUNTS = {  # the admin accounts file: groups named after a school, or the trust
    "oak-dsl": ["Staff", "oak-DSL"],
    "elm-bm": ["Staff", "elm-BusinessManagers"],
    "oak-pupil": ["Pupils", "oak"],
    "trust-lead": ["Staff", "trust-DSL"],
    "two-schools": ["Staff", "oak-DSL", "elm-DSL"],  # in two schools: in neither
    "plain-dsl": ["Staff", "DSL"],  # a group that names no school: no role
    # placed by the trust file's `directory:` (Elm's pupils' group), as the gateway places them
    "elm-by-group": ["Pupils", "ElmPupils"],
    "oak-and-elm-group": ["Pupils", "oak", "ElmPupils"],  # in two schools: in neither
}


def _user(name: str, roles: set[Role], school: str | None, every: bool = False) -> SignedInUser:
    return SignedInUser(
        name,
        name,
        frozenset({Role.STAFF, *roles}),
        "staff",
        school=school,
        every_school=every,
    )


def school_users(school: str) -> dict[str, SignedInUser]:
    return {
        "business_manager": _user(f"{school}-bm1", {Role.BUSINESS_MANAGER}, school),
        "dsl": _user(f"{school}-dsl1", {Role.DSL}, school),
        "it_technician": _user(f"{school}-it1", {Role.IT_TECHNICIAN}, school),
    }


TRUST_STAFF = _user(
    "trust-lead1", {Role.DSL, Role.BUSINESS_MANAGER, Role.IT_TECHNICIAN}, None, every=True
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def trust_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FastAPI, Resources]]:
    tmp = tmp_path_factory.mktemp("trust-admin")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'schoolgate.db'}"
    else:
        url = shared_postgres_url(request.getfixturevalue("postgres_session_url"))
    upgrade(url)
    (tmp / "base.yaml").write_text(seed_policy_path().read_text())
    (tmp / "trust.yaml").write_text(
        "name: Test Trust\nbase: base.yaml\nschools:\n"
        "  oak: {name: Oak Primary, subnets: [127.0.0.2/32]}\n"
        "  elm: {name: Elm Primary, subnets: [127.0.0.3/32], directory: {group: ElmPupils}}\n"
    )
    hashed = hash_password(PASSWORD)
    (tmp / "accounts.yaml").write_text(
        json.dumps(
            {"users": {n: {"password_hash": hashed, "groups": g} for n, g in ACCOUNTS.items()}}
        )
    )
    (tmp / "identity.yaml").write_text(  # the same people as the directory (block links)
        "directory: {kind: local, users_file: accounts.yaml}\n"
        "groups_to_roles:\n  - {group: Staff, role: staff}\n  - {group: Pupils, role: pupil}\n"
    )
    resources = make_resources(
        settings_for(
            url,
            tmp / "data",
            trust_file=tmp / "trust.yaml",
            admin_accounts_file=tmp / "accounts.yaml",
            identity_file=tmp / "identity.yaml",
        )
    )
    app = make_app(resources=resources)
    yield app, resources
    app.dependency_overrides.clear()
    resources.close()


@dataclass(frozen=True)
class SchoolRows:
    """One school's rows, each marked with the school's own tag (found in any page or answer
    that shows them)."""

    school: str
    tag: str
    request: str
    exception: str
    alert: str
    sanction: str
    event: str
    pupil: str  # the same user name in both schools: only the rows tell them apart

    @property
    def listed(self) -> str:
        """The host on the school's own local list (its note holds the tag: an answer that
        names the host asked about shows no more than was asked)."""
        return f"listed-{self.request[:8]}.example"


def make_rows(resources: Resources, school: str, pupil: str) -> SchoolRows:
    now = datetime.now(UTC)
    tag = f"{school}{uuid.uuid4().hex[:8]}"
    ids = [str(uuid.uuid4()) for _ in range(5)]
    rows = SchoolRows(school, tag, *ids, pupil=pupil)
    host = f"www.{tag}.example"
    with resources.sessions() as session:  # no scope: as the gateway writes them
        session.add_all(
            [
                UnblockRequestRow(
                    id=rows.request,
                    created_at=datetime(2001, 1, 1, tzinfo=UTC),  # first in the queue
                    requester=pupil,
                    requester_name="A Pupil",
                    requester_role="pupil",
                    blocked_user=pupil,
                    blocked_role="pupil",
                    blocked_at=now,
                    block_reason="rule_block",
                    from_block_page=True,
                    host=host,
                    category=None,
                    why=f"For my project ({tag}).",
                    state=RequestState.PENDING,
                    school=school,
                ),
                ExceptionRow(
                    id=rows.exception,
                    scope=Scope.USER,
                    who=pupil,
                    target_kind=TargetKind.HOST,
                    target=host,
                    starts=now,
                    ends=now + timedelta(hours=1),
                    created_by="someone",
                    created_at=now,
                    note=tag,
                    school=school,
                ),
                AlertRow(
                    id=rows.alert,
                    at=now,
                    severity=AlertSeverity.HIGH,
                    kind="circumvention_attempt",
                    user=pupil,
                    summary=f"{pupil} tried a web proxy ({tag})",
                    details={"host": host},
                    state=AlertState.OPEN,
                    school=school,
                ),
                SanctionRow(
                    id=rows.sanction,
                    user=pupil,
                    starts=now,
                    ends=now + timedelta(days=3),
                    reason=f"Repeated proxy use ({tag})",
                    placed_by="schoolgate",
                    state=SanctionState.PLACED,
                    note="",
                    school=school,
                ),
                SupervisedSessionRow(
                    id=ids[0],
                    user=pupil,
                    starts=now,
                    ends=now + timedelta(minutes=30),
                    opened_by=f"teacher-{tag}",
                    school=school,
                ),
                EventRow(
                    id=rows.event,
                    replica="test",
                    seq=1,
                    at=now - timedelta(minutes=1),
                    user=pupil,
                    role="pupil",
                    host=host,
                    verdict="block",
                    reason="rule_block",
                    intercepted=False,
                    school=school,
                ),
                CircumventionAttemptRow(
                    id=rows.event,
                    event_id=rows.event,
                    at=now - timedelta(minutes=1),
                    user=pupil,
                    host=host,
                    technique="web_proxy",
                    evidence={},
                    counted=True,
                    school=school,
                ),
                IncidentNoteRow(
                    id=ids[1],
                    at=now,
                    user=pupil,
                    written_by="dsl",
                    what_happened=f"Tried a proxy ({tag}).",
                    action_taken="Spoke to them.",
                    outcome="Understood.",
                    school=school,
                ),
                LocalListRow(
                    host=rows.listed,
                    verdict=Verdict.BLOCK,
                    note=f"reported ({tag})",
                    added_by=f"bm-{tag}",
                    added_at=now,
                    school=school,
                ),
                AuditEntryRow(
                    at=now,
                    actor=f"staff-{tag}",
                    actor_roles="dsl",
                    action="test.entry",
                    target=f"test:{tag}",
                    school=school,
                ),
            ]
        )
        session.commit()
    return rows


@pytest.fixture
def schools(trust_app: tuple[FastAPI, Resources]) -> dict[str, SchoolRows]:
    _, resources = trust_app
    pupil = f"pupil-{uuid.uuid4().hex[:6]}"
    return {school: make_rows(resources, school, pupil) for school in SCHOOLS}


# --- the routes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ById:
    method: str
    path: str  # {id} is the row's id
    row: str  # which row of SchoolRows
    role: str  # a school role allowed to use it
    ok: int  # what a row of the person's own school (or any, for a trust role) gets
    form: dict[str, str] | None = None
    json: dict[str, Any] | None = None


BY_ID = [
    ById("GET", "/requests/{id}", "request", "business_manager", 200),
    ById(
        "POST",
        "/requests/{id}/approve",
        "request",
        "business_manager",
        303,
        form={"scope": "user", "target_kind": "host", "duration": "hours", "hours": "1"},
    ),
    ById(
        "POST",
        "/requests/{id}/deny",
        "request",
        "business_manager",
        303,
        form={"reason": "Not for school.", "confirm": "yes"},
    ),
    ById("GET", "/api/requests/{id}", "request", "business_manager", 200),
    ById(
        "POST",
        "/api/requests/{id}/approve",
        "request",
        "business_manager",
        200,
        json={"scope": "user", "target_kind": "host", "duration": "hours", "hours": 2},
    ),
    ById(
        "POST",
        "/api/requests/{id}/deny",
        "request",
        "business_manager",
        200,
        json={"reason": "Not needed."},
    ),
    ById("GET", "/exceptions/{id}/revoke", "exception", "business_manager", 200),
    ById(
        "POST",
        "/exceptions/{id}/revoke",
        "exception",
        "business_manager",
        303,
        form={"reason": "Lesson cancelled", "confirm": "yes"},
    ),
    ById("POST", "/api/exceptions/{id}/revoke", "exception", "business_manager", 200, json={}),
    ById("GET", "/monitoring/alerts/{id}", "alert", "dsl", 200),
    ById("POST", "/monitoring/alerts/{id}/acknowledge", "alert", "dsl", 303, form={}),
    ById(
        "POST",
        "/monitoring/alerts/{id}/close",
        "alert",
        "dsl",
        303,
        form={"action_taken": "Spoke to them.", "outcome": "Understood."},
    ),
    ById("GET", "/api/monitoring/alerts/{id}", "alert", "dsl", 200),
    ById("POST", "/api/monitoring/alerts/{id}/acknowledge", "alert", "dsl", 200, json={}),
    ById(
        "POST",
        "/api/monitoring/alerts/{id}/close",
        "alert",
        "dsl",
        200,
        json={"action_taken": "Spoke to them.", "outcome": "Understood."},
    ),
    ById("POST", "/monitoring/sanctions/{id}/extend", "sanction", "dsl", 303, form={"days": "5"}),
    ById("GET", "/monitoring/sanctions/{id}/lift", "sanction", "dsl", 200),
    ById(
        "POST",
        "/monitoring/sanctions/{id}/lift",
        "sanction",
        "dsl",
        303,
        form={"reason": "Behaviour improved", "confirm": "yes"},
    ),
    ById("POST", "/api/monitoring/sanctions/{id}/extend", "sanction", "dsl", 200, json={"days": 5}),
    ById("POST", "/api/monitoring/sanctions/{id}/lift", "sanction", "dsl", 200, json={}),
    ById("GET", "/monitoring/timeline?event={id}", "event", "dsl", 200),
    ById("GET", "/api/monitoring/timeline?event={id}", "event", "dsl", 200),
    ById("DELETE", "/api/lists/{id}?reason=done", "listed", "business_manager", 204),
    ById(
        "POST",
        "/lists/remove",
        "listed",
        "business_manager",
        303,
        form={"host": "{id}", "reason": "No longer needed", "confirm": "yes"},
    ),
]

# Routes listing a school's rows (as the role that may open them): {pupil} is the shared name.
LISTS = [
    ("/requests", "business_manager"),
    ("/api/requests", "business_manager"),
    ("/exceptions", "business_manager"),
    ("/api/exceptions", "business_manager"),
    ("/monitoring/alerts", "dsl"),
    ("/api/monitoring/alerts", "dsl"),
    ("/monitoring/sanctions", "dsl"),
    ("/api/monitoring/sanctions", "dsl"),
    ("/monitoring/incidents", "dsl"),
    ("/api/monitoring/incidents", "dsl"),
    ("/monitoring/events?user={pupil}", "dsl"),
    ("/monitoring/events.csv?user={pupil}", "dsl"),
    ("/api/monitoring/events?user={pupil}", "dsl"),
    ("/monitoring/timeline?user={pupil}", "dsl"),
    ("/api/monitoring/timeline?user={pupil}", "dsl"),
    ("/audit", "it_technician"),
    ("/api/audit", "it_technician"),
    ("/audit.csv", "it_technician"),
    ("/lists", "business_manager"),
    ("/api/lists", "business_manager"),
]
SUBJECT_ACCESS = [("POST", "/records/subject-access"), ("POST", "/api/records/subject-access")]


def _send(
    client: TestClient, csrf: str, method: str, path: str, row: str = "", **given: Any
) -> Any:
    """`method` `path` with the route's form or JSON body, its "{id}" values made `row`."""
    kwargs: dict[str, Any] = {}
    if given.get("form") is not None:
        form = {key: value.replace("{id}", row) for key, value in given["form"].items()}
        kwargs["data"] = {**form, "csrf_token": csrf}
    elif method != "GET":
        kwargs["headers"] = {"X-CSRF-Token": csrf}
        kwargs["json"] = given.get("json") or {}
    return client.request(method, path, **kwargs)


def _signed_in(app: FastAPI, user: SignedInUser) -> tuple[TestClient, str]:
    from schoolgate.admin_api.deps import current_user, optional_user

    app.dependency_overrides[current_user] = lambda: user
    app.dependency_overrides[optional_user] = lambda: user
    return client_for(app, "anonymous")


def _snapshot(resources: Resources, rows: SchoolRows) -> tuple[Any, ...]:
    with resources.sessions() as session:
        request = session.get_one(UnblockRequestRow, rows.request)
        exception = session.get_one(ExceptionRow, rows.exception)
        alert = session.get_one(AlertRow, rows.alert)
        sanction = session.get_one(SanctionRow, rows.sanction)
        listed = session.scalars(select(LocalListRow).where(LocalListRow.host == rows.listed))
        return (
            request.state,
            exception.ends,
            alert.state,
            sanction.state,
            sanction.ends,
            [(entry.verdict, entry.school) for entry in listed],
        )


@pytest.mark.parametrize("route", BY_ID, ids=lambda r: f"{r.method} {r.path}")
def test_another_schools_row_by_id_is_not_found_and_unchanged(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows], route: ById
) -> None:
    app, resources = trust_app
    for mine, theirs in (("oak", "elm"), ("elm", "oak")):
        other = schools[theirs]
        before = _snapshot(resources, other)
        client, csrf = _signed_in(app, school_users(mine)[route.role])
        row = getattr(other, route.row)
        path = route.path.replace("{id}", row)
        answer = _send(client, csrf, route.method, path, row, form=route.form, json=route.json)
        assert answer.status_code == 404, (mine, answer.text[:300])
        assert other.tag not in answer.text
        assert _snapshot(resources, other) == before


@pytest.mark.parametrize("route", BY_ID, ids=lambda r: f"{r.method} {r.path}")
def test_a_schools_own_row_by_id_works(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows], route: ById
) -> None:
    app, _ = trust_app
    own = schools["oak"]
    client, csrf = _signed_in(app, school_users("oak")[route.role])
    row = getattr(own, route.row)
    path = route.path.replace("{id}", row)
    answer = _send(client, csrf, route.method, path, row, form=route.form, json=route.json)
    assert answer.status_code == route.ok, answer.text[:300]


@pytest.mark.parametrize("route", BY_ID, ids=lambda r: f"{r.method} {r.path}")
def test_the_trusts_roles_reach_every_schools_row_by_id(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows], route: ById
) -> None:
    app, _ = trust_app
    client, csrf = _signed_in(app, TRUST_STAFF)
    for rows in schools.values():
        row = getattr(rows, route.row)
        path = route.path.replace("{id}", row) + ("&" if "?" in route.path else "?")
        path += f"school={rows.school}"  # a trust role changes a school's list narrowed to it
        answer = _send(client, csrf, route.method, path, row, form=route.form, json=route.json)
        assert answer.status_code == route.ok, (rows.school, answer.text[:300])


@pytest.mark.parametrize(("path", "role"), LISTS, ids=[p for p, _ in LISTS])
def test_a_list_shows_only_the_schools_own_rows(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows], path: str, role: str
) -> None:
    app, _ = trust_app
    pupil = schools["oak"].pupil
    for mine, theirs in (("oak", "elm"), ("elm", "oak")):
        client, _ = _signed_in(app, school_users(mine)[role])
        answer = client.get(path.replace("{pupil}", pupil))
        assert answer.status_code == 200, answer.text[:300]
        if "timeline" not in path and "people" not in path:
            assert schools[mine].tag in answer.text, f"{mine} does not see its own rows"
        assert schools[theirs].tag not in answer.text, f"{mine} sees {theirs}'s rows"


@pytest.mark.parametrize(("path", "role"), LISTS, ids=[p for p, _ in LISTS])
def test_the_trusts_roles_list_every_schools_rows(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows], path: str, role: str
) -> None:
    app, _ = trust_app
    client, _ = _signed_in(app, TRUST_STAFF)
    pupil = schools["oak"].pupil
    answer = client.get(path.replace("{pupil}", pupil))
    assert answer.status_code == 200, answer.text[:300]
    if "timeline" not in path and "people" not in path:
        assert all(rows.tag in answer.text for rows in schools.values())
    narrowed = client.get(
        path.replace("{pupil}", pupil) + ("&" if "?" in path else "?") + "school=elm"
    )
    assert schools["oak"].tag not in narrowed.text  # ?school= narrows a trust role to one


@pytest.mark.parametrize(("method", "path"), SUBJECT_ACCESS)
def test_a_subject_access_record_holds_only_the_schools_rows(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows], method: str, path: str
) -> None:
    app, _ = trust_app
    client, csrf = _signed_in(app, school_users("oak")["it_technician"])
    pupil = schools["oak"].pupil
    form = {"user": pupil} if not path.startswith("/api/") else None
    answer = _send(client, csrf, method, path, form=form, json={"user": pupil})
    assert answer.status_code == 200, answer.text[:300]
    assert schools["oak"].tag in answer.text
    assert schools["elm"].tag not in answer.text


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every APIRoute, also of the routers FastAPI includes in others."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route.methods
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes, prefix + route.include_context.prefix)


def test_every_route_taking_a_rows_id_is_in_the_matrix(
    trust_app: tuple[FastAPI, Resources],
) -> None:
    app, _ = trust_app
    covered = {(r.method, r.path.split("?")[0].replace("{id}", "")) for r in BY_ID}
    school_ids = ("{request_id}", "{exception_id}", "{alert_id}", "{sanction_id}", "{host}")
    found = set()
    for path, methods in _routes(app.routes):
        if any(i in path for i in school_ids):
            for i in school_ids:
                path = path.replace(i, "")
            found |= {(method, path) for method in methods}
    assert found
    assert found <= covered, sorted(found - covered)


# --- who belongs where: groups named after a school or the trust ------------------------


def _sign_in(app: FastAPI, username: str) -> TestClient:
    app.dependency_overrides.clear()
    client = TestClient(app, follow_redirects=False)
    csrf = client.get("/signin").text.split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post(
        "/signin",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf, "next": "/"},
    )
    assert answer.status_code == 303, answer.text[:300]
    return client


@pytest.mark.parametrize(
    ("username", "sees"),
    [
        ("oak-dsl", {"oak"}),  # group oak-DSL: Oak's DSL
        ("trust-lead", {"oak", "elm"}),  # group trust-DSL: the DSL of every school
    ],
)
def test_a_school_group_gives_that_schools_role_and_rows(
    trust_app: tuple[FastAPI, Resources],
    schools: dict[str, SchoolRows],
    username: str,
    sees: set[str],
) -> None:
    app, _ = trust_app
    client = _sign_in(app, username)
    answer = client.get("/api/monitoring/alerts")
    assert answer.status_code == 200, answer.text[:300]
    shown = {school for school, rows in schools.items() if rows.tag in answer.text}
    assert shown == sees


@pytest.mark.parametrize("username", ["two-schools", "plain-dsl", "oak-pupil", "elm-bm"])
def test_no_dsl_role_without_one_schools_dsl_group(
    trust_app: tuple[FastAPI, Resources], username: str
) -> None:
    app, _ = trust_app
    client = _sign_in(app, username)
    assert client.get("/api/monitoring/alerts").status_code == 403
    me = client.get("/api/me").json()
    assert "dsl" not in me["roles"]


# --- each school's local lists, and the trust's ---------------------------------------------


def _listed(resources: Resources, host: str) -> list[tuple[Verdict, str | None]]:
    with resources.sessions() as session:  # no scope: every list
        rows = session.scalars(select(LocalListRow).where(LocalListRow.host == host))
        return sorted(((row.verdict, row.school) for row in rows), key=str)


def test_a_schools_business_manager_changes_their_schools_own_lists(
    trust_app: tuple[FastAPI, Resources],
) -> None:
    app, resources = trust_app
    host = f"lists-{uuid.uuid4().hex[:8]}.example"
    site = {"host": host, "verdict": "block", "note": "reported by a parent"}
    for school in SCHOOLS:  # the same site on both schools' lists, each its own entry
        client, csrf = _signed_in(app, school_users(school)["business_manager"])
        added = _send(client, csrf, "POST", "/api/lists", json=site)
        assert added.status_code == 201, added.text[:300]
        assert added.json()["school"] == school
    assert _listed(resources, host) == [(Verdict.BLOCK, "elm"), (Verdict.BLOCK, "oak")]
    client, csrf = _signed_in(app, school_users("oak")["business_manager"])
    assert _send(client, csrf, "DELETE", f"/api/lists/{host}").status_code == 204
    assert _listed(resources, host) == [(Verdict.BLOCK, "elm")]  # Elm's stays
    assert _send(client, csrf, "DELETE", f"/api/lists/{host}").status_code == 404


def test_the_trusts_staff_change_the_trusts_lists_or_one_schools(
    trust_app: tuple[FastAPI, Resources],
) -> None:
    app, resources = trust_app
    host = f"trust-{uuid.uuid4().hex[:8]}.example"
    client, csrf = _signed_in(app, TRUST_STAFF)
    site = {"host": host, "verdict": "block"}
    assert _send(client, csrf, "POST", "/api/lists", json=site).status_code == 201
    narrowed = _send(client, csrf, "POST", "/api/lists?school=elm", json=site)
    assert narrowed.status_code == 201
    assert _listed(resources, host) == [(Verdict.BLOCK, "elm"), (Verdict.BLOCK, None)]
    shown = {(row["host"], row["school"]) for row in client.get("/api/lists").json()}
    assert {(host, None), (host, "elm")} <= shown
    page = client.get("/lists").text
    assert '<th scope="col">School</th>' in page
    assert f"/lists/remove?host={host}&amp;school=elm" in page  # removes Elm's, not the trust's
    # Oak's Business Manager sees the trust's entry, apart, and cannot remove it
    client, csrf = _signed_in(app, school_users("oak")["business_manager"])
    assert host not in json.dumps(client.get("/api/lists").json())  # Oak's own list
    page = client.get("/lists").text
    assert "The trust&#39;s lists" in page or "The trust's lists" in page
    assert host in page.split("The trust")[-1]
    assert f"/lists/remove?host={host}" not in page
    assert _send(client, csrf, "DELETE", f"/api/lists/{host}").status_code == 404
    assert len(_listed(resources, host)) == 2
    client, csrf = _signed_in(app, TRUST_STAFF)  # a school the trust does not have: refused
    typo = _send(client, csrf, "POST", "/api/lists?school=ok", json={**site, "host": f"x.{host}"})
    assert typo.status_code == 404, typo.text[:300]
    assert "no school 'ok'" in typo.text
    assert _listed(resources, f"x.{host}") == []


def test_a_school_cannot_allow_what_the_trusts_list_blocks(
    trust_app: tuple[FastAPI, Resources],
) -> None:
    app, resources = trust_app
    host = f"blocked-{uuid.uuid4().hex[:8]}.example"
    client, csrf = _signed_in(app, TRUST_STAFF)
    assert _send(client, csrf, "POST", "/api/lists", json={"host": host, "verdict": "block"})
    client, csrf = _signed_in(app, school_users("elm")["business_manager"])
    for wanted in (host, f"www.{host}"):
        refused = _send(
            client, csrf, "POST", "/api/lists", json={"host": wanted, "verdict": "allow"}
        )
        assert refused.status_code == 422, refused.text[:300]
        assert "the trust's local block" in refused.text
    assert _listed(resources, host) == [(Verdict.BLOCK, None)]
    assert _listed(resources, f"www.{host}") == []


def test_someone_in_no_school_changes_no_list(trust_app: tuple[FastAPI, Resources]) -> None:
    app, resources = trust_app
    host = f"nowhere-{uuid.uuid4().hex[:8]}.example"
    client, csrf = _signed_in(app, _user("lost-bm", {Role.BUSINESS_MANAGER}, None))
    refused = _send(client, csrf, "POST", "/api/lists", json={"host": host, "verdict": "allow"})
    assert refused.status_code == 403, refused.text[:300]
    assert "no school" in refused.text
    assert _listed(resources, host) == []


# --- a school's grants: to its own classes and roles ------------------------------------------


@pytest.mark.parametrize("scope", ["everyone", "role", "group"])
def test_a_school_grants_to_its_own_classes_and_roles(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows], scope: str
) -> None:
    app, resources = trust_app
    client, csrf = _signed_in(app, school_users("oak")["business_manager"])
    grant = {"scope": scope, "target_kind": "host", "duration": "hours", "hours": 1}
    grant |= {"who": {"role": "pupil", "group": "Pupils"}.get(scope), "confirm_wide": True}
    answer = _send(
        client, csrf, "POST", f"/api/requests/{schools['oak'].request}/approve", json=grant
    )
    assert answer.status_code == 200, answer.text[:300]
    with resources.sessions() as session:
        (row,) = session.scalars(
            select(ExceptionRow).where(ExceptionRow.request_id == schools["oak"].request)
        )
        assert (row.scope.value, row.school) == (scope, "oak")  # opens it in Oak only
        exception = row.id
    # Oak's page lists it; Elm's Business Manager sees nothing of it; the trust sees its school
    assert exception in client.get("/exceptions").text
    client, _ = _signed_in(app, school_users("elm")["business_manager"])
    assert exception not in client.get("/exceptions").text
    assert exception not in client.get("/api/exceptions").text
    client, _ = _signed_in(app, TRUST_STAFF)
    (shown,) = [e for e in client.get("/api/exceptions").json() if e["id"] == exception]
    assert shown["school"] == "oak"


def test_a_schools_grant_past_the_trusts_block_is_refused(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows]
) -> None:
    """The trust blocks the site a request of Oak's is for: a grant would open nothing (the
    trust's block wins in every school), so it is refused, saying why, and stays pending."""
    app, resources = trust_app
    with resources.sessions() as session:
        host = session.get_one(UnblockRequestRow, schools["oak"].request).host
    client, csrf = _signed_in(app, TRUST_STAFF)
    site = {"host": host.removeprefix("www."), "verdict": "block"}
    assert _send(client, csrf, "POST", "/api/lists", json=site).status_code == 201
    client, csrf = _signed_in(app, school_users("oak")["business_manager"])
    grant = {"scope": "user", "target_kind": "host", "duration": "hours", "hours": 1}
    answer = _send(
        client, csrf, "POST", f"/api/requests/{schools['oak'].request}/approve", json=grant
    )
    assert answer.status_code == 422, answer.text[:300]
    assert "the trust's block wins in every school" in answer.text
    assert _snapshot(resources, schools["oak"])[0] is RequestState.PENDING


def test_the_trusts_staff_see_each_rows_school(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows]
) -> None:
    app, _ = trust_app
    client, _ = _signed_in(app, TRUST_STAFF)
    pupil = schools["oak"].pupil
    for path in (
        "/api/requests",
        "/api/exceptions",
        "/api/monitoring/alerts",
        "/api/monitoring/sanctions",
        "/api/monitoring/incidents",
        f"/api/monitoring/events?user={pupil}",
        "/api/audit",
    ):
        found = _schools_of_tagged(client.get(path).json(), schools)
        assert found == {rows.tag: rows.school for rows in schools.values()}, path


def _schools_of_tagged(data: Any, schools: dict[str, SchoolRows]) -> dict[str, str | None]:
    """{tag: the `school` of the object whose text holds it}, from any JSON answer."""
    found: dict[str, str | None] = {}
    if isinstance(data, list):
        for item in data:
            found |= _schools_of_tagged(item, schools)
    elif isinstance(data, dict):
        text = json.dumps(data)
        for rows in schools.values():
            if rows.tag in text and "school" in data:
                found[rows.tag] = data["school"]
        for value in data.values():
            if isinstance(value, list | dict):
                found |= _schools_of_tagged(value, schools)
    return found


@pytest.mark.parametrize(
    ("person", "decided", "school"),
    [
        ("oak-pupil", None, "oak"),
        ("elm-by-group", None, "elm"),
        ("oak-and-elm-group", None, None),
        ("plain-dsl", "elm", "elm"),  # the gateway decided for Elm (its listener, say)
        ("oak-pupil", "gone", "oak"),  # a school the trust no longer has: their groups'
    ],
)
def test_a_request_from_a_block_pages_link_is_its_persons_schools(
    trust_app: tuple[FastAPI, Resources], person: str, decided: str | None, school: str | None
) -> None:
    """The link's person is not signed in: the request is the school the gateway decided for
    (the link names it), else the school of their groups (`oak`) or of the trust file's
    `directory:` group as at the gateway (`ElmPupils`); both schools' groups is neither
    school's (seen by the trust's roles only)."""
    app, resources = trust_app
    app.dependency_overrides.clear()
    host = blocked_site()
    claims = AccessClaims(
        host=host,
        role="pupil",
        at=datetime.now(UTC),
        user=person,
        reason="rule_block",
        school=decided,
    )
    token = make_access_token(resources.access_token_secret, claims)
    browser = TestClient(app, follow_redirects=False)
    form = browser.get("/requests/new", params={"token": token})
    assert form.status_code == 200, form.text[:300]
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    why = "I need it for my homework about the Romans and their roads."
    sent = browser.post("/requests/new", data={"token": token, "why": why, "csrf_token": csrf})
    assert sent.status_code == 200, sent.text[:300]
    with resources.sessions() as session:
        (row,) = session.scalars(select(UnblockRequestRow).where(UnblockRequestRow.host == host))
        assert (row.requester, row.school) == (person, school)


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/monitoring/alerts", "dsl"),
        ("/exceptions", "business_manager"),
        ("/requests", "business_manager"),
        ("/monitoring/sanctions", "dsl"),
        ("/monitoring/events?user={pupil}", "dsl"),
    ],
)
def test_the_trusts_pages_show_each_rows_school(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows], path: str, role: str
) -> None:
    app, _ = trust_app
    column = '<th scope="col">School</th>'
    path = path.replace("{pupil}", schools["oak"].pupil)
    client, _ = _signed_in(app, TRUST_STAFF)
    page = client.get(path).text
    assert column in page
    for rows in schools.values():  # the school in the same table row as the row's own tag
        tagged = [tr for tr in page.split("<tr") if rows.tag in tr]
        assert tagged
        assert any(f">{rows.school}</td>" in tr for tr in tagged)
    client, _ = _signed_in(app, school_users("oak")[role])
    assert column not in client.get(path).text  # one school's staff: no column


def test_only_the_trusts_staff_run_shadow_mode(trust_app: tuple[FastAPI, Resources]) -> None:
    app, _ = trust_app
    client, csrf = _signed_in(app, school_users("oak")["it_technician"])
    answer = _send(client, csrf, "POST", "/policy/shadow/discard", form={"reason": "test"})
    assert answer.status_code == 403, answer.text[:300]
    assert "every school of the trust" in answer.text
    client, csrf = _signed_in(app, TRUST_STAFF)
    answer = _send(client, csrf, "POST", "/policy/shadow/discard", form={"reason": "test"})
    assert answer.status_code != 403, answer.text[:300]


@pytest.mark.parametrize("path", ["/policy/edit", "/calendar/edit", "/calendar/import"])
def test_a_school_with_no_policy_file_of_its_own_is_told_how_to_get_one(
    trust_app: tuple[FastAPI, Resources], path: str
) -> None:
    """Each school changes its own policy file (test_school_policy.py); these schools have
    none, so there is nothing of theirs to change, and the trust's base is not theirs."""
    app, _ = trust_app
    client, csrf = _signed_in(app, school_users("oak")["it_technician"])
    answer = _send(client, csrf, "POST", path, form={"text": "name: x\n", "reason": "test"})
    assert answer.status_code == 409, answer.text[:300]
    assert "it has no policy file of its own" in answer.text


def test_the_weekly_report_counts_the_schools_own_rows(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows]
) -> None:
    """A school's weekly report counts its own rows; the trust's is the sum of the schools'."""
    app, _ = trust_app
    counted: dict[str, dict[str, int]] = {}
    for who, user in (
        ("oak", school_users("oak")["dsl"]),
        ("elm", school_users("elm")["dsl"]),
        ("trust", TRUST_STAFF),
    ):
        client, _ = _signed_in(app, user)
        week = client.get("/api/monitoring/weekly").json()
        counted[who] = {key: week[key] for key in ("events", "attempts", "incident_notes")}
    for key in ("events", "attempts", "incident_notes"):
        assert counted["oak"][key] > 0
        assert counted["elm"][key] > 0
        assert counted["trust"][key] == counted["oak"][key] + counted["elm"][key], key


def test_explain_answers_with_the_viewers_own_schools_lists(
    trust_app: tuple[FastAPI, Resources],
) -> None:
    """Explain decides as the gateway would for the viewer's school: Elm's local block of a
    site is not Oak's (nor shown to Oak's staff), and the trust's applies to both."""
    app, resources = trust_app
    elms, trusts = (f"{name}-{uuid.uuid4().hex[:8]}.example" for name in ("elm", "trust"))
    with resources.sessions() as session:
        for host, school in ((elms, "elm"), (trusts, None)):
            session.add(
                LocalListRow(
                    host=host,
                    verdict=Verdict.BLOCK,
                    note="",
                    added_by="bm",
                    added_at=datetime.now(UTC),
                    school=school,
                )
            )
        session.commit()

    def verdicts(user: SignedInUser) -> tuple[str, str]:
        client, _ = _signed_in(app, user)
        found = [
            client.get("/api/explain", params={"host": h, "role": "staff"}).json()
            for h in (elms, trusts)
        ]
        return found[0]["verdict"], found[1]["verdict"]

    assert verdicts(school_users("elm")["business_manager"]) == ("block", "block")
    assert verdicts(school_users("oak")["business_manager"]) == ("allow", "block")
    assert verdicts(TRUST_STAFF) == ("allow", "block")  # the trust's own lists


# --- the trust's schools: adding, exporting and removing one; the summary -----------------

TRUST_IT = SignedInUser(
    "trust-it1",
    "Trust IT",
    frozenset({Role.STAFF, Role.IT_TECHNICIAN}),
    "staff",
    groups=frozenset({"Staff", "trust-ITTechnicians"}),
    every_school=True,
)
# Every route of the Schools page: (method, path, form); {school} is the other school's id.
SCHOOL_ROUTES = [
    ("GET", "/schools", None),
    ("POST", "/schools", {"school_id": "ash", "school_name": "Ash", "subnets": "127.0.0.9/32"}),
    ("POST", "/schools/{school}/export", {}),
    ("GET", "/schools/{school}/remove", None),
    ("POST", "/schools/{school}/remove", {"school_id_again": "{school}"}),
]


def _rows_of(resources: Resources, school: str) -> dict[str, int]:
    from schoolgate.store.school_data import count_rows

    with resources.engine.connect() as connection:
        return count_rows(connection, school)


@pytest.mark.parametrize(("method", "path", "form"), SCHOOL_ROUTES, ids=lambda v: str(v))
@pytest.mark.parametrize(
    "user",
    [*school_users("oak").values(), TRUST_STAFF],  # a school's staff; trust roles but IT
    ids=lambda u: u.username,
)
def test_only_the_trusts_it_team_reaches_the_schools_page(
    trust_app: tuple[FastAPI, Resources],
    schools: dict[str, SchoolRows],
    method: str,
    path: str,
    form: dict[str, str] | None,
    user: SignedInUser,
) -> None:
    app, resources = trust_app
    trust_file = resources.settings.trust_file
    assert trust_file is not None
    before = (trust_file.read_text(), _rows_of(resources, "elm"))
    client, csrf = _signed_in(app, user)
    path = path.replace("{school}", "elm")
    if form is not None:
        form = {key: value.replace("{school}", "elm") for key, value in form.items()}
    answer = _send(client, csrf, method, path, form=form)
    assert answer.status_code == 403, answer.text[:300]
    assert "IT team may add, export or remove schools" in answer.text
    assert schools["elm"].tag not in answer.text
    assert (trust_file.read_text(), _rows_of(resources, "elm")) == before


def test_every_schools_route_is_in_the_matrix(trust_app: tuple[FastAPI, Resources]) -> None:
    app, _ = trust_app
    covered = {(m, p.replace("{school}", "{school_id}")) for m, p, _ in SCHOOL_ROUTES}
    found = {
        (method, path)
        for path, methods in _routes(app.routes)
        if path.startswith("/schools")
        for method in methods
    }
    assert found == covered


def test_the_trusts_it_team_adds_exports_and_removes_a_school(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows]
) -> None:
    app, resources = trust_app
    trust_file = resources.settings.trust_file
    assert trust_file is not None
    original = trust_file.read_text()
    others = {school: _rows_of(resources, school) for school in SCHOOLS}
    client, csrf = _signed_in(app, TRUST_IT)
    page = client.get("/schools")
    assert page.status_code == 200
    assert "Oak Primary" in page.text
    assert "Elm Primary" in page.text
    clash = _send(
        client,
        csrf,
        "POST",
        "/schools",
        form={"school_id": "ash", "school_name": "Ash", "subnets": "127.0.0.2/32"},
    )
    assert clash.status_code == 422
    assert "127.0.0.2/32 is already given to the school" in clash.text
    assert trust_file.read_text() == original
    school = f"ash{uuid.uuid4().hex[:6]}"
    form = {"school_id": school, "school_name": "Ash Infants", "subnets": "127.0.0.9/32"}
    added = _send(client, csrf, "POST", "/schools", form=form)
    assert added.status_code == 303, added.text[:300]
    assert resources.trust is not None
    assert school in resources.trust.schools
    assert trust_file.read_text().startswith(original.rstrip("\n"))
    ash = make_rows(resources, school, "pupil-ash")
    export = _send(client, csrf, "POST", f"/schools/{school}/export", form={})
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(export.content)) as pack:
        held = "".join(pack.read(n).decode() for n in pack.namelist())
    assert ash.tag in held
    assert all(schools[s].tag not in held for s in SCHOOLS)
    confirm = client.get(f"/schools/{school}/remove")
    assert confirm.status_code == 200
    assert f"Remove Ash Infants ({school}) from the trust?" in confirm.text
    assert "<td>websites visited</td><td>1</td>" in confirm.text
    wrong = _send(
        client, csrf, "POST", f"/schools/{school}/remove", form={"school_id_again": "oak"}
    )
    assert wrong.status_code == 422
    assert f"Please type {school} to remove Ash Infants" in wrong.text
    removed = _send(
        client, csrf, "POST", f"/schools/{school}/remove", form={"school_id_again": school}
    )
    assert removed.status_code == 200, removed.text[:300]
    assert "was removed from the trust" in removed.text
    assert "records deleted: " in removed.text
    assert "websites visited 1" in removed.text
    assert set(_rows_of(resources, school).values()) == {0}
    assert {s: _rows_of(resources, s) for s in SCHOOLS} == others  # untouched
    assert trust_file.read_text() == original
    assert school not in resources.trust.schools
    kept = list((resources.settings.data_dir / "school-exports").glob(f"{school}-*.zip"))
    assert len(kept) == 1
    again = _send(client, csrf, "POST", "/schools", form=form)
    assert again.status_code == 422
    assert "an id is never reused" in again.text
    with resources.sessions() as session:
        actions = set(
            session.scalars(
                select(AuditEntryRow.action).where(AuditEntryRow.target == f"school:{school}")
            )
        )
    assert actions == {"school.add", "school.export", "trust.remove_school"}


@pytest.mark.parametrize("path", ["/trust", "/api/trust/summary"])
def test_the_summary_shows_each_school_to_the_trust_and_its_own_to_a_school(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows], path: str
) -> None:
    app, _ = trust_app
    client, _ = _signed_in(app, TRUST_STAFF)
    everyone = client.get(path)
    assert everyone.status_code == 200, everyone.text[:300]
    assert "Oak Primary" in everyone.text
    assert "Elm Primary" in everyone.text
    for mine, theirs in (("oak", "elm"), ("elm", "oak")):
        client, _ = _signed_in(app, school_users(mine)["business_manager"])
        own = client.get(path)
        assert own.status_code == 200, own.text[:300]
        assert {"oak": "Oak Primary", "elm": "Elm Primary"}[mine] in own.text
        assert {"oak": "Oak Primary", "elm": "Elm Primary"}[theirs] not in own.text
        assert "No school" not in own.text
    if path.startswith("/api/"):
        trust = {row["school"]: row for row in everyone.json()["schools"]}
        client, _ = _signed_in(app, school_users("oak")["dsl"])
        (oak,) = client.get(path).json()["schools"]
        assert oak == trust["oak"]
        client, _ = _signed_in(app, TRUST_STAFF)
        narrowed = client.get(path + "?school=elm").json()["schools"]
        assert [row["school"] for row in narrowed] == ["elm"]
        assert oak["events"] >= 1
        assert oak["open_alerts"] >= 1
        assert oak["pending_requests"] >= 1


@pytest.mark.parametrize("path", ["/schools", "/trust", "/api/trust/summary"])
def test_without_a_trust_there_are_no_schools_pages(app: FastAPI, path: str) -> None:
    client, _ = client_for(app, "it_technician")
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"school_id": "Ash!"}, "Please give the school&#39;s id in small letters"),
        ({"school_id": ""}, "Please fill in the school&#39;s id"),
        ({"policy_file": "../../etc/x.yaml"}, "must be a file inside the trust&#39;s folder"),
        ({"policy_file": "/etc/x.yaml"}, "must be a file inside the trust&#39;s folder"),
        ({"school_id": "trust"}, "may not have the id"),
    ],
)
def test_adding_a_school_says_what_is_wrong_in_words(
    trust_app: tuple[FastAPI, Resources], fields: dict[str, str], words: str
) -> None:
    app, resources = trust_app
    trust_file = resources.settings.trust_file
    assert trust_file is not None
    before = trust_file.read_text()
    client, csrf = _signed_in(app, TRUST_IT)
    form = {"school_id": "ash", "school_name": "Ash", "subnets": "127.0.0.9/32"} | fields
    answer = _send(client, csrf, "POST", "/schools", form=form)
    assert answer.status_code == 422, answer.text[:300]
    assert words in answer.text
    assert trust_file.read_text() == before


@pytest.mark.parametrize(
    ("role", "path"), [("business_manager", "/requests"), ("dsl", "/monitoring")]
)
def test_the_menus_waiting_counts_are_the_schools_own(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows], role: str, path: str
) -> None:
    """The count beside a menu item (requests waiting, open alerts) counts the person's own
    school's rows, as the start page's to-dos do."""
    app, resources = trust_app
    model, waiting = (
        (UnblockRequestRow, UnblockRequestRow.state == RequestState.PENDING)
        if path == "/requests"
        else (AlertRow, AlertRow.state == AlertState.OPEN)
    )
    with resources.sessions() as session:
        counts = {
            school: len(session.scalars(select(model).where(waiting, model.school == school)).all())
            for school in schools
        }
    assert all(counts.values()), counts
    for school in schools:
        client, _ = _signed_in(app, school_users(school)[role])
        page = client.get("/").text
        shown = page.split(f'<a href="{path}"', 1)[1].split("</a>", 1)[0]
        assert f'<span class="count">{counts[school]}<' in shown, (school, counts, shown)


def test_a_school_known_by_a_gateway_address_and_a_group_is_added_in_the_admin(
    trust_app: tuple[FastAPI, Resources],
) -> None:
    """A school with no address range of its own: its devices come in through a gateway
    address, its people are in a directory group (docs/trust.md, attribution)."""
    app, resources = trust_app
    trust_file = resources.settings.trust_file
    assert trust_file is not None
    original = trust_file.read_text()
    client, csrf = _signed_in(app, TRUST_IT)
    school = f"fir{uuid.uuid4().hex[:6]}"
    form = {
        "school_id": school,
        "school_name": "Fir Juniors",
        "listeners": "127.0.0.9:3128",
        "directory_group": "FirPeople",
    }
    added = _send(client, csrf, "POST", "/schools", form=form)
    assert added.status_code == 303, added.text[:300]
    assert resources.trust is not None
    assert resources.trust.attributor.by_directory(frozenset({"FirPeople"}), None) == school
    page = client.get("/schools").text
    assert "gateway address 127.0.0.9:3128; people in the group FirPeople" in page
    taken = _send(
        client, csrf, "POST", "/schools", form={**form, "school_id": f"{school}x", "listeners": ""}
    )
    assert taken.status_code == 422  # the group is Fir's already
    assert "FirPeople" in taken.text
    removed = _send(
        client, csrf, "POST", f"/schools/{school}/remove", form={"school_id_again": school}
    )
    assert removed.status_code == 200, removed.text[:300]
    assert trust_file.read_text() == original


def test_a_schools_staff_are_offered_only_their_own_schools_groups(
    trust_app: tuple[FastAPI, Resources], schools: dict[str, SchoolRows]
) -> None:
    """The events page's class filter and the approval form list the directory's groups: a
    school's staff get those of their own school's people, never another school's (found
    running issue 17 as a trust: Elm's DSL was offered oak, oak-DSL, ...)."""
    app, _ = trust_app
    client, _ = _signed_in(app, school_users("elm")["dsl"])
    page = client.get("/monitoring/events").text
    offered = set(re.findall(r'<option value="([^"]*)"', page))
    assert {"elm-BusinessManagers", "ElmPupils"} <= offered, offered
    assert not {g for g in offered if g.casefold().startswith("oak")}, offered
    refused = client.get("/monitoring/events", params={"group": "oak"}).text
    assert "oak-DSL" not in refused
    client, _ = _signed_in(app, school_users("oak")["business_manager"])
    form = client.get(f"/requests/{schools['oak'].request}").text
    hint = form.split("The school directory's groups: ", 1)[1].split("<", 1)[0]
    assert "oak" in hint.split(", ")
    assert "elm" not in hint.split(", ")
    assert "ElmPupils" not in hint
    client, _ = _signed_in(app, TRUST_STAFF)
    everyone = set(re.findall(r'<option value="([^"]*)"', client.get("/monitoring/events").text))
    assert {"oak", "ElmPupils"} <= everyone


@pytest.mark.parametrize(
    ("username", "heading"),
    [("oak-dsl", "Oak Primary"), ("elm-bm", "Elm Primary"), ("trust-lead", "Test Trust")],
)
def test_each_persons_pages_are_headed_with_their_school(
    trust_app: tuple[FastAPI, Resources], username: str, heading: str
) -> None:
    """Found running issue 17 as Oak's Business Manager: every school's pages said "Our school"
    (the admin's one configured name). Each school's staff see their own school's name; the
    trust's staff the trust's, or the school they narrowed the pages to."""
    app, _ = trust_app
    client = _sign_in(app, username)
    page = client.get("/").text
    assert f'<a class="brand" href="/">{heading} · web filter</a>' in page
    assert f"– {heading} web filter</title>" in page
    others = {"Oak Primary", "Elm Primary", "Test Trust"} - {heading}
    assert not any(f"{other} · web filter" in page for other in others)
    if username == "trust-lead":
        narrowed = client.get("/monitoring/events?school=elm").text
        assert '<a class="brand" href="/">Elm Primary · web filter</a>' in narrowed


def test_a_schools_review_pack_names_its_school(
    trust_app: tuple[FastAPI, Resources], tmp_path: Path
) -> None:
    """The annual review's PDF, for governors, names the DSL's own school, not "Our school"."""
    app, _ = trust_app
    client = _sign_in(app, "oak-dsl")
    app.dependency_overrides[review_gateway] = lambda: None  # no live test from here
    pdf = client.get("/review.pdf", params={"date": "2026-12-18"})
    assert pdf.status_code == 200
    text = "\n".join(pdf_pages(pdf.content, tmp_path))
    assert "Oak Primary" in text
    assert "Our school" not in text
