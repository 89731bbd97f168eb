"""schoolgate/workers.py on its own (tests/deploy/test_workers.py runs real gateways): the
SO_REUSEPORT patch of asyncio, each worker's mitmdump arguments, and the parent that forks the
workers, stops them all when one dies and forwards the service manager's signals.

run_workers installs signal handlers in the process that calls it, so each test runs it in a
forked child of its own (never in pytest's process); the workers are real forked processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from schoolgate.workers import enable_reuse_port, run_workers, worker_arguments

BOUND = 30.0  # seconds: only bounds a hang, never a timed assertion


# --- enable_reuse_port -------------------------------------------------------------------------


@pytest.fixture
def patched_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio.start_server as it was is put back after the test."""
    monkeypatch.setattr(asyncio, "start_server", asyncio.start_server)


async def _serve_twice_on_one_port() -> tuple[int, int, int]:
    async def nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    first = await asyncio.start_server(nothing, "127.0.0.1", 0)
    port = first.sockets[0].getsockname()[1]
    second = await asyncio.start_server(nothing, "127.0.0.1", port)  # refused without reuse
    try:
        return (
            port,
            second.sockets[0].getsockname()[1],
            first.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT),
        )
    finally:
        for server in (first, second):
            server.close()
            await server.wait_closed()


@pytest.mark.usefixtures("patched_asyncio")
async def test_after_enable_reuse_port_two_listeners_share_one_port() -> None:
    enable_reuse_port()
    port, second_port, reuse = await _serve_twice_on_one_port()
    assert second_port == port
    assert reuse == 1


@pytest.mark.usefixtures("patched_asyncio")
async def test_without_it_a_second_listener_on_the_port_is_refused() -> None:
    with pytest.raises(OSError, match="in use"):
        await _serve_twice_on_one_port()


@pytest.mark.usefixtures("patched_asyncio")
def test_enable_reuse_port_wraps_once_and_keeps_an_explicit_choice() -> None:
    original = asyncio.start_server
    enable_reuse_port()
    wrapped = asyncio.start_server
    enable_reuse_port()
    assert asyncio.start_server is wrapped  # a second call does not wrap the wrapper
    assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]

    async def explicit() -> int:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0, reuse_port=False)
        try:
            return server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(explicit()) == 0


# --- worker_arguments --------------------------------------------------------------------------

M = "schoolgate_metrics_port"


@pytest.mark.parametrize(
    ("extra", "index", "expected"),
    [
        ([], 0, ["--", "--set", f"{M}=9090"]),
        ([], 3, ["--", "--set", f"{M}=9093"]),
        (["--set", f"{M}=9200", "-s", "x.py"], 1, ["--", "-s", "x.py", "--set", f"{M}=9201"]),
        ([f"--set={M}=9200"], 2, ["--", "--set", f"{M}=9202"]),
        (
            ["--", "--set", "termlog_verbosity=warn"],
            1,
            ["--", "--set", "termlog_verbosity=warn", "--set", f"{M}=9091"],
        ),
        (
            ["--set=termlog_verbosity=warn"],
            0,
            ["--", "--set=termlog_verbosity=warn", "--set", f"{M}=9090"],
        ),
        # metrics switched off: every worker keeps them off (no port 1, 2, ...)
        (["--set", f"{M}=0"], 2, ["--", "--set", f"{M}=0"]),
        (["--", "--set", f"{M}=0", "-q"], 1, ["--", "-q", "--set", f"{M}=0"]),
        # the last metrics setting wins, as in mitmdump
        (["--set", f"{M}=9100", "--set", f"{M}=9300"], 1, ["--", "--set", f"{M}=9301"]),
    ],
)
def test_each_worker_gets_the_arguments_and_its_own_metrics_port(
    extra: list[str], index: int, expected: list[str]
) -> None:
    assert worker_arguments(extra, index) == expected


def test_the_workers_metrics_ports_are_consecutive_and_distinct() -> None:
    ports = [worker_arguments(["--set", f"{M}=9500"], i)[-1] for i in range(4)]
    assert ports == [f"{M}=9500", f"{M}=9501", f"{M}=9502", f"{M}=9503"]


def test_the_callers_arguments_are_not_changed() -> None:
    extra = ["--set", f"{M}=9200", "-s", "x.py"]
    worker_arguments(extra, 1)
    assert extra == ["--set", f"{M}=9200", "-s", "x.py"]


# --- run_workers -------------------------------------------------------------------------------


def _wait_for_files(paths: list[Path], *, ready: Path | None = None) -> None:
    if ready is not None:
        ready.write_text("")
    deadline = time.monotonic() + BOUND
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"never appeared: {[str(p) for p in paths]}"
        time.sleep(0.01)


@contextlib.contextmanager
def parent_running(count: int, run_one: Callable[[int], int], err: Path) -> Iterator[int]:
    """Fork a parent process that calls run_workers(count, run_one) and exits with its result;
    yields the parent's pid (its stderr goes to `err`)."""
    pid = os.fork()
    if pid == 0:  # the parent of the workers
        code = 99
        try:
            fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - the child's own stderr
            code = run_workers(count, run_one)
        finally:
            os._exit(code)
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def exit_code(pid: int) -> int:
    deadline = time.monotonic() + BOUND
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        assert time.monotonic() < deadline, "run_workers did not return"
        time.sleep(0.01)


def _wait_until_it_catches(pid: int, signum: int) -> None:
    deadline = time.monotonic() + BOUND
    while True:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(
            next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16
        )
        if caught & (1 << (signum - 1)):
            return
        assert time.monotonic() < deadline, f"{pid} never caught signal {signum}"
        time.sleep(0.01)


def wait_for_a_signal(folder: Path, index: int) -> int:
    """A worker that says it is ready, then waits for a signal and notes which one came."""

    def note(signum: int, _frame: object) -> None:
        (folder / f"got-{index}").write_text(str(signum))
        raise SystemExit(0)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, note)
    (folder / f"ready-{index}").write_text("")
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return 42  # never told to stop


def test_every_worker_runs_once_with_its_index_and_a_clean_end_is_0(tmp_path: Path) -> None:
    def run_one(index: int) -> int:
        # the first to end stops the others: each waits, stoppable, until all have run
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        (tmp_path / f"ran-{index}-{os.getpid()}").write_text("")
        _wait_for_files(
            [tmp_path / f"ready-{i}" for i in range(3)], ready=tmp_path / f"ready-{index}"
        )
        return 0

    with parent_running(3, run_one, tmp_path / "err") as parent:
        assert exit_code(parent) == 0
    ran = sorted(p.name.split("-")[1] for p in tmp_path.glob("ran-*"))
    assert ran == ["0", "1", "2"]
    pids = {p.name.split("-")[2] for p in tmp_path.glob("ran-*")}
    assert len(pids) == 3  # three processes of their own
    assert str(parent) not in pids
    # a worker never ends on its own: the first end, even a clean one, stops the others (once)
    assert (tmp_path / "err").read_text().count("stopping the others") == 1


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("return 3", 3),
        ("exit 5", 5),
        ("exit with words", 1),
        ("raise", 1),
        ("killed", 128 + signal.SIGKILL),
    ],
)
def test_a_worker_that_dies_stops_the_others_and_its_status_is_the_result(
    tmp_path: Path, how: str, expected: int
) -> None:
    def run_one(index: int) -> int:
        if index == 1:
            return wait_for_a_signal(tmp_path, index)
        _wait_for_files([tmp_path / "ready-1"])
        if how == "exit 5":
            raise SystemExit(5)
        if how == "exit with words":
            raise SystemExit("worker 0 gave up")
        if how == "raise":
            raise RuntimeError("worker 0 broke")
        if how == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        return 3

    with parent_running(2, run_one, tmp_path / "err") as parent:
        assert exit_code(parent) == expected
    assert (tmp_path / "got-1").read_text() == str(int(signal.SIGTERM))  # the other was stopped
    err = (tmp_path / "err").read_text()
    assert "worker 0 ended" in err
    assert "stopping the others so the service restarts whole" in err
    if how == "raise":
        assert "RuntimeError: worker 0 broke" in err  # the traceback is not lost


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        (signal.SIGTERM, signal.SIGTERM),
        (signal.SIGINT, signal.SIGINT),
        (signal.SIGHUP, signal.SIGTERM),
    ],
)
def test_the_service_managers_signal_stops_every_worker(
    tmp_path: Path, sent: signal.Signals, forwarded: signal.Signals
) -> None:
    with parent_running(
        3, lambda index: wait_for_a_signal(tmp_path, index), tmp_path / "err"
    ) as parent:
        _wait_for_files([tmp_path / f"ready-{i}" for i in range(3)])
        # its handlers (TERM, INT, then HUP) come right after the last fork
        _wait_until_it_catches(parent, signal.SIGHUP)
        os.kill(parent, sent)
        assert exit_code(parent) == 0  # every worker ended cleanly on the signal
    assert [(tmp_path / f"got-{i}").read_text() for i in range(3)] == [str(int(forwarded))] * 3
    assert "stopping the others" not in (tmp_path / "err").read_text()  # a stop, not a death


@pytest.mark.parametrize("value", ["abc", "-1", "70000", ""])
def test_a_metrics_port_that_is_not_a_port_says_what_to_write(value: str) -> None:
    with pytest.raises(ValueError, match="must be a number from 1 to 65535") as caught:
        worker_arguments(["--set", f"{M}={value}"], 0)
    assert f"--set {M}={value}:" in str(caught.value)


def test_the_gateway_command_refuses_a_bad_metrics_port_before_any_worker_starts(
    tmp_path: Path,
) -> None:
    """It ended every worker with a bare ValueError traceback (found in the ops round)."""
    done = subprocess.run(
        [
            *(str(Path(sys.executable).with_name("schoolgate")), "gateway", "--workers", "2"),
            *("--data-dir", str(tmp_path), "--listen-port", "1", "--", "--set", f"{M}=abc"),
        ],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"schoolgate gateway: --set {M}=abc: the metrics port must be a number" in done.stderr
    assert "ended (status" not in done.stderr  # no worker was started to fail
