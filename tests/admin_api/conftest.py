"""Fixtures for the admin tests: the admin app on a migrated SQLite file and on PostgreSQL (a
schema of its own in this session's database), the demo directory, one signed-in user per
role through dependency overrides, and clients that carry the session's CSRF token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.deps import current_user, optional_user
from schoolgate.admin_api.resources import Resources, make_resources
from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.admin_api.settings import Environment, Settings
from schoolgate.admin_api.throttle import SignInThrottle
from schoolgate.policy.model import Scope, TargetKind, Verdict
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.db import upgrade
from schoolgate.store.models import ExceptionRow, LocalListRow
from tests.support.leaks import UNCLOSED_SQLITE, closed_what_it_opened
from tests.support.postgres import postgres_session_url, shared_postgres_url

__all__ = ["closed_what_it_opened", "postgres_session_url"]

DEMO_IDENTITY = (
    Path(__file__).resolve().parents[2] / "schoolgate" / "store" / "data" / "demo-identity.yaml"
)
TEST_SECRET = "test-session-secret-0123456789abcdef0123456789"

USERS: dict[str, SignedInUser | None] = {
    "anonymous": None,
    "pupil": SignedInUser(
        "pupil1", "Pupil One", frozenset({Role.PUPIL}), "pupil", frozenset({"Pupils", "Year5"})
    ),
    "staff": SignedInUser(
        "teacher1",
        "Teacher One",
        frozenset({Role.STAFF}),
        "staff",
        frozenset({"Staff", "Teachers-Year5"}),
    ),
    "business_manager": SignedInUser(
        "bursar1",
        "Business Manager",
        frozenset({Role.STAFF, Role.BUSINESS_MANAGER}),
        "staff",
        frozenset({"Staff", "BusinessManagers"}),
    ),
    "dsl": SignedInUser(
        "dsl1", "DSL", frozenset({Role.STAFF, Role.DSL}), "staff", frozenset({"Staff", "DSL"})
    ),
    "it_technician": SignedInUser(
        "it1",
        "IT",
        frozenset({Role.STAFF, Role.IT_TECHNICIAN}),
        "staff",
        frozenset({"Staff", "ITTechnicians"}),
    ),
}
ROLES = tuple(USERS)
OwnResources = Callable[[Settings], Resources]  # the own_resources fixture
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every admin test closes the SQLite connections it opens (the 132 "unclosed database"
    warnings of the December CI run came from here): tests/support/leaks.py."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            for mark in UNCLOSED_SQLITE:
                item.add_marker(mark)


def settings_for(url: str, data_dir: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "environment": Environment.PRODUCTION,
        "data_dir": data_dir,
        "database_url": url,
        "identity_file": DEMO_IDENTITY,
        "session_secret": TEST_SECRET,
        "cookie_secure": False,
        "school_name": "Test Primary",
    }
    values.update(extra)
    return Settings.model_validate(values)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('admin-db') / 'schoolgate.db'}"
    else:
        url = shared_postgres_url(request.getfixturevalue("postgres_session_url"))
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def resources(
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Resources]:
    made = make_resources(settings_for(database_url, tmp_path_factory.mktemp("admin-data")))
    yield made
    made.close()


@pytest.fixture(scope="session")
def shared_app(resources: Resources) -> FastAPI:
    return make_app(resources=resources)


@pytest.fixture
def app(shared_app: FastAPI, resources: Resources) -> Iterator[FastAPI]:
    resources.throttle = SignInThrottle(None, max_per_user=5, max_per_ip=30, window_seconds=900)
    yield shared_app
    shared_app.dependency_overrides.clear()
    resources.throttle.close()  # its in-memory database (or the one a test put in its place)


@pytest.fixture
def own_resources() -> Iterator[OwnResources]:
    """`make_resources` for a test that needs settings of its own; closed after the test."""
    made: list[Resources] = []

    def make(settings: Settings) -> Resources:
        made.append(make_resources(settings))
        return made[-1]

    yield make
    for resources in made:
        resources.close()


def client_for(app: FastAPI, role: str) -> tuple[TestClient, str]:
    """A client signed in as `role` (through the current_user override) and its CSRF token."""
    user = USERS[role]
    if user is not None:
        app.dependency_overrides[current_user] = lambda: user
        app.dependency_overrides[optional_user] = lambda: user
    client = TestClient(app, follow_redirects=False)
    found = CSRF.search(client.get("/signin").text)
    assert found is not None
    return client, found.group(1)


def sign_in(app: FastAPI, username: str, password: str, next_page: str = "/") -> TestClient:
    """A client signed in for real, through the form and the demo directory."""
    client = TestClient(app, follow_redirects=False)
    token = CSRF.search(client.get("/signin").text)
    assert token is not None
    answer = client.post(
        "/signin",
        data={
            "username": username,
            "password": password,
            "csrf_token": token.group(1),
            "next": next_page,
        },
    )
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: TestClient, page: str = "/requests/mine") -> str:
    found = CSRF.search(client.get(page).text)
    assert found is not None
    return found.group(1)


def blocked_site(site: str = "tiktok.com") -> str:
    """A site of its own under `site`, which the seed policy blocks (tiktok.com: for pupils at
    all times, for staff outside break times): no grant an earlier test made covers it, so a
    request for it is queued (a request for a site that is open is refused: nothing to decide)."""
    return f"v{uuid.uuid4().hex[:8]}.{site}"


@contextmanager
def first_in_queue(resources: Resources, request_id: str) -> Iterator[None]:
    """Meanwhile a pending request is the oldest, so the queue page (the 500 oldest) shows it:
    the session's shared database holds hundreds of pending requests from other tests."""
    with resources.sessions() as session:
        row = session.get_one(UnblockRequestRow, request_id)
        asked, row.created_at = row.created_at, datetime(2000, 1, 1, tzinfo=UTC)
        session.commit()
    try:
        yield
    finally:
        with resources.sessions() as session:
            session.get_one(UnblockRequestRow, request_id).created_at = asked
            session.commit()


# Blocked for every role at all times, and no rule forbids unblocking it: anyone may ask.
FOR_EVERYONE = "123moviesfree.net"


@dataclass
class World:
    """Rows a matrix test can act on: a pending request by pupil1, an exception, a list entry."""

    request_id: str
    exception_id: str
    host: str


def make_world(resources: Resources) -> World:
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:10]
    world = World(
        request_id=str(uuid.uuid4()), exception_id=str(uuid.uuid4()), host=f"listed-{tag}.example"
    )
    with resources.sessions() as session:
        session.add(
            UnblockRequestRow(
                id=world.request_id,
                created_at=now,
                requester="pupil1",
                requester_name="Pupil One",
                requester_role="pupil",
                blocked_user="pupil1",
                blocked_role="pupil",
                blocked_at=now,
                block_reason="rule_block",
                from_block_page=True,
                host=f"www.site-{tag}.example",
                category=None,
                why="For my Viking project.",
                state=RequestState.PENDING,
            )
        )
        session.add(
            ExceptionRow(
                id=world.exception_id,
                scope=Scope.USER,
                who="pupil2",
                target_kind=TargetKind.HOST,
                target=f"www.open-{tag}.example",
                starts=now,
                ends=now + timedelta(hours=1),
                created_by="someone",
                created_at=now,
                note="",
            )
        )
        session.add(
            LocalListRow(
                host=world.host, verdict=Verdict.BLOCK, note="", added_by="someone", added_at=now
            )
        )
        session.commit()
    return world


@pytest.fixture
def world(resources: Resources) -> World:
    return make_world(resources)
