"""schemathesis against the admin's OpenAPI schema: generated requests to every API operation,
signed in as each admin role, never get a 5xx. Bounded (a few examples per operation) so the
suite stays quick on a shared machine. Needs `pip install schemathesis` (see the report)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from admin_api.app import make_app
from admin_api.deps import current_user
from admin_api.resources import make_resources
from store.db import upgrade
from tests.admin_api.conftest import CSRF, USERS, settings_for

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402

ROLE = "business_manager"  # the role whose API is largest; others are in the matrix tests


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{folder / 'schoolgate.db'}"
    upgrade(url)
    resources = make_resources(settings_for(url, folder))
    app = make_app(resources=resources)
    user = USERS[ROLE]
    app.dependency_overrides[current_user] = lambda: user
    yield app
    resources.close()


def test_no_generated_request_gets_a_server_error(api_app: FastAPI) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(api_app)
    found = CSRF.search(client.get("/signin").text)
    assert found is not None
    csrf = found.group(1)
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    seen: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            case.headers = {**(case.headers or {}), "X-CSRF-Token": csrf}
            response = case.call(session=client)
            case.validate_response(response, checks=[not_a_server_error])
            seen.append(response.status_code)

        call()
    assert len(seen) >= 3 * len(operations)  # every operation was really called
    assert any(200 <= status < 300 for status in seen)
