"""Who may make the annual review's evidence pack (admin_api/evidence.py), and what a wrong
date gets; the live test itself is in tests/e2e/test_evidence_pack.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi import FastAPI

from schoolgate.admin_api.evidence import review_gateway
from tests.admin_api.conftest import client_for


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("pupil", 403),
        ("staff", 403),
        ("business_manager", 200),
        ("dsl", 200),
        ("it_technician", 200),
    ],
)
def test_the_pack_is_for_the_dsl_it_and_the_bursar(app: FastAPI, role: str, status: int) -> None:
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


def pdf_pages(pdf: bytes, tmp_path: Path) -> list[str]:
    """The text of each page, as poppler's pdftotext lays it out."""
    if shutil.which("pdftotext") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pdftotext is missing: install Debian's poppler-utils")
        pytest.skip("pdftotext is missing: install Debian's poppler-utils")
    path = tmp_path / "pack.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return text.split("\f")


def test_the_pdf_reads_as_words_for_governors(app: FastAPI, tmp_path: Path) -> None:
    app.dependency_overrides[review_gateway] = lambda: None
    client, _ = client_for(app, "dsl")
    pdf = client.get("/review.pdf", params={"date": "2026-12-18"})
    pages = pdf_pages(pdf.content, tmp_path)
    text = "\n".join(pages)
    assert "social_media_manager" not in text  # roles in words, never cut mid-name
    assert "social media manager" in text.lower()
    assert "Friday 18 December 2026 is a school day" in text  # not "2026-12-18 (Friday)"
    # The seed forces SafeSearch for pupils: the pack must not say it does not.
    assert "does not enforce SafeSearch" not in text
    assert "SafeSearch is forced for pupil" in text
    signing = [i for i, page in enumerate(pages) if "Sign-off" in page]
    assert len(signing) == 1
    for who in ("Designated Safeguarding Lead", "Governor responsible", "Headteacher"):
        assert who in pages[signing[0]]  # the sign-off is one block on one page
