"""The Python floor for a passed-through tunnel (bench_gateway.py's `floor` proxy): the least a
Python proxy on uvloop can do per new tunnel. It reads a CONNECT, answers 200, connects to the
address the benchmark's hosts file gives, and splices the two sockets with a protocol pair. No
policy, no identity, no ClientHello, no events, no limits, no time-outs: not a gateway, a
measuring stick for how much of schoolgate's cost per tunnel is Python's floor and how much is
the gateway's own work.

    python bench/floor_proxy.py PORT HOSTS_FILE
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import uvloop

BUFFER = 32 * 1024


class Side(asyncio.BufferedProtocol):
    def __init__(self, hosts: dict[str, str] | None = None) -> None:
        self.buffer = memoryview(bytearray(BUFFER))
        self.hosts = hosts
        self.head = b""
        self.transport: Any = None
        self.other: Side | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.other is not None:
            self.other.transport.write(self.buffer[:nbytes])
            return
        if self.hosts is None:
            return
        self.head += bytes(self.buffer[:nbytes])
        if b"\r\n\r\n" in self.head:
            self.transport.pause_reading()
            asyncio.get_running_loop().create_task(self.connect())

    async def connect(self) -> None:
        assert self.hosts is not None
        target = self.head.split(b" ", 2)[1].decode()
        host, _, port = target.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            _, server = await loop.create_connection(Side, self.hosts.get(host, host), int(port))
        except OSError:
            self.transport.close()
            return
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.other, server.other = server, self
        self.transport.resume_reading()

    def eof_received(self) -> bool:
        if self.other is not None and self.other.transport.can_write_eof():
            self.other.transport.write_eof()
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None:
            self.other.transport.close()


async def main(port: int, hosts_file: Path) -> None:
    hosts = {}
    for line in hosts_file.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        for name in fields[1:]:
            hosts[name] = fields[0]
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Side(hosts), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), Path(sys.argv[2])))
