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
