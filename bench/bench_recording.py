"""Benchmark: the gateway's CPU per request with recording on (every decision an event, written
by the event writer's thread into SQLite, counted in the same process) against recording off, in
the same run, on loopback, alternating the order every round. Not a test: it prints the table
for docs/benchmarks.md.

    .venv/bin/python bench/bench_recording.py [--quick] [--rounds 5] [--engine lean]

Same method as bench/bench_gateway.py (whose nginx origin, load generators and /proc/PID/stat
CPU reading it reuses): CPU per request is the proxy process's utime+stime, all threads, over
the requests that completed. Needs wrk and nginx (apt-get install wrk nginx-light).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gateway import (  # noqa: E402
    BIN,
    FULL,
    QUICK,
    WARMUP,
    Setup,
    Started,
    drive,
    free_port,
    machine_state,
    origin_setup,
)

from schoolgate.commands.gateway import DEFAULT_ENGINE, ENGINES  # noqa: E402
from schoolgate.proxy_addons.ca import ensure_school_ca  # noqa: E402
from schoolgate.store.db import make_engine, upgrade  # noqa: E402

CLASSES = ("http", "https_keepalive")  # what recording touches: one event per request
SETUPS = ("off", "on")


@contextlib.contextmanager
def environment(
    folder: Path, pin: bool, engine: str
) -> Iterator[tuple[Setup, dict[str, Started], str]]:
    setup, nginx = origin_setup(folder, pin)
    pin_proxy, origin_ca, policy = setup.pin_proxy, setup.origin_ca, folder / "policy.yaml"
    database = f"sqlite:///{folder / 'schoolgate.db'}"
    upgrade(database)
    upstream_ca = f"ssl_verify_upstream_trusted_ca={origin_ca.ca_pem}"
    proxies: dict[str, Started] = {}
    try:
        setup.start("nginx", nginx, setup.http_port)
        for name in SETUPS:
            data = folder / f"data-{name}"
            data.mkdir()
            school = ensure_school_ca(data / "ca", "Benchmark Primary School")
            setup.school_ca = school.cert_pem_path  # both CAs differ; the client trusts each
            recording = (
                ["--set", f"schoolgate_database_url={database}"]
                if name == "on"
                else ["--set", "schoolgate_recording=false"]
            )
            port = free_port()
            proxies[name] = setup.start(
                name,
                [
                    *pin_proxy,
                    str(BIN / "schoolgate"),
                    "gateway",
                    "--engine",
                    engine,
                    "--policy",
                    str(policy),
                    "--listen-host",
                    "127.0.0.1",
                    "--listen-port",
                    str(port),
                    "--data-dir",
                    str(data),
                    "--",
                    "--set",
                    upstream_ca,
                    "--set",
                    f"schoolgate_connect_ports=80,443,{setup.https_port}",
                    *recording,
                ],
                port,
            )
            proxies[name].log.with_suffix(".ca").write_text(str(school.cert_pem_path))
        yield setup, proxies, database
    finally:
        setup.stop_all()


def use_ca(setup: Setup, proxy: Started) -> None:
    setup.school_ca = Path(proxy.log.with_suffix(".ca").read_text())


def events_written(database: str) -> int:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from schoolgate.store.models import EventRow

    engine = make_engine(database)
    try:
        with Session(engine) as session:
            return int(session.scalar(select(func.count()).select_from(EventRow)) or 0)
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, small loads")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5; quick 1)")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help=f"the gateway engine (default: {DEFAULT_ENGINE}, as the product's)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    args = parser.parse_args(argv)
    load = QUICK if args.quick else FULL
    rounds = args.rounds or (1 if args.quick else 5)
    state = machine_state()
    print(
        f"# {state['date']}; {state['cpus']} CPUs ({state['cpu_model']}); load average "
        f"{state['loadavg']}; Python {state['python']}; mitmproxy {state['mitmproxy']}; "
        f"engine {args.engine}"
    )
    us: dict[tuple[str, str], list[float]] = {}
    ratios: dict[str, list[float]] = {k: [] for k in CLASSES}
    with (
        tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp,
        environment(Path(tmp), not args.no_pin, args.engine) as (setup, proxies, database),
    ):
        for proxy in proxies.values():
            use_ca(setup, proxy)
            for kind in CLASSES:
                drive(setup, proxy, kind, WARMUP)
        for number in range(rounds):
            order = list(SETUPS) if number % 2 == 0 else list(reversed(SETUPS))
            for kind in CLASSES:
                this_round = {}
                for name in order:
                    use_ca(setup, proxies[name])
                    cpu, completed = drive(setup, proxies[name], kind, load)
                    per = cpu / completed * 1e6 if completed else float("nan")
                    us.setdefault((kind, name), []).append(per)
                    this_round[name] = per
                    print(
                        f"round {number + 1}/{rounds} {kind:16} recording {name:3} "
                        f"{completed:6} req {cpu:6.2f} s CPU {per:7.0f} us/req",
                        flush=True,
                    )
                ratios[kind].append(this_round["on"] / this_round["off"])
        written = events_written(database)
    print(f"\n# events in the database after the run: {written}")
    print(
        "| traffic | recording off (us CPU/req) | recording on (us CPU/req) | on/off "
        "(median of per-round ratios) |"
    )
    print("| --- | ---: | ---: | ---: |")
    for kind in CLASSES:
        print(
            f"| {kind} | {statistics.median(us[(kind, 'off')]):.0f} | "
            f"{statistics.median(us[(kind, 'on')]):.0f} | "
            f"{statistics.median(ratios[kind]):.3f} "
            f"(rounds: {', '.join(f'{r:.3f}' for r in ratios[kind])}) |"
        )
    print(f"# load average at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
