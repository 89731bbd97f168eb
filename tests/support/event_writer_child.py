"""A process that records events and is then killed: run as
`python -m tests.support.event_writer_child DATABASE_URL SPOOL_DIR COUNT`. It submits COUNT
events, prints "spooled N" once all of them are on disk in its spool (the database given is
down), then waits to be killed with SIGKILL."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.db import make_engine
from schoolgate.store.event_writer import EventWriter
from schoolgate.store.events import Event

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def numbered(i: int) -> Event:
    return Event(
        at=T0 + timedelta(milliseconds=i),
        host=f"h{i}.example",
        user="pupil1",
        verdict=Verdict.BLOCK,
        reason=Reason.RULE_BLOCK,
        id=f"00000000-0000-4000-8000-{i:012d}",
    )


async def main(url: str, spool_dir: Path, count: int) -> None:
    writer = EventWriter(
        make_engine(url), spool_dir=spool_dir, batch_size=100, flush_seconds=0.01, retry_seconds=60
    )
    await writer.start()
    for i in range(count):
        writer.submit(numbered(i))
        if i % 50 == 0:
            await asyncio.sleep(0)
    while writer.stats.spooled < count:
        await asyncio.sleep(0.02)
    print(f"spooled {writer.stats.spooled}", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
