"""Plain HTTP in the front door (issue 15): an absolute-form `http://` GET or HEAD that needs no
inspection is decided and forwarded here, through the gateway's own hooks run in the order
mitmproxy's HTTP/1 layer runs them; anything else goes to mitmproxy with the bytes already read.

What is served here, and why it needs no more than the hooks run here:
- The head is exactly as strict as mitmproxy's HTTP/1 layer or stricter: HTTP/1.1 only, a GET
  or HEAD with no body (no Content-Length, Transfer-Encoding or Expect), no Upgrade, one Host
  naming the URL's host, header lines of token names and visible values (no obs-fold), within
  the head limits, and nothing after it (no pipelining). Anything else is handed over.
- The first look (`Gate.identify`, `Gate.passes_through`) says the client is known without the
  directory and the host is allowed and never decrypted or not to be inspected; search hosts
  (search terms are recorded), viewer hosts, and the gateway's own pages are handed over too.
- Then the hooks decide for real, as in mitmproxy: requestheaders, request, (server_connect,
  server_connected), responseheaders, response, error. An answer a hook gives (a block, a 407,
  an unreachable page) is sent from here, as mitmproxy sends it; a body a hook holds back
  (`stream` off) is read whole first. Every request on a kept-alive connection gets its own
  hooks; one that is not for the front door is handed over from that request on.
- The upstream connection is reused only for the same requested host and port on the same
  client connection (its destination checks and DNS pin are GuardDestinations', by client).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from typing import Any

from mitmproxy import flow, http
from mitmproxy.connection import ConnectionState, Server
from mitmproxy.net.http import http1
from mitmproxy.net.http.validate import validate_headers
from mitmproxy.proxy import server_hooks

from schoolgate.proxy_addons import mitm_internals
from schoolgate.proxy_addons.context import Identity
from schoolgate.proxy_addons.detect import is_viewer_host
from schoolgate.proxy_addons.flows import header_value, same_host
from schoolgate.proxy_addons.frontdoor_connect import plain_host
from schoolgate.proxy_addons.safesearch import is_search_host

REQUESTHEADERS = "requestheaders"
REQUEST = "request"
RESPONSEHEADERS = "responseheaders"
RESPONSE = "response"
ERROR = "error"
SERVER_CONNECT = server_hooks.ServerConnectHook.name
SERVER_CONNECT_ERROR = server_hooks.ServerConnectErrorHook.name
SERVER_CONNECTED = server_hooks.ServerConnectedHook.name
SERVER_DISCONNECTED = server_hooks.ServerDisconnectedHook.name

STARTS = (b"GET http://", b"HEAD http://")
CONNECT_SECONDS = 10.0  # to open the upstream connection
RESPONSE_HEAD_MAX = 256 * 1024  # a longer response head is a 502
HELD_BODY_MAX = 32 * 1024 * 1024  # a body a hook holds back (stream off) larger than this: 502
READ_SIZE = 64 * 1024

# The shape read here; anything else is None (mitmproxy's path). Host names without IDNA labels,
# so the name is what mitmproxy's parser makes of it; header lines of a token name and visible
# characters (no obs-fold, no bare CR or LF, no obs-text).
_REQUEST_LINE = re.compile(
    rb"(GET|HEAD) http://([A-Za-z0-9.-]{1,253})(?::([0-9]{1,5}))?(/[\x21-\x7e]*)? HTTP/1\.1"
)
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):([\t\x20-\x7e]*)")
_RESPONSE_LINE = re.compile(rb"(HTTP/1\.[01]) ([1-5][0-9][0-9])(?: ([\x21-\x7e][\x20-\x7e]*))?")
_LENGTH = re.compile(rb"0|[1-9][0-9]{0,17}")  # mitmproxy's valid Content-Length, bounded
# Headers whose presence means the request is not a plain bodiless GET or HEAD.
_REFUSED = frozenset(
    (b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"te", b"http2-settings")
)
_CONNECTION_TOKENS = frozenset((b"", b"keep-alive", b"close"))


def may_serve(data: bytes) -> bool:
    """Could `data`, the first bytes of a request head, begin one the front door serves?"""
    return any(start.startswith(data[: len(start)]) for start in STARTS)


def _fields(lines: list[bytes]) -> list[tuple[bytes, bytes]] | None:
    fields = []
    for text in lines:
        header = _HEADER.fullmatch(text)
        if header is None:
            return None
        fields.append((header[1], header[2].strip()))
    return fields


def read_plain(head: bytes) -> http.Request | None:
    """The request in `head` (its lines, without the blank line that ends it) when the front
    door may serve it, as mitmproxy's `http1.read_request_head` reads it (and valid for
    mitmproxy's HTTP/1 layer, with no body: tests/proxy_addons/test_frontdoor_http.py checks
    both); else None."""
    lines = head.split(b"\r\n")
    line = _REQUEST_LINE.fullmatch(lines[0])
    if line is None:
        return None
    method, host, port_text, path = line.groups()
    port = 80 if port_text is None else int(port_text)
    if not plain_host(host, port):
        return None
    fields = _fields(lines[1:])
    if fields is None:
        return None
    hosts, connection = [], b""
    for name, value in fields:
        lower = name.lower()
        if lower in _REFUSED:
            return None
        if lower == b"host":
            hosts.append(value)
        elif lower == b"connection":
            connection += b"," + value
    if len(hosts) != 1 or not _same_authority(hosts[0], host, port):
        return None
    if not {t.strip().lower() for t in connection.split(b",")} <= _CONNECTION_TOKENS:
        return None
    return http.Request(
        host=host.decode("ascii"),
        port=port,
        method=method,
        scheme=b"http",
        authority=host if port_text is None else host + b":" + port_text,
        path=path or b"/",
        http_version=b"HTTP/1.1",
        headers=http.Headers(fields),
        content=None,
        trailers=None,
        timestamp_start=time.time(),
        timestamp_end=None,
    )


@functools.lru_cache(maxsize=4096)
def _inspected_elsewhere(host: str) -> bool:
    """Hosts whose plain HTTP mitmproxy's path serves whatever the policy says: search engines
    (search terms are recorded, safe search forced) and page viewers (Detect reads the path).
    Both are fixed lists in code, so the answer per host never changes."""
    return is_search_host(host) or is_viewer_host(host)


def _same_authority(header: bytes, host: bytes, port: int) -> bool:
    name, colon, given = header.rpartition(b":")
    if not colon:
        name, given = header, b""
    if given and (not given.isdigit() or int(given) != port):
        return False
    if not given and port != 80:
        return False
    return same_host(name.decode("ascii"), host.decode("ascii"))


def read_response(request: http.Request, head: bytes) -> tuple[http.Response, int | None]:
    """The response in `head` (its lines, without the blank line that ends it) and its body's
    size as mitmproxy's `expected_http_body_size` gives it, after mitmproxy's own header checks
    (validate_headers). The common shape is read here; anything else by mitmproxy's parser.
    ValueError: what mitmproxy would refuse, and a bare CR or LF anywhere."""
    lines = head.split(b"\r\n")
    if b"\n" in head.replace(b"\r\n", b"") or b"\r" in head.replace(b"\r\n", b""):
        raise ValueError("a bare CR or LF in the response head")  # never guess where lines end
    line = _RESPONSE_LINE.fullmatch(lines[0])
    fields = None if line is None else _fields(lines[1:])
    if line is None or fields is None:
        return _read_response_as_mitmproxy(request, lines)
    lengths = [v for n, v in fields if n.lower() == b"content-length"]
    if any(n.lower() == b"transfer-encoding" for n, _ in fields) or len(lengths) > 1:
        return _read_response_as_mitmproxy(request, lines)
    if lengths and not _LENGTH.fullmatch(lengths[0]):
        return _read_response_as_mitmproxy(request, lines)
    status = int(line[2])
    response = http.Response(
        http_version=line[1],
        status_code=status,
        reason=line[3] or b"",
        headers=http.Headers(fields),
        content=None,
        trailers=None,
        timestamp_start=time.time(),
        timestamp_end=None,
    )
    if request.method == "HEAD" or status < 200 or status in (204, 304):
        return response, 0
    return response, int(lengths[0]) if lengths else -1


def _read_response_as_mitmproxy(
    request: http.Request, lines: list[bytes]
) -> tuple[http.Response, int | None]:
    response = http1.read_response_head(lines)
    size = http1.expected_http_body_size(request, response)
    validate_headers(response)
    return response, size


async def serve(door: Any, data: bytes) -> None:
    """Serve the connection of `door` (frontdoor._Door), whose first request head (and nothing
    after it yet) is `data`, until it ends or is handed over."""
    await _Plain(door).serve(data)


class _Upstream:
    """The open connection to an origin, for one client connection."""

    def __init__(
        self,
        key: tuple[str, int],
        server: Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.key, self.server, self.reader, self.writer = key, server, reader, writer

    def reusable(self, key: tuple[str, int]) -> bool:
        if key != self.key or self.writer.is_closing() or self.reader.at_eof():
            return False
        return not mitm_internals.take_buffered(self.reader)  # unasked-for bytes: not again


class _Failed(Exception):
    """The exchange cannot go on: the flow's error, and what the client is sent (if anything)."""

    def __init__(self, message: str, status: int | None = 502) -> None:
        super().__init__(message)
        self.status = status


class _Plain:
    """One client connection's plain HTTP requests while the front door holds it."""

    def __init__(self, door: Any) -> None:
        self.door = door
        self.gate = door.owner.gate
        self.stats = door.owner.stats
        self.upstream: _Upstream | None = None
        # The server of a flow until it is connected: one per client connection, as mitmproxy's
        # context.server is.
        self.placeholder = Server(address=None)

    async def serve(self, data: bytes | None) -> None:
        try:
            while data is not None:
                data = await self._one(data)
        finally:
            await self._drop_upstream()

    # --- one request ----------------------------------------------------------------------------

    async def _one(self, data: bytes) -> bytes | None:
        """Serve the request whose head is `data`; the next head, or None when done."""
        door = self.door
        request = self._first_look(data)
        if request is None:
            await self._drop_upstream()
            self.stats.door_handed_over += 1
            await door._hand_over(data, tunnel=None)
            return None
        self.stats.door_requests += 1
        request.authority = ""  # origin-form upstream, as mitmproxy's regular mode sends it
        http_flow = http.HTTPFlow(door.client, self.placeholder, live=True)
        http_flow.request = request
        try:
            keep = await self._exchange(http_flow)
        except _Failed as failure:
            await self._fail(http_flow, failure)
            keep = False
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await self._fail(http_flow, _Failed("connection lost", status=None))
            keep = False
        http_flow.live = False
        if not keep:
            await door.end()
            return None
        return await self._next_head()

    def _first_look(self, data: bytes) -> http.Request | None:
        head, _, rest = data.partition(b"\r\n\r\n")
        if rest or mitm_internals.check_head(data) is not None:
            return None
        request = read_plain(head)
        if request is None:
            return None
        door = self.door
        try:
            found = self.gate.identify(
                header_value(request.headers, b"proxy-authorization"), door.client.peername
            )
            if not isinstance(found, Identity):
                return None
            host = request.host.lower().rstrip(".")
            if (
                _inspected_elsewhere(host)
                or self._addressed_to_gateway(host, request.port)
                or not self.gate.passes_through(host, request.port, found, self.door.client)
            ):
                return None
        except Exception:
            self.stats.front_door_errors += 1
            return None  # mitmproxy's path decides it, and fails closed there
        return request

    def _addressed_to_gateway(self, host: str, port: int) -> bool:
        gateway = self.door.owner.gateway_host
        if gateway and host == gateway:
            return True
        sockname = self.door.client.sockname
        if not sockname or port != sockname[1]:
            return False
        ours = str(sockname[0]).lower()
        return host in (ours, f"[{ours}]", "localhost")

    async def _exchange(self, http_flow: http.HTTPFlow) -> bool:
        """The hooks, the upstream exchange and the answer; keep the client connection?"""
        run = self.gate.run_hook
        await run(REQUESTHEADERS, http_flow)
        if await self._killed(http_flow):
            return False
        http_flow.request.timestamp_end = time.time()
        await run(REQUEST, http_flow)
        if await self._killed(http_flow):
            return False
        if http_flow.response is not None:  # answered by a hook (block, sign-in, page)
            self.stats.door_answered += 1
            http_flow.response.timestamp_start = time.time()
            await run(RESPONSEHEADERS, http_flow)
            if await self._killed(http_flow):
                return False
            return await self._send_whole(http_flow)
        upstream = await self._connect(http_flow)
        request = http_flow.request
        upstream.writer.write(http1.assemble_request_head(request))  # type: ignore[no-untyped-call]
        try:
            head = await upstream.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as error:
            raise _Failed("server closed connection") from error
        except asyncio.LimitOverrunError as error:
            raise _Failed("the server's response head is too long") from error
        response, size = self._read_response(request, head)
        http_flow.response = response
        await run(RESPONSEHEADERS, http_flow)
        if await self._killed(http_flow):
            return False
        if http_flow.response is not response:
            raise _Failed("a hook replaced a response being read")  # not done by our addons
        done = size != -1 and not _closes(request, response)
        if not response.stream:
            response.data.content = await self._body(upstream, size, None)
            keep = await self._send_whole(http_flow)
        else:
            writer = self.door.writer
            head = http1.assemble_response_head(response)  # type: ignore[no-untyped-call]
            if 0 <= size <= READ_SIZE:  # small: head and body in one write (one system call)
                try:
                    body = await upstream.reader.readexactly(size)
                except asyncio.IncompleteReadError as error:
                    raise _Failed("server closed connection") from error
                writer.write(head + body)
                await writer.drain()
            else:
                writer.write(head)
                chunked = "chunked" in response.headers.get("transfer-encoding", "").lower()
                await self._body(upstream, size, (writer, chunked))
            response.timestamp_end = time.time()
            await run(RESPONSE, http_flow)
            keep = not await self._killed(http_flow)
        if not done:
            await self._drop_upstream()
        return keep and done

    def _read_response(self, request: http.Request, head: bytes) -> tuple[http.Response, int]:
        try:
            response, size = read_response(request, head[:-4])
        except ValueError as error:
            raise _Failed(f"Cannot parse HTTP response: {error}") from error
        if response.status_code < 200:  # 1xx (and 101): not for this simple exchange
            raise _Failed(f"unexpected interim response {response.status_code}")
        return response, (-2 if size is None else size)

    async def _body(
        self,
        upstream: _Upstream,
        size: int,
        out: tuple[asyncio.StreamWriter, bool] | None,
    ) -> bytes:
        """The response body: `size` bytes, until the server closes (-1) or chunked (-2).
        Written to `out` (the client, and whether to chunk it) as it arrives, else returned."""
        reader = upstream.reader
        held = bytearray()

        async def give(chunk: bytes) -> None:
            if out is None:
                held.extend(chunk)
                if len(held) > HELD_BODY_MAX:
                    raise _Failed("the response is too large to hold back", status=None)
                return
            writer, chunked = out
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()

        if size == -2:
            await self._chunked(reader, give)
            if out is not None and out[1]:
                out[0].write(b"0\r\n\r\n")
        elif size == -1:
            while chunk := await reader.read(READ_SIZE):
                await give(chunk)
        else:
            left = size
            while left > 0:
                chunk = await reader.read(min(left, READ_SIZE))
                if not chunk:
                    raise _Failed("server closed connection", status=None)
                left -= len(chunk)
                await give(chunk)
        return bytes(held)

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader, give: Any) -> None:
        """A chunked body, decoded by h11's reader as mitmproxy's HTTP/1 layer decodes it."""
        body, buffer = mitm_internals.chunked_reader()
        while True:
            try:
                event = body(buffer)
            except Exception as error:
                raise _Failed(f"bad chunked response body: {error}", status=None) from error
            if event is None:
                chunk = await reader.read(READ_SIZE)
                if not chunk:
                    raise _Failed("server closed connection", status=None)
                buffer += chunk
            elif mitm_internals.is_end_of_message(event):
                if len(buffer):
                    raise _Failed("bytes after the response", status=None)
                return
            elif event.data:
                await give(bytes(event.data))

    async def _send_whole(self, http_flow: http.HTTPFlow) -> bool:
        """mitmproxy's send_response for a response held whole: the response hook, then the
        response; keep the client connection?"""
        response = http_flow.response
        assert response is not None
        response.timestamp_end = time.time()
        await self.gate.run_hook(RESPONSE, http_flow)
        if await self._killed(http_flow):
            return False
        response = http_flow.response
        assert response is not None
        content = response.raw_content or b""
        writer = self.door.writer
        writer.write(http1.assemble_response_head(response) + content)  # type: ignore[no-untyped-call]
        await writer.drain()
        return not _closes(http_flow.request, response)

    async def _killed(self, http_flow: http.HTTPFlow) -> bool:
        """A hook killed the flow (or failed it): the error hook, and no answer (as mitmproxy)."""
        if http_flow.error is None:
            return False
        await self.gate.run_hook(ERROR, http_flow)
        http_flow.live = False
        return True

    async def _fail(self, http_flow: http.HTTPFlow, failure: _Failed) -> None:
        if http_flow.error is None:
            http_flow.error = flow.Error(str(failure))
            await self.gate.run_hook(ERROR, http_flow)
        await self._drop_upstream()
        if failure.status is not None and not self.door.writer.is_closing():
            self.door.writer.write(mitm_internals.error_response(failure.status, str(failure)))

    # --- the upstream connection -------------------------------------------------------------

    async def _connect(self, http_flow: http.HTTPFlow) -> _Upstream:
        """The connection for this request: the open one to the same host and port, else a new
        one through the server_connect hooks (destination checks and pinning)."""
        request = http_flow.request
        key = (request.host, request.port)
        if self.upstream is not None and self.upstream.reusable(key):
            http_flow.server_conn = self.upstream.server
            return self.upstream
        await self._drop_upstream()
        run, client = self.gate.run_hook, self.door.client
        server = Server(address=key, transport_protocol="tcp")
        http_flow.server_conn = server
        hook_data = server_hooks.ServerConnectionHookData(server, client)
        await run(SERVER_CONNECT, hook_data)
        opened = None
        if not server.error:
            assert server.address is not None
            server.timestamp_start = time.time()
            try:
                async with asyncio.timeout(CONNECT_SECONDS):
                    opened = await asyncio.open_connection(
                        str(server.address[0]), int(server.address[1]), limit=RESPONSE_HEAD_MAX
                    )
            except (OSError, TimeoutError) as error:
                server.error = str(error) or type(error).__name__
        if opened is None:
            await run(SERVER_CONNECT_ERROR, hook_data)
            raise _Failed(f"Cannot connect to {key[0]}:{key[1]}: {server.error}")
        reader, writer = opened
        server.peername = writer.get_extra_info("peername")
        server.sockname = writer.get_extra_info("sockname")
        server.timestamp_tcp_setup = time.time()
        server.state = ConnectionState.OPEN
        self.upstream = _Upstream(key, server, reader, writer)
        await run(SERVER_CONNECTED, hook_data)
        return self.upstream

    async def _drop_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is None:
            return
        with contextlib.suppress(OSError, RuntimeError):
            upstream.writer.close()
        server = upstream.server
        server.timestamp_end = time.time()
        server.state = ConnectionState.CLOSED
        await self.gate.run_hook(
            SERVER_DISCONNECTED, server_hooks.ServerConnectionHookData(server, self.door.client)
        )

    # --- the next request on a kept-alive connection -------------------------------------------

    async def _next_head(self) -> bytes | None:
        """The next request's head, when it is one to look at here; None when the connection
        was dealt with (closed, timed out, or handed over with what was read)."""
        deadline = asyncio.get_running_loop().time() + mitm_internals.head_limits().idle_seconds
        head: bytes | None = await self.door.read_head(
            may_serve, deadline, idle=True, before_hand_over=self._drop_upstream
        )
        return head


def _closes(request: http.Request, response: http.Response) -> bool:
    """mitmproxy's `http1.connection_close` for the request or the response (its tokens are
    compared as they are written, as there)."""
    return _close(request) or _close(response)


def _close(message: http.Message) -> bool:
    tokens = [
        token.strip()
        for name, value in message.headers.fields
        if name.lower() == b"connection"
        for token in value.split(b",")
    ]
    if b"close" in tokens:
        return True
    if b"keep-alive" in tokens:
        return False
    return message.data.http_version != b"HTTP/1.1"
