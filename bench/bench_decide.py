"""Benchmark: decisions per second with the shipped lists and with up to 1,000,000 synthetic
domains, and memory per domain. Not a test: it prints numbers for docs/benchmarks.md.

    .venv/bin/python bench/bench_decide.py [--sizes 1000,10000,100000,1000000] [--n 200000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from datetime import UTC, datetime

from schoolgate.policy.decide import decide
from schoolgate.policy.model import Policy, Request, Subject
from schoolgate.policy.parse import list_files_named, parse_policy
from schoolgate.store.policy_files import seed_policy_path, shipped_lists_dir

SYNTHETIC = "synthetic.txt"
# A mix of what a school sees: allowed sites, listed platforms, deep subdomains, misses.
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
    "d123.synthetic-domain.test",
    "a.b.c.d.e.f.deep.example.com",
]
SUBJECTS = [Subject(role="pupil", user="pupil1"), Subject(role="staff", user="teacher1")]
AT = datetime(2026, 11, 23, 10, 35, tzinfo=UTC)  # a Monday morning break


def seed_with_synthetic(size: int) -> tuple[Policy, float]:
    text = seed_policy_path().read_text()
    lists = {name: (shipped_lists_dir() / name).read_text() for name in list_files_named(text)}
    if size:
        header = (
            "# category: synthetic\n# description: benchmark\n# compiled: 2026-11-21\n"
            "# source: generated\n"
        )
        lists[SYNTHETIC] = header + "\n".join(f"d{i}.synthetic-domain.test" for i in range(size))
        text = text.replace(
            "categories:\n", f"categories:\n  synthetic:\n    lists: [{SYNTHETIC}]\n", 1
        )
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    policy = parse_policy(text, source="bench", lists=lists)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    # What stays is the policy; the list texts are freed once parsed.
    del lists
    return policy, grown / max(len(policy.domains), 1)


def measure(policy: Policy, n: int) -> tuple[float, float]:
    """Median and p99 ns per decide(), timed in batches of the host x subject mix."""
    cases = [(Request(h), s) for h in HOSTS for s in SUBJECTS]
    per_batch: list[float] = []
    rounds = max(n // len(cases), 1)
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for request, subject in cases:
            decide(policy, request, subject, None, AT)
        per_batch.append((time.perf_counter_ns() - start) / len(cases))
    per_batch.sort()
    return statistics.median(per_batch), per_batch[int(len(per_batch) * 0.99) - 1]


def calibration_ns(rounds: int = 200) -> float:
    """Median ns of a fixed pure-Python workload (ten dict look-ups): how fast this machine runs
    Python right now. Divide decide's median by it to compare runs on a busy and a quiet
    machine."""
    table = {"a": 1, "b": 2, "c": 3}
    get = table.get
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(100):
            get("a"), get("b"), get("c"), get("d"), get("e")
            get("a"), get("b"), get("c"), get("d"), get("e")
        samples.append((time.perf_counter_ns() - start) / 100)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="0,1000,10000,100000,1000000")
    parser.add_argument("--n", type=int, default=200_000, help="decisions per size")
    args = parser.parse_args()
    print(
        f"{'synthetic domains':>18} {'index size':>10} {'median ns':>10} {'p99 ns':>8} "
        f"{'decisions/s':>12} {'bytes/domain':>13} {'calibration ns':>15}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        policy, per_domain = seed_with_synthetic(size)
        median, p99 = measure(policy, args.n)
        print(
            f"{size:>18,} {len(policy.domains):>10,} {median:>10.0f} {p99:>8.0f} "
            f"{1e9 / median:>12,.0f} {per_domain:>13.1f} {calibration_ns():>15.0f}"
        )
        del policy
        gc.collect()


if __name__ == "__main__":
    main()
