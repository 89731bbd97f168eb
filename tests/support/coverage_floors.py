"""Coverage floors for the packages whose tests run in-process: the full suite
(`./scripts/test.sh` with no arguments) passes `--coverage-floors`, and a package measured below
its floor fails the run. The measurement is pytest-cov's (configured in pyproject.toml's
`[tool.coverage.*]`); the report is written to test-artifacts/coverage/ (HTML) and
test-artifacts/coverage.txt.

Raise a floor when the coverage rises; never lower one to let a change through: add the tests.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.layout import ROOT, package_dir

FLOORS_OPTION = "--coverage-floors"
# Line coverage in per cent, rounded down from what tests/policy and tests/store alone measured
# on 2026-12-03 (policy/ 97.6 %, store/ 91.2 %; the whole suite covers at least that much).
FLOORS: dict[str, float] = {"policy": 97.0, "store": 91.0}


@dataclass(frozen=True)
class Measured:
    package: str
    percent: float
    floor: float

    @property
    def broken(self) -> bool:
        return self.percent < self.floor

    def words(self) -> str:
        verdict = "BELOW ITS FLOOR" if self.broken else "ok"
        return (
            f"{self.package}/: {self.percent:.1f} % of lines (floor {self.floor:.0f} %) {verdict}"
        )


def measure(data_file: Path, floors: dict[str, float]) -> list[Measured]:
    """Each package's line coverage in `data_file` against its floor."""
    import coverage

    cov = coverage.Coverage(data_file=str(data_file), config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    found = []
    for package, floor in floors.items():
        try:
            percent = cov.report(include=[str(package_dir(package) / "*")], file=io.StringIO())
        except coverage.exceptions.NoDataError:
            percent = 0.0
        found.append(Measured(package, percent, floor))
    return found


def _data_file(config: pytest.Config) -> Path | None:
    plugin = config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    cov = getattr(controller, "cov", None)
    if cov is None:
        return None
    return Path(cov.get_data().data_filename())


def add_option(parser: pytest.Parser) -> None:
    parser.addoption(
        FLOORS_OPTION,
        action="store_true",
        default=False,
        help="fail the run when policy/ or store/ is covered below its floor "
        "(needs --cov; ./scripts/test.sh passes both for the full suite)",
    )


class FloorCheck:
    """Registered by tests/conftest.py when --coverage-floors is given."""

    def __init__(self) -> None:
        self.results: list[Measured] = []
        self.problem = ""

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        data_file = _data_file(session.config)
        if data_file is None or not data_file.exists():
            self.problem = (
                "no coverage data: the floors need pytest-cov's --cov (./scripts/test.sh passes it)"
            )
        else:
            self.results = measure(data_file, FLOORS)
        if (self.problem or any(m.broken for m in self.results)) and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section("coverage floors")
        if self.problem:
            terminalreporter.write_line(f"FAILED: {self.problem}", red=True)
        for measured in self.results:
            terminalreporter.write_line(measured.words(), red=measured.broken)
        if any(m.broken for m in self.results):
            terminalreporter.write_line(
                "FAILED: a package's coverage fell below its floor (tests/support/"
                "coverage_floors.py); add tests for the lines the report in "
                "test-artifacts/coverage/ shows red",
                red=True,
            )
