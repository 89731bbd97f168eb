"""`schoolgate gateway --workers N`: N gateway processes serve one address (SO_REUSEPORT, the
kernel spreads connections), each with its own metrics port; a worker that dies takes the
others down (so the service manager restarts the gateway whole); SIGTERM stops them all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from schoolgate.workers import worker_arguments
from tests.support.gateway import free_port, wait_for, wait_until_listening, write_policy

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCHOOLGATE = str(Path(sys.executable).parent / "schoolgate")
WORKERS = 2


@dataclass
class Workers:
    proc: subprocess.Popen[bytes]
    port: int
    metrics: list[int]
    log: Path

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def served(self, metrics_port: int) -> float:
        text = httpx.get(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=5, trust_env=False
        ).text
        return sum(
            float(m)
            for m in re.findall(
                r'^schoolgate_requests_total\{[^}]*stage="request"[^}]*\} ([0-9.e+]+)$', text, re.M
            )
        )


def start(folder: Path) -> Workers:
    policy = folder / "policy.yaml"
    write_policy(policy, in_break=False)
    port, base = free_port(), consecutive_free_ports(WORKERS)
    log = folder / "gateway.log"
    command = [
        SCHOOLGATE,
        "gateway",
        "--workers",
        str(WORKERS),
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--data-dir",
        str(folder / "data"),
        "--policy",
        str(policy),
        "--",
        "--set",
        "termlog_verbosity=warn",
        "-s",
        str(HERE / "metrics_script.py"),
        "--set",
        f"schoolgate_metrics_port={base}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    return Workers(proc, port, [base + i for i in range(WORKERS)], log)


def consecutive_free_ports(count: int) -> int:
    """A port p such that p .. p+count-1 are free now (one metrics port per worker)."""
    for _ in range(100):
        base = free_port()
        sockets = []
        try:
            for offset in range(count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no run of free ports found")


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    running = start(tmp_path)
    try:
        wait_until_listening(running.port, running.proc, running.log)
        for port in running.metrics:
            wait_for(lambda p=port: _up(p), what=f"metrics on {port}")
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.terminate()
            running.proc.wait(30)


def _up(port: int) -> bool:
    try:
        return (
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2, trust_env=False).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


def test_every_worker_serves_the_one_address(workers: Workers) -> None:
    assert len(workers.children()) == WORKERS
    # New connections each time: the kernel picks a listening socket per connection.
    for _ in range(40):
        with httpx.Client(
            proxy=f"http://127.0.0.1:{workers.port}", trust_env=False, timeout=10
        ) as client:
            response = client.get("http://x.com/")
        assert response.status_code == 403
    per_worker = [workers.served(port) for port in workers.metrics]
    assert sum(per_worker) == 40
    assert all(n > 0 for n in per_worker), per_worker


def test_sigterm_stops_every_worker(workers: Workers) -> None:
    children = workers.children()
    workers.proc.send_signal(signal.SIGTERM)
    assert workers.proc.wait(30) == 0
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )


def test_a_dead_worker_takes_the_gateway_down_for_a_clean_restart(workers: Workers) -> None:
    first, *others = workers.children()
    os.kill(first, signal.SIGKILL)
    assert workers.proc.wait(30) != 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in others):
        time.sleep(0.2)
    assert not any(Path(f"/proc/{p}").exists() for p in others)
    assert "worker 0 ended" in workers.log.read_text()


def gone(pid: int) -> bool:
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_a_killed_master_takes_its_workers_with_it(workers: Workers) -> None:
    """Ops review L9: outside systemd (no cgroup to clean up), a master killed with SIGKILL
    left its workers serving as orphans; each worker now ends when its parent dies."""
    children = workers.children()
    assert len(children) == WORKERS
    workers.proc.kill()
    workers.proc.wait(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(gone(p) for p in children):
        time.sleep(0.2)
    assert all(gone(p) for p in children), children


@pytest.mark.parametrize(
    ("extra", "index", "expected"),
    [
        ([], 0, ["--", "--set", "schoolgate_metrics_port=9090"]),
        ([], 1, ["--", "--set", "schoolgate_metrics_port=9091"]),
        # the given port is the base, replaced (not repeated: mitmdump takes one value per option)
        (
            ["--", "--set", "schoolgate_metrics_port=9200", "-s", "x.py"],
            2,
            ["--", "-s", "x.py", "--set", "schoolgate_metrics_port=9202"],
        ),
        (["--set=schoolgate_metrics_port=0"], 3, ["--", "--set", "schoolgate_metrics_port=0"]),
    ],
)
def test_worker_arguments(extra: list[str], index: int, expected: list[str]) -> None:
    assert worker_arguments(extra, index) == expected
