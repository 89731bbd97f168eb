"""schemathesis against the DSL's part of the OpenAPI schema (/api/monitoring/...), signed in as
the DSL (the Business Manager's run in test_schemathesis.py only sees 403s there): generated
filters, cursors, notes and sanctions never get a 5xx. Bounded to a few examples per operation,
on a database with some events, alerts and sanctions in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.deps import current_user
from schoolgate.admin_api.resources import make_resources
from schoolgate.store.db import upgrade
from tests.admin_api.conftest import USERS, settings_for
from tests.admin_api.monitoring_seed import seed_events
from tests.admin_api.schemathesis_run import call_operations


@pytest.fixture(scope="module")
def dsl_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    folder: Path = tmp_path_factory.mktemp("schemathesis-dsl")
    url = f"sqlite:///{folder / 'schoolgate.db'}"
    upgrade(url)
    resources = make_resources(settings_for(url, folder))
    seed_events(resources.sessions, count=300)
    app = make_app(resources=resources)
    user = USERS["dsl"]
    app.dependency_overrides[current_user] = lambda: user
    yield app
    resources.close()


def test_no_generated_request_to_the_dsls_api_gets_a_server_error(dsl_app: FastAPI) -> None:
    operations, seen = call_operations(
        dsl_app, max_examples=10, wanted=lambda op: op.path.startswith("/api/monitoring/")
    )
    assert operations >= 15
    assert len(seen) >= 3 * operations
    assert sum(1 for status in seen if 200 <= status < 300) >= operations
