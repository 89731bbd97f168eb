"""The events page by class and name in a real browser at phone width (UX review finding 11):
headless Chromium against a real `schoolgate admin` (the demo directory, SQLite). The DSL
chooses "Year5" from the class list: only Pupil One's visit is shown, by name, and the page
does not scroll sideways at 390 px."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert

from schoolgate.store.db import upgrade
from schoolgate.store.models import EventRow
from tests.admin_api.test_monitoring_words import _event
from tests.support.browser import CHROMIUM_ARGS, Shots, need_browser, running_admin, sign_in

pytestmark = [pytest.mark.browser]


def test_the_dsl_picks_a_class_on_a_phone(tmp_path: Path, artefacts_dir: Path) -> None:
    chromium, _, sync_api = need_browser()
    database = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgrade(database)
    tag = uuid.uuid4().hex[:8]
    at = datetime.now(UTC) - timedelta(minutes=5)
    rows = []
    for n, login in enumerate(["pupil1", "pupil2"]):
        row = _event(tag, n, at, host=f"www.{tag}-videos.com", path="/", category="social")
        row["user"] = login
        rows.append(row)
    engine = create_engine(database)
    with engine.begin() as connection:
        connection.execute(insert(EventRow), rows)
    engine.dispose()
    shots = Shots(artefacts_dir, "monitoring-class")
    with running_admin(tmp_path, database=database) as admin, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
            sign_in(page, admin, "dsl1")
            page.goto(f"{admin}/monitoring/events")
            page.fill("#host", f"{tag}-videos.com")
            page.select_option("#group", "Year5")
            page.click("button:has-text('Show events')")
            page.wait_for_load_state()
            shots.take(page, "year5-phone")
            shown = page.inner_text("table.events")
            assert "Pupil One (Year 5)" in shown
            assert "pupil1" in shown
            assert "Pupil Two" not in shown
            assert page.input_value("#group") == "Year5"
            wide = page.evaluate("document.scrollingElement.scrollWidth")
            assert wide <= page.evaluate("innerWidth"), f"{wide} px wide on a 390 px screen"
        finally:
            browser.close()
