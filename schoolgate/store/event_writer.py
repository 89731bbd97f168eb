"""Recording decisions without ever losing one or making the proxy wait: `EventWriter.submit`
puts an `Event` on a bounded queue; a background task inserts batches from a worker thread, and
when the database is slow or down the batches go to an append-only spool file that is replayed,
in order, when it returns. Inserts are idempotent (keyed by the event id), so a crash between an
insert and the spool's truncation cannot make a duplicate.

Ordering: each writer numbers its events (`seq`, increasing, starting from the microsecond
clock at start-up so a restarted writer continues above the previous run); read them in order
with ORDER BY at, seq. Spool files are replayed oldest first, each in file order, in between
the live batches: once the database is back, new events are not held up behind the backlog
(so rows arrive out of insertion order during a replay; `at` and `seq` order them).

Durability: what is in the spool survives a crash (fsync'd per batch); what is still in the
in-memory queue (at most `queue_size` events, normally well under a second's worth) is lost if
the process is killed with SIGKILL. `close()` empties the queue into the database or the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine, Executable, String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError

from schoolgate.store.db import sqlite_file
from schoolgate.store.events import (
    Event,
    Item,
    attempt_record,
    attempt_row,
    event_json_line,
    event_row,
    from_json_line,
    json_line,
)
from schoolgate.store.models import CircumventionAttemptRow, EventRow
from schoolgate.store.spool import SPOOL_SUFFIX, Spool, safe_name

logger = logging.getLogger(__name__)

REJECTED_FILE = "rejected.events"  # JSON lines the database refused (never replayed)


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters since the writer started. `dropped` must stay 0."""

    submitted: int  # accepted by submit()
    queued: int  # in the memory queue now
    written: int  # inserted straight from the queue
    spooled: int  # written to a spool file
    replayed: int  # spooled events inserted later (including ones a previous run left)
    dropped: int  # lost: could be neither inserted nor spooled
    spool_bytes: int  # spooled and not yet replayed, over all spool files
    db_failures: int
    bad_spool_lines: int  # unreadable lines skipped in a spool (a torn write at a crash)
    rejected: int  # refused by the database for their content; kept in rejected.events


class EventInserter:
    """Inserts batches of event rows idempotently (ON CONFLICT (id) DO NOTHING), the fastest
    way each database offers: SQLite's executemany of plain tuples; on PostgreSQL one INSERT
    ... SELECT FROM unnest(column arrays) per batch (about three times executemany's rate).

    A batch the database refuses for its content (not for an outage) is retried row by row,
    with over-long strings cut to their column's size; rows still refused are returned."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        table = EventRow.__table__
        self.columns = [c.name for c in table.columns]
        self.lengths = {
            c.name: c.type.length
            for c in table.columns
            if isinstance(c.type, String) and c.type.length
        }
        quoted = ", ".join(engine.dialect.identifier_preparer.quote(c) for c in self.columns)
        if self.dialect == "sqlite":
            marks = ", ".join("?" for _ in self.columns)
            # Built from our own table's column names only: no outside text reaches it.
            self.sql = (
                f"INSERT INTO events ({quoted}) VALUES ({marks}) "  # noqa: S608
                "ON CONFLICT (id) DO NOTHING"
            )
            self.attempts: Executable = sqlite.insert(
                CircumventionAttemptRow
            ).on_conflict_do_nothing(index_elements=["id"])
        elif self.dialect == "postgresql":
            arrays = ", ".join(f"%s::{c.type.compile(engine.dialect)}[]" for c in table.columns)
            self.sql = (
                f"INSERT INTO events ({quoted}) SELECT * "  # noqa: S608
                f"FROM unnest({arrays}) ON CONFLICT (id) DO NOTHING"
            )
            self.attempts = postgresql.insert(CircumventionAttemptRow).on_conflict_do_nothing(
                index_elements=["id"]
            )
        else:
            raise ValueError(f"the event writer supports SQLite and PostgreSQL, not {self.dialect}")

    def _params(self, rows: list[dict[str, Any]]) -> Any:
        columns = self.columns
        if self.dialect == "sqlite":
            # The text form SQLAlchemy's SQLite DateTime uses, so ORM reads and comparisons
            # see the same values as rows it wrote itself.
            # (a list made into a tuple: comprehensions are inlined, a generator is not)
            return [
                tuple([_sqlite_time(r[c]) if c == "at" else r[c] for c in columns]) for r in rows
            ]
        return [[r[c] for r in rows] for c in columns]

    def insert(self, items: Sequence[Item]) -> None:
        """Insert one batch in one transaction."""
        rows = [row for row, _ in items]
        attempts = [attempt_row(row, attempt) for row, attempt in items if attempt is not None]
        with self.engine.begin() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql(self.sql, self._params(rows))
            else:
                conn.exec_driver_sql(self.sql, tuple(self._params(rows)))
            if attempts:
                conn.execute(self.attempts, attempts)

    def insert_or_reject(self, items: list[Item]) -> list[Item]:
        """`insert`, and if the database refuses the content, row by row; returns the rows
        that could not be stored (outages still raise: those are retried later)."""
        try:
            self.insert(items)
            return []
        except (DataError, IntegrityError) as exc:
            logger.warning(
                "the database refused a batch of events (%s); storing them one by one",
                str(exc).splitlines()[0],
            )
        rejected = []
        for row, attempt in items:
            try:
                self.insert([(self._cut(row), attempt)])
            except (DataError, IntegrityError) as exc:
                logger.error(
                    "the database refused event %s: %s", row.get("id"), str(exc).splitlines()[0]
                )
                rejected.append((row, attempt))
        return rejected

    def _cut(self, row: dict[str, Any]) -> dict[str, Any]:
        cut = dict(row)
        for name, length in self.lengths.items():
            value = cut.get(name)
            if isinstance(value, str) and len(value) > length:
                cut[name] = value[:length]
        return cut


def _sqlite_time(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


# --- the SQLite file under the writer ------------------------------------------------------


class DatabaseFileProblem(OSError):
    """The SQLite file the writer writes to is gone, replaced or read-only (review finding 14:
    pooled connections otherwise go on "writing" into a deleted file)."""


class _SqliteFileWatch:
    """Notices the SQLite file being deleted, replaced (a backup copied over it) or made
    read-only: checked (one stat) before and after every write, in the database thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.path = sqlite_file(engine.url)
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) we are writing to

    def before(self) -> None:
        """Raise DatabaseFileProblem if the file cannot be written now; after a replacement,
        drop the pooled connections so that the next write opens the new file."""
        if self.path is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.engine.dispose()  # let go of the deleted file
            self._identity = None
            raise DatabaseFileProblem(
                f"the database file {self.path} is gone (deleted or moved); put it back or "
                "run 'schoolgate db upgrade'"
            ) from None
        identity = (st.st_dev, st.st_ino)
        if self._identity is not None and identity != self._identity:
            logger.warning(
                "the database file %s was replaced while the gateway ran; reopening it", self.path
            )
            self.engine.dispose()
        self._identity = identity
        if not st.st_mode & 0o200:
            raise DatabaseFileProblem(
                f"the database file {self.path} is read-only; make it writable again (chmod 600)"
            )

    def after(self) -> None:
        """Raise DatabaseFileProblem if the file went away or was replaced during the write
        (the batch may have gone into the old file: it is spooled, and inserting it again is
        harmless)."""
        if self.path is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise DatabaseFileProblem(
                f"the database file {self.path} went away during a write"
            ) from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise DatabaseFileProblem(f"the database file {self.path} was replaced during a write")


# --- the writer ----------------------------------------------------------------------------


class EventWriter:
    """Records events to the database through a bounded queue, a batching background task and,
    when the database is unavailable, a spool file replayed later.

    Use from one asyncio loop: `await start()` (in mitmproxy: `running`), `submit(event)` from
    hooks, `await close()` (in `done`)."""

    def __init__(
        self,
        engine: Engine,
        *,
        spool_dir: Path,
        replica: str | None = None,
        queue_size: int = 20_000,
        batch_size: int = 2_000,
        flush_seconds: float = 0.2,
        retry_seconds: float = 1.0,
        db_timeout_seconds: float = 10.0,
        siem_path: str | None = None,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be at least 1")
        self.engine = engine
        self.spool_dir = spool_dir
        self.replica = replica or socket.gethostname()
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.retry_seconds = retry_seconds
        self.db_timeout_seconds = db_timeout_seconds
        self.siem_path = siem_path
        self._inserter = EventInserter(engine)
        self._file = _SqliteFileWatch(engine)
        self._queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue(maxsize=queue_size)
        self._seq = time.time_ns() // 1000
        self._spool: Spool | None = None
        self._orphans: list[Spool] = []
        self._siem: TextIO | None = None
        self._siem_lock = threading.Lock()
        # One thread for the database (a hung call blocks only it), one for files.
        self._db_pool = ThreadPoolExecutor(1, thread_name_prefix="sg-events-db")
        self._file_pool = ThreadPoolExecutor(1, thread_name_prefix="sg-events-file")
        self._inflight: asyncio.Future[None] | None = None
        self._retry_at = 0.0  # monotonic time before which the database is not tried
        self._db_problem: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._n = dict.fromkeys(
            (
                "submitted",
                "written",
                "spooled",
                "replayed",
                "dropped",
                "db_failures",
                "bad_spool_lines",
                "rejected",
            ),
            0,
        )

    # --- the hot path ----------------------------------------------------------------------

    def submit(self, event: Event) -> None:
        """Hand an event over for recording: O(1), never blocks on the database, never raises.
        With the queue full (the database far behind) it goes to the spool file at once."""
        try:
            self._seq += 1
            item = (self._seq, event)
            if self._closed:
                raise RuntimeError("the event writer is closed")
            self._n["submitted"] += 1
            try:
                self._queue.put_nowait(item)
            except asyncio.QueueFull:
                self._spool_now([item])
        except Exception:
            self._n["dropped"] += 1
            logger.exception(
                "an event could not be recorded (dropped): %s %s",
                getattr(event, "host", "?"),
                getattr(event, "at", "?"),
            )

    @property
    def stats(self) -> WriterStats:
        spool = self._spool.pending_bytes if self._spool is not None else 0
        return WriterStats(
            submitted=self._n["submitted"],
            queued=self._queue.qsize(),
            written=self._n["written"],
            spooled=self._n["spooled"],
            replayed=self._n["replayed"],
            dropped=self._n["dropped"],
            spool_bytes=spool + sum(o.pending_bytes for o in self._orphans),
            db_failures=self._n["db_failures"],
            bad_spool_lines=self._n["bad_spool_lines"],
            rejected=self._n["rejected"],
        )

    @property
    def spool_path(self) -> Path | None:
        return self._spool.path if self._spool is not None else None

    # --- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open this writer's spool, claim spools left by writers that died (replayed first,
        oldest first), and start the background task."""
        self.start_soon()

    def start_soon(self) -> None:
        """`start` for synchronous hooks (mitmproxy's `running`): needs a running loop. The
        file work here is a directory listing and a few opens, done once."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._open_files()
        self._task = loop.create_task(self._run(), name="schoolgate-event-writer")

    def _open_files(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        found = sorted(
            self.spool_dir.glob(f"*{SPOOL_SUFFIX}"),
            key=lambda p: (p.stat().st_mtime_ns if p.exists() else 0, p.name),
        )
        for path in found:
            orphan = Spool.claim(path)
            if orphan is None:
                continue
            if orphan.size == 0:
                orphan.close(remove=True)
                continue
            logger.warning(
                "replaying %d bytes of events spooled by a previous run: %s", orphan.size, path
            )
            self._orphans.append(orphan)
        name = f"{safe_name(self.replica)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._spool = Spool.create(self.spool_dir, name)
        if self.siem_path == "-":
            self._siem = sys.stdout
        elif self.siem_path:
            self._siem = open(self.siem_path, "a", encoding="utf-8")  # noqa: SIM115

    async def close(self, timeout: float = 10.0) -> None:
        """Stop: write what is queued to the database, or to the spool if it cannot be written
        within `timeout` seconds. The spool stays on disk for the next start if not empty."""
        if self._closed:
            return
        self._closing = True
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            except Exception:
                logger.exception("the event writer's task failed")
        leftover: list[tuple[int, Event]] = []
        while not self._queue.empty():
            leftover.append(self._queue.get_nowait())
        self._closed = True
        if leftover:
            self._spool_now(leftover, sync=True)
        await asyncio.get_running_loop().run_in_executor(self._file_pool, self._close_files)
        self._file_pool.shutdown(wait=True)
        self._db_pool.shutdown(wait=False)  # a hung database call must not hold up the exit

    def _close_files(self) -> None:
        if self._spool is not None:
            self._spool.close(remove=self._spool.pending_bytes == 0)
        for orphan in self._orphans:
            orphan.close(remove=False)
        if self._siem is not None and self._siem is not sys.stdout:
            self._siem.close()

    # --- the background task ---------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            backlog = self._spool_pending() and not self._db_resting()
            batch = await self._collect(wait=not backlog)
            if batch:
                await self._deliver(batch)
            if self._spool_pending() and not self._db_resting():
                await self._replay()
            if (
                self._closing
                and self._queue.empty()
                and (not self._spool_pending() or self._db_resting())
            ):
                return

    async def _collect(self, *, wait: bool) -> list[tuple[int, Event]]:
        """The next batch: up to batch_size events. With `wait`, wait a little for the first
        one and then up to flush_seconds to fill the batch (fewer, larger transactions)."""
        queue = self._queue
        batch: list[tuple[int, Event]] = []
        if queue.empty():
            if not wait or self._closing:
                return batch
            idle = self.retry_seconds if self._spool_pending() else 0.5
            try:
                batch.append(await asyncio.wait_for(queue.get(), idle))
            except TimeoutError:
                return batch
            if queue.qsize() + 1 < self.batch_size and not self._closing:
                await asyncio.sleep(self.flush_seconds)
        while len(batch) < self.batch_size and not queue.empty():
            batch.append(queue.get_nowait())
        return batch

    def _spool_pending(self) -> bool:
        return bool(self._orphans) or (self._spool is not None and self._spool.pending_bytes > 0)

    def _db_resting(self) -> bool:
        return time.monotonic() < self._retry_at

    async def _deliver(self, batch: list[tuple[int, Event]]) -> None:
        replica = self.replica
        if self._db_resting():
            await self._to_spool(batch)
            return
        if await self._call_db(lambda: self._insert_events(replica, batch)):
            self._n["written"] += len(batch)
            if self._siem is not None:
                await self._in_file_thread(lambda: self._write_siem(replica, batch))
        else:
            await self._to_spool(batch)

    def _insert_events(self, replica: str, batch: list[tuple[int, Event]]) -> None:
        items = [(event_row(replica, seq, event), attempt_record(event)) for seq, event in batch]
        self._store(items)

    def _store(self, items: list[Item]) -> None:
        """Insert (in the database thread); rows refused for their content are set aside in
        rejected.jsonl next to the spool, for people to look at, and counted."""
        rejected = self._inserter.insert_or_reject(items)
        if rejected:
            with open(self.spool_dir / REJECTED_FILE, "ab") as out:
                out.write(b"".join(json_line(row, attempt) for row, attempt in rejected))
            self._n["rejected"] += len(rejected)

    async def _replay(self) -> None:
        """Insert spooled events, oldest file first, in file order, until done, the database
        fails, or a batch of new events is waiting (they go first; replay resumes after)."""
        while self._spool_pending():
            source = self._orphans[0] if self._orphans else self._spool
            assert source is not None
            lines, end = await self._in_file_thread(partial(source.read, self.batch_size))
            if not lines:
                if source.owned:
                    return
                if source.torn_tail():
                    self._n["bad_spool_lines"] += 1
                    logger.warning(
                        "%s: skipped an incomplete last line (the writer died while writing it)",
                        source.path,
                    )
                self._orphans.pop(0)
                await self._in_file_thread(partial(source.close, remove=True))
                continue
            items = self._parse(source, lines)
            if items and not await self._call_db(partial(self._store, items)):
                return
            source.commit(end)
            self._n["replayed"] += len(items)
            if self._queue.qsize() >= self.batch_size:
                return

    def _parse(self, source: Spool, lines: list[bytes]) -> list[Item]:
        items = []
        for line in lines:
            try:
                items.append(from_json_line(line))
            except (ValueError, KeyError, TypeError) as exc:
                self._n["bad_spool_lines"] += 1
                logger.warning(
                    "%s: skipped an unreadable spooled event (%s): %.200r", source.path, exc, line
                )
        return items

    # --- database calls, spool and SIEM writes ------------------------------------------------

    async def _call_db(self, work: Callable[[], None]) -> bool:
        """Run `work` in the database thread; False (and rest a while) if it fails or takes
        longer than db_timeout_seconds. A timed-out call keeps running in its thread; nothing
        else is tried until it ends (its rows, if it commits, are skipped again on replay)."""
        if self._inflight is not None and not self._inflight.done():
            self._failed("the previous database call has not finished")
            return False
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._db_pool, partial(self._watched, work))
        future.add_done_callback(_consume)
        self._inflight = future
        try:
            await asyncio.wait_for(asyncio.shield(future), self.db_timeout_seconds)
        except TimeoutError:
            self._failed(f"a write took more than {self.db_timeout_seconds:g} s")
            return False
        except Exception as exc:
            text = str(exc).strip().splitlines()
            self._failed(text[0] if text else type(exc).__name__)
            return False
        if self._db_problem is not None:
            logger.warning("the events database is back; replaying the spool")
            self._db_problem = None
        return True

    def _watched(self, work: Callable[[], None]) -> None:
        self._file.before()
        work()
        self._file.after()

    def _failed(self, problem: str) -> None:
        self._n["db_failures"] += 1
        self._retry_at = time.monotonic() + self.retry_seconds
        if self._db_problem is None:
            logger.warning(
                "cannot write events to the database %s (%s); spooling them to %s "
                "and retrying every %g s",
                self.engine.url.render_as_string(hide_password=True),
                problem,
                self.spool_dir,
                self.retry_seconds,
            )
        self._db_problem = problem

    async def _to_spool(self, batch: list[tuple[int, Event]]) -> None:
        replica = self.replica
        await self._in_file_thread(lambda: self._spool_lines(replica, batch, sync=True))

    def _spool_now(self, batch: list[tuple[int, Event]], *, sync: bool = False) -> None:
        """Spool from the loop thread: for the queue-full case and at close."""
        self._spool_lines(self.replica, batch, sync=sync)

    def _spool_lines(self, replica: str, batch: list[tuple[int, Event]], *, sync: bool) -> None:
        if self._spool is None:
            raise RuntimeError("the event writer was not started: no spool file is open")
        data = b"".join(event_json_line(replica, seq, event) for seq, event in batch)
        try:
            self._spool.append(data, sync=sync)
        except OSError:
            self._n["dropped"] += len(batch)
            logger.exception(
                "%d events lost: the database is unavailable and the spool file "
                "%s cannot be written",
                len(batch),
                self._spool.path,
            )
            return
        self._n["spooled"] += len(batch)
        if self._siem is not None:
            self._write_siem(replica, batch)

    async def _in_file_thread(self, work: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._file_pool, work)

    def _write_siem(self, replica: str, batch: list[tuple[int, Event]]) -> None:
        """The events as JSON lines for a SIEM (first delivery only, never again on replay)."""
        out = self._siem
        if out is None:
            return
        text = "".join(event_json_line(replica, seq, e).decode() for seq, e in batch)
        try:
            with self._siem_lock:
                out.write(text)
                out.flush()
        except (OSError, ValueError):
            logger.exception("writing events to the SIEM output %s failed", self.siem_path)


def _consume(future: asyncio.Future[None]) -> None:
    # A timed-out call may fail later, when nobody awaits it; fetch its error so that asyncio
    # does not report it as never retrieved.
    if not future.cancelled():
        future.exception()
