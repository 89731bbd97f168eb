"""The school calendar, end to end: the IT technician's story in Chromium against a real
`schoolgate admin` sharing a policy file and database with a real gateway (`schoolgate
gateway`). At desktop and phone width: import the local authority's term dates (.ics), correct
one item, save with a reason, see it in the year view and in the version history; axe-core
finds nothing and at 390 px nothing is wider than the screen. At desktop width, the gateway
then uses the new calendar: today made a closure ends staff's break-time Facebook."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schoolgate.store.db import upgrade
from schoolgate.store.policy_files import load_policy
from tests.e2e.test_admin_stories import WIDTHS, Story, _context
from tests.support.browser import CHROMIUM_ARGS, need_browser, running_admin
from tests.support.gateway import (
    Gateway,
    free_port,
    running_gateway,
    wait_for,
    write_identity,
    write_policy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
# What the staff meeting is corrected to at each width, and how the year view then says it.
KINDS = {
    "desktop": ("inset", "Staff meeting (INSET day) (INSET day (no pupils))"),
    "phone": ("closure", "Staff meeting (school closed)"),
}


def term_dates(today: date) -> bytes:
    """The county's file: today a snow day, a week on a staff meeting (not understood), and a
    term around both."""

    def event(uid: str, first: date, days: int, summary: str) -> str:
        return (
            f"BEGIN:VEVENT\r\nUID:{uid}@county.example\r\nDTSTAMP:20260301T120000Z\r\n"
            f"DTSTART;VALUE=DATE:{first:%Y%m%d}\r\n"
            f"DTEND;VALUE=DATE:{first + timedelta(days=days):%Y%m%d}\r\n"
            f"SUMMARY:{summary}\r\nEND:VEVENT\r\n"
        )

    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//County//Term dates//EN\r\n"
        + event("term", today - timedelta(days=30), 61, "Current term")
        + event("snow", today, 1, "Snow day - school closed")
        + event("meeting", today + timedelta(days=7), 1, "Staff meeting")
        + "END:VCALENDAR\r\n"
    ).encode()


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("calendar")
    policy = tmp / "policy.yaml"
    write_policy(policy, in_break=True, break_seconds=3600)  # staff may use Facebook now
    database = f"sqlite:///{tmp / 'schoolgate.db'}"
    upgrade(database)
    admin_port = free_port()
    with (
        running_gateway(
            tmp / "gw",
            policy=policy,
            identity=write_identity(tmp / "id"),
            extra_args=["--set", f"schoolgate_database_url={database}"],
        ) as gw,
        running_admin(tmp, database=database, port=admin_port, data_dir=gw.data_dir, policy=policy),
    ):
        yield {"admin": f"http://127.0.0.1:{admin_port}", "gw": gw, "policy": policy, "tmp": tmp}


def _facebook(gw: Gateway) -> int:
    with gw.client("staff1") as client:
        return client.get("http://facebook.com/").status_code


def _sign_in(page: Any, admin: str) -> None:
    page.goto(f"{admin}/signin")
    page.fill("#username", "it1")
    page.fill("#password", "it1-demo")
    page.click("button[type=submit]")
    page.wait_for_load_state()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_it_imports_corrects_and_saves_the_term_dates(
    services: dict[str, Any], width: str, artefacts_dir: Path
) -> None:
    chromium, _, sync_api = need_browser()
    admin, gw, policy = services["admin"], services["gw"], services["policy"]
    zone = ZoneInfo(load_policy(policy).calendar.timezone.key)
    today = datetime.now(UTC).astimezone(zone).date()
    ics = services["tmp"] / f"term-dates-{width}.ics"
    ics.write_bytes(term_dates(today))
    if width == "desktop":
        assert _facebook(gw) == 200  # break time on a school day: staff may
    shots = artefacts_dir / "stories"
    shots.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, env={**os.environ}
        )
        try:
            page = _context(browser, width).new_page()
            story = Story(page, width, "it-calendar", shots)
            _sign_in(page, admin)
            text = story.visit(f"{admin}/calendar", "year-before")
            assert "School calendar" in text
            page.click("text=Change the dates or import term dates")
            story.look("editor")
            page.set_input_files("#file", str(ics))
            page.click("button:has-text('Read the file')")
            text = story.look("imported")
            assert "What the file says" in text
            assert '"Staff meeting"' in text
            assert "its name says no term" in text
            # Correct one item: the staff meeting is an INSET day (no pupils); on the phone,
            # a closure (so the second save is a change too).
            row = page.locator("input[value='Staff meeting']").get_attribute("id")
            page.select_option(f"#kind_{row.split('_')[1]}", KINDS[width][0])
            page.fill("#reason", f"County term dates ({width})")
            page.click("#calendar-form button:has-text('Save')")
            text = story.look("saved")
            assert "Saved as version" in text
            cell = page.locator("td[aria-current='date']").inner_text()
            assert (
                "Snow day - school closed (school closed) (today)"
                in page.locator("td[aria-current='date'] .visually-hidden").inner_text()
            )
            assert cell.split()[:2] == [str(today.day), "C"]
            meeting = today + timedelta(days=7)
            assert f"{meeting:%A} {meeting.day} {meeting:%B}: {KINDS[width][1]}" in page.content()
            text = story.visit(f"{admin}/policy/versions", "versions")
            assert f"school calendar: County term dates ({width})" in text
        finally:
            browser.close()
    assert story.problems == []
    if width == "desktop":
        # The gateway reloads the policy file: today is now closed, so it is not break time.
        wait_for(lambda: _facebook(gw) == 403, timeout=30, what="the closure in force")
