"""Suite-wide fixtures and hooks: where test artefacts (screenshots, logs) are kept, the fast
lane (`pytest --fast`: the tests that start no process and need no service; see
tests/support/lanes.py for how they are told apart) and the coverage floors of the full suite
(`--coverage-floors`, tests/support/coverage_floors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.coverage_floors import FLOORS_OPTION, FloorCheck, add_option
from tests.support.lanes import (
    FAST_OPTION,
    SLOW_FOLDERS,
    Tripwire,
    keep_fast_items,
    mark_slow_items,
)

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        FAST_OPTION,
        action="store_true",
        default=False,
        help="the fast lane: only the tests that start no process and need no "
        "service (the others are deselected; one that starts a process fails)",
    )
    add_option(parser)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption(FAST_OPTION):
        Tripwire.arm()
    if config.getoption(FLOORS_OPTION):
        config.pluginmanager.register(FloorCheck(), "schoolgate-coverage-floors")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fast lane does not even collect the folders whose every test is slow."""
    if (
        config.getoption(FAST_OPTION)
        and collection_path.parent == ROOT / "tests"
        and collection_path.name in SLOW_FOLDERS
    ):
        return True
    return None


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_slow_items(items)
    if config.getoption(FAST_OPTION):
        keep_fast_items(config, items)


@pytest.fixture(scope="session")
def artefacts_dir() -> Path:
    """test-artifacts/ at the project root: screenshots and logs worth keeping after a run."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
