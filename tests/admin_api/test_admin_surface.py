"""What the admin shows without sign-in and from other sites (issue 13; security review
findings 20 and 22): /docs is Swagger UI from our own origin with the CSP kept and no
third-party script; /openapi.json needs sign-in; /readyz says only ready or not; an audited
CSV export does not run from another site's link; a session secret of one repeated character
is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from schoolgate.admin_api.settings import Settings
from tests.admin_api.conftest import client_for


def test_docs_serve_only_our_own_scripts_with_the_csp_kept(app: FastAPI) -> None:
    client, _ = client_for(app, "it_technician")
    page = client.get("/docs")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    assert all(source.startswith("/") and not source.startswith("//") for source in sources)
    assert "<script>" not in page.text  # no inline script: the CSP would refuse it anyway
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert "default-src 'self'" in asset.headers["content-security-policy"]
    assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_the_api_description_needs_sign_in(app: FastAPI, path: str) -> None:
    anonymous = TestClient(app, follow_redirects=False)
    assert anonymous.get(path).status_code in (303, 401)
    client, _ = client_for(app, "pupil")
    assert client.get(path).status_code == 200


def test_readyz_says_only_ready_or_not(app: FastAPI) -> None:
    anonymous = TestClient(app)
    answer = anonymous.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"ready": True}  # no policy name, no database problem text


@pytest.mark.parametrize("path", ["/monitoring/events.csv?user=pupil1", "/audit.csv"])
def test_an_audited_export_does_not_run_from_another_sites_link(app: FastAPI, path: str) -> None:
    client, _ = client_for(app, "dsl")
    refused = client.get(path, headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    assert client.get(path, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_a_session_secret_of_one_repeated_character_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(session_secret="a" * 32, data_dir=tmp_path)
