"""Drive schemathesis by hand over an app's OpenAPI operations (its pytest plug-in does not run
on this pytest): generated requests, each checked for a server error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.admin_api.conftest import CSRF


def call_operations(
    app: FastAPI,
    *,
    max_examples: int,
    wanted: Callable[[Any], bool] = lambda operation: True,
) -> tuple[int, list[int]]:
    """(how many operations were exercised, the status of every generated request). Each
    request carries the signed-in client's CSRF token; any 5xx fails at once."""
    client = TestClient(app)
    found = CSRF.search(client.get("/signin").text)
    assert found is not None
    csrf = found.group(1)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [
        op for op in (result.ok() for result in schema.get_all_operations()) if wanted(op)
    ]
    seen: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            case.headers = {**(case.headers or {}), "X-CSRF-Token": csrf}
            response = case.call(session=client)
            case.validate_response(response, checks=[not_a_server_error])
            seen.append(response.status_code)

        call()
    return len(operations), seen
