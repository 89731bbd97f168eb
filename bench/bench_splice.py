"""Benchmark: the front door's splice (a protocol pair on asyncio transports, one reused buffer
per direction: proxy_addons/frontdoor.py's _Splice) against the kernel's splice(2) through a
pipe (`os.splice`, moved between the sockets without reaching Python's memory), as a relay
process between a client and an origin on loopback. Not a test: it prints CPU per round trip
of the relay process, for docs/benchmarks.md.

    .venv/bin/python bench/bench_splice.py [--rounds 3] [--connections 10] [--trips 500]
        [--sizes 100,16384,131072] [--new-tunnels 500]

Each measurement starts a fresh relay process (pinned to the last CPU when there are two), and
sends `--connections` connections at once, each `--trips` round trips of `size` bytes up and
`size` bytes back, through it to an origin in this process; then reads the relay's
utime+stime from /proc. One new connection per trip as well (`--trips 1`, many connections)
is the new-tunnel case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
MODES = ("protocol", "splice")


# --- the relay (a child process) ---------------------------------------------------------------


async def _wait(loop: asyncio.AbstractEventLoop, fd: int, writable: bool) -> None:
    future = loop.create_future()
    add, remove = (
        (loop.add_writer, loop.remove_writer) if writable else (loop.add_reader, loop.remove_reader)
    )
    add(fd, future.set_result, None)
    try:
        await future
    finally:
        remove(fd)


async def _splice_one_way(src: socket.socket, dst: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe()
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
    try:
        while True:
            try:
                moved = os.splice(src.fileno(), write_end, 1 << 16, flags=flags)
            except BlockingIOError:
                await _wait(loop, src.fileno(), writable=False)
                continue
            if moved == 0:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            while moved:
                try:
                    moved -= os.splice(read_end, dst.fileno(), moved, flags=flags)
                except BlockingIOError:
                    await _wait(loop, dst.fileno(), writable=True)
    except (ConnectionError, OSError):
        return
    finally:
        os.close(read_end)
        os.close(write_end)


async def _relay(mode: str, port: int, target: int) -> None:
    from schoolgate.proxy_addons.frontdoor import _Pipe, _Splice

    loop = asyncio.get_running_loop()

    async def protocol_pair(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream, _ = await loop.create_connection(_Pipe, "127.0.0.1", target)
        await _Splice.run(reader, writer, upstream, b"", 60.0)

    async def kernel_splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The transport keeps its descriptor (asyncio will not watch it twice): a duplicate.
        transport: Any = writer.transport
        transport.pause_reading()
        client = socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno()))
        client.setblocking(False)
        upstream = socket.socket()
        upstream.setblocking(False)
        await loop.sock_connect(upstream, ("127.0.0.1", target))
        await asyncio.gather(_splice_one_way(client, upstream), _splice_one_way(upstream, client))
        upstream.close()
        client.close()
        writer.close()

    handler = protocol_pair if mode == "protocol" else kernel_splice
    server = await asyncio.start_server(handler, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# --- the origin and the load (this process) ----------------------------------------------------


def _origin(size: int) -> socket.socket:
    """Answers every `size` bytes it receives with `size` bytes."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    reply = b"o" * size

    def serve(conn: socket.socket) -> None:
        with conn:
            got = 0
            while chunk := conn.recv(1 << 16):
                got += len(chunk)
                while got >= size:
                    got -= size
                    conn.sendall(reply)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


def _client(port: int, size: int, trips: int, done: list[int]) -> None:
    payload = b"c" * size
    with socket.create_connection(("127.0.0.1", port)) as conn:
        for _ in range(trips):
            conn.sendall(payload)
            got = 0
            while got < size:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    return
                got += len(chunk)
            done.append(1)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure(mode: str, size: int, connections: int, trips: int, waves: int) -> float:
    """µs of relay CPU per round trip."""
    origin = _origin(size)
    port = _free_port()
    cpus = sorted(os.sched_getaffinity(0))
    pin = ["taskset", "-c", str(cpus[-1])] if len(cpus) > 1 else []
    relay = subprocess.Popen(
        [*pin, sys.executable, __file__, "--relay", mode, str(port), str(origin.getsockname()[1])],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert relay.stdout is not None
        relay.stdout.readline()  # "ready"
        done: list[int] = []
        before = _cpu(relay.pid)
        for _ in range(waves):
            threads = [
                threading.Thread(target=_client, args=(port, size, trips, done))
                for _ in range(connections)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        time.sleep(0.3)
        used = _cpu(relay.pid) - before
        return used / max(len(done), 1) * 1e6
    finally:
        relay.terminate()
        relay.wait(10)
        origin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relay", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--trips", type=int, default=500)
    parser.add_argument("--sizes", default="100,16384,131072")
    parser.add_argument("--new-tunnels", type=int, default=500, help="one trip each, 10 at once")
    args = parser.parse_args(argv)
    if args.relay:
        mode, port, target = args.relay
        asyncio.run(_relay(mode, int(port), int(target)))
        return 0
    cases = [
        (f"kept alive, {size:,} B each way", size, args.connections, args.trips, 1)
        for size in (int(s) for s in args.sizes.split(","))
    ]
    cases.append(("new connection, 100 B each way", 100, 10, 1, args.new_tunnels // 10))
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load {os.getloadavg()}")
    results: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for title, size, connections, trips, waves in cases:
            order = MODES if round_ % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                us = measure(mode, size, connections, trips, waves)
                results.setdefault((title, mode), []).append(us)
                print(f"round {round_ + 1} {title:34s} {mode:9s} {us:9.1f} us/trip", flush=True)
    print("\n| traffic (µs of relay CPU per round trip, median) | protocol pair | os.splice |")
    print("|---|---:|---:|")
    for title, *_ in cases:
        protocol = statistics.median(results[(title, "protocol")])
        spliced = statistics.median(results[(title, "splice")])
        print(f"| {title} | {protocol:,.0f} | {spliced:,.0f} |")
    print(f"# load at the end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
