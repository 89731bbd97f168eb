"""Several gateway processes on one host behind one listening address: the parent forks N workers
that each listen on the same port with SO_REUSEPORT, so the kernel spreads new connections over
them (no user-space balancer in the data path); if one worker dies, all stop, and the service
manager restarts the gateway whole. If the parent dies (even by SIGKILL, outside systemd's
cgroup), the kernel sends each worker SIGTERM (PR_SET_PDEATHSIG), so no orphan keeps serving.

mitmproxy has no option for SO_REUSEPORT: its listener calls `asyncio.start_server(handler,
host, port)`, so each worker makes asyncio's `start_server` pass `reuse_port=True` before
mitmproxy starts. Each worker serves its metrics on the base metrics port + its index.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

METRICS_OPTION = "schoolgate_metrics_port"
DEFAULT_METRICS_PORT = 9090
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def end_with_parent(parent: int) -> None:
    """In a worker: ask the kernel for SIGTERM when the parent dies; exit now if it already has
    (it may have died between the fork and the request). Linux only; elsewhere nothing."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def enable_reuse_port() -> None:
    """From now on, asyncio listening sockets in this process are made with SO_REUSEPORT."""
    original = asyncio.start_server
    if getattr(original, "schoolgate_reuse_port", False):
        return

    @functools.wraps(original)
    async def start_server(*args: Any, **kwargs: Any) -> asyncio.Server:
        kwargs.setdefault("reuse_port", True)
        return await original(*args, **kwargs)

    start_server.schoolgate_reuse_port = True  # type: ignore[attr-defined]
    asyncio.start_server = start_server


def worker_arguments(extra: Sequence[str], index: int) -> list[str]:
    """The extra mitmdump arguments for worker `index`: its own metrics port (base + index),
    replacing any metrics port setting in `extra` (whose value is the base). A base that is not
    a port number is a ValueError whose message says what to write instead."""
    base = DEFAULT_METRICS_PORT
    items: list[str] = []
    arguments = iter(extra)
    for arg in arguments:
        pair = (
            next(arguments, "") if arg == "--set" else arg[6:] if arg.startswith("--set=") else None
        )
        if pair is not None and pair.startswith(f"{METRICS_OPTION}="):
            value = pair.partition("=")[2]
            if not value.isdigit() or int(value) > 65535:
                raise ValueError(
                    f"--set {pair}: the metrics port must be a number from 1 to 65535 (each "
                    "worker adds its index to it), or 0 to turn the metrics off"
                )
            base = int(value)
            continue
        items.append(arg)
        if arg == "--set" and pair is not None:
            items.append(pair)
    if base == 0:
        return (
            [*items, "--set", f"{METRICS_OPTION}=0"]
            if items[:1] == ["--"]
            else ["--", *items, "--set", f"{METRICS_OPTION}=0"]
        )
    if items[:1] != ["--"]:
        items = ["--", *items]
    return [*items, "--set", f"{METRICS_OPTION}={base + index}"]


def run_workers(count: int, run_one: Callable[[int], int]) -> int:
    """Fork `count` workers running `run_one(index)`; wait; forward SIGTERM/SIGINT/SIGHUP.
    Returns 0 if every worker ended cleanly, else the first failing worker's status."""
    children: dict[int, int] = {}
    parent = os.getpid()
    for index in range(count):
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = 1
            try:
                end_with_parent(parent)
                code = run_one(index)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index
    stopping = False

    def stop_all(signum: int, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM if signum != signal.SIGINT else signal.SIGINT)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop_all)
    result = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        index = children.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and result == 0:
            result = code if code > 0 else 128 - code
        if not stopping:
            print(
                f"schoolgate gateway: worker {index} ended (status {code}); stopping the "
                "others so the service restarts whole",
                file=sys.stderr,
                flush=True,
            )
            stop_all(signal.SIGTERM)
    return result
