"""scripts/: the README's commands set up a fresh machine. Without a PostgreSQL server on the
configured address, scripts/with-postgres.sh (which ./scripts/test.sh runs pytest under) starts
a private cluster on a free loopback port for the run, points the tests at it and removes it
afterwards; an answering server is used as it is. CI runs the README's test command."""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.needs import need
from tests.support.postgres import shared_postgres_available

ROOT = Path(__file__).resolve().parents[2]
WITH_POSTGRES = ROOT / "scripts" / "with-postgres.sh"
PROBE = (
    "import os, psycopg; port = os.environ['SCHOOLGATE_TEST_PG_PORT']; "
    "psycopg.connect(f'host=127.0.0.1 port={port} user=postgres dbname=postgres')"
    ".execute('SELECT 1'); print('PORT', port)"
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_without_a_server_a_private_cluster_runs_for_the_command_and_is_removed(
    tmp_path: Path,
) -> None:
    need(
        bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or os.geteuid() == 0,
        "PostgreSQL's initdb",
        "apt-get install postgresql (./scripts/test.sh does, as root)",
    )
    before = set(glob.glob("/tmp/sg-test-pg.*"))
    missing = closed_port()
    proc = subprocess.run(
        [str(WITH_POSTGRES), sys.executable, "-c", PROBE],
        env={**os.environ, "SCHOOLGATE_TEST_PG_PORT": str(missing), "SG_PY": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    port = int(proc.stdout.split("PORT ")[1])
    assert port != missing
    assert f"started a private one for this run on 127.0.0.1:{port}" in proc.stderr
    with socket.socket() as s:  # stopped after the run
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert set(glob.glob("/tmp/sg-test-pg.*")) == before  # and its files removed


def test_an_answering_server_is_used_as_it_is() -> None:
    need(
        shared_postgres_available(),
        "PostgreSQL on the configured address",
        "./scripts/test.sh starts one",
    )
    port = os.environ.get("SCHOOLGATE_TEST_PG_PORT", "5432")
    proc = subprocess.run(
        [str(WITH_POSTGRES), sys.executable, "-c", PROBE],
        env={**os.environ, "SCHOOLGATE_TEST_PG_PORT": port},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"PORT {port}"
    assert "private" not in proc.stderr


def test_the_exit_code_of_the_command_is_kept() -> None:
    proc = subprocess.run(
        [str(WITH_POSTGRES), "sh", "-c", "exit 7"],
        env={**os.environ, "SG_PY": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 7


@pytest.mark.parametrize("script", ["test.sh"])
def test_the_test_command_runs_pytest_under_with_postgres(script: str) -> None:
    text = (ROOT / "scripts" / script).read_text()
    assert 'with-postgres.sh" "$SG_PY" -m pytest "${coverage[@]}" "$@"' in text
    # the fast lane needs neither PostgreSQL nor the system packages
    assert 'exec "$SG_PY" -m pytest --fast "$@"' in text
    assert "./scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test.sh" in (ROOT / "README.md").read_text()


# --- scripts/bootstrap.sh: what each command installs (newcomer review 10) ---------------------
# A stand-in interpreter records how bootstrap.sh calls it; the shell logic under test is the
# real script's (no pip run: that is ./scripts/run.sh itself, in the README's test).
FAKE_PYTHON = '#!/bin/sh\necho "$*" >> "$(dirname "$0")/../calls.log"\nexit 0\n'


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "schoolgate"):
        path = venv / "bin" / name
        path.write_text(FAKE_PYTHON)
        path.chmod(0o755)
    return venv


def installs(venv: Path, *command: str) -> list[str]:
    """Run a script with the stand-in venv; the `pip install` calls it made (pip's own upgrade
    left out)."""
    log = venv / "calls.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "SG_VENV": str(venv)}
    env.pop("SG_EXTRAS", None)
    result = subprocess.run(
        list(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    return [c for c in calls if c.startswith("-m pip install") and "--upgrade pip" not in c]


def test_pips_chatter_is_kept_out_of_the_way_and_shown_when_it_fails(fake_venv: Path) -> None:
    """The first run printed 117 index warnings and setuptools' boxed editable-install banner
    (newcomer review 10); pip's output now goes to a log, shown when the install fails."""
    noisy = (
        '#!/bin/sh\necho "$*" >> "$(dirname "$0")/../calls.log"\n'
        "echo \"WARNING: Location 'file:///x' is ignored\" >&2\n"
        'echo "BuildBackendWarning: Editable installation." >&2\n'
        'case "$*" in *" -e "*) [ -f "$(dirname "$0")/../fail" ] && '
        '{ echo "ERROR: No matching distribution found for mitmproxy==12.2.3" >&2; exit 1; } ;; '
        "esac\nexit 0\n"
    )
    (fake_venv / "bin" / "python").write_text(noisy)
    env = {**os.environ, "SG_VENV": str(fake_venv)}
    env.pop("SG_EXTRAS", None)

    def run_sh() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["scripts/run.sh", "--help"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    quiet = run_sh()
    assert quiet.returncode == 0, quiet.stderr
    assert "is ignored" not in quiet.stderr
    assert "BuildBackendWarning" not in quiet.stderr
    assert "installing schoolgate" in quiet.stderr  # what it is doing is still said

    (fake_venv / ".schoolgate-installed").unlink()
    (fake_venv / "fail").touch()
    failed = run_sh()
    assert failed.returncode == 1
    assert "No matching distribution found for mitmproxy==12.2.3" in failed.stderr
    assert str(fake_venv / "pip-install.log") in failed.stderr
    assert not (fake_venv / ".schoolgate-installed").exists()  # tried again next time


def stamp(venv: Path) -> str:
    return (venv / ".schoolgate-installed").read_text().strip()


def test_run_sh_installs_only_what_running_needs(fake_venv: Path) -> None:
    [call] = installs(fake_venv, "scripts/run.sh", "--help")
    assert call.endswith(f"-e {ROOT}")  # no [test] extras (~630 MB with them)
    assert stamp(fake_venv).endswith(" runtime")
    assert installs(fake_venv, "scripts/run.sh", "--help") == []  # installed once


def test_switching_between_run_and_test_installs_what_is_missing(fake_venv: Path) -> None:
    assert len(installs(fake_venv, "scripts/run.sh", "--help")) == 1
    # the test command needs the extras: installed on top
    [call] = installs(fake_venv, "scripts/test.sh", "--fast", "-q")
    assert call.endswith(f"-e {ROOT}[test]")
    assert stamp(fake_venv).endswith(" test")
    # the extras include what running needs: nothing to do either way now
    assert installs(fake_venv, "scripts/run.sh", "--help") == []
    assert installs(fake_venv, "scripts/test.sh", "--fast", "-q") == []


def test_a_changed_pyproject_or_an_old_stamp_is_handled(fake_venv: Path) -> None:
    installs(fake_venv, "scripts/test.sh", "--fast", "-q")
    want = stamp(fake_venv).split()[0]
    # a stamp written before the extras were recorded (the hash alone) had the extras
    (fake_venv / ".schoolgate-installed").write_text(want + "\n")
    assert installs(fake_venv, "scripts/test.sh", "--fast", "-q") == []
    # pyproject.toml changed since: installed again, with what this command needs
    (fake_venv / ".schoolgate-installed").write_text("0" * 64 + " test\n")
    [call] = installs(fake_venv, "scripts/run.sh", "--help")
    assert call.endswith(f"-e {ROOT}")
    assert stamp(fake_venv) == f"{want} runtime"
