"""The admin's time zone is the policy's (issue 13): the gateway decides lesson times in the
policy calendar's zone, so the admin shows times in that zone unless SCHOOLGATE_SCHOOL_TIMEZONE
is given, and a given zone that differs from the policy's stops the admin at start-up with a
message saying what to change (before, the admin silently showed Europe/London times)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.resources import make_resources
from schoolgate.store.models import EventRow
from tests.admin_api.conftest import DEMO_IDENTITY, TEST_SECRET, client_for, settings_for
from tests.admin_api.test_monitoring_words import _event

SEED = Path(__file__).resolve().parents[2] / "schoolgate" / "policy" / "data" / "seed.yaml"


def _policy_in(folder: Path, zone: str) -> Path:
    text = SEED.read_text(encoding="utf-8")
    assert "  timezone: Europe/London\n" in text
    path = folder / "policy.yaml"
    path.write_text(text.replace("  timezone: Europe/London\n", f"  timezone: {zone}\n"))
    return path


def test_without_the_setting_the_admin_uses_the_policys_zone(
    database_url: str, tmp_path: Path
) -> None:
    policy = _policy_in(tmp_path, "America/New_York")
    resources = make_resources(settings_for(database_url, tmp_path, policy_file=policy))
    try:
        assert resources.settings.zone == ZoneInfo("America/New_York")
        tag = uuid.uuid4().hex[:8]
        row = _event(
            tag,
            0,
            datetime(2031, 1, 14, 17, 30, tzinfo=UTC),
            host=f"{tag}.example",
            path="/",
            category=None,
        )
        with resources.sessions() as session:
            session.execute(insert(EventRow), [row])
            session.commit()
        app = make_app(resources=resources)
        client, _ = client_for(app, "dsl")
        page = client.get("/monitoring/events", params={"host": f"{tag}.example"})
        assert page.status_code == 200
        assert "Tuesday 14 January 2031, 12:30:00" in page.text  # 17:30 UTC in New York
    finally:
        resources.close()


def test_the_same_zone_given_twice_is_fine(database_url: str, tmp_path: Path) -> None:
    resources = make_resources(
        settings_for(database_url, tmp_path, school_timezone="Europe/London")
    )
    try:
        assert resources.settings.zone == ZoneInfo("Europe/London")
    finally:
        resources.close()


def test_a_zone_that_differs_from_the_policys_is_refused(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the policy's calendar is in Europe/London") as found:
        make_resources(settings_for(database_url, tmp_path, school_timezone="Asia/Tokyo"))
    assert "Remove SCHOOLGATE_SCHOOL_TIMEZONE" in str(found.value)


def test_the_admin_stops_at_start_up_on_a_mismatch(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SCHOOLGATE_DATA_DIR": str(tmp_path),
        "SCHOOLGATE_IDENTITY_FILE": str(DEMO_IDENTITY),
        "SCHOOLGATE_SESSION_SECRET": TEST_SECRET,
        "SCHOOLGATE_SCHOOL_TIMEZONE": "Asia/Tokyo",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "schoolgate"), "admin", "--listen-port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "SCHOOLGATE_SCHOOL_TIMEZONE is Asia/Tokyo but the policy's calendar" in done.stderr
    assert "Traceback" not in done.stderr
