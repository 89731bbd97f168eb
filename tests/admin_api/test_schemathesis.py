"""schemathesis against the admin's OpenAPI schema: generated requests to every API operation,
signed in as each admin role, never get a 5xx. Bounded (a few examples per operation) so the
suite stays quick on a shared machine. Needs `pip install schemathesis` (see the report)."""

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
from tests.admin_api.schemathesis_run import call_operations

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
    operations, seen = call_operations(api_app, max_examples=8)
    assert operations >= 15
    assert len(seen) >= 3 * operations  # every operation was really called
    assert any(200 <= status < 300 for status in seen)
