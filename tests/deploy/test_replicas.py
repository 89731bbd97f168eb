"""Several admin replicas on one database (Kubernetes runs two; a trust may run more): what one
replica learns, every other one knows. Each replica here is its own admin app with its own
resources and its own data folder (as each admin pod has its own emptyDir), sharing only what
the manifests share: the database, the session secret (the schoolgate-env Secret) and the link
secret (copied from the schoolgate-ca Secret by the init container). On real SQLite and
PostgreSQL. The gateway's side is tested where it lives: the sign-in count
(tests/proxy_addons/test_identity.py, test_every_worker_and_replica_shares_the_count) and the
sanction threshold (two gateways on one database reach it together, tests/e2e)."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.resources import Resources, make_resources
from schoolgate.store.db import upgrade
from tests.admin_api.conftest import CSRF, settings_for, sign_in
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]


@pytest.fixture
def replicas(database_url: str, tmp_path: Path) -> Iterator[tuple[FastAPI, FastAPI]]:
    upgrade(database_url)
    link_secret = tmp_path / "ca-secret"
    link_secret.write_text(secrets.token_hex(32))
    made: list[Resources] = []
    for name in ("admin-0", "admin-1"):
        data = tmp_path / name
        data.mkdir()
        shutil.copy(link_secret, data / "secret")  # the init container's copy
        made.append(make_resources(settings_for(database_url, data)))
    yield make_app(resources=made[0]), make_app(resources=made[1])
    for resources in made:
        resources.close()


def fail(app: FastAPI, username: str) -> int:
    client = TestClient(app, follow_redirects=False)
    token = CSRF.search(client.get("/signin").text)
    assert token is not None
    return client.post(
        "/signin", data={"username": username, "password": "wrong", "csrf_token": token.group(1)}
    ).status_code


def test_signing_out_on_one_replica_ends_the_session_on_every_other(
    replicas: tuple[FastAPI, FastAPI],
) -> None:
    first, second = replicas
    client = sign_in(first, "bursar1", "bursar1-demo")
    cookie = client.cookies["sg_session"]
    other = TestClient(second, follow_redirects=False)
    other.cookies.set("sg_session", cookie)
    assert other.get("/api/me").status_code == 200  # one session, good on both replicas
    token = CSRF.search(client.get("/").text)
    assert token is not None
    assert client.post("/signout", data={"csrf_token": token.group(1)}).status_code == 303
    assert other.get("/api/me").status_code == 401


def test_failed_sign_ins_count_on_every_replica_together(replicas: tuple[FastAPI, FastAPI]) -> None:
    """The per-person limit (5 in 15 minutes by default) is one count, wherever the guesses
    land: alternating replicas does not give anyone twice the tries."""
    first, second = replicas
    codes = [fail(replicas[n % 2], "teacher1") for n in range(5)]
    assert codes == [401] * 5
    for app in (first, second):
        client = TestClient(app, follow_redirects=False)
        token = CSRF.search(client.get("/signin").text)
        assert token is not None
        answer = client.post(
            "/signin",
            data={
                "username": "teacher1",
                "password": "teacher1-demo",
                "csrf_token": token.group(1),
            },
        )
        assert answer.status_code == 429, answer.text
    assert sign_in(second, "pupil1", "pupil1-demo").get("/api/me").status_code == 200
