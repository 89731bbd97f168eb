"""schemathesis against the DSL's part of the OpenAPI schema (/api/monitoring/...), signed in as
the DSL (the Business Manager's run in test_schemathesis.py only sees 403s there): generated
filters, cursors, notes and sanctions never get a 5xx. Bounded to a few examples per operation,
on a database with some events, alerts and sanctions in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from admin_api.app import make_app
from admin_api.deps import current_user
from admin_api.resources import make_resources
from store.db import upgrade
from tests.admin_api.conftest import CSRF, USERS, settings_for
from tests.admin_api.monitoring_seed import seed_events

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402


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
    client = TestClient(dsl_app)
    found = CSRF.search(client.get("/signin").text)
    assert found is not None
    csrf = found.group(1)
    schema = schemathesis.openapi.from_asgi("/openapi.json", dsl_app)
    operations = [op for op in (result.ok() for result in schema.get_all_operations())
                  if op.path.startswith("/api/monitoring/")]
    assert len(operations) >= 15
    seen: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            case.headers = {**(case.headers or {}), "X-CSRF-Token": csrf}
            response = case.call(session=client)
            case.validate_response(response, checks=[not_a_server_error])
            seen.append(response.status_code)

        call()
    assert len(seen) >= 3 * len(operations)
    assert sum(1 for status in seen if 200 <= status < 300) >= len(operations)
