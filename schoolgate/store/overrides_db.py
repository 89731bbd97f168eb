"""The overrides snapshot read from the database: one tiny query of the change counter per
refresh, and a full reload into an `Overrides` value only when it moved. An outage keeps the last
snapshot (decide() checks every expiry itself, so a stale snapshot never extends a grant).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from schoolgate.policy.hostnames import HostError, normalise_host
from schoolgate.policy.model import (
    ApprovedException,
    LocalListEntry,
    Overrides,
    Sanction,
    Scope,
    SupervisedSession,
    TargetKind,
)
from schoolgate.policy.names import user_key
from schoolgate.store.db import make_engine
from schoolgate.store.models import (
    CHANGES_ROW,
    ChangeCounter,
    ExceptionRow,
    LocalListRow,
    SanctionRow,
    SanctionState,
    SupervisedSessionRow,
)

logger = logging.getLogger(__name__)

# Rows that ended more than this long ago are left out of the snapshot.
ENDED_GRACE = timedelta(minutes=5)
# Reload in full now and then even without a change, so that ended rows leave the snapshot.
FULL_RELOAD_SECONDS = 300.0


class DatabaseOverridesSource:
    """`OverridesSource` backed by the database (see store.snapshots.OverridesSource).

    Wiring it into the gateway is one line where the file source is made:
    `source = DatabaseOverridesSource.from_url(url)`."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        full_reload_seconds: float = FULL_RELOAD_SECONDS,
    ) -> None:
        self.engine = engine
        self._clock = clock or (lambda: datetime.now(UTC))
        self._full_reload_seconds = full_reload_seconds
        self._current = Overrides()
        self._counter: int | None = None  # the change counter of the current snapshot
        self._loaded_at = 0.0  # time.monotonic() of the last full reload
        self.last_problem: str | None = None
        self.reloads = 0

    @classmethod
    def from_url(cls, url: str) -> DatabaseOverridesSource:
        return cls(make_engine(url))

    @property
    def current(self) -> Overrides:
        return self._current

    async def load(self) -> Overrides:
        return await asyncio.to_thread(self.load_now)

    def load_now(self) -> Overrides:
        """Blocking form of `load` (for start-up and tests). Never raises."""
        try:
            with Session(self.engine) as session:
                counter = session.scalar(
                    select(ChangeCounter.counter).where(ChangeCounter.id == CHANGES_ROW)
                )
                stale = time.monotonic() - self._loaded_at >= self._full_reload_seconds
                if counter is not None and counter == self._counter and not stale:
                    self._recovered()
                    return self._current
                overrides = self._read(session)
        except SQLAlchemyError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._problem(
                f"reading the overrides from the database "
                f"{self.engine.url.render_as_string(hide_password=True)} failed "
                f"({first}); keeping the previous snapshot until it is back"
            )
            return self._current
        self._current, self._counter = overrides, counter
        self._loaded_at = time.monotonic()
        self.reloads += 1
        self._recovered()
        return self._current

    def _read(self, session: Session) -> Overrides:
        since = self._clock() - ENDED_GRACE
        exceptions = []
        for e in session.scalars(
            select(ExceptionRow)
            .where(or_(ExceptionRow.ends.is_(None), ExceptionRow.ends > since))
            .order_by(ExceptionRow.starts, ExceptionRow.id)
        ):
            target = e.target
            if e.target_kind is TargetKind.HOST:
                host = self._host(e.target, f"exception {e.id}")
                if host is None:
                    continue
                target = host
            who = user_key(e.who) if e.scope is Scope.USER and e.who else e.who
            exceptions.append(
                ApprovedException(
                    id=e.id,
                    scope=e.scope,
                    target_kind=e.target_kind,
                    target=target,
                    starts=e.starts,
                    ends=e.ends,
                    who=who,
                    school=e.school,
                )
            )
        sanctions = tuple(
            Sanction(s.id, user_key(s.user), s.starts, s.ends)
            for s in session.scalars(
                select(SanctionRow)
                .where(
                    SanctionRow.state == SanctionState.PLACED,
                    or_(SanctionRow.ends.is_(None), SanctionRow.ends > since),
                )
                .order_by(SanctionRow.starts, SanctionRow.id)
            )
        )
        sessions = tuple(
            SupervisedSession(user_key(s.user), s.starts, s.ends)
            for s in session.scalars(
                select(SupervisedSessionRow)
                .where(SupervisedSessionRow.ends > since)
                .order_by(SupervisedSessionRow.starts, SupervisedSessionRow.id)
            )
        )
        local = []
        for row in session.scalars(
            select(LocalListRow).order_by(LocalListRow.host, LocalListRow.school.nulls_first())
        ):
            host = self._host(row.host, "local list entry")
            if host is not None:
                local.append(LocalListEntry(host, row.verdict, row.note, school=row.school))
        return Overrides(
            exceptions=tuple(exceptions),
            sanctions=sanctions,
            supervised_sessions=sessions,
            local_list=tuple(local),
        )

    def _host(self, raw: str, where: str) -> str | None:
        found = normalise_host(raw)
        if isinstance(found, HostError):
            logger.warning("%s: host %r left out of the overrides: %s", where, raw, found.message)
            return None
        return found.name

    def _problem(self, message: str) -> None:
        if self.last_problem is None:
            logger.warning("%s", message)
        self.last_problem = message

    def _recovered(self) -> None:
        if self.last_problem is not None:
            logger.warning("the overrides database is reachable again")
        self.last_problem = None
