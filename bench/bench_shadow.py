"""Benchmark: what shadow mode adds to a request: the Shadow addon's comparison (one extra
decide() with the proposed policy and a counter) on plain HTTP requests, against the same
requests with no shadow policy. Not a test: it prints numbers for docs/benchmarks.md.

    .venv/bin/python bench/bench_shadow.py [--n 100000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from mitmproxy.test import taddons, tflow

from schoolgate.policy.model import Decision, Reason, Verdict
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.proxy_addons.shadow import Shadow, Trial
from schoolgate.store.policy_files import load_policy

HOSTS = [
    "www.bbc.co.uk",
    "www.facebook.com",
    "www.tiktok.com",
    "classroom.google.com",
    "example.org",
    "pbs.twimg.com",
]


def flows(n: int) -> list[object]:
    made = []
    for i in range(n):
        flow = tflow.tflow()
        flow.request.host = HOSTS[i % len(HOSTS)]
        flow.request.scheme = "http"
        flow.metadata[context.DECISION] = Decision(
            Verdict.ALLOW, Reason.RULE_ALLOW, host=HOSTS[i % len(HOSTS)]
        )
        flow.metadata[context.IDENTITY] = context.Identity(
            role="staff" if i % 2 else "pupil",
            source=context.IdentitySource.LOCAL,
            user=f"u{i % 50}",
        )
        made.append(flow)
    return made


def per_request(shadow: Shadow, batch: list[object]) -> float:
    began = time.perf_counter()
    for flow in batch:
        shadow.requestheaders(flow)  # type: ignore[arg-type]
    return (time.perf_counter() - began) / len(batch) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    batch = flows(args.n)
    shadow = Shadow(PolicySource())
    with taddons.context(shadow):
        off = [per_request(shadow, batch) for _ in range(3)]
        shadow.trial = Trial(load_policy(None), "bench", frozenset())
        on = [per_request(shadow, batch) for _ in range(3)]
    print(
        f"no shadow: {statistics.median(off):.2f} µs/request; shadow on: "
        f"{statistics.median(on):.2f} µs/request; added "
        f"{statistics.median(on) - statistics.median(off):.2f} µs; "
        f"{sum(shadow._pending.values()):,} differences counted"
    )


if __name__ == "__main__":
    main()
