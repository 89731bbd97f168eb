"""Benchmark host normalisation + DomainIndex.categories at 1k to 1M listed domains.

    python bench/bench_domains.py [--sizes 1000,10000,100000,1000000] [--rounds 30]

For each size it builds an index of synthetic domains (plus a few real ones), measures the
memory the index keeps (tracemalloc), then times `normalise_host(raw)` + `categories(name)`
over a fixed mix of hosts: warm (through the public API, as on a busy gateway where hosts
repeat) and cold (the remembered answers bypassed, as for a host never seen before).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import string
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schoolgate.policy import hostnames
from schoolgate.policy.hostnames import DomainIndex, Host, normalise_host

REAL = {
    "x": ["x.com", "twitter.com", "t.co", "twimg.com"],
    "instagram": ["instagram.com", "cdninstagram.com", "ig.me"],
    "facebook": ["facebook.com", "fbcdn.net", "fb.me", "fb.com"],
    "social": ["tiktok.com", "snapchat.com", "discord.com", "reddit.com", "instagram.com"],
}
CATEGORIES = ("x", "instagram", "facebook", "social", "adult", "gambling", "proxy", "games")
TLDS = ("com", "net", "org", "co.uk", "io", "de", "info", "xyz", "org.uk", "com.au")


def synthetic_domains(count: int, seed: int = 20240901) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + string.digits
    found: set[str] = set()
    while len(found) < count:
        name = "".join(rng.choices(alphabet, k=rng.randint(5, 14))) + "." + rng.choice(TLDS)
        if rng.random() < 0.2:
            name = rng.choice(("cdn", "img", "api", "m", "static")) + "." + name
        found.add(name)
    return sorted(found)


def make_lists(count: int) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {c: list(REAL.get(c, [])) for c in CATEGORIES}
    real = {d for domains in REAL.values() for d in domains}
    for i, domain in enumerate(synthetic_domains(count - len(real))):
        lists[CATEGORIES[i % len(CATEGORIES)]].append(domain)
    return lists


def host_mix(lists: dict[str, list[str]]) -> dict[str, list[str]]:
    """The fixed mix of request hosts, by kind (synthetic hits depend on the size)."""
    listed = lists["adult"][len(lists["adult"]) // 2]
    return {
        "canonical hit": [
            "x.com",
            "api.x.com",
            "www.instagram.com",
            "scontent-lhr8-1.cdninstagram.com",
            listed,
            "www." + listed,
        ],
        "canonical miss": [
            "www.bbc.co.uk",
            "classroom.google.com",
            "www.example.org",
            "r3---sn-aigl6nek.googlevideo.com",
        ],
        "deep subdomain": ["a.b.c.d.e.f.api.x.com", "a.b.c.d.e.f.g.example.net"],
        "non-canonical": [
            "WWW.Instagram.COM.",
            "ｘ.ｃｏｍ",
            "x\u3002com",
            "in\u00adstagram.com",
            "bücher.de",
            "xn--bcher-kva.de",
            "0x7f.1",
            "[::ffff:127.0.0.1]",
        ],
    }


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def time_per_call(call: Callable[[str], object], host: str, batch: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(batch):
        call(host)
    return (time.perf_counter_ns() - start) / batch


def measure(
    index: DomainIndex, mix: dict[str, list[str]], rounds: int, batch: int
) -> dict[str, dict[str, list[float]]]:
    def warm(raw: str) -> object:
        host = normalise_host(raw)
        return index.categories(host.name) if isinstance(host, Host) else ()

    read_host = hostnames._read_host
    lookup = index._lookup

    def cold(raw: str) -> object:
        host = read_host(raw)
        return lookup(host.name) if isinstance(host, Host) else ()

    samples: dict[str, dict[str, list[float]]] = {"warm": {}, "cold": {}}
    for mode, call in (("warm", warm), ("cold", cold)):
        for kind, hosts in mix.items():
            for host in hosts:
                call(host)  # the first call fills the caches for the warm mode
            out = samples[mode].setdefault(kind, [])
            for _ in range(rounds):
                out.extend(time_per_call(call, host, batch) for host in hosts)
    return samples


def memory_per_domain(lists: dict[str, list[str]]) -> tuple[DomainIndex, float, float]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = DomainIndex.build(lists)
    gc.collect()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return index, (kept - before) / len(index), (peak - before) / len(index)


def calibration_ns() -> float:
    """A fixed bit of interpreter work, to compare runs on machines of different speed."""
    text = "www.example.com"
    return min(time_per_call(str.lower, text, 20000) for _ in range(9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000,1000000",
        help="comma-separated numbers of listed domains",
    )
    parser.add_argument("--rounds", type=int, default=30, help="samples per host and mode")
    parser.add_argument("--batch", type=int, default=200, help="calls per timed sample")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(
        f"Python {sys.version.split()[0]}; calibration: str.lower('www.example.com') = "
        f"{calibration_ns():.0f} ns"
    )
    print("ns per normalise_host + categories; memory in bytes per listed domain\n")
    header = (
        f"{'domains':>9} {'bytes/dom':>9} {'peak/dom':>9} {'build s':>8} | "
        f"{'warm med':>8} {'warm p99':>8} | {'cold med':>8} {'cold p99':>8} | "
        f"{'cold canonical':>14} {'cold non-canon':>14}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        lists = make_lists(size)
        started = time.perf_counter()
        index, kept, peak = memory_per_domain(lists)
        build_s = time.perf_counter() - started  # includes tracemalloc's own overhead
        samples = measure(index, host_mix(lists), args.rounds, args.batch)
        warm = [v for values in samples["warm"].values() for v in values]
        cold = [v for values in samples["cold"].values() for v in values]
        canonical = [
            v for k, values in samples["cold"].items() if k != "non-canonical" for v in values
        ]
        odd = samples["cold"]["non-canonical"]
        print(
            f"{len(index):>9} {kept:>9.1f} {peak:>9.1f} {build_s:>8.1f} | "
            f"{statistics.median(warm):>8.0f} {percentile(warm, 0.99):>8.0f} | "
            f"{statistics.median(cold):>8.0f} {percentile(cold, 0.99):>8.0f} | "
            f"{statistics.median(canonical):>14.0f} {statistics.median(odd):>14.0f}"
        )
        del index, lists
        gc.collect()


if __name__ == "__main__":
    main()
