"""Benchmark: the gateway's memory and a normal user's wait under hostile clients (review
finding 4). Not a test: it prints numbers for docs/benchmarks.md. Bounded in count and time;
everything stays on loopback.

    PYTHONPATH=. .venv/bin/python bench/bench_attacks.py [--engine lean] [--head-timeout 10]

For each attack, against one real gateway (`schoolgate gateway`, default limits except the
head time-out, shortened so the run takes about two minutes): the gateway's RSS before, at its
peak and after, and the time a signed-in user's plain-HTTP request takes while it goes on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.gateway import Gateway, running_gateway, write_identity, write_policy
from tests.support.hostile import (
    RssWatch,
    header_flood,
    header_lines,
    held_connections,
    rss_mib,
    source_addresses,
    timed,
    trickle,
    wait_closed,
)


def normal_request(gw: Gateway) -> None:
    with gw.client("staff1") as client:
        if client.get("http://learning.test/").status_code != 200:
            raise RuntimeError("the normal user was not served")


def measure(gw: Gateway, name: str, attack: Callable[[], None]) -> dict[str, object]:
    before = rss_mib(gw.proc.pid)
    waits: list[float] = []
    stop = threading.Event()

    def user() -> None:
        while not stop.is_set():
            waits.append(timed(lambda: normal_request(gw)))
            stop.wait(0.5)

    started = time.monotonic()
    with RssWatch(gw.proc.pid) as watch:
        thread = threading.Thread(target=user)
        thread.start()
        try:
            attack()
        finally:
            stop.set()
            thread.join()
    time.sleep(2)
    return {
        "attack": name,
        "seconds": time.monotonic() - started,
        "rss_before": before,
        "rss_peak": watch.peak,
        "rss_after": rss_mib(gw.proc.pid),
        "user_median_ms": statistics.median(waits) * 1000 if waits else float("nan"),
        "user_max_ms": max(waits) * 1000 if waits else float("nan"),
        "user_requests": len(waits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="lean", choices=("lean", "mitmdump"))
    parser.add_argument("--head-timeout", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sg-bench-attacks-"))
    policy = folder / "policy.yaml"
    write_policy(policy, in_break=False)
    timeout = args.head_timeout
    extra = [
        "--set",
        f"schoolgate_head_timeout={timeout}",
        "--set",
        f"schoolgate_keepalive_timeout={timeout}",
    ]
    with running_gateway(
        folder,
        policy=policy,
        identity=write_identity(folder / "id"),
        extra_args=extra,
        engine=args.engine,
    ) as gw:
        normal_request(gw)
        idle = timed(lambda: normal_request(gw))
        print(
            f"engine {args.engine}, head time-out {timeout} s; a normal request with no "
            f"attack: {idle * 1000:.1f} ms; gateway RSS {rss_mib(gw.proc.pid):.0f} MiB"
        )

        def slowloris() -> None:
            with held_connections(
                gw.port,
                source_addresses(3, start=100),
                200,
                first_bytes=b"GET http://learning.test/ HTTP/1.1\r\nHost: learning.test\r\nX-A: ",
            ) as socks:
                trickle(socks, seconds=timeout - 2)
                wait_closed(socks, timeout=timeout + 15)

        def idle_connections() -> None:
            with held_connections(gw.port, source_addresses(15, start=200), 250) as socks:
                wait_closed(socks, timeout=timeout + 30)

        results = [
            measure(
                gw,
                "header flood: 30 connections x 20 MiB header",
                lambda: header_flood(gw.port, connections=30, megabytes=20) and None,
            ),
            measure(gw, "100,000 header lines", lambda: header_lines(gw.port) and None),
            measure(gw, "slowloris: 600 connections, 1 byte/s", slowloris),
            measure(gw, "3,750 idle connections", idle_connections),
        ]
    print("| attack | lasted | RSS before | RSS peak | RSS after | normal request median / max |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['attack']} | {r['seconds']:.0f} s | {r['rss_before']:.0f} MiB | "
            f"{r['rss_peak']:.0f} MiB | {r['rss_after']:.0f} MiB | "
            f"{r['user_median_ms']:.0f} / {r['user_max_ms']:.0f} ms "
            f"({r['user_requests']} requests) |"
        )


if __name__ == "__main__":
    main()
