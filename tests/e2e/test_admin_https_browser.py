"""H1 of the operations review, in a real browser: the admin served over HTTPS with a
certificate from the school CA (`schoolgate ca server-cert`, `schoolgate admin --tls-cert`)
under a real host name, with its default Secure sign-in cookie. Headless Chromium trusts only
the school CA (as school devices do) and maps the name to loopback; signing in must work, where
the review's plain-HTTP admin under a host name silently sent people back to the sign-in form.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from schoolgate.cli import main
from tests.support.browser import CHROMIUM_ARGS, need_browser, sign_in, trust_ca
from tests.support.gateway import SCHOOLGATE, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]
DEMO_IDENTITY = ROOT / "schoolgate" / "store" / "data" / "demo-identity.yaml"
NAME = "admin.school.test"


def test_signing_in_to_the_https_admin_under_its_host_name_works(tmp_path: Path) -> None:
    chromium, certutil, sync_api = need_browser()
    data, tls = tmp_path / "data", tmp_path / "tls"
    assert (
        main(
            [
                "ca",
                "server-cert",
                "--data-dir",
                str(data),
                "--host",
                NAME,
                "--host",
                "127.0.0.1",
                "--out-dir",
                str(tls),
            ]
        )
        == 0
    )
    ca = data / "ca" / "mitmproxy-ca-cert.pem"
    port = free_port()
    env = {**os.environ, "SCHOOLGATE_COOKIE_SECURE": "true"}
    admin = subprocess.Popen(
        [
            str(SCHOOLGATE),
            "admin",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            str(port),
            "--data-dir",
            str(data),
            "--identity",
            str(DEMO_IDENTITY),
            "--tls-cert",
            str(tls / "admin-cert.pem"),
            "--tls-key",
            str(tls / "admin-key.pem"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(
                    f"https://127.0.0.1:{port}/healthz",
                    timeout=3,
                    verify=ssl.create_default_context(cafile=str(ca)),
                )
                break
            except httpx.HTTPError:
                assert admin.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.3)
        home = tmp_path / "home"
        trust_ca(home, ca, certutil)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                env={**os.environ, "HOME": str(home)},
                args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {NAME} 127.0.0.1"],
            )
            try:
                context = browser.new_context()
                page = context.new_page()
                page.goto(f"https://{NAME}:{port}/signin")  # no certificate warning: trusted
                sign_in(page, f"https://{NAME}:{port}", "bursar1")
                cookies = context.cookies()
                assert cookies
                assert all(c["secure"] for c in cookies)
            finally:
                browser.close()
    finally:
        admin.terminate()
        admin.wait(20)
