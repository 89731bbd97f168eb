"""The systemd units in deploy/systemd, checked by systemd's own `systemd-analyze verify` (and its
offline security score), with ExecStart pointed at the schoolgate installed here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.needs import need_program

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
INSTALLED = "/opt/schoolgate/venv/bin/schoolgate"
UNITS = sorted(p.name for p in DEPLOY.iterdir() if p.suffix in (".service", ".timer"))
SERVICES = [u for u in UNITS if u.endswith(".service")]


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units with ExecStart at this machine's schoolgate (verify checks it is executable)."""
    folder = tmp_path_factory.mktemp("units")
    here = str(Path(sys.executable).parent / "schoolgate")
    for name in UNITS:
        (folder / name).write_text((DEPLOY / name).read_text().replace(INSTALLED, here))
    return folder


def test_the_units_are_there() -> None:
    assert {
        "schoolgate-gateway.service",
        "schoolgate-admin.service",
        "schoolgate-db-upgrade.service",
        "schoolgate-purge.service",
        "schoolgate-purge.timer",
    } <= set(UNITS)


@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify_is_clean(units: Path, name: str) -> None:
    tool = need_program("systemd-analyze", "systemd")
    result = subprocess.run(
        [tool, "verify", "--man=no", name], cwd=units, capture_output=True, text=True, timeout=60
    )
    # verify only warns (exit 0) about unknown keys: any message about our file is a failure.
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "schoolgate" in line]
    assert result.returncode == 0, result.stderr
    assert ours == []


@pytest.mark.parametrize("name", ["schoolgate-gateway.service", "schoolgate-admin.service"])
def test_long_running_services_are_hardened(units: Path, name: str) -> None:
    tool = need_program("systemd-analyze", "systemd")
    result = subprocess.run(
        [tool, "security", "--offline=true", name],
        cwd=units,
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0  # systemd calls <= 2.0 "OK"; an unhardened unit is 9.6


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_restarts_or_is_oneshot_and_reads_the_env_file(name: str) -> None:
    text = (DEPLOY / name).read_text()
    assert "EnvironmentFile=/etc/schoolgate/schoolgate.env" in text
    assert "NoNewPrivileges=yes" in text
    assert "ProtectSystem=strict" in text
    assert "ReadWritePaths=/var/lib/schoolgate" in text
    assert "Restart=on-failure" in text or "Type=oneshot" in text


def test_migrations_run_before_the_gateway_and_the_admin() -> None:
    upgrade = (DEPLOY / "schoolgate-db-upgrade.service").read_text()
    assert "Before=schoolgate-gateway.service schoolgate-admin.service" in upgrade
    for name in ("schoolgate-gateway.service", "schoolgate-admin.service"):
        text = (DEPLOY / name).read_text()
        assert "Requires=schoolgate-db-upgrade.service" in text
        assert "CapabilityBoundingSet=\n" in text  # no capabilities at all on port 8080/8081


def test_every_setting_the_units_use_is_in_the_env_file_example() -> None:
    """A unit's ${NAME} left undefined expands to nothing (M2: no metrics port setting)."""
    folder = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
    example = (folder / "schoolgate.env.example").read_text()
    defined = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    for unit in folder.glob("schoolgate-*.service"):
        used = set(re.findall(r"\$\{([A-Z_]+)\}", unit.read_text()))
        assert used <= defined, (unit.name, used - defined)
    gateway = (folder / "schoolgate-gateway.service").read_text()
    assert "schoolgate_metrics_port=${SCHOOLGATE_METRICS_PORT}" in gateway
