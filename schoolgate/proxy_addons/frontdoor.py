"""The front door: schoolgate's own first look at every connection to the explicit proxy, in the
same process and event loop as the lean engine's mitmproxy (issue 15).

Most of a school's traffic is HTTPS to allowed sites that the gateway never decrypts. mitmproxy
carries such a tunnel through its whole connection and layer machinery; the front door carries
it itself:

1. It announces the client (the `client_connected` hook: connection caps) and reads the proxy
   request.
2. A CONNECT by a client it can identify without the directory, to a host and port the
   policy would relay unread (`Gate.passes_through`), gets the gateway's CONNECT hooks, run
   exactly as mitmproxy runs them (identity, decision, ports, internal addresses, detectors,
   events, metrics). Their answer (407, 403, 502) is sent from here; else 200.
3. It reads the TLS ClientHello (proxy_addons/frontdoor_hello.py: only what the hooks read, strictly;
   anything it does not fully understand goes to mitmproxy). If it names the same host
   and carries no Encrypted ClientHello, the `tls_clienthello` hooks decide again, then
   `server_connect` (destination checks and DNS pinning) and the connection to the checked
   address, `server_connected`, and the two sockets are spliced; `server_disconnected` and
   `client_disconnected` end it, as in mitmproxy.
4. Plain HTTP: an allowed absolute-form GET or HEAD that needs no inspection is served by
   proxy_addons/frontdoor_http.py, through the same hooks, request by request.
5. Everything else (other plain HTTP, gateway pages, blocked or inspected hosts, sign-ins the
   directory must check, a ClientHello naming another host, ECH, bytes that are not a
   ClientHello, anything it does not fully understand) goes to mitmproxy with the bytes already
   read, as if mitmproxy had read them itself: from the proxy request, or from the first byte
   inside the tunnel when the CONNECT was answered here. Fail closed: when the hooks disagree
   with the first look at the ClientHello, the connection is closed, never relayed.

The gateway's state is reached only through `Gate` (wired in proxy_addons/engine.py) and the
addon chain's hooks; mitmproxy's internals only through proxy_addons/mitm_internals.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Address, Client, ConnectionState, Server
from mitmproxy.net.http import http1
from mitmproxy.proxy import server_hooks
from mitmproxy.proxy.layers.http import HTTPMode, validate_request
from mitmproxy.tls import ClientHelloData

from schoolgate.proxy_addons import frontdoor_http, mitm_internals
from schoolgate.proxy_addons.context import Identity
from schoolgate.proxy_addons.detect import has_ech, is_viewer_host
from schoolgate.proxy_addons.flows import header_value, same_host
from schoolgate.proxy_addons.frontdoor_connect import read_connect
from schoolgate.proxy_addons.frontdoor_hello import read_hello
from schoolgate.proxy_addons.mitm_internals import (
    HttpConnectedHook,
    HttpConnectErrorHook,
    HttpConnectHook,
    TlsClienthelloHook,
)
from schoolgate.proxy_addons.stats import GatewayStats

logger = logging.getLogger(__name__)

CONNECT = b"CONNECT "
HELLO_MAX = 64 * 1024  # a ClientHello larger than this goes to mitmproxy
PIPE_BUFFER = 32 * 1024  # bytes read at once per direction of a spliced tunnel (64 KiB a tunnel)
CONNECT_SECONDS = 10.0  # to open the upstream connection
ESTABLISHED_REASON = b"Connection established"

# The hooks the front door runs, by mitmproxy's names for them.
CLIENT_CONNECTED = server_hooks.ClientConnectedHook.name
HTTP_CONNECT = HttpConnectHook.name
HTTP_CONNECT_ERROR = HttpConnectErrorHook.name
HTTP_CONNECTED = HttpConnectedHook.name
TLS_CLIENTHELLO = TlsClienthelloHook.name
SERVER_CONNECT = server_hooks.ServerConnectHook.name
SERVER_CONNECT_ERROR = server_hooks.ServerConnectErrorHook.name
SERVER_CONNECTED = server_hooks.ServerConnectedHook.name
SERVER_DISCONNECTED = server_hooks.ServerDisconnectedHook.name
CLIENT_DISCONNECTED = server_hooks.ClientDisconnectedHook.name


@dataclass(frozen=True, slots=True)
class Gate:
    """What the front door asks of the gateway. `identify(proxy_authorization, peer)`: the
    identity of an explicit proxy client when no directory is needed, a challenge, or None
    (Identify.identify_now); `passes_through(host, port, identity, client)`: would such a
    tunnel be relayed unread (Enforce.passes_through; with a trust, by the client's school);
    `run_hook(name, *args)`: run the hook called `name` with those arguments through the addon
    chain, as mitmproxy does (the lean engine's DispatchTable.run_named)."""

    identify: Callable[[str | None, Address | None], object]
    passes_through: Callable[[str, int, Identity, Client], bool]
    run_hook: Callable[..., Awaitable[None]]


class FrontDoor:
    """The addon: routes the regular-mode server's connections through the front door."""

    def __init__(self, proxyserver: Any, gate: Gate, stats: GatewayStats | None = None) -> None:
        self.gate = gate
        self.proxyserver = proxyserver
        self.stats = stats if stats is not None else GatewayStats()
        self.enabled = True
        # Options read on every connection, kept here: each `ctx.options.x` is a deep copy.
        self.validate_inbound_headers = True
        self.tcp_timeout = 600.0
        self.gateway_host = ""  # schoolgate_gateway_host, as a name (GatewayPages declares it)
        mitm_internals.route_streams(proxyserver, self.accept)

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_front_door",
            bool,
            True,
            "Serve allowed HTTPS tunnels that are not decrypted, and plain HTTP that needs no "
            "inspection, in schoolgate's own front door (same decisions, events and limits; much "
            "less CPU). False: mitmproxy serves every connection.",
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "schoolgate_front_door" in updated:
            self.enabled = bool(opts.schoolgate_front_door)
        if "validate_inbound_headers" in updated:
            self.validate_inbound_headers = bool(opts.validate_inbound_headers)
        if "tcp_timeout" in updated:
            self.tcp_timeout = float(opts.tcp_timeout)
        if "schoolgate_gateway_host" in updated:
            name = str(getattr(opts, "schoolgate_gateway_host", "") or "")
            self.gateway_host = name.strip().lower().rstrip(".")

    async def accept(
        self, instance: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if not self.enabled:
            await mitm_internals.hand_over(instance, reader, writer)
            return
        door = _Door(self, instance, reader, writer)
        try:
            await door.serve()
        except Exception:
            self.stats.front_door_errors += 1
            logger.exception("the front door failed on a connection; closing it")
            await door.end()


def _assemble(response: http.Response) -> bytes:
    """The response's bytes on the wire (mitmproxy's `assemble_response`); the answer to
    nearly every CONNECT, a 200 the hooks left as it was made, from a table."""
    data = response.data
    if (
        data.status_code == 200
        and data.reason == ESTABLISHED_REASON
        and not data.headers.fields
        and data.content == b""
        and data.trailers is None
    ):
        known = _ESTABLISHED.get(data.http_version)
        if known is not None:
            return known
    return bytes(http1.assemble_response(response))  # type: ignore[no-untyped-call]


def _established(http_version: bytes) -> http.Response:
    """The 200 that opens a tunnel, as mitmproxy makes it."""
    now = time.time()
    return http.Response(http_version, 200, ESTABLISHED_REASON, http.Headers(), b"", None, now, now)


_ESTABLISHED = {  # (assembled by mitmproxy's own code)
    version: bytes(http1.assemble_response(_established(version)))  # type: ignore[no-untyped-call]
    for version in (b"HTTP/1.0", b"HTTP/1.1")
}


def _may_serve_first(data: bytes) -> bool:
    """Could `data` begin a first request the front door serves (a CONNECT, or plain HTTP)?"""
    return CONNECT.startswith(data[: len(CONNECT)]) or frontdoor_http.may_serve(data)


class _Door:
    """One client connection while the front door holds it."""

    def __init__(
        self,
        owner: FrontDoor,
        instance: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.owner, self.instance, self.reader, self.writer = owner, instance, reader, writer
        self.client = Client(
            id=mitm_internals.new_id(),
            transport_protocol="tcp",
            peername=writer.get_extra_info("peername"),
            sockname=writer.get_extra_info("sockname"),
            timestamp_start=time.time(),
            proxy_mode=instance.mode,
            state=ConnectionState.OPEN,
        )
        self.server: Server | None = None
        self.announced = False
        self.finished = False
        self.deadline = (
            asyncio.get_running_loop().time() + mitm_internals.head_limits().first_seconds
        )

    # --- what Limits, Enforce and Detect call on a registered connection (mitmproxy's names) ---

    async def on_timeout(self) -> None:
        self.close()

    def close_connection(self, connection: Any, half_close: bool = False) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.close()

    # --- the connection ---------------------------------------------------------------------

    async def serve(self) -> None:
        stats, gate = self.owner.stats, self.owner.gate
        connections = self.owner.proxyserver.connections
        connections[self.client.id] = self
        try:
            self.announced = True
            await gate.run_hook(CLIENT_CONNECTED, self.client)
            if self.client.error:
                stats.door_refused += 1
                await self.end()
                return
            data = await self._read_head()
            if data is None:
                return
            if not data.startswith(CONNECT):  # plain HTTP: proxy_addons/frontdoor_http.py
                await frontdoor_http.serve(self, data)
                return
            head, _, rest = data.partition(b"\r\n\r\n")
            request = self._fast_request(head, data)
            identity = None if request is None else self._identity(request)
            if (
                request is None
                or identity is None
                or not self._passes(request.host, request.port, identity)
            ):
                stats.door_handed_over += 1
                await self._hand_over(data, tunnel=None)
                return
            stats.door_tunnels += 1
            opened = await self._connect_hooks(request)
            if opened is None:
                return
            await self._tunnel(opened, request.host, rest)
        finally:
            if connections.get(self.client.id) is self:
                del connections[self.client.id]

    async def _read_head(self) -> bytes | None:
        """The proxy request's head (and whatever came with it); None when the connection was
        dealt with here (closed, or handed over because it is not one the front door serves)."""
        return await self.read_head(_may_serve_first, self.deadline)

    async def read_head(
        self,
        serves: Callable[[bytes], bool],
        deadline: float,
        *,
        idle: bool = False,
        before_hand_over: Callable[[], Awaitable[None]] | None = None,
    ) -> bytes | None:
        """A request head (and whatever came with it) by `deadline` (the loop's time), while
        what has come may begin one that `serves` accepts; None when the connection was dealt
        with here: closed, timed out (as mitmproxy's own head time-out), or handed over with what
        was read (after `before_hand_over`). `idle`: waiting on a kept-alive connection, where
        nothing at all by the deadline is not a late request."""
        data = b""
        limits = mitm_internals.head_limits()
        loop = asyncio.get_running_loop()
        while b"\r\n\r\n" not in data:
            if not serves(data) or len(data) > limits.max_bytes:
                if before_hand_over is not None:
                    await before_hand_over()
                self.owner.stats.door_handed_over += 1
                await self._hand_over(data, tunnel=None)
                return None
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0)):
                    chunk = await self.reader.read(limits.max_bytes + 1)
            except TimeoutError:
                if data.strip() or not idle:
                    mitm_internals.note_head_timeout()
                if data.strip() and not self.writer.is_closing():  # (Limits may have closed it)
                    self.writer.write(
                        mitm_internals.error_response(408, "The request took too long to arrive.")
                    )
                await self.end()
                return None
            except OSError:  # reset by the client (a tab closed mid-load): it has gone
                chunk = b""
            if not chunk:
                await self.end()
                return None
            data += chunk
        return data

    async def _read(self, size: int) -> bytes | None:
        """Up to `size` bytes (b"" when the client has gone: closed, or reset); None when the
        client's time to send its first request is up."""
        left = self.deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(left, 0)):
                return await self.reader.read(size)
        except TimeoutError:  # (an OSError too: first)
            return None
        except OSError:
            return b""

    def _fast_request(self, head: bytes, data: bytes) -> http.Request | None:
        """The CONNECT, when it is one the front door serves: HTTP/1, within the head limits,
        valid for mitmproxy, no body. (Ports are the hooks' to refuse, answered from here.)"""
        if mitm_internals.check_head(data) is not None:
            return None
        lowered = head.lower()
        if b"content-length" in lowered or b"transfer-encoding" in lowered:
            return None  # a CONNECT with a body (or a header merely naming one): mitmproxy's
        request = read_connect(head)  # the common case; anything else as mitmproxy reads it
        if request is None:
            try:
                request = http1.read_request_head(head.split(b"\r\n"))
            except ValueError:
                return None
        if request.method != "CONNECT" or request.http_version not in ("HTTP/1.1", "HTTP/1.0"):
            return None
        if validate_request(HTTPMode.regular, request, self.owner.validate_inbound_headers):
            return None
        return request

    def _identity(self, request: http.Request) -> Identity | None:
        try:
            found = self.owner.gate.identify(
                header_value(request.headers, b"proxy-authorization"), self.client.peername
            )
        except Exception:
            logger.exception("the front door's first look at an identity failed")
            return None
        return found if isinstance(found, Identity) else None

    def _passes(self, host: str, port: int, identity: Identity) -> bool:
        try:
            return self.owner.gate.passes_through(host, port, identity, self.client)
        except Exception:
            logger.exception("the front door's first look at a decision failed")
            return False

    async def _connect_hooks(self, request: http.Request) -> http.HTTPFlow | None:
        """The CONNECT's hooks, as mitmproxy runs them; their answer is sent from here. The
        flow once the tunnel is open (200 sent), else None."""
        run = self.owner.gate.run_hook
        self.server = mitm_internals.new_server()
        flow = http.HTTPFlow(self.client, self.server, live=True)
        flow.request = request
        await run(HTTP_CONNECT, flow)
        if flow.response is not None or flow.error is not None:
            self.owner.stats.door_answered += 1
            if flow.response is not None and flow.error is None:
                self.writer.write(_assemble(flow.response))
            await run(HTTP_CONNECT_ERROR, flow)
            flow.live = False
            await self.end()
            return None
        self.server.address = (request.host, request.port)
        flow.response = _established(request.data.http_version)
        await run(HTTP_CONNECTED, flow)
        self.writer.write(_assemble(flow.response))
        return flow

    async def _tunnel(self, flow: http.HTTPFlow, host: str, data: bytes) -> None:
        stats, run = self.owner.stats, self.owner.gate.run_hook
        assert self.server is not None
        hello = None
        while hello is None:
            if data and data[0] != 0x16:
                break  # not TLS at all: mitmproxy's detectors look at it
            try:
                hello = read_hello(data)
            except ValueError:
                break
            if hello is not None or len(data) > HELLO_MAX:
                break
            chunk = await self._read(HELLO_MAX)
            if chunk is None:
                break  # slow: mitmproxy's time-outs apply from here
            if not chunk:
                await self.end()
                return
            data += chunk
        sni = None if hello is None else hello.sni
        # (An SNI naming the CONNECT's host, however spelt, was decided with it.)
        if (
            hello is None
            or has_ech(hello.extensions)
            or is_viewer_host(host)
            or (sni and sni != host and not same_host(sni, host))
        ):
            stats.door_handed_over_in_tunnel += 1
            await self._hand_over(data, tunnel=self.server)
            return
        self.client.sni = sni
        self.client.alpn_offers = hello.alpn_protocols
        context = mitm_internals.context_for(self.client, self.server, ctx.options)
        hello_data = ClientHelloData(context, hello)
        await run(TLS_CLIENTHELLO, hello_data)
        if not hello_data.ignore_connection:
            # The first look said "relay", the gateway's hooks say "inspect" (or refuse): never
            # relay it; the hooks have run, so mitmproxy cannot start over. Close it.
            stats.door_disagreed += 1
            logger.warning(
                "the front door closed a tunnel to %s: the gateway's hooks would "
                "not relay it unread",
                host,
            )
            await self.end()
            return
        upstream = await self._open_server()
        if upstream is None:
            return
        self.owner.proxyserver.connections.pop(self.client.id, None)  # ours to time out now
        stats.door_spliced += 1
        await _Splice.run(self.reader, self.writer, upstream, data, self.owner.tcp_timeout)
        self.server.timestamp_end = time.time()
        self.server.state = ConnectionState.CLOSED
        await run(
            SERVER_DISCONNECTED, server_hooks.ServerConnectionHookData(self.server, self.client)
        )
        await self.finish()

    async def _open_server(self) -> asyncio.Transport | None:
        """server_connect's hooks (destination checks, pinning), the connection to the address
        they leave, and server_connected's; the open transport, or None (client closed)."""
        run = self.owner.gate.run_hook
        assert self.server is not None
        server = self.server
        data = server_hooks.ServerConnectionHookData(server, self.client)
        await run(SERVER_CONNECT, data)
        transport = None
        if not server.error:
            assert server.address is not None
            server.timestamp_start = time.time()
            try:
                async with asyncio.timeout(CONNECT_SECONDS):
                    transport, _ = await asyncio.get_running_loop().create_connection(
                        _Pipe, str(server.address[0]), int(server.address[1])
                    )
            except (OSError, TimeoutError) as error:
                server.error = str(error) or type(error).__name__
        if transport is None:
            await run(SERVER_CONNECT_ERROR, data)
            await self.end()
            return None
        server.peername = transport.get_extra_info("peername")
        server.sockname = transport.get_extra_info("sockname")
        server.timestamp_tcp_setup = time.time()
        server.state = ConnectionState.OPEN
        await run(SERVER_CONNECTED, data)
        return transport

    async def _hand_over(self, data: bytes, *, tunnel: Server | None) -> None:
        self.owner.proxyserver.connections.pop(self.client.id, None)
        mitm_internals.unread(self.reader, data)
        self.finished = True  # mitmproxy sends client_disconnected from here on
        await mitm_internals.hand_over(
            self.instance, self.reader, self.writer, client=self.client, tunnel=tunnel
        )

    async def end(self) -> None:
        """Close the client's connection here, and say so to the hooks."""
        self.close()
        await self.finish()

    async def finish(self) -> None:
        """client_disconnected, once, for a client announced and not handed over."""
        if self.finished or not self.announced:
            return
        self.finished = True
        self.client.timestamp_end = time.time()
        self.client.state = ConnectionState.CLOSED
        await self.owner.gate.run_hook(CLIENT_DISCONNECTED, self.client)


class _Pipe(asyncio.BufferedProtocol):
    """One side of a spliced tunnel: what its socket receives is read into one reused buffer
    and written to the other side. The other side's transport pauses this one's reading as
    soon as it holds unsent bytes (which may still point into this buffer), and resumes it
    once they are all sent: flow control, and no copy or allocation per chunk."""

    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(PIPE_BUFFER))
        self.transport: Any = None
        self.other: _Pipe | None = None
        self.splice: _Splice | None = None
        self.eof = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=0)
        transport.pause_reading()  # until both sides are joined

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        assert self.other is not None
        assert self.splice is not None
        self.splice.active = True
        self.other.transport.write(self.buffer[:nbytes])

    def pause_writing(self) -> None:  # our socket is behind: stop reading the other one
        if self.other is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None:
            self.other.transport.resume_reading()

    def eof_received(self) -> bool:
        self.eof = True
        other = self.other
        if other is None or other.eof or not other.transport.can_write_eof():
            return False  # both directions done: close (after sending what is buffered)
        other.transport.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None:
            self.other.transport.close()
        if self.splice is not None:
            self.splice.lost()


class _Splice:
    """Two _Pipes, and the end of the tunnel: both sockets closed, or idle too long."""

    def __init__(self, timeout: float) -> None:
        self.active = False
        self.open = 2
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self.timeout = timeout
        self.timer: asyncio.TimerHandle | None = None

    def lost(self) -> None:
        self.open -= 1
        if self.open <= 0 and not self.done.done():
            self.done.set_result(None)

    @classmethod
    async def run(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: Any,
        first: bytes,
        timeout: float,
    ) -> None:
        splice = cls(timeout)
        client_transport: Any = writer.transport
        client_transport.pause_reading()
        server_pipe: _Pipe = upstream.get_protocol()
        client_pipe = _Pipe()
        client_pipe.connection_made(client_transport)
        first += mitm_internals.take_buffered(reader)
        for one, other in ((client_pipe, server_pipe), (server_pipe, client_pipe)):
            one.other, one.splice = other, splice
        if first:
            upstream.write(first)
        if client_transport.is_closing():
            upstream.close()
            return
        client_transport.set_protocol(client_pipe)
        client_transport.resume_reading()
        upstream.resume_reading()
        await splice.wait(client_transport, upstream)

    async def wait(self, client: Any, upstream: Any) -> None:
        """Until both sockets are closed; both are closed after a whole time-out in which
        nothing went either way (one timer, looked at once per time-out)."""
        self.timer = self.loop.call_later(self.timeout, self.idle, client, upstream)
        try:
            await self.done
        finally:
            self.timer.cancel()

    def idle(self, client: Any, upstream: Any) -> None:
        if self.active:
            self.active = False
            self.timer = self.loop.call_later(self.timeout, self.idle, client, upstream)
            return
        client.close()
        upstream.close()
