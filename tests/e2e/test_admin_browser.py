"""The admin in a real browser against the real services: headless Chromium (trusting the school
CA from its own NSS store) browses through a real gateway subprocess as a pupil, and uses the
real admin (`schoolgate admin`, uvicorn) that shares the gateway's SQLite database, data
directory and signing secret. The story, with a screenshot of every step kept as an artefact:

1. the pupil is blocked from a social site and sees the block page; tries a web proxy too;
2. follows "Ask for access" and writes why without a second sign-in (the link's own grant),
   then signs in to follow the request;
3. the Business Manager signs in and approves it for one hour;
4. the pupil's next request goes through the gateway (within the refresh interval);
5. the DSL finds the blocked event and the attempt in the explorer, opens the pupil's
   timeline and records an incident note.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schoolgate.store.db import upgrade
from tests.support.browser import (
    DEMO_IDENTITY,
    Shots,
    chromium_behind,
    need_browser,
    running_admin,
    sign_in,
)
from tests.support.gateway import (
    free_port,
    noon_zone,
    policy_text,
    running_gateway,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

BLOCKED = "www.tiktok.com"  # category "social": blocked for pupils, may be granted
PROXY_SITE = "proxysite.test"  # category "web_proxy": a circumvention attempt
# The pupil browses https:// through the gateway, whose CA the browser trusts. (Chromium sends a
# dummy "GREASE" Encrypted ClientHello extension in every handshake; the gateway intercepts such
# connections rather than refusing them.)
SCHEME = "https"


def write_recommending_policy(path: Path) -> None:
    """The e2e test policy (no break now), but reaching the attempts threshold only recommends
    a sanction: the story's own blocked visits must not put the pupil on a supervised-only
    sanction that would then block the site the Business Manager approves."""
    now = datetime.now(UTC)
    text = policy_text(
        break_from=now - timedelta(hours=4),
        break_until=now - timedelta(hours=3, minutes=30),
        zone=noon_zone(now),
    )
    path.write_text(
        text + "circumvention:\n  threshold: {attempts: 3, within_minutes: 10}\n"
        "  on_threshold: recommend\n"
    )


def test_the_unblock_story_and_the_dsls_incident_note(tmp_path: Path, artefacts_dir: Path) -> None:
    need_browser()  # skip before starting a gateway when there is no browser
    policy = tmp_path / "policy.yaml"
    write_recommending_policy(policy)
    database = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgrade(database)
    shots = Shots(artefacts_dir, "admin")
    # The admin's address goes on the block page, so pick it before the gateway starts.
    admin_port = free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    with (
        running_gateway(
            tmp_path / "gw",
            policy=policy,
            identity=DEMO_IDENTITY,
            extra_args=[
                "--set",
                f"schoolgate_database_url={database}",
                "--set",
                f"schoolgate_admin_url={admin}",
            ],
        ) as gw,
        running_admin(
            tmp_path, port=admin_port, data_dir=gw.data_dir, database=database, policy=policy
        ),
    ):
        home = tmp_path / "home"
        with chromium_behind(  # the admin is reached directly, as the PAC file arranges
            gw.port, gw.ca_pem, home, "pupil1", "pupil1-demo", bypass="127.0.0.1"
        ) as browser:
            _story(browser, admin, shots)
    assert shots.count >= 10


def _story(browser: Any, admin: str, shots: Shots) -> None:
    pupil = browser.new_context().new_page()
    # 1. Blocked, with the block page; then a web proxy (an attempt).
    answer = pupil.goto(f"{SCHEME}://{BLOCKED}/")
    assert answer is not None
    assert answer.status == 403
    assert "This website is blocked at school" in pupil.inner_text("body")
    shots.take(pupil, "pupil-blocked")
    ask = pupil.get_attribute("a.ask", "href") or ""
    assert ask.startswith(f"{admin}/requests/new?token=")
    proxied = pupil.goto(f"{SCHEME}://{PROXY_SITE}/")
    assert proxied is not None
    assert proxied.status == 403
    shots.take(pupil, "pupil-tries-a-proxy")

    # 2. Ask for access: the pupil signed in to the proxy, so the block page's own link opens
    # the form for that site without a second sign-in (docs/admin.md); they write why.
    pupil.goto(ask)
    assert "/signin" not in pupil.url
    assert "/requests/new" in pupil.url
    main = pupil.inner_text("main")
    assert BLOCKED in main
    assert "do not need to sign in again" in main
    assert "Sign out" not in pupil.inner_text("body")  # no session, no menu
    pupil.fill("#why", "Our class is making a dance video for the summer show.")
    shots.take(pupil, "pupil-writes-why")
    pupil.click("form[action='/requests/new'] button[type=submit]")
    pupil.wait_for_load_state()
    assert "Your request has been sent" in pupil.inner_text("main")
    shots.take(pupil, "pupil-request-sent")
    # Following it needs a sign-in: the link opened that one form only.
    pupil.click("text=Sign in to see the answer")
    pupil.wait_for_load_state()
    assert "/signin" in pupil.url
    shots.take(pupil, "pupil-signin")
    sign_in(pupil, admin, "pupil1")
    assert "/requests/mine" in pupil.url
    pupil.click(f"a:has-text('{BLOCKED}')")
    pupil.wait_for_load_state()
    assert re.search(r"/requests/[0-9a-f-]{36}$", pupil.url), pupil.url
    request_url = pupil.url
    assert "pending" in pupil.inner_text("main").lower()

    # 3. The Business Manager approves it for one hour.
    bursar = browser.new_context().new_page()
    bursar.goto(f"{admin}/requests")
    sign_in(bursar, admin, "bursar1")
    bursar.goto(request_url.replace(request_url.split("/requests/")[0], admin))
    shots.take(bursar, "bursar-sees-the-request")
    bursar.check("input[name=scope][value=user]")
    bursar.check("input[name=target_kind][value=host]")
    bursar.check("input[name=duration][value=hours]")
    bursar.fill("#hours", "1")
    bursar.click("form[action$='/approve'] button[type=submit]")
    bursar.wait_for_load_state()
    assert "approved" in bursar.inner_text("main").lower()
    shots.take(bursar, "bursar-approved")
    approved_at = time.monotonic()

    # 4. The pupil's next request goes through (the gateway refreshes every 2 s).
    def opens() -> bool:
        found = pupil.goto(f"{SCHEME}://{BLOCKED}/")
        return found is not None and found.status == 200

    wait_for(opens, timeout=30, what=f"the gateway to let pupil1 open {BLOCKED}")
    took = time.monotonic() - approved_at
    assert "hello from the origin" in pupil.inner_text("body")
    shots.take(pupil, "pupil-gets-through")

    # 5. The DSL finds the event and the attempt, and records an incident note.
    dsl = browser.new_context().new_page()
    dsl.goto(f"{admin}/monitoring/events?user=pupil1&host={PROXY_SITE}")
    sign_in(dsl, admin, "dsl1")
    wait_for(
        lambda: (
            _rows_for(dsl, f"{admin}/monitoring/events?user=pupil1&host={PROXY_SITE}", PROXY_SITE)
            > 0
        ),
        timeout=30,
        what="the attempt to be recorded",
    )
    attempt_row = dsl.locator("tbody tr", has_text=PROXY_SITE).first
    assert "a web proxy or unblocker site" in attempt_row.inner_text()  # in words
    shots.take(dsl, "dsl-finds-the-attempt")
    assert (
        _rows_for(
            dsl, f"{admin}/monitoring/events?user=pupil1&host={BLOCKED}&verdict=block", BLOCKED
        )
        > 0
    )
    shots.take(dsl, "dsl-finds-the-blocked-event")
    dsl.locator("tbody tr").first.get_by_role("link", name="Timeline").click()
    dsl.wait_for_load_state()
    timeline = dsl.inner_text("main")
    assert "pupil1" in timeline
    assert PROXY_SITE in timeline
    shots.take(dsl, "dsl-timeline")
    dsl.get_by_role("link", name="Write an incident note about pupil1").click()
    dsl.wait_for_load_state()
    dsl.fill("#what_happened", f"Tried {PROXY_SITE} after {BLOCKED} was blocked.")
    dsl.fill("#action_taken", "Spoke to pupil1 with the class teacher.")
    dsl.fill("#outcome", "Understood the rules; no sanction this time.")
    shots.take(dsl, "dsl-writes-a-note")
    dsl.click("form[action='/monitoring/incidents'] button[type=submit]")
    dsl.wait_for_load_state()
    notes = dsl.inner_text("main")
    assert "Spoke to pupil1 with the class teacher." in notes
    assert "written" in notes.lower()
    shots.take(dsl, "dsl-note-saved")
    # The Business Manager may not see pupils' browsing.
    bursar.goto(f"{admin}/monitoring/events?user=pupil1")
    assert "only the Designated Safeguarding Lead" in bursar.inner_text("main")
    print(f"the approval reached the gateway in about {took:.1f} s")


def _rows_for(page: Any, url: str, host: str) -> int:
    page.goto(url)
    count: int = page.locator("tbody tr", has_text=host).count()
    return count
