"""The only place schoolgate reaches into mitmproxy 12.2.3's private internals: the HTTP/1
request-head limits and time-out (mitmproxy buffers a request head without any bound: "FIXME:
protect against header size DoS" in `Http1Server.read_headers`), error responses that do not
name the proxy, and closing a client connection from an addon.

Each item below names what it relies on. `tests/proxy_addons/test_mitm_internals.py` checks
every one of them, so an upgrade that moves them fails loudly instead of silently dropping a
limit.
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from mitmproxy import version
from mitmproxy.connection import Client
from mitmproxy.net.http import status_codes
from mitmproxy.proxy import commands, events, server
from mitmproxy.proxy.layers.http import _base, _http1, _http2, _http3

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
_stats: dict[str, int] = {"head_too_large": 0, "line_too_long": 0, "too_many_headers": 0,
                          "head_timeouts": 0}


def set_head_limits(limits: HeadLimits) -> None:
    """Use these limits for every HTTP/1 request head read from now on."""
    global _limits
    _limits = limits


def head_stats() -> dict[str, int]:
    """How often each head limit has closed a connection (in this process)."""
    return dict(_stats)


# --- 1. error responses ----------------------------------------------------------------------
# Relies on: `mitmproxy.version.MITMPROXY` (read at call time by _http1.make_error_response,
# _http2 and _http3 for their `Server:` header) and the module-level name `format_error`
# imported from _base into _http1, _http2 and _http3 (their error bodies say "mitmproxy").


def format_error(status_code: int, message: str) -> bytes:
    """An error body that names nobody: status, reason and the message."""
    reason = status_codes.RESPONSES.get(status_code, "Error")
    return (f"<!doctype html><html><head><title>{status_code} {reason}</title></head><body>"
            f"<h1>{status_code} {reason}</h1><p>{html.escape(message)}</p>"
            f"<p>({PRODUCT})</p></body></html>").encode("utf-8", "replace")


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


def _limited_handle_event(self: Any, event: events.Event
                          ) -> Generator[commands.Command, Any, None]:
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
            problem = None if len(data) <= limits.max_bytes else (
                "head_too_large", 431, "The request headers are too large.")
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
            timer = commands.RequestWakeup(limits.idle_seconds if served
                                           else limits.first_seconds)
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
        _closing_close_connection)


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
