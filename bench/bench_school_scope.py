"""Benchmark: what keeping schools' data apart costs (docs/trust.md). The gateway's look-up of
a client's school for each event (100 schools), and the DSL's events page (newest first, and
one pupil's) on a database holding two schools' events: with no scope (a single school), as a
trust role (every school) and as one school's DSL. Not a test: it prints numbers for
docs/trust.md.

    .venv/bin/python bench/bench_school_scope.py [--events 100000] [--postgres URL] [--analyze]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session

from schoolgate.admin_api.services.monitoring import EventFilter, events_query
from schoolgate.policy.trust import parse_trust_file
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import EventRow
from schoolgate.store.school_scope import EVERY_SCHOOL, SchoolScope, scope_session

SCOPES = (("no scope", None), ("trust role", EVERY_SCHOOL), ("one school", SchoolScope("oak")))


def school_for_ns() -> float:
    """Nanoseconds per look-up of a client's school among 100 schools (5,000 addresses)."""
    text_ = "name: T\nbase: b.yaml\nschools:\n" + "".join(
        f"  s{i}: {{name: S{i}, subnets: [10.{i}.0.0/16]}}\n" for i in range(100)
    )
    trust = parse_trust_file(text_, source="bench")
    addresses = [f"10.{i % 100}.{(i // 100) % 250}.{i % 250}" for i in range(5000)]
    start = time.perf_counter()
    for _ in range(40):
        for address in addresses:
            trust.school_for(address)
    return (time.perf_counter() - start) / (40 * len(addresses)) * 1e9


def fill(engine: Engine, events: int) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for school in ("oak", "elm"):
            rows = [
                {
                    "id": str(uuid.uuid4()),
                    "replica": "bench",
                    "seq": i,
                    "at": now - timedelta(seconds=i * 3),
                    "user": f"p{i % 500}",
                    "role": "pupil",
                    "host": f"h{i % 300}.example",
                    "port": 443,
                    "verdict": "allow",
                    "reason": "default_allow",
                    "intercepted": False,
                    "school": school,
                }
                for i in range(events)
            ]
            for at in range(0, len(rows), 10_000):
                conn.execute(insert(EventRow), rows[at : at + 10_000])


def page_ms(engine: Engine, scope: SchoolScope | None, filters: EventFilter) -> float:
    times = []
    for _ in range(30):
        with Session(engine) as session:
            if scope is not None:
                scope_session(session, scope)
            start = time.perf_counter()
            list(session.scalars(events_query(filters)))
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=100_000, help="events per school")
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL (else SQLite)")
    parser.add_argument("--analyze", action="store_true", help="ANALYZE after filling")
    args = parser.parse_args()
    print(f"school of a client (100 schools, memoised): {school_for_ns():.0f} ns per event")
    with tempfile.TemporaryDirectory() as folder:
        url = args.postgres or f"sqlite:///{Path(folder) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        fill(engine, args.events)
        if args.analyze:
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        for label, filters in (("newest", EventFilter()), ("one pupil", EventFilter(user="p7"))):
            for name, scope in SCOPES:
                ms = page_ms(engine, scope, filters)
                print(f"{engine.dialect.name} events page, {label:9} {name:10}: {ms:6.2f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
