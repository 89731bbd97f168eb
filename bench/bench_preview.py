"""Benchmark: "What would change?" over a recorded history: N events (default 1,000,000) over
seven days written to a database, then read back and replayed through the seed policy and a
change to it (staff lose Facebook at break). Not a test: it prints numbers for
docs/benchmarks.md.

    .venv/bin/python bench/bench_preview.py [--events 1000000] [--database URL]

Without --database it uses a new SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import Session

from schoolgate.policy.diff import replay
from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import EventRow
from schoolgate.store.policy_files import load_policy, seed_policy_path
from schoolgate.store.policy_versions import recorded_decisions

HOSTS = [
    "www.bbc.co.uk",
    "www.facebook.com",
    "scontent-lhr8-1.xx.fbcdn.net",
    "pbs.twimg.com",
    "www.google.com",
    "classroom.google.com",
    "www.tiktok.com",
    "api.x.com",
    "assets.example-learning.org",
    "cdn.jsdelivr.net",
    "www.youtube.com",
    "m.facebook.com",
]
ROLES = ["pupil", "pupil", "pupil", "staff"]
BATCH = 20_000


def fill(url: str, count: int, until: datetime) -> float:
    upgrade(url)
    engine = make_engine(url)
    start = until - timedelta(days=7)
    step = (until - start) / count
    began = time.perf_counter()
    with engine.begin() as conn:
        rows = []
        for i in range(count):
            rows.append(
                {
                    "id": str(uuid.UUID(int=i)),
                    "replica": "bench",
                    "seq": i,
                    "at": start + step * i,
                    "user": f"user{i % 600}",
                    "role": ROLES[i % len(ROLES)],
                    "host": HOSTS[i % len(HOSTS)],
                    "verdict": Verdict.ALLOW,
                    "reason": Reason.RULE_ALLOW.value,
                    "intercepted": False,
                }
            )
            if len(rows) == BATCH:
                conn.execute(insert(EventRow), rows)
                rows = []
        if rows:
            conn.execute(insert(EventRow), rows)
    engine.dispose()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database or f"sqlite:///{Path(folder) / 'bench.db'}"
        until = datetime.now(UTC)
        filled = fill(url, args.events, until)
        print(f"wrote {args.events:,} events in {filled:.1f} s")
        old = load_policy(None)
        new_path = Path(folder) / "new.yaml"
        new_path.write_text(
            seed_policy_path()
            .read_text(encoding="utf-8")
            .replace(
                "    categories: [facebook, social]\n    when: [break]\n",
                "    categories: [social]\n    when: [break]\n",
            ),
            encoding="utf-8",
        )
        new = load_policy(new_path)
        engine = make_engine(url)
        began = time.perf_counter()
        with Session(engine) as session:
            history = list(
                recorded_decisions(
                    session, since=until - timedelta(days=7), until=until + timedelta(seconds=1)
                )
            )
        read = time.perf_counter() - began
        began = time.perf_counter()
        found = replay(old, new, history)
        replayed = time.perf_counter() - began
        engine.dispose()
        print(
            f"read {len(history):,} events in {read:.1f} s; replayed in {replayed:.1f} s; "
            f"total {read + replayed:.1f} s; {found.changed:,} would change"
        )
        for flip in found.flips[:5]:
            print(f"  {flip.sentence}")


if __name__ == "__main__":
    main()
