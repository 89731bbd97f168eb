"""Who may make the annual review's evidence pack (admin_api/evidence.py), and what a wrong
date gets; the live test itself is in tests/e2e/test_evidence_pack.py."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from admin_api.evidence import review_gateway
from tests.admin_api.conftest import client_for


@pytest.mark.parametrize(("role", "status"), [
    ("pupil", 403), ("staff", 403), ("business_manager", 200), ("dsl", 200),
    ("it_technician", 200)])
def test_the_pack_is_for_the_dsl_it_and_the_bursar(app: FastAPI, role: str,
                                                   status: int) -> None:
    app.dependency_overrides[review_gateway] = lambda: None
    client, _ = client_for(app, role)
    page = client.get("/review", params={"date": "2026-12-18"})
    assert page.status_code == status
    if status == 200:
        assert "Annual filtering review" in page.text
        assert "not tried: no gateway set for the live test" in page.text
        assert "Friday 18 December" in page.text
        pdf = client.get("/review.pdf", params={"date": "2026-12-18"})
        assert pdf.content.startswith(b"%PDF")


def test_a_wrong_date_gets_a_plain_sentence(app: FastAPI) -> None:
    app.dependency_overrides[review_gateway] = lambda: None
    client, _ = client_for(app, "dsl")
    page = client.get("/review", params={"date": "next Friday"})
    assert page.status_code == 422
    assert "Please give the day as a date, for example 2026-12-18" in page.text
