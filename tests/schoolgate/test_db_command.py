"""`schoolgate db upgrade|status|purge`, run as the IT technician runs it (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.admin_models import AuditEntryRow
from schoolgate.store.db import head_revision, make_engine
from schoolgate.store.event_writer import EventInserter
from schoolgate.store.events import Event, event_row
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]

SCHOOLGATE = str(Path(sys.executable).parent / "schoolgate")


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SCHOOLGATE_DATABASE_URL", "SCHOOLGATE_DATA_DIR"}
    }
    environment.update(env or {})
    return subprocess.run(
        [SCHOOLGATE, "db", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=environment,
    )


def test_upgrade_status_and_purge_by_url(database_url: str, tmp_path: Path) -> None:
    status = run("status", "--database", database_url, cwd=tmp_path)
    assert status.returncode == 1, status.stderr
    assert "schoolgate db upgrade --database" in status.stdout

    first = run("upgrade", "--database", database_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"to revision {head_revision()}" in first.stdout
    again = run("upgrade", "--database", database_url, cwd=tmp_path)
    assert again.returncode == 0
    assert "nothing to do" in again.stdout

    status = run("status", "--database", database_url, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"revision: {head_revision()} (up to date)" in status.stdout

    engine = make_engine(database_url)
    now = datetime.now(UTC)
    EventInserter(engine).insert(
        [
            (
                event_row(
                    "r",
                    i,
                    Event(
                        at=now - timedelta(days=age),
                        host="x.example",
                        verdict=Verdict.ALLOW,
                        reason=Reason.RULE_ALLOW,
                    ),
                ),
                None,
            )
            for i, age in enumerate([1, 40, 100])
        ]
    )
    purged = run("purge", "--database", database_url, "--events-days", "30", cwd=tmp_path)
    assert purged.returncode == 0, purged.stderr
    assert "events: 2 deleted" in purged.stdout
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 1
        if engine.dialect.name == "sqlite":  # the planner's statistics, for a school's pages
            stats = conn.execute(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'events'"))
            assert stats.scalar()
    engine.dispose()


def test_purge_takes_the_audit_log_retention(database_url: str, tmp_path: Path) -> None:
    """Ops review L4: the audit log's (and requests', notes') retention could only be changed
    in code; `db purge` takes each as a flag."""
    assert run("upgrade", "--database", database_url, cwd=tmp_path).returncode == 0
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        for age in (10, 400):
            session.add(
                AuditEntryRow(
                    at=now - timedelta(days=age),
                    actor="it1",
                    actor_roles="it",
                    action="policy.publish",
                    target="policy",
                    before=None,
                    after=None,
                )
            )
    kept = run("purge", "--database", database_url, cwd=tmp_path)
    assert "audit_log: 0 deleted" in kept.stdout, kept.stderr
    purged = run("purge", "--database", database_url, "--audit-log-days", "365", cwd=tmp_path)
    assert purged.returncode == 0, purged.stderr
    assert "audit_log: 1 deleted" in purged.stdout
    engine.dispose()


@pytest.mark.parametrize("env", [None, "SCHOOLGATE_DATA_DIR"])
def test_the_default_database_is_schoolgate_db_in_the_data_dir(
    tmp_path: Path, env: str | None
) -> None:
    data = tmp_path / "data" if env else tmp_path / "var" / "schoolgate"
    variables = {env: str(data)} if env else None
    result = run("upgrade", cwd=tmp_path, env=variables)
    assert result.returncode == 0, result.stderr
    assert (data / "schoolgate.db").is_file()
    assert run("status", cwd=tmp_path, env=variables).returncode == 0


def test_the_database_url_comes_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    result = run("upgrade", cwd=tmp_path, env={"SCHOOLGATE_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "elsewhere.db").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["status", "--database", "postgresql://nobody:pw@127.0.0.1:9/none"],
            "postgresql+psycopg://nobody:***@127.0.0.1:9/none",
        ),
        (["upgrade", "--database", "mysql://u@127.0.0.1/x"], "supports sqlite"),
        (["purge", "--events-days", "0"], "at least 1 day"),
        (["purge", "--audit-log-days", "0"], "retention for audit_log must be at least 1 day"),
        (["purge", "--requests-days", "0"], "retention for requests must be at least 1 day"),
        (
            ["purge", "--incident-notes-days", "0"],
            "retention for incident_notes must be at least 1 day",
        ),
    ],
)
def test_problems_are_reported_clearly(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "pw@" not in result.stderr  # the password is never shown
