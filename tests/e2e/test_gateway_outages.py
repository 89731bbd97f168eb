"""The gateway when its database is not there, through a real gateway:

- started while PostgreSQL (a private server this test starts and stops) is down: it starts,
  runs on the policy alone until a snapshot of the overrides exists, or on the last snapshot
  saved on disk, says so, spools events, and catches up when PostgreSQL is back;
- review finding 14: the SQLite events file deleted while it runs is noticed within seconds,
  events are spooled (not written into the deleted file), and written once it is back.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from schoolgate.commands.gateway import LAST_OVERRIDES
from schoolgate.policy.model import Verdict
from schoolgate.store.db import default_database_url, make_engine, upgrade
from schoolgate.store.models import LocalListRow
from tests.support.gateway import (
    Gateway,
    free_port,
    running_gateway,
    wait_for,
    write_identity,
    write_policy,
)
from tests.support.postgres import PrivatePostgres, start_private_postgres

pytestmark = pytest.mark.e2e


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = start_private_postgres()
    try:
        yield server
    finally:
        server.close()


def status(gw: Gateway, url: str) -> int:
    with gw.client("staff1") as client:
        return client.get(url).status_code


def stored_hosts(url: str) -> list[str]:
    if url.startswith("sqlite:///"):  # read-only: never make the file, never change it
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            try:
                return [r[0] for r in db.execute("SELECT host FROM events")]
            except sqlite3.OperationalError:  # no tables yet
                return []
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT host FROM events"))]
    finally:
        engine.dispose()


def health(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10, trust_env=False).text


def spooled(gw: Gateway) -> int:
    return sum(p.stat().st_size for p in (gw.data_dir / "spool").glob("*.jsonl"))


def test_a_start_while_postgres_is_down_runs_on_what_it_has_and_catches_up(
    postgres: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.url
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():  # the school blocked learning.test
        session.add(
            LocalListRow(
                host="learning.test",
                verdict=Verdict.BLOCK,
                note="test",
                added_by="bursar1",
                added_at=datetime.now(UTC),
            )
        )
    engine.dispose()
    monkeypatch.setenv("SCHOOLGATE_DATABASE_URL", url)
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)
    identity = write_identity(tmp_path / "id")

    # 1. Down at the first start, no snapshot yet: the policy alone, and it says so.
    postgres.stop()
    metrics = free_port()
    with running_gateway(
        tmp_path / "first",
        policy=policy,
        identity=identity,
        extra_args=["--set", f"schoolgate_metrics_port={metrics}"],
    ) as gw:
        assert "does not answer" in gw.log_text()
        assert "policy alone" in gw.log_text()
        assert "policy only" in json.loads(health(metrics))["overrides"]
        assert status(gw, "http://learning.test/") == 200  # the local block is not known
        assert status(gw, "http://bbc.co.uk/while-down") == 200
        wait_for(lambda: spooled(gw) > 0, what="the events in the spool")
        # 2. PostgreSQL is back: the overrides are read (and saved), the events written.
        postgres.start()
        wait_for(lambda: status(gw, "http://learning.test/") == 403, what="the local block")
        wait_for(lambda: "bbc.co.uk" in stored_hosts(url), what="the spooled events")
        assert (gw.data_dir / LAST_OVERRIDES).exists()
        snapshot = (gw.data_dir / LAST_OVERRIDES).read_text()
        assert "learning.test" in snapshot
        answer = json.loads(health(metrics))
        assert answer["status"] == "ok"
        assert "overrides" not in answer  # on the database again: nothing to say
        data_dir = gw.data_dir

    # 3. Down again at the next start: the last snapshot is enforced.
    postgres.stop()
    second = tmp_path / "second"
    (second / "data").mkdir(parents=True)
    (second / "data" / LAST_OVERRIDES).write_text(snapshot)
    assert data_dir != second / "data"
    with running_gateway(
        second,
        policy=policy,
        identity=identity,
        extra_args=["--set", f"schoolgate_metrics_port={metrics}"],
    ) as gw:
        assert "last snapshot" in gw.log_text()
        assert "last snapshot" in json.loads(health(metrics))["overrides"]
        assert status(gw, "http://learning.test/") == 403
        assert status(gw, "http://bbc.co.uk/second-outage") == 200
        wait_for(lambda: spooled(gw) > 0, what="the events in the spool")
        postgres.start()
        wait_for(
            lambda: stored_hosts(url).count("bbc.co.uk") >= 2, what="the second outage's events"
        )
        assert status(gw, "http://learning.test/") == 403


def test_the_events_file_deleted_while_running_is_noticed_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)
    with running_gateway(tmp_path, policy=policy, identity=write_identity(tmp_path / "id")) as gw:
        url = default_database_url(gw.data_dir)
        assert status(gw, "http://bbc.co.uk/before") == 200
        wait_for(lambda: "bbc.co.uk" in stored_hosts(url), what="the first event")
        for suffix in ("", "-wal", "-shm"):
            (gw.data_dir / f"schoolgate.db{suffix}").unlink(missing_ok=True)
        assert status(gw, "http://learning.test/after-delete") == 200
        wait_for(lambda: "is gone" in gw.log_text(), timeout=10, what="the log to say so")
        wait_for(lambda: spooled(gw) > 0, timeout=10, what="the event in the spool")
        assert not (gw.data_dir / "schoolgate.db").exists()  # not re-made behind our back
        upgrade(url)  # the database is back (a new one: `schoolgate db upgrade`)
        wait_for(lambda: "learning.test" in stored_hosts(url), what="the spooled event")
