"""The trust's Schools page and the schools' week side by side, in a real browser: headless
Chromium against a real `schoolgate admin --trust` on SQLite holding two schools' rows. The
trust's IT team sees both schools, follows a school's number to its own records, downloads a
school's export, adds a school and removes it; a school's DSL sees only their own school's
row and cannot open the Schools page."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.directory import hash_password
from schoolgate.store.policy_files import seed_policy_path
from tests.admin_api.test_school_isolation import make_rows
from tests.support.browser import CHROMIUM_ARGS, Shots, need_browser, running_admin, sign_in
from tests.support.trusts import write_trust

pytestmark = [pytest.mark.browser]
PASSWORD = "correct horse battery staple"
TRUST = (
    "# Test Trust: two schools\nname: Test Trust\nbase: base.yaml\nschools:\n"
    "  oak: {name: Oak Primary, subnets: [10.1.0.0/16]}\n"
    "  elm: {name: Elm Primary, subnets: [10.2.0.0/16]}\n"
)


def test_the_trusts_it_team_manages_schools_and_a_schools_dsl_sees_its_own(
    tmp_path: Path, artefacts_dir: Path
) -> None:
    chromium, _, sync_api = need_browser()
    database = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgrade(database)
    trust = write_trust(tmp_path, TRUST, {"base.yaml": seed_policy_path().read_text()})
    engine = make_engine(database)
    writer: Any = SimpleNamespace(sessions=sessionmaker(engine))
    rows = {school: make_rows(writer, school, "pupil-shared") for school in ("oak", "elm")}
    engine.dispose()
    hashed = hash_password(PASSWORD)
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        json.dumps(
            {
                "users": {
                    "trust-it": {
                        "password_hash": hashed,
                        "groups": ["trust-ITTechnicians", "trust-DSL"],
                    },
                    "oak-dsl": {"password_hash": hashed, "groups": ["oak-DSL"]},
                }
            }
        )
    )
    shots = Shots(artefacts_dir, "schools")
    with (
        running_admin(
            tmp_path,
            database=database,
            extra_args=("--trust", str(trust)),
            env={"SCHOOLGATE_ADMIN_ACCOUNTS_FILE": str(accounts)},
        ) as admin,
        sync_api.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(accept_downloads=True).new_page()
            sign_in(page, admin, "trust-it", PASSWORD)
            page.click("nav >> text=Schools this week")
            shots.take(page, "summary-trust")
            table = page.inner_text("table.summary")
            assert "Oak Primary" in table
            assert "Elm Primary" in table
            page.click("table.summary tr:has-text('Oak Primary') td:nth-child(5) a")
            page.wait_for_load_state()
            assert "school=oak" in page.url
            assert rows["oak"].tag in page.content()
            assert rows["elm"].tag not in page.content()

            page.click("nav >> text=Schools")
            assert page.url.endswith("/schools")
            with page.expect_download() as download:
                page.click('button:has-text("Download Oak Primary\'s records")')
            saved = tmp_path / "oak.zip"
            download.value.save_as(saved)
            with zipfile.ZipFile(saved) as pack:
                manifest = json.loads(pack.read("manifest.json"))
                held = pack.read("tables/alerts.jsonl").decode()
            assert manifest["school"] == "oak"
            assert rows["oak"].tag in held
            assert rows["elm"].tag not in held

            page.fill("#school_id", "ash")
            page.fill("#school_name", "Ash Infants")
            page.fill("#subnets", "10.3.0.0/16")
            page.click("button:has-text('Add the school')")
            page.wait_for_load_state()
            shots.take(page, "added")
            assert "School added to the trust" in page.inner_text("main")
            assert "Ash Infants" in page.inner_text("table.schools")
            assert "ash:" in trust.read_text()

            page.click("text=Remove Ash Infants")
            page.wait_for_load_state()
            assert "Remove Ash Infants (ash) from the trust?" in page.inner_text("h1")
            page.fill("#school_id_again", "ash")
            shots.take(page, "remove-confirm")
            page.click("button:has-text('Export and remove Ash Infants')")
            page.wait_for_load_state()
            shots.take(page, "removed")
            assert "Ash Infants (ash) was removed from the trust" in page.inner_text("main")
            assert "Ash Infants" not in page.inner_text("table.schools")
            assert trust.read_text() == TRUST

            dsl = browser.new_context().new_page()
            sign_in(dsl, admin, "oak-dsl", PASSWORD)
            assert "Schools" not in dsl.inner_text("nav")
            dsl.goto(f"{admin}/trust")
            shots.take(dsl, "summary-oak-dsl")
            table = dsl.inner_text("table.summary")
            assert "Oak Primary" in table
            assert "Elm Primary" not in table
            refused = dsl.goto(f"{admin}/schools")
            assert refused is not None
            assert refused.status == 403
            assert "IT team may add, export or remove schools" in dsl.inner_text("main")
        finally:
            browser.close()
