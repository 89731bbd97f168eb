"""Tests that need a real service (slapd, PostgreSQL, chromium) call `need(...)`.

On a developer's machine a missing service skips the test with a message saying how to get it.
Under CI (CI=true) it fails instead: CI must run every real-parts test, never skip one.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(available: bool, what: str, how: str) -> None:
    """Skip (or, under CI, fail) the calling test when `available` is false."""
    if available:
        return
    message = f"{what} is not available: {how}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: tests that need it must run, not skip)", pytrace=False)
    pytest.skip(message)


def need_program(name: str, package: str) -> str:
    """The path of program `name`, or skip/fail saying which Debian package provides it."""
    for candidate in (name, f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        path = shutil.which(candidate)
        if path:
            return path
    need(
        False,
        name,
        f"install Debian's '{package}' (apt-get install {package}) "
        "or run ./scripts/test.sh as root, which installs it",
    )
    raise AssertionError("unreachable")
