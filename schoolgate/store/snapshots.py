"""The overrides snapshot (exceptions, sanctions, supervised sessions, local lists) the gateway
reads from memory, and where it comes from: a JSON file replaced atomically, or the last snapshot
read from the database (store/overrides_db.py reads the database itself).

`OverridesSource` is the interface all of them implement; the gateway calls `load_now()` once
when its options are set and `load()` from a background task, never on the request path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from schoolgate.policy.hostnames import HostError, normalise_host
from schoolgate.policy.model import (
    ApprovedException,
    LocalListEntry,
    Overrides,
    Sanction,
    Scope,
    SupervisedSession,
    TargetKind,
    Verdict,
)
from schoolgate.policy.names import user_key

logger = logging.getLogger(__name__)


class OverridesSource(Protocol):
    """Somewhere the current overrides can be read from, as one whole snapshot."""

    def load_now(self) -> Overrides: ...

    async def load(self) -> Overrides: ...


class SnapshotError(ValueError):
    """An overrides snapshot is unreadable or invalid; the message lists every problem."""


# --- the file format (JSON), validated strictly ----------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_Id = Annotated[str, Field(min_length=1, max_length=200)]


class _ExceptionIn(_Strict):
    id: _Id
    scope: Scope
    target_kind: TargetKind
    target: str = Field(min_length=1, max_length=300)
    starts: AwareDatetime
    ends: AwareDatetime | None = None
    who: str | None = None
    school: str | None = None


class _SanctionIn(_Strict):
    id: _Id
    user: str = Field(min_length=1)
    starts: AwareDatetime
    ends: AwareDatetime | None = None


class _SessionIn(_Strict):
    user: str = Field(min_length=1)
    starts: AwareDatetime
    ends: AwareDatetime


class _LocalIn(_Strict):
    host: str = Field(min_length=1, max_length=300)
    verdict: Verdict
    note: str = ""
    school: str | None = None


class _OverridesIn(_Strict):
    exceptions: list[_ExceptionIn] = []
    sanctions: list[_SanctionIn] = []
    supervised_sessions: list[_SessionIn] = []
    local_list: list[_LocalIn] = []


def parse_overrides(text: str, *, source: str) -> Overrides:
    """Parse the JSON text of a snapshot; SnapshotError lists every problem with its place."""
    try:
        raw: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{source}: not valid JSON: {exc}") from None
    try:
        spec = _OverridesIn.model_validate(raw)
    except ValidationError as exc:
        found = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        ]
        raise SnapshotError("\n  ".join([f"{source}: {len(found)} problem(s)", *found])) from None
    problems: list[str] = []

    def host(value: str, where: str) -> str:
        found = normalise_host(value)
        if isinstance(found, HostError):
            problems.append(f"{where}: {found.message}")
            return value
        return found.name

    exceptions = tuple(
        ApprovedException(
            id=e.id,
            scope=e.scope,
            target_kind=e.target_kind,
            target=host(e.target, f"exceptions.{i}.target")
            if e.target_kind is TargetKind.HOST
            else e.target,
            starts=e.starts,
            ends=e.ends,
            who=user_key(e.who) if e.scope is Scope.USER and e.who else e.who,
            school=e.school,
        )
        for i, e in enumerate(spec.exceptions)
    )
    local = tuple(
        LocalListEntry(host(e.host, f"local_list.{i}.host"), e.verdict, e.note, school=e.school)
        for i, e in enumerate(spec.local_list)
    )
    if problems:
        raise SnapshotError("\n  ".join([f"{source}: {len(problems)} problem(s)", *problems]))
    return Overrides(
        exceptions=exceptions,
        sanctions=tuple(Sanction(s.id, user_key(s.user), s.starts, s.ends) for s in spec.sanctions),
        supervised_sessions=tuple(
            SupervisedSession(user_key(s.user), s.starts, s.ends) for s in spec.supervised_sessions
        ),
        local_list=local,
    )


def dump_overrides(overrides: Overrides) -> str:
    """The JSON text of a snapshot, in the format `parse_overrides` reads."""

    def when(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return json.dumps(
        {
            "exceptions": [
                {
                    "id": e.id,
                    "scope": e.scope,
                    "target_kind": e.target_kind,
                    "target": e.target,
                    "starts": when(e.starts),
                    "ends": when(e.ends),
                    "who": e.who,
                    "school": e.school,
                }
                for e in overrides.exceptions
            ],
            "sanctions": [
                {"id": s.id, "user": s.user, "starts": when(s.starts), "ends": when(s.ends)}
                for s in overrides.sanctions
            ],
            "supervised_sessions": [
                {"user": s.user, "starts": when(s.starts), "ends": when(s.ends)}
                for s in overrides.supervised_sessions
            ],
            "local_list": [
                {"host": e.host, "verdict": e.verdict, "note": e.note, "school": e.school}
                for e in overrides.local_list
            ],
        },
        indent=2,
    )


def write_overrides_atomically(path: Path, overrides: Overrides) -> None:
    """Replace the snapshot file in one step (temp file + rename): readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(dump_overrides(overrides))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class FileOverridesSource:
    """Overrides read from a JSON file. A missing or broken file keeps the previous snapshot
    (at first: none), and says why in the log once per change of the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._current = Overrides()
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) last read
        self.last_problem: str | None = None

    async def load(self) -> Overrides:
        return await asyncio.to_thread(self.load_now)

    def load_now(self) -> Overrides:
        """Blocking form of `load` (for start-up and tests)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._problem(
                f"{self.path}: the overrides file does not exist; keeping the previous snapshot"
            )
            return self._current
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._seen:
            return self._current
        self._seen = stamp
        try:
            text = self.path.read_text(encoding="utf-8")
            self._current = parse_overrides(text, source=str(self.path))
        except (OSError, UnicodeDecodeError, SnapshotError) as exc:
            self._problem(f"{exc}\n  (keeping the previous overrides snapshot)")
            return self._current
        self.last_problem = None
        return self._current

    def _problem(self, message: str) -> None:
        if message != self.last_problem:
            logger.warning("%s", message)
        self.last_problem = message


class _DatabaseSource(Protocol):
    last_problem: str | None

    def load_now(self) -> Overrides: ...


class LastSnapshotSource:
    """A database source that also keeps the last overrides it read on disk, so that a gateway
    started while the database is down enforces the school's exceptions, sanctions and local
    lists from that snapshot (and, until one exists, runs on the policy alone, saying so). Once
    the database answers, its overrides replace the snapshot's and the file is brought up to
    date. `state` says which of the three is in force (for the log and health)."""

    DATABASE = "database"
    SNAPSHOT = "last snapshot (database unreachable)"
    POLICY_ONLY = "policy only (database unreachable, no snapshot yet)"

    def __init__(self, database: _DatabaseSource, path: Path) -> None:
        self.database = database
        self.path = path
        self.state = self.POLICY_ONLY
        self._saved: Overrides | None = None  # what the file holds (as last written by us)
        self._fallback: Overrides | None = None  # read from the file when the database is down

    @property
    def last_problem(self) -> str | None:
        return self.database.last_problem

    async def load(self) -> Overrides:
        return await asyncio.to_thread(self.load_now)

    def load_now(self) -> Overrides:
        """Blocking form of `load`. Never raises."""
        overrides = self.database.load_now()
        if self.database.last_problem is None:
            if self.state != self.DATABASE:
                if self._fallback is not None:
                    logger.warning(
                        "the overrides database answers again; its overrides "
                        "replace the last snapshot's"
                    )
                self.state = self.DATABASE
            if overrides is not self._saved:
                self._save(overrides)
            return overrides
        if self.state == self.DATABASE:
            return overrides  # read once this run: the database source keeps that snapshot
        if self._fallback is None:
            self._fallback = self._read_snapshot()
        return self._fallback

    def _save(self, overrides: Overrides) -> None:
        try:
            write_overrides_atomically(self.path, overrides)
        except OSError as exc:
            logger.warning(
                "cannot save the overrides snapshot %s (%s); a start while the "
                "database is down would run on the policy alone",
                self.path,
                exc,
            )
            return
        self._saved = overrides

    def _read_snapshot(self) -> Overrides:
        try:
            text = self.path.read_text(encoding="utf-8")
            overrides = parse_overrides(text, source=str(self.path))
        except FileNotFoundError:
            self.state = self.POLICY_ONLY
            logger.warning(
                "the overrides database cannot be read and there is no saved "
                "snapshot (%s) yet: running on the policy alone (no exceptions, "
                "sanctions or local lists) until the database answers",
                self.path,
            )
            return Overrides()
        except (OSError, UnicodeDecodeError, SnapshotError) as exc:
            self.state = self.POLICY_ONLY
            logger.warning(
                "the overrides database cannot be read and the saved snapshot is "
                "unusable (%s): running on the policy alone until the database "
                "answers",
                exc,
            )
            return Overrides()
        self.state = self.SNAPSHOT
        logger.warning(
            "the overrides database cannot be read: enforcing the last snapshot "
            "saved in %s until it answers",
            self.path,
        )
        return overrides
