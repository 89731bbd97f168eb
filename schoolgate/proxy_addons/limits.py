"""Nobody brings the gateway down: bounds on what any client, signed in or not, can make the
gateway hold. Request heads (line, size, header count) and the time to send them are bounded in
mitmproxy's HTTP/1 layer (see `mitm_internals`); this addon sets those limits from its options,
caps connections per client address and in total, closes a connection whose first request has
not arrived in time (covering CONNECT and the TLS handshake), streams the bodies of allowed
requests instead of buffering them, and does not read a large body for a request the gateway
has answered itself (a 407 or a block page). It runs last, after every decision.

What the limits are and how to change them: docs/limits.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from mitmproxy import ctx, http, tcp
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Client

from schoolgate.proxy_addons import mitm_internals
from schoolgate.proxy_addons.errors import options_error
from schoolgate.proxy_addons.stats import GatewayStats

logger = logging.getLogger(__name__)

# (option, default, minimum, help); every one is an int.
OPTIONS: tuple[tuple[str, int, int, str], ...] = (
    (
        "schoolgate_max_request_line",
        8 * 1024,
        256,
        "Longest HTTP/1 request line (method, address, version) in bytes; longer is answered 414 "
        "and the connection closed.",
    ),
    (
        "schoolgate_max_header_bytes",
        32 * 1024,
        1024,
        "Largest HTTP/1 request head (request line and all headers) in bytes; larger is answered "
        "431 and the connection closed.",
    ),
    (
        "schoolgate_max_headers",
        100,
        10,
        "Most header lines in one HTTP/1 request; more is answered 431 and the connection closed.",
    ),
    (
        "schoolgate_head_timeout",
        30,
        1,
        "Seconds a new connection has to deliver its first complete request (including CONNECT "
        "and the TLS handshake), however slowly bytes trickle in; then it is closed.",
    ),
    (
        "schoolgate_keepalive_timeout",
        60,
        1,
        "Seconds a kept-alive HTTP/1 connection may wait for, and take to send, its next request "
        "head; then it is closed.",
    ),
    (
        "schoolgate_max_connections_per_client",
        256,
        1,
        "Most simultaneous connections from one client address; more are closed at once.",
    ),
    (
        "schoolgate_max_connections",
        4000,
        1,
        "Most simultaneous client connections in total; more are closed at once.",
    ),
    (
        "schoolgate_max_answered_body",
        64 * 1024,
        0,
        "Largest request body, in bytes, the gateway reads for a request it answers itself "
        "(sign in, block page); a larger one, or one of unknown size, closes the connection.",
    ),
)


def _address(client: Client) -> str:
    return str(client.peername[0]) if client.peername else "?"


def _body_size(request: http.Request) -> int | None:
    """The announced body size; None when unknown (chunked, or until the connection closes)."""
    if "transfer-encoding" in request.headers:
        return None
    try:
        return int(request.headers.get("content-length", "0") or 0)
    except ValueError:
        return None


class Limits:
    def __init__(self, stats: GatewayStats | None = None) -> None:
        self._per_address: Counter[str] = Counter()
        self._total = 0
        self._counted: set[str] = set()  # client ids counted in the totals above
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # The caps read on every connection, kept here: each `ctx.options.x` is a deep copy.
        defaults = {name: default for name, default, *_ in OPTIONS}
        self._max_total = defaults["schoolgate_max_connections"]
        self._max_per_client = defaults["schoolgate_max_connections_per_client"]
        self._head_timeout = defaults["schoolgate_head_timeout"]
        self.stats = stats or GatewayStats()

    def load(self, loader: Loader) -> None:
        mitm_internals.install()
        for name, default, _minimum, text in OPTIONS:
            loader.add_option(name, int, default, text)

    def configure(self, updated: set[str]) -> None:
        names = {name for name, *_ in OPTIONS}
        if not updated & names:
            return
        opts = ctx.options
        problems = [
            f"{name} must be at least {minimum} (got {getattr(opts, name)})"
            for name, _default, minimum, _text in OPTIONS
            if getattr(opts, name) < minimum
        ]
        if opts.schoolgate_max_request_line > opts.schoolgate_max_header_bytes:
            problems.append(
                "schoolgate_max_request_line cannot be larger than schoolgate_max_header_bytes"
            )
        if problems:
            raise options_error("; ".join(problems))
        self._max_total = opts.schoolgate_max_connections
        self._max_per_client = opts.schoolgate_max_connections_per_client
        self._head_timeout = opts.schoolgate_head_timeout
        mitm_internals.set_head_limits(
            mitm_internals.HeadLimits(
                max_line=opts.schoolgate_max_request_line,
                max_bytes=opts.schoolgate_max_header_bytes,
                max_headers=opts.schoolgate_max_headers,
                first_seconds=opts.schoolgate_head_timeout,
                idle_seconds=opts.schoolgate_keepalive_timeout,
            )
        )

    @property
    def head_stats(self) -> dict[str, int]:
        return mitm_internals.head_stats()

    # --- connections ---------------------------------------------------------------------------

    def client_connected(self, client: Client) -> None:
        address = _address(client)
        if self._total >= self._max_total:
            self.stats.refused_total += 1
            client.error = "too many connections to the gateway"  # mitmproxy closes it
            return
        if self._per_address[address] >= self._max_per_client:
            self.stats.refused_per_client += 1
            client.error = f"too many connections from {address}"
            return
        self._per_address[address] += 1
        self._total += 1
        self._counted.add(client.id)
        loop = asyncio.get_running_loop()
        self._timers[client.id] = loop.call_later(
            self._head_timeout, self._first_request_late, client
        )

    def client_disconnected(self, client: Client) -> None:
        self._arrived(client)
        if client.id not in self._counted:
            return
        self._counted.discard(client.id)
        address = _address(client)
        self._total -= 1
        self._per_address[address] -= 1
        if self._per_address[address] <= 0:
            del self._per_address[address]

    def _arrived(self, client: Client) -> None:
        timer = self._timers.pop(client.id, None)
        if timer is not None:
            timer.cancel()

    def _first_request_late(self, client: Client) -> None:
        self._timers.pop(client.id, None)
        addons: Any = ctx.master.addons  # mitmproxy's AddonManager is unannotated
        close = mitm_internals.close_client(addons.get("proxyserver"), client)
        if close is None:
            return
        self.stats.first_request_timeouts += 1
        task: Any = asyncio.get_running_loop().create_task(close())
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    # --- requests ------------------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.request.method != "CONNECT":
            self._arrived(flow.client_conn)
        if flow.error is not None or not flow.live:
            return
        if flow.response is None and flow.request.method != "CONNECT":
            # Allowed: the body is passed on as it arrives, never held whole (no addon reads
            # request bodies). Not stream_large_bodies: it would also try to stream the body of
            # a request already answered, which mitmproxy cannot do (NotImplementedError).
            flow.request.stream = True
            return
        if flow.response is not None:
            size = _body_size(flow.request)
            if size is None or size > ctx.options.schoolgate_max_answered_body:
                # Answered already (sign in, block page): mitmproxy would read the whole body
                # into memory before sending the answer. Not one this large or of unknown size.
                self.stats.answered_body_closed += 1
                flow.kill()  # type: ignore[no-untyped-call]

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        self._arrived(flow.client_conn)
