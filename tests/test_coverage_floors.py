"""The coverage floors (tests/support/coverage_floors.py) fail a run that covers too little: a
real pytest run with `--cov --coverage-floors` over one small test file leaves store/ almost
uncovered, and must fail saying so; without `--coverage-floors` the same run passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.coverage_floors import FLOORS, Measured
from tests.support.layout import package_dir

ROOT = Path(__file__).resolve().parent


def run_pytest(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    data = tmp_path / ".coverage"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'inner'}",
            "--cov",
            "--cov-report=",
            f"--cov-config={ROOT.parent / 'pyproject.toml'}",
            *extra,
            str(ROOT / "policy" / "test_names.py"),
        ],
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"COVERAGE_FILE": str(data), "PATH": str(Path(sys.executable).parent)},
    )


@pytest.mark.slow
def test_a_run_below_a_floor_fails_and_says_which_package(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "--coverage-floors")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "passed" in result.stdout  # the tests themselves passed
    assert "store/: " in result.stdout
    assert "BELOW ITS FLOOR" in result.stdout
    assert "coverage fell below its floor" in result.stdout


@pytest.mark.slow
def test_without_the_option_the_floors_are_not_checked(tmp_path: Path) -> None:
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "coverage floors" not in result.stdout


def test_the_floors_are_for_policy_and_store_and_the_words_say_when_one_is_broken() -> None:
    assert set(FLOORS) == {"policy", "store"}
    assert all(package_dir(p).is_dir() for p in FLOORS)
    assert Measured("store", 90.94, 91.0).broken
    assert not Measured("store", 91.0, 91.0).broken
    assert Measured("store", 90.94, 91.0).words() == (
        "store/: 90.9 % of lines (floor 91 %) BELOW ITS FLOOR"
    )
