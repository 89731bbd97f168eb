"""Events as JSON lines for a SIEM when there is no database: the same line `EventWriter` writes
beside the database (store/events.py `event_json_line`, with this gateway's replica name and a
sequence number), so a SIEM sees one schema whichever way the gateway records.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections import deque

from schoolgate.store.events import Event, event_json_line


class SiemLines:
    """Events as JSON lines to a file or stdout, written from a worker thread (no database).
    Bounded: if the output stalls, the oldest lines go first."""

    def __init__(self, path: str, *, limit: int = 100_000, replica: str | None = None) -> None:
        self.path = path
        self.replica = replica or socket.gethostname()
        self._seq = time.time_ns() // 1000  # as EventWriter numbers its events
        self._pending: deque[bytes] = deque(maxlen=limit)
        self._task: asyncio.Task[None] | None = None

    def submit(self, event: Event) -> None:
        self._seq += 1
        self._pending.append(event_json_line(self.replica, self._seq, event))

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            await self._flush()

    async def _flush(self) -> None:
        lines = [self._pending.popleft() for _ in range(len(self._pending))]
        if lines:
            await asyncio.to_thread(self._write, b"".join(lines).decode())

    def _write(self, text: str) -> None:
        if self.path == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(text)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._flush()
