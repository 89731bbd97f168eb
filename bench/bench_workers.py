"""Benchmark: how `schoolgate gateway --workers N` scales from 1 to N workers on one address.
Not a test: it prints the table for docs/benchmarks.md ("Several workers on one host").

    .venv/bin/python bench/bench_workers.py [--max-workers N] [--seconds 10] [--rounds 3]
                                            [--connections 32] [--engine mitmdump|lean]

Each worker count gets a fresh gateway on a free loopback port with the seed policy; wrk
(bench/wrk_proxy.lua, absolute-form requests) opens --connections keep-alive connections to
it and asks for http://x.com/, which the gateway blocks and answers itself (the decision and
the block page, no upstream), so only the gateway is measured. The kernel spreads the
connections over the workers (SO_REUSEPORT). Reported per run: requests/s, and CPU per request
(utime+stime of every worker from /proc, over the requests wrk completed). The rounds alternate
the order of the worker counts. Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHOOLGATE = str(Path(sys.executable).parent / "schoolgate")
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_proxy.lua"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
TARGET = "http://x.com/"  # blocked by the seed policy for everyone: answered by the gateway


@dataclass
class Run:
    workers: int
    rps: float
    cpu_us_per_request: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICK


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the gateway exited while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the gateway did not start")


def measure(workers: int, args: argparse.Namespace, folder: Path) -> Run:
    port = free_port()
    command = [
        SCHOOLGATE,
        "gateway",
        "--workers",
        str(workers),
        "--engine",
        args.engine,
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--data-dir",
        str(folder / "data"),
        "--",
        "--set",
        "schoolgate_metrics_port=0",
        "--set",
        "schoolgate_recording=false",
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_listening(port, proc)
        pids = children(proc.pid) if workers > 1 else [proc.pid]
        # Warm up every worker (certificates, caches, imports) before measuring.
        subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{args.connections}",
                "-d2s",
                "-s",
                str(WRK_SCRIPT),
                f"http://127.0.0.1:{port}",
                "--",
                TARGET,
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        before = cpu_seconds(pids)
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{args.connections}",
                f"-d{args.seconds}s",
                "-s",
                str(WRK_SCRIPT),
                f"http://127.0.0.1:{port}",
                "--",
                TARGET,
            ],
            capture_output=True,
            text=True,
            timeout=args.seconds + 60,
            check=True,
        ).stdout
        used = cpu_seconds(pids) - before
        summary = json.loads(out.strip().splitlines()[-1])
        # The block page is a 403, which wrk counts as a "status" error: it is the answer.
        failed = sum(summary[k] for k in ("connect", "read", "write", "timeout"))
        done = summary["requests"] - failed
        seconds = summary["duration_us"] / 1e6
        return Run(workers, done / seconds, used / max(done, 1) * 1e6, failed)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--engine", choices=("mitmdump", "lean"), default="mitmdump")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_workers: needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    counts = list(range(1, args.max_workers + 1))
    runs: dict[int, list[Run]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="sg-bench-workers-") as tmp:
        for round_ in range(args.rounds):
            order = counts if round_ % 2 == 0 else list(reversed(counts))
            for n in order:
                run = measure(n, args, Path(tmp))
                runs[n].append(run)
                print(
                    f"round {round_ + 1}: {n} worker(s): {run.rps:8.0f} req/s, "
                    f"{run.cpu_us_per_request:6.0f} us CPU/request, {run.errors} errors",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, engine {args.engine}, wrk -t2 -c{args.connections} "
        f"-d{args.seconds}s, {args.rounds} rounds (median)\n"
    )
    print("workers   req/s   scaling (x one worker)   CPU us/request")
    one = statistics.median(r.rps for r in runs[1])
    for n in counts:
        rps = statistics.median(r.rps for r in runs[n])
        cpu = statistics.median(r.cpu_us_per_request for r in runs[n])
        print(
            f"{n:7d} {rps:7.0f}   {rps / one:5.2f} (target >= {0.8 * n:.1f})            {cpu:6.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
