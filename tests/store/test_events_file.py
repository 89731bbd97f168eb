"""Review finding 14: the SQLite events file deleted, replaced or made read-only under a running
writer is noticed at the next batch: events go to the spool, the failure is counted and
logged, and they are written once the database is back. Nothing is lost silently."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.db import default_database_url, make_engine, upgrade
from schoolgate.store.event_writer import EventWriter
from schoolgate.store.events import Event

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _event(i: int) -> Event:
    return Event(
        at=T0 + timedelta(milliseconds=i),
        host=f"h{i}.example",
        verdict=Verdict.ALLOW,
        reason=Reason.RULE_ALLOW,
    )


def _hosts(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT host FROM events"))}


async def _until(condition: Callable[[], bool], what: str, limit: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        await asyncio.sleep(0.02)


def _database(folder: Path) -> tuple[str, Path]:
    url = default_database_url(folder)
    upgrade(url)
    return url, folder / "schoolgate.db"


async def _write(writer: EventWriter, numbers: range) -> None:
    for i in numbers:
        writer.submit(_event(i))
    await _until(lambda: writer.stats.queued == 0, "the queue to empty")
    await asyncio.sleep(0.1)


def _remove(database: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


@pytest.mark.parametrize("what", ["deleted", "replaced", "read-only"])
async def test_the_events_file_going_away_is_noticed_and_nothing_is_lost(
    tmp_path: Path, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    url, database = _database(tmp_path / "data")
    engine = make_engine(url)
    writer = EventWriter(
        engine, spool_dir=tmp_path / "spool", batch_size=50, flush_seconds=0.02, retry_seconds=0.2
    )
    await writer.start()
    try:
        await _write(writer, range(0, 20))
        assert writer.stats.written == 20
        backup = tmp_path / "backup.db"
        if what == "deleted":
            _remove(database)
        elif what == "replaced":  # a backup restored by copying it over the live file
            upgrade(default_database_url(tmp_path / "other"))
            shutil.copy(tmp_path / "other" / "schoolgate.db", backup)
            _remove(database)
            shutil.copy(backup, database)
        else:
            database.chmod(0o444)
        with caplog.at_level(logging.WARNING, logger="schoolgate.store.event_writer"):
            await _write(writer, range(20, 40))
        if what == "replaced":
            # Written into the new file, not the old inode; the log says it was reopened.
            await _until(
                lambda: {f"h{i}.example" for i in range(20, 40)} <= _hosts(engine),
                "the events in the replacing file",
            )
            assert "was replaced" in caplog.text
        else:
            assert writer.stats.db_failures >= 1  # the write-error metric counts it
            assert writer.stats.spooled == 20  # ... and the spool holds them
            assert writer.stats.spool_bytes > 0
            assert "cannot write events" in caplog.text
            assert ("is gone" if what == "deleted" else "read-only") in caplog.text
            if what == "deleted":
                assert not database.exists()  # not re-made empty behind the admin's back
                upgrade(url)  # the database is back (e.g. `schoolgate db upgrade`)
            else:
                database.chmod(0o600)
            await _until(lambda: writer.stats.spool_bytes == 0, "the spool to be replayed")
            assert {f"h{i}.example" for i in range(20, 40)} <= _hosts(engine)
        assert writer.stats.dropped == 0
    finally:
        await writer.close()
        engine.dispose()
