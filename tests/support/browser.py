"""Headless Chromium for the browser tests, as a school device: Debian's chromium driven by
Playwright, trusting the school CA from its own NSS store; and what every admin browser test
needs: `schoolgate admin` on a free loopback port, signing in through the form, numbered
screenshots."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support.gateway import SCHOOLGATE, free_port, wait_until_listening
from tests.support.needs import need, need_program

ROOT = Path(__file__).resolve().parents[2]
DEMO_IDENTITY = ROOT / "schoolgate" / "store" / "data" / "demo-identity.yaml"

# No QUIC (the gateway is an explicit TCP proxy); no background traffic to the outside world.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def need_browser() -> tuple[str, str, ModuleType]:
    """(chromium, certutil, playwright.sync_api), or skip (fail under CI) saying what to get."""
    chromium = need_program("chromium", "chromium")
    certutil = need_program("certutil", "libnss3-tools")
    try:
        import playwright.sync_api as sync_api
    except ImportError:
        need(
            False,
            "playwright",
            "pip install playwright (the Python package; the browser is Debian's chromium)",
        )
        raise
    return chromium, certutil, sync_api


def trust_ca(home: Path, ca_pem: Path, certutil: str) -> None:
    """Make `home`'s NSS store (where Chromium on Linux looks) trust `ca_pem` as a root."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run(
        [certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "school", "-i", str(ca_pem)],
        check=True,
    )


@contextlib.contextmanager
def chromium_behind(
    gateway_port: int,
    ca_pem: Path,
    home: Path,
    username: str,
    password: str,
    *,
    bypass: str | None = None,
) -> Iterator[Any]:
    """Chromium as a school device: trusting the gateway's CA (an NSS store in `home`) and
    going through the gateway on `gateway_port` signed in as `username` (but straight to
    `bypass`, as the school's PAC file arranges for the admin); closed after."""
    chromium, certutil, sync_api = need_browser()
    trust_ca(home, ca_pem, certutil)
    proxy = {
        "server": f"http://127.0.0.1:{gateway_port}",
        "username": username,
        "password": password,
    }
    if bypass is not None:
        proxy["bypass"] = bypass
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            env={**os.environ, "HOME": str(home)},
            args=CHROMIUM_ARGS,
            proxy=proxy,
        )
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, admin: str, username: str, password: str | None = None) -> None:
    """Sign in through the form (the page the admin sent us to, or /signin); the demo
    directory's password is `<user>-demo`."""
    if "/signin" not in page.url:
        page.goto(f"{admin}/signin")
    page.fill("#username", username)
    page.fill("#password", password if password is not None else f"{username}-demo")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/signin" not in page.url, page.inner_text("main")


def signed_in(browser: Any, admin: str, username: str) -> Any:
    """A new page in a new context (its own cookies), signed in as `username`."""
    page = browser.new_context().new_page()
    sign_in(page, admin, username)
    return page


class Shots:
    """Numbered full-page screenshots in a folder, named `<prefix>-NN-<name>.png`."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder = folder
        self.prefix = prefix
        self.count = 0

    def take(self, page: Any, name: str) -> None:
        self.count += 1
        page.screenshot(
            path=str(self.folder / f"{self.prefix}-{self.count:02d}-{name}.png"), full_page=True
        )


@contextlib.contextmanager
def running_admin(
    folder: Path,
    *,
    database: str,
    port: int | None = None,
    data_dir: Path | None = None,
    policy: Path | None = None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """`schoolgate admin` on a free (or the given) loopback port with the demo directory,
    `folder/data` as its data directory unless one is given (a gateway's, whose secret signs
    the block page's links), until the block ends; yields its address. `extra_args` and `env`
    are added to its command line and environment."""
    port = port or free_port()
    if data_dir is None:
        data_dir = folder / "data"
        data_dir.mkdir()
    log = folder / "admin.log"
    command = [
        str(SCHOOLGATE),
        "admin",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--identity",
        str(DEMO_IDENTITY),
        "--database",
        database,
        *(["--policy", str(policy)] if policy else []),
        *extra_args,
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHOOLGATE_SCHOOL_NAME": "Test Primary",
        **(env or {}),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=folder, env=environment
        )
    try:
        wait_until_listening(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
