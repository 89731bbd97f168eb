"""Benchmark: one trust's schools all loaded at once. The time and memory to compile N schools'
policies (the seed policy as the trust's base, each school with its own calendar, one in four
with a category of its own), and the time of one decision with the school found first from the
client's address, against a decision with one school's policy. Not a test: it prints numbers for
docs/benchmarks.md.

    .venv/bin/python bench/bench_trust.py [--schools 1,10,100] [--n 100000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decide import AT, HOSTS, SUBJECTS, calibration_ns

from schoolgate.policy.decide import decide
from schoolgate.policy.model import Request
from schoolgate.policy.parse import list_files_named
from schoolgate.policy.trust import SchoolSource, Trust, compile_trust, parse_trust_file
from schoolgate.store.policy_files import seed_policy_path, shipped_lists_dir

OWN_LIST = """# category: clubs
# description: a school's own list
# compiled: 2026-12-03
# source: generated for bench/bench_trust.py
""" + "".join(f"club{i}.example\n" for i in range(50))


def school_override(number: int, own_every: int) -> str:
    """A school's own calendar (its lunch minutes apart from the next school's; the morning break
    the seed's, so the decisions at AT are alike) and, for one school in `own_every`, a
    category of its own with a rule."""
    minute = number % 30
    text = f"""
calendar:
  school_day: {{start: "08:45", end: "15:15"}}
  periods:
    - {{name: morning break, kind: break, start: "10:30", end: "10:45"}}
    - {{name: lunch, kind: break, start: "12:{minute:02d}", end: "13:{minute:02d}"}}
"""
    if own_every and number % own_every == 0:
        text += """categories:
  clubs: {lists: [clubs.txt]}
rules:
  - {name: clubs, roles: all, categories: [clubs], action: block}
"""
    return text


def build(schools: int, own_every: int = 4) -> tuple[Trust, float, float]:
    """The compiled trust, the seconds it took and the bytes it holds."""
    lines = ["name: Bench Trust", "base: seed.yaml", "locks: {categories: [social]}", "schools:"]
    for i in range(schools):
        lines += [
            f"  s{i}:",
            f"    name: School {i}",
            f"    subnets: [10.{i // 250}.{i % 250}.0/24]",
        ]
    trust_file = parse_trust_file("\n".join(lines) + "\n", source="bench-trust.yaml")
    base_text = seed_policy_path().read_text()
    base_lists = {n: (shipped_lists_dir() / n).read_text() for n in list_files_named(base_text)}
    sources = {
        f"s{i}": SchoolSource(school_override(i, own_every), f"s{i}.yaml", {"clubs.txt": OWN_LIST})
        for i in range(schools)
    }
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    start = time.perf_counter()
    trust = compile_trust(
        trust_file,
        base_text=base_text,
        base_source="seed.yaml",
        base_lists=base_lists,
        schools=sources,
    )
    seconds = time.perf_counter() - start
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    del base_lists, sources
    return trust, seconds, sum(s.size_diff for s in after.compare_to(before, "filename"))


def measure(trust: Trust, n: int, *, attribute: bool) -> float:
    """Median ns per decision over clients spread across every school; with `attribute`, the
    school's policy is found from the client's address first, as the gateway would."""
    count = len(trust.file.schools)
    clients = [f"10.{i // 250}.{i % 250}.7" for i in range(count)]
    only = trust.policies["s0"]
    cases = [(Request(h), s, clients[i % count]) for i, h in enumerate(HOSTS) for s in SUBJECTS]
    per_batch = []
    for _ in range(max(n // len(cases), 1)):
        start = time.perf_counter_ns()
        for request, subject, client in cases:
            if attribute:
                school = trust.file.attribute(address=client).school
                assert school is not None
                decide(trust.policies[school.id], request, subject, None, AT)
            else:
                decide(only, request, subject, None, AT)
        per_batch.append((time.perf_counter_ns() - start) / len(cases))
    return statistics.median(per_batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schools", default="1,10,100")
    parser.add_argument("--n", type=int, default=100_000, help="decisions per row")
    parser.add_argument(
        "--own-category-every",
        type=int,
        default=4,
        help="one school in this many adds a category of its own (0: none does)",
    )
    args = parser.parse_args()
    print(
        f"{'schools':>8} {'compile s':>10} {'MB held':>8} {'KB/school':>10} "
        f"{'one school ns':>14} {'attributed ns':>14} {'calibration ns':>15}"
    )
    for schools in (int(s) for s in args.schools.split(",")):
        trust, seconds, held = build(schools, args.own_category_every)
        single = measure(trust, args.n, attribute=False)
        attributed = measure(trust, args.n, attribute=True)
        print(
            f"{schools:>8} {seconds:>10.2f} {held / 1e6:>8.1f} {held / 1e3 / schools:>10.0f} "
            f"{single:>14.0f} {attributed:>14.0f} {calibration_ns():>15.0f}"
        )
        del trust
        gc.collect()


if __name__ == "__main__":
    main()
