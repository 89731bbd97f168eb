"""store/event_writer.py (with store/spool.py and store/events.py): the event writer batches,
spools when the database is down, replays in order exactly once (also a spool left by a killed
process), and never drops an event."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.event_writer import EventInserter, EventWriter
from schoolgate.store.events import AttemptEvidence, Event, event_row, json_line
from tests.support.event_writer_child import numbered
from tests.support.postgres import (
    PrivatePostgres,
    database_url,
    postgres_session_url,
    private_postgres,
)

__all__ = ["database_url", "postgres_session_url", "private_postgres"]

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DOWN_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:9/none"  # discard port: refused


def _event(i: int, **changes: object) -> Event:
    fields: dict[str, object] = {
        "at": T0 + timedelta(milliseconds=i),
        "host": f"h{i}.example",
        "verdict": Verdict.ALLOW,
        "reason": Reason.RULE_ALLOW,
        "user": f"user{i % 7}",
        "role": "pupil",
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def _rows(engine: Engine) -> list[tuple[str, int]]:
    """(id, seq) of every stored event, in the order readers use."""
    with engine.connect() as conn:
        return [
            (r[0], r[1]) for r in conn.execute(text("SELECT id, seq FROM events ORDER BY at, seq"))
        ]


async def _until(condition: Callable[[], bool], what: str, limit: float = 60) -> None:
    """Wait for `condition` (a bound so that a broken writer fails the test, not hangs it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        await asyncio.sleep(0.02)


def _writer(engine: Engine, tmp_path: Path, **options: object) -> EventWriter:
    settings: dict[str, object] = {"batch_size": 500, "flush_seconds": 0.02, "retry_seconds": 0.2}
    settings.update(options)
    return EventWriter(engine, spool_dir=tmp_path / "spool", **settings)  # type: ignore[arg-type]


async def test_events_are_written_in_batches_in_order(database_url: str, tmp_path: Path) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    writer = _writer(engine, tmp_path)
    await writer.start()
    try:
        submitted = [_event(i) for i in range(3000)]
        for i, event in enumerate(submitted):
            writer.submit(event)
            if i % 250 == 0:
                await asyncio.sleep(0)
        await _until(lambda: writer.stats.written == 3000, "3000 events written")
        stats = writer.stats
        assert (stats.spooled, stats.dropped, stats.db_failures) == (0, 0, 0)
        stored = _rows(engine)
        assert [id for id, _ in stored] == [e.id for e in submitted]
        seqs = [seq for _, seq in stored]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == 3000
    finally:
        await writer.close()
        engine.dispose()


async def test_what_is_stored_and_what_never_is(database_url: str, tmp_path: Path) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    writer = _writer(engine, tmp_path, siem_path=str(tmp_path / "siem.jsonl"))
    await writer.start()
    passed = _event(1, path="/secret", query="q=1", intercepted=False, method="CONNECT")
    decrypted = _event(
        2, path="/search", query="q=cats", intercepted=True, method="GET", search_terms="cats"
    )
    attempt = _event(
        3,
        verdict=Verdict.BLOCK,
        reason=Reason.CIRCUMVENTION,
        technique="web_proxy",
        attempt=AttemptEvidence({"list": "web_proxy"}),
    )
    widget = _event(
        4,
        verdict=Verdict.BLOCK,
        reason=Reason.RULE_BLOCK,
        technique="widget",
        attempt=AttemptEvidence({"referer": "https://school.example/"}, counted=False),
    )
    for event in (passed, decrypted, attempt, widget):
        writer.submit(event)
    await _until(lambda: writer.stats.written == 4, "4 events written")
    await writer.close()
    with engine.connect() as conn:
        paths: dict[str, str | None] = {
            r[0]: r[1] for r in conn.execute(text("SELECT id, path FROM events"))
        }
        attempts = conn.execute(
            text("SELECT event_id, technique, counted FROM circumvention_attempts ORDER BY at")
        ).all()
    engine.dispose()
    assert paths[passed.id] is None  # passed through: never the path
    assert paths[decrypted.id] == "/search"
    assert [(a[0], a[1], bool(a[2])) for a in attempts] == [
        (attempt.id, "web_proxy", True),
        (widget.id, "widget", False),
    ]
    siem = [json.loads(line) for line in (tmp_path / "siem.jsonl").read_text().splitlines()]
    assert [r["id"] for r in siem] == [passed.id, decrypted.id, attempt.id, widget.id]
    assert siem[0]["path"] is None
    assert siem[1]["search_terms"] == "cats"
    assert not {"password", "cookie", "body"} & set(siem[0])


def test_an_event_must_have_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        Event(
            at=datetime(2026, 11, 23, 9, 0),
            host="x.example",
            verdict=Verdict.ALLOW,
            reason=Reason.RULE_ALLOW,
        )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_down_database_spools_and_replays_exactly_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        # A file in a directory that does not exist yet: every connection fails.
        down_url = up_url = f"sqlite:///{tmp_path / 'later' / 'schoolgate.db'}"
        engine = make_engine(down_url)
    else:
        server: PrivatePostgres = request.getfixturevalue("private_postgres")
        up_url = server.url
        upgrade(up_url)
        server.stop()
        engine = make_engine(up_url)
    writer = _writer(engine, tmp_path)
    await writer.start()
    try:
        submitted = [_event(i) for i in range(2000)]
        for event in submitted:
            writer.submit(event)
        await _until(lambda: writer.stats.spooled == 2000, "2000 events spooled")
        assert writer.stats.written == 0
        assert writer.spool_path is not None
        assert len(writer.spool_path.read_bytes().splitlines()) == 2000
        if kind == "sqlite":
            upgrade(up_url)  # the database appears
        else:
            server.start()
        await _until(lambda: writer.stats.replayed == 2000, "2000 events replayed")
        stats = writer.stats
        assert (stats.spool_bytes, stats.dropped) == (0, 0)
        assert writer.spool_path.stat().st_size == 0  # truncated once replayed
        assert [id for id, _ in _rows(engine)] == [e.id for e in submitted]
    finally:
        await writer.close()
        engine.dispose()


@pytest.mark.postgres
async def test_postgres_stopped_in_the_middle_of_a_load_loses_nothing(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    upgrade(private_postgres.url)
    engine = make_engine(private_postgres.url)
    writer = _writer(engine, tmp_path, queue_size=2000)
    await writer.start()
    submitted: list[Event] = []
    try:
        for round_ in range(60):  # a sustained, bounded load: 200 events every 50 ms
            for _ in range(200):
                event = _event(len(submitted))
                submitted.append(event)
                writer.submit(event)
            if round_ == 15:
                await asyncio.to_thread(private_postgres.stop)
                stopped_after = len(submitted)
            if round_ == 40:
                await asyncio.to_thread(private_postgres.start)
            await asyncio.sleep(0.05)
        await _until(
            lambda: (
                writer.stats.spool_bytes == 0
                and writer.stats.queued == 0
                and writer.stats.written + writer.stats.replayed == len(submitted)
            ),
            "every event written or replayed",
            limit=120,
        )
        stats = writer.stats
        assert stats.written >= stopped_after - 2000  # it was writing before the outage
        assert stats.spooled > 0
        assert stats.db_failures > 0
        assert stats.dropped == 0
        stored = _rows(engine)
        assert len(stored) == len(submitted) == 12_000  # exactly once
        assert [id for id, _ in stored] == [e.id for e in submitted]  # in order
    finally:
        await writer.close()
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_killed_writers_spool_is_replayed_by_the_next_one(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'schoolgate.db'}"
        down_url = url  # its directory does not exist yet
    else:
        url = _shared_url(request)
        down_url = DOWN_POSTGRES
    spool = tmp_path / "spool"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.event_writer_child", down_url, str(spool), "1500"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert await asyncio.to_thread(child.stdout.readline) == "spooled 1500\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    left = list(spool.glob("*.jsonl"))
    assert len(left) == 1
    assert len(left[0].read_bytes().splitlines()) == 1500

    upgrade(url)
    engine = make_engine(url)
    writer = _writer(engine, tmp_path)
    await writer.start()
    try:
        assert writer.stats.spool_bytes > 0
        await _until(lambda: writer.stats.replayed == 1500, "the old spool replayed")
        assert [id for id, _ in _rows(engine)] == [numbered(i).id for i in range(1500)]
        await _until(lambda: not left[0].exists(), "the old spool removed")
    finally:
        await writer.close()
        engine.dispose()


def _shared_url(request: pytest.FixtureRequest) -> str:
    from tests.support.postgres import shared_postgres_url

    return shared_postgres_url(request.getfixturevalue("postgres_session_url"))


async def test_a_replay_after_a_crash_between_insert_and_truncation_makes_no_duplicates(
    database_url: str, tmp_path: Path
) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    events = [_event(i) for i in range(300)]
    rows = [(event_row("old", i, e), None) for i, e in enumerate(events)]
    EventInserter(engine).insert(rows[:200])  # inserted, but the spool was never truncated
    spool = tmp_path / "spool"
    spool.mkdir()
    torn = b"".join(json_line(row, None) for row, _ in rows) + b'{"id": "torn'
    (spool / "old-1-dead.jsonl").write_bytes(torn)
    writer = _writer(engine, tmp_path)
    await writer.start()
    try:
        await _until(lambda: writer.stats.spool_bytes == 0, "the old spool replayed")
        assert writer.stats.bad_spool_lines == 1  # the torn last write
        assert [id for id, _ in _rows(engine)] == [e.id for e in events]
    finally:
        await writer.close()
        engine.dispose()


async def test_a_full_queue_spools_at_once_and_drops_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgrade(url)
    engine = make_engine(url)
    writer = _writer(engine, tmp_path, queue_size=50)
    await writer.start()
    try:
        submitted = [_event(i) for i in range(2000)]
        highest = 0
        for event in submitted:  # no await: the writer task cannot run meanwhile
            writer.submit(event)
            highest = max(highest, writer.stats.queued)
        assert highest == 50  # memory stays bounded by the queue
        assert writer.stats.spooled == 1950
        await _until(
            lambda: writer.stats.written + writer.stats.replayed == 2000, "every event stored"
        )
        assert writer.stats.dropped == 0
        assert sorted(id for id, _ in _rows(engine)) == sorted(e.id for e in submitted)
        assert sorted(seq for _, seq in _rows(engine)) == [seq for _, seq in _rows(engine)]
    finally:
        await writer.close()
        engine.dispose()


async def test_close_with_the_database_down_keeps_the_spool_for_the_next_start(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'later' / 'schoolgate.db'}"
    engine = make_engine(url)
    first = _writer(engine, tmp_path, flush_seconds=5.0)
    await first.start()
    submitted = [_event(i) for i in range(100)]
    for event in submitted:
        first.submit(event)
    await first.close(timeout=1.0)
    assert first.stats.dropped == 0
    assert first.stats.spooled == 100
    upgrade(url)
    second = _writer(engine, tmp_path)
    await second.start()
    try:
        await _until(lambda: second.stats.replayed == 100, "the spool replayed")
        assert [id for id, _ in _rows(engine)] == [e.id for e in submitted]
    finally:
        await second.close()
        engine.dispose()


async def test_a_live_writers_spool_is_never_taken_by_another(tmp_path: Path) -> None:
    down = make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    url = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgrade(url)
    up = make_engine(url)
    first, second = _writer(down, tmp_path), _writer(up, tmp_path)
    await first.start()
    try:
        for i in range(10):
            first.submit(_event(i))
        await _until(lambda: first.stats.spooled == 10, "10 events spooled")
        await second.start()
        await asyncio.sleep(0.3)
        assert second.stats.replayed == 0
        assert _rows(up) == []
        assert first.spool_path is not None
        assert first.spool_path.stat().st_size > 0
    finally:
        await second.close()
        await first.close()
        down.dispose()
        up.dispose()


async def test_rows_the_database_refuses_are_set_aside_not_retried_forever(
    database_url: str, tmp_path: Path
) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    good, long_host, bad = _event(0), _event(1, host="a" * 400 + ".example"), _event(2)
    lines = [json_line(event_row("old", i, e), None) for i, e in enumerate((good, long_host, bad))]
    lines[2] = lines[2].replace(b'"verdict":"allow"', b'"verdict":"maybe"')
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "old-1-dead.jsonl").write_bytes(b"".join(lines))
    writer = _writer(engine, tmp_path)
    await writer.start()
    try:
        await _until(lambda: writer.stats.spool_bytes == 0, "the old spool replayed")
        assert writer.stats.rejected == 1
        assert {id for id, _ in _rows(engine)} == {good.id, long_host.id}
        rejected = (spool / "rejected.events").read_text().splitlines()
        assert [json.loads(line)["id"] for line in rejected] == [bad.id]
    finally:
        await writer.close()
        engine.dispose()
