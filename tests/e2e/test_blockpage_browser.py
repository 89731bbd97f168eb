"""The block page in a real browser: headless Chromium through the gateway, trusting the school
CA from its own NSS store, as a school device would. A screenshot is kept as an artefact."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.gateway import PASSWORD, running_gateway, write_identity, write_policy
from tests.support.needs import need, need_program

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_block_page_renders_in_chromium(tmp_path: Path, artefacts_dir: Path) -> None:
    chromium = need_program("chromium", "chromium")
    certutil = need_program("certutil", "libnss3-tools")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright", "pip install playwright (the Python package; the browser is "
                                  "Debian's chromium)")
        raise
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    with running_gateway(tmp_path / "gw", policy=policy,
                         identity=write_identity(tmp_path / "id")) as gw:
        subprocess.run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
        subprocess.run([certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "school",
                        "-i", str(gw.ca_pem)], check=True)
        env = {**os.environ, "HOME": str(home)}
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium, env=env,
                args=["--no-sandbox", "--disable-quic", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync"],
                proxy={"server": f"http://127.0.0.1:{gw.port}", "username": "staff1",
                       "password": PASSWORD})
            try:
                page = browser.new_page()
                response = page.goto("https://www.facebook.com/")
                assert response is not None
                assert response.status == 403
                text = page.inner_text("body")
                page.screenshot(path=str(artefacts_dir / "blockpage-chromium.png"),
                                full_page=True)
                link = page.get_attribute("a.ask", "href") or ""
            finally:
                browser.close()
    assert "This website is blocked at school" in text
    assert "www.facebook.com" in text
    assert "You can use it at lunch" in text
    assert "If you need this website for your learning, ask for access." in text
    assert link.startswith("http://127.0.0.1:8081/requests/new?token=")
