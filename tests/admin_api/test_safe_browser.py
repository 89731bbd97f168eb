"""The dangerous paths of the admin in a real browser (issue 13, "Safe by default"): headless
Chromium against a real `schoolgate admin` process (uvicorn, the seed policy, the demo
directory, SQLite), with a screenshot of every step at desktop width and of the confirmation
steps at phone width, kept as artefacts:

1. a teacher pastes a URL to ask for a class, and is told what happens next;
2. the Business Manager tries "everyone" and "the whole category": the seed policy refuses;
3. approves what was asked (the class, the site) and is told it is done;
4. a pupil's request for an open site is refused (nothing to decide); once a local block covers
   it, the request widened to every pupil needs the confirmation that states its reach;
5. the local lists refuse a whole ending (co.uk); removing an entry asks why and confirms.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schoolgate.store.db import upgrade
from tests.support.browser import CHROMIUM_ARGS, Shots, need_browser, running_admin, signed_in

pytestmark = [pytest.mark.browser]

WHY = "We are making a class video about online safety in our computing lesson."
PHONE = {"width": 390, "height": 844}


@contextlib.contextmanager
def _admin(folder: Path) -> Iterator[str]:
    """The admin on its own SQLite database in `folder`."""
    database = f"sqlite:///{folder / 'schoolgate.db'}"
    upgrade(database)
    with running_admin(folder, database=database) as admin:
        yield admin


def main_text(page: Any) -> str:
    return str(page.inner_text("main"))


def add_to_list(page: Any, host: str, verdict: str) -> None:
    """Type `host` on the local lists page and add it to the `verdict` list."""
    page.fill("#host", host)
    page.check(f"input[name=verdict][value={verdict}]")
    page.click("button:has-text('Add to the list')")
    page.wait_for_load_state()


def test_the_wide_grant_needs_its_confirmation_and_the_seed_refuses_it_for_pupils(
    tmp_path: Path, artefacts_dir: Path
) -> None:
    chromium, _, sync_api = need_browser()
    shots = Shots(artefacts_dir, "safe")
    with _admin(tmp_path) as admin, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            _story(browser, admin, shots)
        finally:
            browser.close()
    assert shots.count >= 8


def _story(browser: Any, admin: str, shots: Shots) -> None:
    # 1. A teacher pastes the address of a TikTok video and asks for Year5.
    teacher = signed_in(browser, admin, "teacher1")
    teacher.goto(f"{admin}/requests/new")
    teacher.fill("#host", "https://www.tiktok.com/@bbcbitesize/video/123?lang=en")
    teacher.fill("#why", WHY)
    teacher.click("details summary")
    teacher.fill("#for_group", "Year5")
    teacher.click("button:has-text('Send the request')")
    teacher.wait_for_load_state()
    assert "Sent - the Business Manager will look at it" in main_text(teacher)
    assert "Request for www.tiktok.com" in main_text(teacher)
    shots.take(teacher, "teacher-sent")
    request_url = teacher.url.split("?")[0]

    # 2. The Business Manager tries everyone, then the whole category: both refused.
    bursar = signed_in(browser, admin, "bursar1")
    bursar.goto(request_url)
    bursar.check("input[name=scope][value=everyone]")
    bursar.click("button:has-text('Approve')")
    bursar.wait_for_load_state()
    assert "does not allow opening 'social'" in main_text(bursar)
    shots.take(bursar, "bursar-everyone-refused")
    bursar.check("input[name=scope][value=group]")
    bursar.check("input[name=target_kind][value=category]")
    bursar.click("button:has-text('Approve')")
    bursar.wait_for_load_state()
    assert "does not allow opening 'social'" in main_text(bursar)
    assert "Check before you approve" not in main_text(bursar)  # refused, not confirmable

    # 3. What was asked: the class and the site. No confirmation needed; a message says so.
    bursar.check("input[name=scope][value=group]")
    bursar.check("input[name=target_kind][value=host]")
    bursar.click("button:has-text('Approve')")
    bursar.wait_for_load_state()
    assert "Approved. The access starts within a few seconds." in main_text(bursar)
    shots.take(bursar, "bursar-class-approved")

    # 4. A pupil asks for a site that is open: told so, nothing is sent. Once a local block
    # covers it (by mistake), the request is sent; widening it to every pupil needs the
    # confirmation.
    pupil = signed_in(browser, admin, "pupil1")
    pupil.goto(f"{admin}/requests/new")
    pupil.fill("#host", "https://www.example-museum.org/vikings")
    pupil.fill("#why", WHY)
    pupil.click("button:has-text('Send the request')")
    pupil.wait_for_load_state()
    assert (
        "This site, www.example-museum.org, is not blocked for you: you can use it now. "
        "Nothing has been sent."
    ) in main_text(pupil)
    shots.take(pupil, "pupil-request-open-site")
    bursar.goto(f"{admin}/lists")
    add_to_list(bursar, "www.example-museum.org", "block")
    assert "Added to the block list" in main_text(bursar)
    pupil.click("button:has-text('Send the request')")
    pupil.wait_for_load_state()
    assert "Sent - the Business Manager will look at it" in main_text(pupil)
    pupil_request = pupil.url.split("?")[0]
    bursar.goto(pupil_request)
    bursar.check("input[name=scope][value=role]")
    bursar.fill("#who", "pupil")
    bursar.click("button:has-text('Approve')")
    bursar.wait_for_load_state()
    reach = main_text(bursar)
    assert "Check before you approve" in reach
    assert "This lets all 2 pupils use www.example-museum.org" in reach
    shots.take(bursar, "bursar-wide-confirmation")
    bursar.set_viewport_size(PHONE)
    shots.take(bursar, "bursar-wide-confirmation-phone")
    bursar.set_viewport_size({"width": 1366, "height": 768})
    bursar.click("button:has-text('Yes, approve this wider access')")
    bursar.wait_for_load_state()
    assert "Approved." in main_text(bursar)
    pupil.goto(pupil_request)
    assert "you can use it until" in main_text(pupil)
    shots.take(pupil, "pupil-approved-until")

    # 5. The local lists: a whole ending is refused; removing asks why and confirms.
    bursar.goto(f"{admin}/lists")
    add_to_list(bursar, "co.uk", "allow")
    assert "a whole ending shared by many websites" in main_text(bursar)
    shots.take(bursar, "bursar-lists-suffix-refused")
    add_to_list(bursar, "https://www.badsite.example/page", "block")
    assert "Added to the block list" in main_text(bursar)
    bursar.click("a:has-text('Remove www.badsite.example')")
    bursar.wait_for_load_state()
    assert "Remove www.badsite.example?" in main_text(bursar)
    bursar.fill("#reason", "Reported by mistake")
    shots.take(bursar, "bursar-remove-confirm")
    bursar.click("button:has-text('Yes, remove www.badsite.example')")
    bursar.wait_for_load_state()
    assert "Removed from the local lists" in main_text(bursar)
    assert "www.badsite.example" not in main_text(bursar).split("On the lists", 1)[1]
    shots.take(bursar, "bursar-removed")


def test_docs_work_in_the_browser_with_the_csp_on(tmp_path: Path, artefacts_dir: Path) -> None:
    """Security finding 20: Swagger UI from our own origin, under the pages' CSP, still shows
    the API's operations, and nothing is loaded from another origin."""
    chromium, _, sync_api = need_browser()
    with _admin(tmp_path) as admin, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = signed_in(browser, admin, "it1")
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            refused: list[str] = []
            page.on(
                "console",
                lambda message: (
                    refused.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            answer = page.goto(f"{admin}/docs")
            assert answer is not None
            assert "default-src 'self'" in answer.headers["content-security-policy"]
            page.wait_for_selector(".opblock", timeout=20_000)
            assert "/api/requests" in page.inner_text("body")
            page.screenshot(path=str(artefacts_dir / "safe-docs.png"))
        finally:
            browser.close()
    assert requested
    assert all(url.startswith(admin) or url.startswith("data:") for url in requested), requested
    assert refused == []
