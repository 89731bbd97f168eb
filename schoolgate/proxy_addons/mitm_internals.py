"""The only place schoolgate reaches into mitmproxy 12.2.3's private internals: the HTTP/1
request-head limits and time-out (mitmproxy buffers a request head without any bound: "FIXME:
protect against header size DoS" in `Http1Server.read_headers`), error responses that do not
name the proxy, closing a client connection from an addon, and the front door's way in,
hand-over and pre-read ClientHello (proxy_addons/frontdoor.py), mitmproxy's chunked-body reader
for the front door's plain HTTP (proxy_addons/frontdoor_http.py), and an eager task factory that
uvloop accepts and counted flow ids (proxy_addons/engine.py); a Server made without its
field-by-field checks (the front door's tunnels).

Each item below names what it relies on. `tests/proxy_addons/test_mitm_internals.py` checks
every one of them, so an upgrade that moves them fails loudly instead of silently dropping a
limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import h11
from h11._receivebuffer import ReceiveBuffer
from mitmproxy import ctx, flow, http, version
from mitmproxy.connection import Client, Server
from mitmproxy.net.http import status_codes
from mitmproxy.proxy import (
    commands,
    events,
    layer,
    mode_servers,
    mode_specs,
    server,
    server_hooks,
)
from mitmproxy.proxy import context as proxy_context
from mitmproxy.proxy.layers import modes
from mitmproxy.proxy.layers import tls as tls_layer
from mitmproxy.proxy.layers.http import _base, _hooks, _http1, _http2, _http3
from mitmproxy.tls import ClientHello
from mitmproxy.utils import asyncio_utils

from schoolgate.store.events import new_event_id

logger = logging.getLogger(__name__)

PRODUCT = "schoolgate"  # all an error page or a Server header says about us


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """Bounds on one HTTP/1 request head, enforced before any addon sees the request."""

    max_line: int = 8 * 1024  # request line, bytes (nginx: large_client_header_buffers 8k)
    max_bytes: int = 32 * 1024  # whole head, bytes (nginx: 4 x 8k)
    max_headers: int = 100  # header lines
    first_seconds: float = 30.0  # to send a complete head on a new connection
    idle_seconds: float = 60.0  # to start and finish the next head on a kept-alive connection


_limits = HeadLimits()
_stats: dict[str, int] = {
    "head_too_large": 0,
    "line_too_long": 0,
    "too_many_headers": 0,
    "head_timeouts": 0,
}


def set_head_limits(limits: HeadLimits) -> None:
    """Use these limits for every HTTP/1 request head read from now on."""
    global _limits
    _limits = limits


def head_stats() -> dict[str, int]:
    """How often each head limit has closed a connection (in this process)."""
    return dict(_stats)


def head_limits() -> HeadLimits:
    """The limits in force (the front door applies them to the heads it reads itself)."""
    return _limits


def check_head(data: bytes) -> tuple[str, int, str] | None:
    """What is wrong with a (possibly incomplete) request head under the limits in force."""
    return _check_head(data, _limits)


def note_head_timeout() -> None:
    """A head that took too long, closed by the front door: counted with mitmproxy's."""
    _stats["head_timeouts"] += 1


def error_response(status: int, text: str) -> bytes:
    """mitmproxy's HTTP/1 error response (anonymised like the others)."""
    return bytes(_http1.make_error_response(status, text))


# --- 1. error responses ----------------------------------------------------------------------
# Relies on: `mitmproxy.version.MITMPROXY` (read at call time by _http1.make_error_response,
# _http2 and _http3 for their `Server:` header) and the module-level name `format_error`
# imported from _base into _http1, _http2 and _http3 (their error bodies say "mitmproxy").


def format_error(status_code: int, message: str) -> bytes:
    """An error body that names nobody: status, reason and the message."""
    reason = status_codes.RESPONSES.get(status_code, "Error")
    return (
        f"<!doctype html><html><head><title>{status_code} {reason}</title></head><body>"
        f"<h1>{status_code} {reason}</h1><p>{html.escape(message)}</p>"
        f"<p>({PRODUCT})</p></body></html>"
    ).encode("utf-8", "replace")


def _anonymise_errors() -> None:
    version.MITMPROXY = PRODUCT
    for module in (_base, _http1, _http2, _http3):
        module.format_error = format_error  # type: ignore[attr-defined]


# --- 2. HTTP/1 request-head limits -----------------------------------------------------------
# Relies on: `_http1.Http1Server._handle_event(event)` being the one entry point for events,
# `self.buf` (h11's ReceiveBuffer) holding the unparsed bytes after DataReceived was appended,
# `self.state` being `self.read_headers` while a head is awaited and `self.done` once closed,
# `self.conn` the client connection, and `commands.RequestWakeup(delay)` being answered with
# an `events.Wakeup` whose `.command` is that request, routed back to this layer.

_original_handle_event: Callable[..., Any] | None = None


def _reply(conn: Client, status: int, text: str) -> Generator[commands.Command, Any, None]:
    yield commands.SendData(conn, _http1.make_error_response(status, text))
    yield commands.CloseConnection(conn)


def _check_head(buf: bytes, limits: HeadLimits) -> tuple[str, int, str] | None:
    """What is wrong with a (possibly incomplete) request head, as (stat, status, text)."""
    end = buf.find(b"\r\n\r\n")
    head = buf if end < 0 else buf[:end]
    first = head.find(b"\n")
    if (first < 0 and len(head) > limits.max_line) or first > limits.max_line:
        return ("line_too_long", 414, "The web address is too long.")
    if len(head) > limits.max_bytes:
        return ("head_too_large", 431, "The request headers are too large.")
    if head.count(b"\n") > limits.max_headers:
        return ("too_many_headers", 431, "The request has too many headers.")
    return None


def _limited_handle_event(self: Any, event: events.Event) -> Generator[commands.Command, Any, None]:
    assert _original_handle_event is not None
    limits = _limits
    if isinstance(event, events.Wakeup) and getattr(event.command, "_sg", False):
        if event.command is self._sg_timer and self.state == self.read_headers:
            _stats["head_timeouts"] += 1
            late = bytes(self.buf).strip()
            self.buf = type(self.buf)()
            self.state = self.done
            if late:
                yield from _reply(self.conn, 408, "The request took too long to arrive.")
            else:
                yield commands.CloseConnection(self.conn)
        return  # ours, and for a head that has arrived (or a connection closed) since
    if isinstance(event, events.DataReceived) and self.state in (self.read_headers, self.wait):
        # While a request is being answered (`wait`), whatever the client sends next is
        # buffered too (pipelining, or a TLS ClientHello sent before the CONNECT's answer,
        # which is not text): only its size is bounded there.
        data = bytes(self.buf) + event.data
        if self.state == self.wait:
            problem = (
                None
                if len(data) <= limits.max_bytes
                else ("head_too_large", 431, "The request headers are too large.")
            )
        else:
            problem = _check_head(data, limits)
        if problem is not None:
            stat, status, text = problem
            _stats[stat] += 1
            self.buf = type(self.buf)()  # let go of the bytes at once
            self.state = self.done
            yield from _reply(self.conn, status, text)
            return
    yield from _original_handle_event(self, event)
    if self.state == self.read_headers:
        if getattr(self, "_sg_timer", None) is None:
            served = getattr(self, "_sg_served", False)
            timer = commands.RequestWakeup(limits.idle_seconds if served else limits.first_seconds)
            timer._sg = True  # type: ignore[attr-defined]
            self._sg_timer = timer
            yield timer
    else:
        self._sg_served = True
        self._sg_timer = None


def _bound_request_heads() -> None:
    global _original_handle_event
    if _original_handle_event is not None:
        return
    _original_handle_event = _http1.Http1Server._handle_event
    _http1.Http1Server._handle_event = _limited_handle_event  # type: ignore[method-assign]


# --- 3. closing a client connection from an addon --------------------------------------------
# Relies on: the Proxyserver addon's `connections` dict of ConnectionHandlers, each with its
# `client` and the async `on_timeout()` that closes the client connection ("inactivity").


def close_client(proxyserver: Any, client: Client) -> Callable[[], Any] | None:
    """A coroutine function that closes `client`'s connection, or None if it is gone."""
    for handler in list(getattr(proxyserver, "connections", {}).values()):
        if getattr(handler, "client", None) is client:
            on_timeout: Callable[[], Any] = handler.on_timeout
            return on_timeout
    return None


def close_client_now(client: Client) -> None:
    """Close a client's connection now, from outside the hook that answers it (a tunnel cut at
    the end of a break, a detector's block on an eager connection): mitmproxy 12 has no public
    call for this (`flow.kill()` is only noticed by the HTTP layer). Relies on the same
    `connections` (client id -> ConnectionHandler) and the handler's `close_connection`."""
    master = getattr(ctx, "master", None)
    proxyserver = master.addons.get("proxyserver") if master is not None else None
    handler = getattr(proxyserver, "connections", {}).get(client.id)
    if handler is not None:
        handler.close_connection(client)


# --- 4. a connection closed from a hook is really closed --------------------------------------
# Relies on: `server.ConnectionHandler.close_connection(connection, half_close)` cancelling the
# connection's reader task (`self.transports[connection].handler`), which then closes
# `self.transports[connection].writer`. When the close comes from a hook's task while the reader
# waits for `_server_event_lock`, the cancellation escapes `handle_connection` before that
# close: the socket stays open, unread, until the process ends (found with the head limits:
# every refused head after a blocking hook leaked a socket). So close the writer here too.

_original_close_connection: Callable[..., None] | None = None


def _closing_close_connection(self: Any, connection: Any, half_close: bool = False) -> None:
    assert _original_close_connection is not None
    _original_close_connection(self, connection, half_close)
    if not half_close:
        transport = self.transports.get(connection)
        writer = getattr(transport, "writer", None)
        if writer is not None:
            # Already closed, or the loop is going away: nothing left to do.
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


def _really_close() -> None:
    global _original_close_connection
    if _original_close_connection is not None:
        return
    _original_close_connection = server.ConnectionHandler.close_connection
    server.ConnectionHandler.close_connection = (  # type: ignore[method-assign]
        _closing_close_connection
    )


def install() -> None:
    """Apply the patches above (idempotent)."""
    _anonymise_errors()
    _bound_request_heads()
    _really_close()


# --- 5. giving an open server connection back its name ---------------------------------------
# Relies on: `connection.Server.__setattr__` refusing to change `address` once the connection is
# open, and otherwise storing it in the instance `__dict__` as a plain dataclass field.
# GuardDestinations (destinations.py) connects to the address it checked, then gives the open
# connection back the name it was asked for, so later requests to that name can reuse it.


def name_open_server(server_conn: Any, address: tuple[str, int]) -> None:
    server_conn.__dict__["address"] = address


# --- 6. the front door: its way in, its hand-over, and the ClientHello parser ------------------
# Relies on:
# - `Proxyserver.servers.changed`, an AsyncSignal sent with the new server instances before they
#   start listening, and a regular-mode instance listening with
#   `asyncio.start_server(self.handle_stream, ...)`: an instance attribute `handle_stream` set
#   before it starts receives every accepted connection (the front door's way in);
# - `ServerInstance.handle_stream(reader, writer)` serving one connection with mitmproxy, and
#   `ServerInstance.make_top_layer(context)` / `.manager.register_connection(id, handler)`;
# - `mode_servers.ProxyConnectionHandler(master, reader, writer, options, mode)` with its
#   `client`, `transports` ({client: ConnectionIO(reader=, writer=)}), `layer` and
#   `handle_client()`, which sends ClientConnectedHook first;
# - `layers.modes.DestinationKnown` (`finish_start()`, `child_layer`) and `layer.NextLayer`: a
#   tunnel whose CONNECT the front door has answered continues where mitmproxy's own CONNECT
#   handling would (NextLayer on the tunnel's bytes, `context.server.address` the target);
# - asyncio's `StreamReader._buffer` (a bytearray of what was read from the socket and not yet
#   consumed): what the front door read is put back in front of it, so mitmproxy reads the
#   original bytes from the original peer;
# - `mitmproxy.tls.ClientHello`'s private `_raw_bytes` and `_client_hello` (PreparsedHello).


def route_streams(proxyserver: Any, accept: Callable[[Any, Any, Any], Any]) -> None:
    """From now on, every connection accepted by a regular-mode server goes to
    `accept(instance, reader, writer)` instead of mitmproxy (which `hand_over` reaches). Call it
    before the servers start (at `load`); `accept` must stay referenced (a weak signal)."""
    router = _Router(proxyserver, accept)
    proxyserver.servers.changed.connect(router.route)
    _routers.append(router)


class _Router:
    def __init__(self, proxyserver: Any, accept: Callable[[Any, Any, Any], Any]) -> None:
        self.proxyserver, self.accept = proxyserver, accept

    def route(self) -> None:
        for instance in self.proxyserver.servers:
            if isinstance(instance.mode, mode_specs.RegularMode) and not getattr(
                instance, "_sg_routed", False
            ):
                instance._sg_routed = True
                instance.handle_stream = functools.partial(self.accept, instance)


_routers: list[_Router] = []  # the signal holds weak references only


def unread(reader: asyncio.StreamReader, data: bytes) -> None:
    """Put `data` back in front of what `reader` has buffered."""
    if data:
        reader._buffer[0:0] = data  # type: ignore[attr-defined]


def take_buffered(reader: asyncio.StreamReader) -> bytes:
    """Whatever `reader` has buffered and nobody has read yet (it is cleared)."""
    buffer: bytearray = reader._buffer  # type: ignore[attr-defined]
    data = bytes(buffer)
    buffer.clear()
    return data


async def hand_over(
    instance: Any,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    client: Client | None = None,
    tunnel: Any = None,
) -> None:
    """Let mitmproxy serve this connection from here on. Without `client`, from scratch, as if
    it had accepted it. With `client` (whose client_connected hook has run already), as that
    client: from the proxy request on, or, with `tunnel` (the Server of a CONNECT the front
    door has answered), from the first byte inside the tunnel."""
    if client is None:
        await type(instance).handle_stream(instance, reader, writer)
        return
    master = ctx.master
    handler = _Resumed(
        master,
        reader,
        writer,
        ctx.options,  # type: ignore[no-untyped-call]
        instance.mode,
    )
    handler.client = client
    handler.transports = {client: server.ConnectionIO(handler=None, reader=reader, writer=writer)}
    handler.timeout_watchdog = server.TimeoutWatchdog(ctx.options.tcp_timeout, handler.on_timeout)
    context = proxy_context.Context(client, ctx.options)
    if tunnel is None:
        handler.layer = instance.make_top_layer(context)
    else:
        context.server = tunnel
        handler.layer = _Tunnel(context)
    with instance.manager.register_connection(client.id, handler):
        await handler.handle_client()


class _Resumed(mode_servers.ProxyConnectionHandler):
    """mitmproxy's connection handler for a client the front door has announced already."""

    _announced = False

    async def handle_hook(self, hook: commands.StartHook) -> None:
        if isinstance(hook, server_hooks.ClientConnectedHook) and not self._announced:
            self._announced = True
            return
        await super().handle_hook(hook)


class _Tunnel(modes.DestinationKnown):
    """The inside of a tunnel whose CONNECT was answered: what comes next is decided on its
    bytes, as mitmproxy does after its own CONNECT."""

    def _handle_event(self, event: events.Event) -> Generator[commands.Command, Any, None]:
        if isinstance(event, events.Start):
            self.child_layer = layer.NextLayer(self.context)
            yield from self.finish_start()


def context_for(client: Client, tunnel: Any, options: Any) -> proxy_context.Context:
    """`Context(client, options)` with `tunnel` (a Server) as its server, without making the
    Server that `Context.__init__` makes only to be replaced (its id, its ~25 checked attribute
    sets). Relies on a Context being its `client`, `server`, `options` and `layers`."""
    context: proxy_context.Context = proxy_context.Context.__new__(proxy_context.Context)
    context.client, context.server, context.options, context.layers = client, tunnel, options, []
    return context


# The hooks the front door sends itself: mitmproxy keeps their classes beside the layers that
# send them (`layers/http/_hooks.py`, `layers/tls.py`), not in its public `hooks` module.
HttpConnectHook = _hooks.HttpConnectHook
HttpConnectedHook = _hooks.HttpConnectedHook
HttpConnectErrorHook = _hooks.HttpConnectErrorHook
TlsClienthelloHook = tls_layer.TlsClienthelloHook


class PreparsedHello(ClientHello):
    """A ClientHello read by the front door's own reader (proxy_addons/frontdoor_hello.py):
    mitmproxy's class, so every hook takes it as one, with its SNI, ALPN offers and extensions
    given; whatever else a hook asks of it (cipher suites, ...) is parsed by mitmproxy's own
    parser on first use. Relies on `ClientHello` keeping the handshake body in `_raw_bytes` and
    the parsed structure in `_client_hello`, and answering `sni`, `alpn_protocols` and
    `extensions` as properties."""

    def __init__(
        self,
        raw: bytes,
        sni: str | None,
        alpn_protocols: tuple[bytes, ...],
        extensions: tuple[tuple[int, bytes], ...],
    ) -> None:
        self._raw_bytes = raw
        self._sni = sni
        self._alpn_protocols = alpn_protocols
        self._extensions = extensions

    @functools.cached_property
    def _client_hello(self) -> Any:  # type: ignore[override]
        return ClientHello(self._raw_bytes)._client_hello

    @property
    def sni(self) -> str | None:
        return self._sni

    @property
    def alpn_protocols(self) -> list[bytes]:
        return list(self._alpn_protocols)

    @property
    def extensions(self) -> list[tuple[int, bytes]]:
        return list(self._extensions)


# --- 7. no run-time type checks on HTTP messages (the lean engine's process) ------------------
# Relies on: `mitmproxy.http.MessageData.__post_init__`, which exists only to type-check every
# field of a new RequestData or ResponseData (mitmproxy defines it under `if __debug__:`, so
# `python -O` leaves it out too) and is looked up when the dataclass's `__init__` runs. It was
# 11 % of the lean gateway's CPU per plain-HTTP request and 4 % per tunnel (32 checks per
# request; docs/benchmarks.md), and about half the cost of each CONNECT's request and answer
# in the front door. The messages are built by mitmproxy's parsers and by the gateway's
# tested addons; a wrong type still fails when the message is sent.


def _unchecked(self: Any) -> None:
    return None


def skip_message_type_checks() -> None:
    """Build HTTP messages without mitmproxy's run-time type checks (as `python -O` does)."""
    http.MessageData.__post_init__ = _unchecked  # type: ignore[method-assign]


# --- 8. eager tasks on any event loop (the lean engine on uvloop) -----------------------------
# Relies on: `Master.run()` entering `mitmproxy.utils.asyncio_utils.set_eager_task_factory()`,
# a context manager looked up on that module when `run` is called, which installs asyncio's
# `eager_task_factory`. That factory takes no `eager_start` argument, which uvloop 0.23's
# `create_task` passes on Python 3.13 (TypeError: ... 'eager_start'); this one accepts it and
# makes the same eager tasks, on asyncio's loop and on uvloop's.


def _eager_task(
    loop: asyncio.AbstractEventLoop,
    coro: Any,
    *,
    name: str | None = None,
    context: Any = None,
    eager_start: bool | None = None,
) -> asyncio.Task[Any]:
    return asyncio.Task(coro, loop=loop, name=name, context=context, eager_start=True)


@contextlib.contextmanager
def _set_eager_task_factory() -> Generator[None]:
    loop = asyncio.get_running_loop()
    existing = loop.get_task_factory()
    loop.set_task_factory(_eager_task)
    try:
        yield
    finally:
        loop.set_task_factory(existing)


def eager_tasks_on_any_loop() -> None:
    """Let mitmproxy's master install an eager task factory that uvloop accepts too."""
    asyncio_utils.set_eager_task_factory = _set_eager_task_factory


# --- 9. chunked bodies in the front door -------------------------------------------------------
# Relies on: `_http1.make_body_reader(None)` giving h11's ChunkedReader (called with an h11
# ReceiveBuffer: an `h11.Data`, an `h11.EndOfMessage`, or None for "more bytes"), the reader
# mitmproxy's HTTP/1 layer decodes chunked bodies with (proxy_addons/frontdoor_http.py).


def chunked_reader() -> tuple[Callable[[Any], Any], Any]:
    """mitmproxy's HTTP/1 chunked-body reader and an empty buffer for it (`buffer += bytes`)."""
    return _http1.make_body_reader(None), ReceiveBuffer()


def is_end_of_message(event: Any) -> bool:
    """Is this event of a body reader the end of the body?"""
    return isinstance(event, h11.EndOfMessage)


# --- 10. flow ids (the lean engine's process) --------------------------------------------------
# Relies on: `mitmproxy.flow.Flow.__init__` making each id as `str(uuid.uuid4())`, with `uuid`
# looked up on the `mitmproxy.flow` module when it runs (a flow's `copy()` takes its id from
# mitmproxy's serializer instead: still a uuid4; the gateway copies no flows). A uuid4() is 16
# random bytes from the kernel and a UUID object: about 2 % of a plain HTTP request's CPU. The
# front door's connections and the flows take the event ids' kind instead (store/events.py: a
# random prefix per process and a counter, in mitmproxy's UUID form).
new_id = new_event_id


class _CountedIds:
    """What `mitmproxy.flow` asks of the uuid module: `str(uuid.uuid4())` for each flow."""

    uuid4 = staticmethod(new_id)


def counted_flow_ids() -> None:
    """Give each flow an id from `new_id` (mitmproxy's Flow.__init__ calls `uuid.uuid4()`)."""
    flow.uuid = _CountedIds  # type: ignore[assignment,attr-defined]


# --- 11. a new Server, cheaply (the front door, once per tunnel) --------------------------------
# Relies on: `mitmproxy.connection.Server` being a dataclass whose every field other than `id`
# and `address` has an immutable default, and whose instance is its `__dict__` (no slots, no
# `__post_init__`). Its `__init__` sets each of its twenty fields through `Server.__setattr__`
# (which guards `address` and `via` against changes on an open connection): six times the cost
# of copying the fields, once per front-door tunnel. A Server made here has the same fields, in
# the same order, as `Server(id=..., address=None, transport_protocol="tcp")`.
_SERVER_FIELDS: dict[str, Any] = dict(vars(Server(id="", address=None, transport_protocol="tcp")))


def new_server() -> Server:
    """`Server(id=new_id(), address=None, transport_protocol="tcp")`, closed, not yet connected."""
    server: Server = Server.__new__(Server)
    fields = server.__dict__
    fields.update(_SERVER_FIELDS)
    fields["id"] = new_id()
    return server
