"""The sign-in throttle that the gateway's proxy sign-in and the admin's sign-in page share:
failed sign-ins counted per key (a canonical user name, a client address, or the pair) in the
database, so every worker and replica sees the same counts.

Each attempt is *reserved* before the password is checked (counted as a failure in one
transaction, with the rows locked), and released when the password turns out right: a burst of
simultaneous guesses cannot all pass the check before any is counted. A key allows `max_failures`
failures per `window_seconds`; then it waits until the window ends, and each window in a row
that reaches the limit doubles the wait (exponential back-off, capped at `max_wait_seconds`),
instead of a fixed lock-out. Rows end by themselves (`expires`); pruning deletes ended rows,
and under a flood of new keys it forgets counts before it ever forgets a lock.

Without a database (or while it cannot be reached) the same code runs on an in-memory SQLite
database of this process only.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, Table, create_engine, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from schoolgate.store.db import upsert_insert
from schoolgate.store.models import SignInThrottleRow

log = logging.getLogger(__name__)

USER, ADDRESS, USER_AT_ADDRESS = "user", "address", "user_at_address"
_TABLE = cast(Table, SignInThrottleRow.__table__)


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `max_failures` failed sign-ins per `window_seconds` for one key of this kind."""

    max_failures: int
    window_seconds: float
    max_wait_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window_seconds <= 0:
            raise ValueError("a sign-in limit needs at least 1 failure and a positive window")


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of `reserve`: allowed (then call `succeeded` if the password was right), or
    refused for `retry_after` seconds."""

    allowed: bool
    retry_after: int = 0
    keys: tuple[tuple[str, str], ...] = ()  # (kind, hashed key) reserved


def memory_engine() -> Engine:
    """A private in-memory database holding only the throttle's table."""
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    SignInThrottleRow.metadata.create_all(engine, tables=[_TABLE])
    return engine


class Throttle:
    """Failed sign-ins for one `scope` ("proxy", "admin") under `limits` by key kind (USER,
    ADDRESS, USER_AT_ADDRESS). Thread-safe; blocking (call it from a worker thread in async
    code)."""

    def __init__(
        self,
        engine: Engine | None,
        *,
        scope: str,
        limits: Mapping[str, Limit],
        max_rows: int = 100_000,
        prune_every_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        unknown = set(limits) - {USER, ADDRESS, USER_AT_ADDRESS}
        if unknown:
            raise ValueError(f"unknown throttle key kinds: {sorted(unknown)}")
        self.scope = scope
        self.limits = dict(limits)
        self.max_rows = max_rows
        self.clock = clock
        self.database_errors = 0
        self._engine = engine
        self._memory: Engine | None = None
        self._lock = threading.Lock()
        self._prune_every = timedelta(seconds=prune_every_seconds)
        self._next_prune = datetime.min.replace(tzinfo=UTC)

    # --- the two calls ---

    def reserve(self, *, user: str, address: str) -> Attempt:
        """Count one sign-in attempt for `user` (canonical) from `address` before its password
        is checked; refused (and not counted) while any of its keys is waiting."""
        keys = self._keys(user, address)
        return self._run(lambda engine: self._reserve(engine, keys), keys)

    def succeeded(self, attempt: Attempt) -> None:
        """The reserved attempt had the right password: forget the user's failures (as a
        directory does on a successful sign-in) and take this attempt off the address's."""
        if attempt.allowed and attempt.keys:
            self._run(lambda engine: self._release(engine, attempt.keys), attempt.keys)

    def close(self) -> None:
        if self._memory is not None:
            self._memory.dispose()

    # --- the work ---

    def _keys(self, user: str, address: str) -> tuple[tuple[str, str], ...]:
        values = {USER: user, ADDRESS: address, USER_AT_ADDRESS: f"{user}\x00{address}"}
        return tuple(
            sorted(  # one order everywhere: no deadlocks between rows
                (
                    kind,
                    hashlib.sha256(
                        f"{self.scope}\x00{kind}\x00{values[kind]}".encode()
                    ).hexdigest(),
                )
                for kind in self.limits
            )
        )

    def _run(self, work: Callable[[Engine], Attempt | None], keys: Any) -> Attempt:
        with self._lock:
            if self._engine is not None:
                try:
                    return work(self._engine) or Attempt(True)
                except SQLAlchemyError as error:
                    self.database_errors += 1
                    log.warning(
                        "the sign-in throttle cannot use the database (%s); counting "
                        "in this process only until it answers",
                        error.__class__.__name__,
                    )
            if self._memory is None:
                self._memory = memory_engine()
            return work(self._memory) or Attempt(True)

    def _reserve(self, engine: Engine, keys: tuple[tuple[str, str], ...]) -> Attempt:
        now = self.clock()
        table = _TABLE
        insert = upsert_insert(engine.dialect.name)
        with engine.connect() as conn:
            for _, key in keys:  # the first statement writes: SQLite takes its write lock here
                conn.execute(
                    insert(table)
                    .values(
                        key=key,
                        failures=0,
                        window_start=now,
                        strikes=0,
                        locked_until=None,
                        expires=now,
                    )
                    .on_conflict_do_nothing(index_elements=["key"])
                )
            rows = {
                row.key: row
                for row in conn.execute(
                    select(table).where(table.c.key.in_([k for _, k in keys])).with_for_update()
                )
            }
            wait, changes = 0.0, []
            for kind, key in keys:
                refused, values = self._count(rows[key], self.limits[kind], now)
                wait = max(wait, refused)
                changes.append((key, values))
            if wait > 0:
                conn.rollback()
                return Attempt(False, retry_after=max(1, int(wait + 0.999)))
            for key, values in changes:
                conn.execute(update(table).where(table.c.key == key).values(**values))
            conn.commit()
        self._prune(engine, now)
        return Attempt(True, keys=keys)

    @staticmethod
    def _count(row: Any, limit: Limit, now: datetime) -> tuple[float, dict[str, Any]]:
        """(seconds to wait, 0 if allowed; the row's new values with this attempt counted)."""
        window = timedelta(seconds=limit.window_seconds)
        failures, start, strikes = row.failures, row.window_start, row.strikes
        if failures >= limit.max_failures:
            if row.locked_until is not None and now < row.locked_until:
                return (row.locked_until - now).total_seconds(), {}
            strikes, failures = strikes + 1, 0  # waited it out: a fresh window, longer next time
        elif now >= start + window:
            failures, strikes = 0, 0  # a whole window without reaching the limit: forgiven
        if failures == 0:
            start = now
        failures += 1
        cap = timedelta(seconds=limit.max_wait_seconds)
        locked_until = (
            start + min(cap, window * 2 ** min(strikes, 20))
            if failures >= limit.max_failures
            else None
        )
        return 0.0, {
            "failures": failures,
            "window_start": start,
            "strikes": strikes,
            "locked_until": locked_until,
            "expires": now + cap + window,
        }

    def _release(self, engine: Engine, keys: tuple[tuple[str, str], ...]) -> None:
        table = _TABLE
        with engine.begin() as conn:
            for kind, key in keys:
                if kind == ADDRESS:
                    failures = table.c.failures
                    conn.execute(
                        update(table)
                        .where(table.c.key == key, failures > 0)
                        .values(failures=failures - 1, locked_until=None)
                    )
                else:
                    conn.execute(delete(table).where(table.c.key == key))

    def _prune(self, engine: Engine, now: datetime) -> None:
        """Delete ended rows; beyond `max_rows`, the oldest rows that hold no lock."""
        if now < self._next_prune:
            return
        self._next_prune = now + self._prune_every
        table = _TABLE
        with engine.begin() as conn:
            conn.execute(delete(table).where(table.c.expires <= now))
            excess = (
                conn.execute(select(func.count()).select_from(table)).scalar_one() - self.max_rows
            )
            if excess > 0:
                unlocked = (table.c.locked_until.is_(None)) | (table.c.locked_until <= now)
                oldest = (
                    select(table.c.key)
                    .where(unlocked)
                    .order_by(table.c.expires)
                    .limit(excess)
                    .scalar_subquery()
                )
                conn.execute(delete(table).where(table.c.key.in_(oldest)))
