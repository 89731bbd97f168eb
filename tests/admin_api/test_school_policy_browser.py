"""A school's own break time, changed in a real browser: headless Chromium against a real
`schoolgate admin` process given a trust of two schools (Oak and Elm, each with its own policy
file) and SQLite. Oak's IT technician signs in, sees Oak's table with the trust's morning break,
moves the break in Oak's own file, saves with a reason, and sees the table change; Elm's file
and the trust's base are left as they were. Screenshots are kept as artefacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schoolgate.policy.term_dates import with_calendar_of
from schoolgate.store.db import upgrade
from schoolgate.store.directory import hash_password
from schoolgate.store.policy_files import seed_policy_path
from schoolgate.store.trust_files import load_trust
from tests.support.browser import CHROMIUM_ARGS, need_browser, running_admin, sign_in

pytestmark = [pytest.mark.browser]

PASSWORD = "correct horse battery staple"
TRUST_BREAK = '{name: morning break, kind: break, start: "10:30", end: "10:45"}'
OAK_BREAK = '{name: morning break, kind: break, start: "10:50", end: "11:05"}'


def _trust(folder: Path) -> dict[str, str]:
    """The trust's files in `folder`; returns the admin's environment for it."""
    base = seed_policy_path().read_text(encoding="utf-8")
    (folder / "base.yaml").write_text(base)
    for school in ("oak", "elm"):
        (folder / school).mkdir()
        (folder / school / "policy.yaml").write_text(with_calendar_of(f"# {school}\n", base))
    (folder / "trust.yaml").write_text(
        "name: Test Trust\nbase: base.yaml\nlocks: {categories: [social]}\nschools:\n"
        "  oak: {name: Oak Primary, subnets: [10.1.0.0/16], policy: oak/policy.yaml}\n"
        "  elm: {name: Elm Primary, subnets: [10.2.0.0/16], policy: elm/policy.yaml}\n"
    )
    accounts = {"oak-it": ["Staff", "oak-ITTechnicians"]}
    hashed = hash_password(PASSWORD)
    (folder / "accounts.yaml").write_text(
        json.dumps(
            {"users": {n: {"password_hash": hashed, "groups": g} for n, g in accounts.items()}}
        )
    )
    return {
        "SCHOOLGATE_TRUST_FILE": str(folder / "trust.yaml"),
        "SCHOOLGATE_ADMIN_ACCOUNTS_FILE": str(folder / "accounts.yaml"),
    }


def test_a_schools_it_moves_its_break_in_a_browser(tmp_path: Path, artefacts_dir: Path) -> None:
    chromium, _, sync_api = need_browser()
    env = _trust(tmp_path)
    oak, elm = tmp_path / "oak" / "policy.yaml", tmp_path / "elm" / "policy.yaml"
    elm_before = elm.read_text()
    database = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgrade(database)
    with (
        running_admin(tmp_path, database=database, policy=tmp_path / "base.yaml", env=env) as admin,
        sync_api.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            _story(browser.new_context().new_page(), admin, oak, artefacts_dir)
        finally:
            browser.close()
    assert elm.read_text() == elm_before
    assert (tmp_path / "base.yaml").read_text() == seed_policy_path().read_text()
    policies = load_trust(tmp_path / "trust.yaml").policies  # as the gateway will load it
    breaks = {s: [(p.start, p.end) for p in policies[s].calendar.periods] for s in policies}
    assert str(breaks["oak"][0][0]) == "10:50:00"
    assert str(breaks["elm"][0][0]) == "10:30:00"


def _story(page: Any, admin: str, oak: Path, shots: Path) -> None:
    sign_in(page, admin, "oak-it", PASSWORD)
    page.goto(f"{admin}/policy")
    assert "Oak Primary: the policy" in page.inner_text("h1")
    table = page.inner_text("table.matrix")
    assert "10:30" in table
    assert "10:50" not in table
    text = page.input_value("#edit-text")
    assert TRUST_BREAK in text  # Oak's own file, its calendar a copy of the trust's
    page.fill("#edit-text", text.replace(TRUST_BREAK, OAK_BREAK))
    page.fill("#reason", "Oak's break moves after the hall's assembly")
    page.click("#edit-form button:has-text('Save')")
    page.wait_for_load_state()
    assert "Saved as version" in page.inner_text("main")
    table = page.inner_text("table.matrix")
    assert "10:50" in table
    assert "10:30" not in table
    assert OAK_BREAK in oak.read_text()
    page.screenshot(path=str(shots / "school-policy-break-moved.png"), full_page=True)
    page.goto(f"{admin}/policy/versions")
    assert "Oak's break moves after the hall's assembly" in page.inner_text("#policy-versions")
