"""The event writer's spool: append-only JSON-lines files (one per writer, locked with flock)
where events wait while the database is slow or down, replayed in order when it returns; files
left by a writer that died are claimed and replayed by the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from pathlib import Path

SPOOL_SUFFIX = ".jsonl"
_READ_BYTES = 4 << 20  # how much of a spool file one replay step reads at most


class Spool:
    """One append-only JSON-lines spool file, locked (flock) by the writer that owns it.

    `read_offset` is how far it has been replayed; once everything is replayed, the owner
    truncates it. Thread-safe: appends come from the file thread and (queue full) the loop."""

    def __init__(self, path: Path, fd: int, *, owned: bool) -> None:
        self.path = path
        self.fd = fd
        self.owned = owned  # ours to append to; otherwise left by a dead writer
        self.lock = threading.Lock()
        self.size = os.fstat(fd).st_size
        self.read_offset = 0

    @classmethod
    def create(cls, directory: Path, name: str) -> Spool:
        # Locked under a temporary name first, so that no other writer's start-up scan can
        # mistake the new file for an orphan before we hold its lock.
        temp = directory / f".{name}.new"
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = directory / f"{name}{SPOOL_SUFFIX}"
        os.replace(temp, path)
        return cls(path, fd, owned=True)

    @classmethod
    def claim(cls, path: Path) -> Spool | None:
        """Take over a spool file whose writer is gone (nobody holds its lock); None if a live
        writer holds it or it has already been replayed and removed."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if os.fstat(fd).st_nlink == 0:  # replayed and removed by another writer meanwhile
            os.close(fd)
            return None
        return cls(path, fd, owned=False)

    @property
    def pending_bytes(self) -> int:
        return self.size - self.read_offset

    def append(self, data: bytes, *, sync: bool) -> None:
        with self.lock:
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
            self.size += len(data)
            if sync:
                os.fsync(self.fd)

    def read(self, max_lines: int) -> tuple[list[bytes], int]:
        """Up to `max_lines` complete lines from the replay point, and the offset after them.
        An incomplete last line (a write torn by a crash) is not returned."""
        with self.lock:
            start = self.read_offset
            data = os.pread(self.fd, min(_READ_BYTES, self.size - start), start)
        cut = data.rfind(b"\n")
        if cut < 0:
            return [], start
        lines = data[:cut].split(b"\n")[:max_lines]
        return lines, start + sum(len(line) + 1 for line in lines)

    def commit(self, offset: int) -> None:
        """Everything before `offset` is in the database; empty the file once all of it is."""
        with self.lock:
            self.read_offset = offset
            if self.owned and self.read_offset >= self.size:
                os.ftruncate(self.fd, 0)
                self.size = self.read_offset = 0

    def torn_tail(self) -> bool:
        """Only an incomplete line is left (a dead writer's last, torn write)."""
        return self.pending_bytes > 0 and not self.owned

    def close(self, *, remove: bool) -> None:
        with self.lock:
            if remove:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            os.close(self.fd)  # releases the lock


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:60] or "gateway"
