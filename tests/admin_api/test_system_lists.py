"""The IT technician's system page shows each list's age and entries, stale lists, and the
empty categories with how to fill them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.resources import make_resources
from schoolgate.admin_api.system import age_text
from tests.admin_api.conftest import client_for, settings_for

POLICY = """
name: system page lists
roles: {pupil: Pupils, staff: Staff}
default_role: pupil
categories:
  illegal_content: {locked: true, domains: [], description: IWF slot}
  adult: {lists: [adult.txt]}
  gambling: {domains: []}
calendar: {timezone: Europe/London, school_day: {start: "08:45", end: "15:15"}}
rules:
  - {name: adult, roles: all, categories: [adult], action: block}
default: allow
"""


def test_system_page_shows_lists(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "adult.txt").write_text(
        "# category: adult\n# description: d\n"
        "# compiled: 2026-11-01\n# source: s\n"
        "a.example\nb.example\nc.example\n"
    )
    updated = datetime.now(UTC) - timedelta(days=3)
    (tmp_path / "lists-state.json").write_text(
        json.dumps(
            {
                "lists": {
                    "adult.txt": {
                        "updated_at": updated.isoformat(),
                        "last_error": "source ut1: HTTP 404",
                    }
                }
            }
        )
    )
    (tmp_path / "lists.yaml").write_text("max_age_hours: 48\nsources: []\n")
    resources = make_resources(
        settings_for(database_url, tmp_path / "data", policy_file=tmp_path / "policy.yaml")
    )
    try:
        client, _ = client_for(make_app(resources=resources), "it_technician")
        page = client.get("/system")
    finally:
        resources.close()
    assert page.status_code == 200
    text = page.text
    assert "<td>adult.txt</td><td>adult</td><td>3</td><td>3 days</td>" in text
    assert "out of date: last update failed (source ut1: HTTP 404)" in text
    assert "These categories are empty" in text
    assert "<strong>illegal_content</strong>" in text
    assert "<strong>gambling</strong>" in text
    assert "IWF or CTIRU" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (-5, "0 minutes"),
        (59 * 60, "59 minutes"),
        (3 * 3600, "3 hours"),
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
    ],
)
def test_age_text(seconds: float | None, text: str) -> None:
    assert age_text(seconds) == text
