"""The block page in a real browser: headless Chromium through the gateway, trusting the school
CA from its own NSS store, as a school device would. A screenshot is kept as an artefact."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import chromium_behind, need_browser
from tests.support.gateway import PASSWORD, running_gateway, write_identity, write_policy

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_block_page_renders_in_chromium(tmp_path: Path, artefacts_dir: Path) -> None:
    need_browser()  # skip before starting a gateway when there is no browser
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)
    home = tmp_path / "home"
    with (
        running_gateway(
            tmp_path / "gw", policy=policy, identity=write_identity(tmp_path / "id")
        ) as gw,
        chromium_behind(gw.port, gw.ca_pem, home, "staff1", PASSWORD) as browser,
    ):
        page = browser.new_page()
        response = page.goto("https://www.facebook.com/")
        assert response is not None
        assert response.status == 403
        text = page.inner_text("body")
        page.screenshot(path=str(artefacts_dir / "blockpage-chromium.png"), full_page=True)
        link = page.get_attribute("a.ask", "href") or ""
    assert "This website is blocked at school" in text
    assert "www.facebook.com" in text
    assert "You can use it at lunch" in text
    assert "If you need this website for your work, you can ask the Business Manager" in text
    assert link.startswith("http://127.0.0.1:8081/requests/new?token=")
