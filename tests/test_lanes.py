"""The fast lane keeps slow tests out (tests/support/lanes.py): the analysis finds a process
started through a helper, and the tripwire fails a test that starts one in a way the analysis
cannot see, so no slow test is silently kept in the lane."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.lanes import SlowCodeFinder
from tests.support.layout import ROOT


def _helper_that_starts_a_process() -> None:
    subprocess.run(["true"], check=True)


def _calls_the_helper() -> None:
    _helper_that_starts_a_process()


class _Server:
    def start(self) -> None:
        _helper_that_starts_a_process()


def _uses_the_class() -> None:
    _Server().start()


def _pure() -> int:
    return sum(range(10))


def test_the_analysis_follows_helpers_and_classes_and_leaves_pure_code_alone() -> None:
    finder = SlowCodeFinder()
    assert finder.function(_helper_that_starts_a_process)
    assert finder.function(_calls_the_helper)
    assert finder.function(_uses_the_class)
    assert not finder.function(_pure)


LANE_TESTS = """
import subprocess


def helper():
    subprocess.run(["true"], check=True)


def test_uses_a_helper_that_starts_a_process():
    helper()


def test_pure():
    assert 1 + 1 == 2


def test_hides_its_process():
    getattr(__import__("sub" + "process"), "run")(["true"], check=True)
"""


def test_in_the_fast_lane_a_slow_test_is_deselected_or_fails_never_kept(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_lane_example.py").write_text(textwrap.dedent(LANE_TESTS))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--fast",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            f"--rootdir={tmp_path}",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = result.stdout + result.stderr
    assert "1 failed, 1 passed, 1 deselected" in out, out
    assert "test_hides_its_process" in out
    assert "the fast lane started a process" in out
    assert "mark it @pytest.mark.slow" in out
