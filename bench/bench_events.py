"""Benchmark: events per second one EventWriter sustains into SQLite and into PostgreSQL (target:
20,000/s per writer). Not a test: it prints numbers for docs/benchmarks.md.

    .venv/bin/python bench/bench_events.py [--n 200000] [--postgres URL]

The producer submits realistic events, built beforehand, as fast as the writer takes them (it
yields while the queue is more than half full, as a busy proxy's loop would), so nothing is
spooled and the figure is the writer's own rate: from the first submit to the last row
committed.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.event_writer import EventWriter
from schoolgate.store.events import AttemptEvidence, Event

HOSTS = ["www.bbc.co.uk", "classroom.google.com", "www.instagram.com", "cdn.jsdelivr.net"]


def make_event(i: int, at: datetime) -> Event:
    blocked = i % 5 == 0
    return Event(
        at=at,
        host=HOSTS[i % len(HOSTS)],
        user=f"pupil{i % 300}",
        role="pupil",
        identity_source="proxy_auth",
        client_ip=f"10.0.{i % 4}.{i % 250}",
        method="GET",
        scheme="https",
        port=443,
        path="/news/article-12345" if blocked else None,
        query="q=cats" if blocked else None,
        category="instagram" if blocked else None,
        verdict=Verdict.BLOCK if blocked else Verdict.ALLOW,
        reason=Reason.RULE_BLOCK if blocked else Reason.DEFAULT_ALLOW,
        rule="pupils-no-social" if blocked else None,
        intercepted=blocked,
        technique="web_proxy" if i % 100 == 0 else None,
        attempt=AttemptEvidence({"list": "web_proxy"}) if i % 100 == 0 else None,
    )


async def submit_all(writer: EventWriter, events: list[Event]) -> None:
    """Submit `events` as fast as the writer takes them (yielding while its queue is more than
    half full, as a busy proxy's loop would), then wait until every one is stored."""
    queue_room = 20_000 // 2
    for i, event in enumerate(events):
        writer.submit(event)
        if i % 500 == 0:
            while writer.stats.queued > queue_room:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)
    while writer.stats.written + writer.stats.replayed < len(events):
        await asyncio.sleep(0.005)


async def run(url: str, n: int) -> tuple[float, int]:
    upgrade(url)
    engine = make_engine(url)
    with tempfile.TemporaryDirectory() as spool:
        writer = EventWriter(engine, spool_dir=Path(spool))
        await writer.start()
        at = datetime.now(UTC)
        # Built before the clock starts: making an Event is the proxy's cost (measured by
        # bench_recording.py as recording on vs off), not the writer's.
        events = [make_event(i, at) for i in range(n)]
        started = time.perf_counter()
        await submit_all(writer, events)
        elapsed = time.perf_counter() - started
        spooled = writer.stats.spooled
        await writer.close()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == n
    engine.dispose()
    return n / elapsed, spooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--n", type=int, default=200_000, help="events per run")
    parser.add_argument(
        "--postgres", help="an empty PostgreSQL database URL (skipped if not given)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        targets = [("SQLite (WAL file)", f"sqlite:///{data}/bench.db")]
        if args.postgres:
            targets.append(("PostgreSQL", args.postgres))
        print(f"{'database':<20} {'events/s':>10} {'spooled':>8}")
        for name, url in targets:
            rate, spooled = asyncio.run(run(url, args.n))
            print(f"{name:<20} {rate:>10,.0f} {spooled:>8}")


if __name__ == "__main__":
    main()
