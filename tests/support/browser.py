"""Headless Chromium for the browser tests, as a school device: Debian's chromium driven by
Playwright, trusting the school CA from its own NSS store."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

from tests.support.needs import need, need_program

# No QUIC (the gateway is an explicit TCP proxy); no background traffic to the outside world.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def need_browser() -> tuple[str, str, ModuleType]:
    """(chromium, certutil, playwright.sync_api), or skip (fail under CI) saying what to get."""
    chromium = need_program("chromium", "chromium")
    certutil = need_program("certutil", "libnss3-tools")
    try:
        import playwright.sync_api as sync_api
    except ImportError:
        need(False, "playwright", "pip install playwright (the Python package; the browser is "
                                  "Debian's chromium)")
        raise
    return chromium, certutil, sync_api


def trust_ca(home: Path, ca_pem: Path, certutil: str) -> None:
    """Make `home`'s NSS store (where Chromium on Linux looks) trust `ca_pem` as a root."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "school", "-i",
                    str(ca_pem)], check=True)
