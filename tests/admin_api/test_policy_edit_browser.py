"""Changing the policy in a real browser: headless Chromium against a real `schoolgate admin`
process (uvicorn, a school copy of the seed policy, the demo directory, SQLite). IT edits the
YAML, asks "What would change?" (the recorded lunchtime Facebook visits flip), saves with a
reason, sees the new version running and the file replaced, then restores the old version.
Screenshots of each step are kept as artefacts."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import EventRow
from schoolgate.store.policy_files import load_policy, seed_policy_path
from tests.support.browser import CHROMIUM_ARGS, need_browser, running_admin, sign_in

pytestmark = [pytest.mark.browser]

BREAK_RULE = "    categories: [facebook, social]\n    when: [break]\n"


def _recent_lunch() -> datetime:
    cal = load_policy(None).calendar
    day = datetime.now(cal.timezone).date()
    for _ in range(7):
        day -= timedelta(days=1)
        if cal.is_school_day(day):
            return datetime.combine(day, time(12, 30), cal.timezone).astimezone(UTC)
    raise AssertionError("no school day in the last week")


@contextlib.contextmanager
def admin_with_lunch_events(folder: Path, policy: Path) -> Iterator[str]:
    """The admin on a database holding three Facebook visits at a recent lunch."""
    database = f"sqlite:///{folder / 'schoolgate.db'}"
    upgrade(database)
    engine = make_engine(database)
    lunch = _recent_lunch()
    with Session(engine) as session:
        for i, user in enumerate(["teacher1", "teacher1", "teacher2"]):
            session.add(
                EventRow(
                    id=str(uuid.uuid4()),
                    replica="r",
                    seq=i,
                    at=lunch + timedelta(minutes=i),
                    user=user,
                    role="staff",
                    host="www.facebook.com",
                    verdict=Verdict.ALLOW,
                    reason=Reason.RULE_ALLOW.value,
                    intercepted=False,
                )
            )
        session.commit()
    engine.dispose()
    with running_admin(folder, database=database, policy=policy) as admin:
        yield admin


def test_edit_preview_save_and_restore_in_a_browser(tmp_path: Path, artefacts_dir: Path) -> None:
    chromium, _, sync_api = need_browser()
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(seed_policy_path().read_bytes())
    original = policy.read_text(encoding="utf-8")
    with admin_with_lunch_events(tmp_path, policy) as admin, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            _story(browser.new_context().new_page(), admin, policy, original, artefacts_dir)
        finally:
            browser.close()
    assert policy.read_text(encoding="utf-8") == original


def _shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"policy-edit-{name}.png"), full_page=True)


def _story(page: Any, admin: str, policy: Path, original: str, shots: Path) -> None:
    sign_in(page, admin, "it1")
    page.goto(f"{admin}/policy")
    assert "Running: version 1" in page.inner_text("#running-version")

    page.fill(
        "#edit-text", original.replace(BREAK_RULE, "    categories: [social]\n    when: [break]\n")
    )
    page.click("button:has-text('What would change?')")
    page.wait_for_load_state()
    preview = page.inner_text("#preview")
    assert "Staff would lose facebook during lunch: 3 requests by 2 people" in preview
    assert policy.read_text(encoding="utf-8") == original  # nothing saved yet
    _shot(page, shots, "1-preview")

    page.fill("#reason", "Governors asked: no Facebook at break")
    page.click("#edit-form button:has-text('Save')")
    page.wait_for_load_state()
    assert "Saved as version 2" in page.inner_text("main")
    assert "Running: version 2" in page.inner_text("#running-version")
    assert "categories: [social]\n    when: [break]" in policy.read_text(encoding="utf-8")
    _shot(page, shots, "2-saved")

    page.goto(f"{admin}/policy/versions/1")
    page.fill("#reason", "back to the school's old rule")
    page.click("button:has-text('Restore version 1')")
    page.wait_for_load_state()
    assert "Saved as version 3" in page.inner_text("main")
    _shot(page, shots, "3-restored")
