"""Hostile clients against a real gateway on loopback, bounded in count and time: header
floods, slow headers (slowloris), idle connections. Shared by tests/e2e/test_hostile_clients.py
and bench/bench_attacks.py. Every connection goes to 127.0.0.1; source addresses are taken
from 127.0.0.0/8 so that per-address caps can be exercised with many "clients".
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class RssWatch:
    """Samples a process's RSS every `every` seconds in a thread; `peak` is the highest seen."""

    pid: int
    every: float = 0.05
    peak: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssWatch:
        self.peak = rss_mib(self.pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, rss_mib(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def source_addresses(count: int, start: int = 2) -> list[str]:
    """`count` loopback source addresses: 127.0.<n>.<m>, never 127.0.0.1."""
    return [f"127.0.{(start + i) // 250}.{(start + i) % 250 + 2}" for i in range(count)]


def read_reply(sock: socket.socket, limit: int = 4096) -> bytes:
    """What the gateway answered before closing (b"" if it just closed or reset)."""
    data = b""
    with contextlib.suppress(OSError):
        while len(data) < limit:
            chunk = sock.recv(limit)
            if not chunk:
                break
            data += chunk
    return data


def header_flood(
    port: int, *, connections: int = 30, megabytes: int = 20, timeout: float = 30
) -> list[bytes]:
    """Finding 4's reproduction: each connection starts a request (no credentials) and then
    sends `megabytes` MiB of one never-ending header. Returns each connection's reply."""
    replies: list[bytes] = [b""] * connections
    chunk = b"a" * (1 << 20)

    def one(index: int) -> None:
        try:
            sock = connect(port, timeout=timeout)
        except OSError:
            return
        with sock:
            try:
                sock.sendall(
                    b"GET http://www.instagram.com/ HTTP/1.1\r\nHost: www.instagram.com\r\nX-Big: "
                )
                for _ in range(megabytes):
                    sock.sendall(chunk)
            except OSError:
                pass  # the gateway closed the connection: what we want
            replies[index] = read_reply(sock)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 5)
    return replies


def header_lines(port: int, *, lines: int = 100_000) -> bytes:
    """One request with `lines` small header lines; the gateway's reply."""
    with connect(port) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET http://www.instagram.com/ HTTP/1.1\r\n" + b"X: y\r\n" * lines)
        return read_reply(sock)


@contextlib.contextmanager
def held_connections(
    port: int, sources: list[str], per_source: int, *, first_bytes: bytes = b""
) -> Iterator[list[socket.socket]]:
    """Open `per_source` connections from each source address and keep them (sending
    `first_bytes` on each); every one is closed on exit. Connections refused at once are
    still returned (they read as closed)."""
    socks: list[socket.socket] = []
    try:
        for source in sources:
            for _ in range(per_source):
                sock = connect(port, source)
                if first_bytes:
                    with contextlib.suppress(OSError):
                        sock.sendall(first_bytes)
                socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def trickle(
    socks: list[socket.socket],
    *,
    seconds: float,
    every: float = 1.0,
    during: Callable[[], None] | None = None,
) -> None:
    """Slowloris: one more header byte on every open connection each `every` seconds, for
    `seconds`; calls `during()` after each round (e.g. a normal user's request)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.send(b"X")
        if during is not None:
            during()
        time.sleep(every)


def _readable(socks: list[socket.socket], wait: float) -> set[socket.socket]:
    poller = select.poll()  # not select(): file descriptors go far above 1024 here
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return {by_fd[fd] for fd, _ in poller.poll(int(wait * 1000))}


def _gone(sock: socket.socket) -> bool:
    """Readable `sock` has been closed by the gateway (EOF, reset, or a 4xx before the close)."""
    try:
        sock.setblocking(False)
        data = sock.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return not data or data.startswith(b"HTTP/1.1 4")


def closed_count(socks: list[socket.socket]) -> int:
    """How many of these connections the gateway has closed (EOF or reset)."""
    return sum(1 for sock in _readable(socks, 0) if _gone(sock))


def wait_closed(socks: list[socket.socket], *, timeout: float) -> tuple[int, float]:
    """Wait until every connection is closed by the gateway, at most `timeout` seconds:
    (how many were closed, seconds waited)."""
    start = time.monotonic()
    remaining = set(socks)
    while remaining and time.monotonic() - start < timeout:
        remaining -= {sock for sock in _readable(list(remaining), 0.2) if _gone(sock)}
    return len(socks) - len(remaining), time.monotonic() - start


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` took."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
