"""Plain HTTP in the front door (proxy_addons/frontdoor_http.py): which request heads it takes
(exactly what mitmproxy's parser reads, in a narrower shape; everything else is None), and the
exchange itself, driven through a real socket pair against a real local origin that answers
in every framing (Content-Length, chunked, until close, broken), with the hooks recorded."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.connection import Client, ConnectionState
from mitmproxy.net.http import http1
from mitmproxy.net.http.validate import validate_headers
from mitmproxy.proxy import mode_specs
from mitmproxy.proxy.layers.http import HTTPMode, validate_request
from mitmproxy.test import taddons

from schoolgate.proxy_addons import frontdoor_http
from schoolgate.proxy_addons.context import Identity, IdentitySource
from schoolgate.proxy_addons.frontdoor import _Door
from schoolgate.proxy_addons.frontdoor_http import may_serve, read_plain, read_response
from schoolgate.proxy_addons.stats import GatewayStats

GOOD = b"GET http://a.example/p?q=1 HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t"


FIELDS = ("host", "port", "method", "scheme", "authority", "path", "http_version")


def agrees(head: bytes) -> http.Request | None:
    """read_plain's request, which mitmproxy reads the same way, finds valid and bodiless."""
    ours = read_plain(head)
    if ours is None:
        return None
    theirs = http1.read_request_head(head.split(b"\r\n"))
    for name in FIELDS:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.headers.fields == theirs.headers.fields
    assert validate_request(HTTPMode.regular, theirs, True) is None
    assert http1.expected_http_body_size(theirs) == 0
    return ours


def test_the_common_request_is_read_as_mitmproxy_reads_it() -> None:
    assert agrees(GOOD) is not None
    assert agrees(b"GET http://a.example HTTP/1.1\r\nHost: a.example\r\nX-Empty:") is not None
    assert agrees(b"HEAD http://a.example:8080/ HTTP/1.1\r\nHost: a.example:8080") is not None


URL_HOSTS = st.sampled_from(
    ["a.example", "A.Example", "xn--bcher-kva.example", "a_b.example", "-a.example", "1.2.3.4"]
) | st.text("abcXY09.-_:[]@", min_size=0, max_size=12)
LINES = st.lists(
    st.sampled_from(
        [b"X-A:  b ", b" folded", b"Bad Name: x", b"Y:", b"Connection: close", b"Host: a.example"]
    )
    | st.binary(max_size=12),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["GET", "HEAD", "get", "POST"]),
    URL_HOSTS,
    st.sampled_from(["", ":80", ":080", ":0", ":8080", ":65536", ":"]),
    st.sampled_from(["", "/", "/p?q=1", "?q", "/a b", "/%41#f"]),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "http/1.1"]),
    LINES,
)
def test_built_requests_are_read_as_mitmproxy_reads_them_or_left_to_it(
    method: str, host: str, port: str, path: str, version: str, lines: list[bytes]
) -> None:
    authority = f"{host}{port}"
    head = b"\r\n".join(
        [
            f"{method} http://{authority}{path} {version}".encode(),
            f"Host: {authority}".encode(),
            *lines,
        ]
    )
    agrees(head)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_after_a_request_line_never_disagree(junk: bytes) -> None:
    agrees(b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n" + junk)
    agrees(b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nX: " + junk)


def response_agrees(method: str, head: bytes) -> None:
    """read_response gives what mitmproxy's reader, body size and header checks give, or both
    refuse the response."""
    request = http.Request.make(method, "http://a.example/")
    lines = head.split(b"\r\n")
    try:
        theirs = http1.read_response_head(lines)
        size = http1.expected_http_body_size(request, theirs)
        validate_headers(theirs)
    except ValueError:
        with pytest.raises(ValueError, match=r"."):
            read_response(request, head)
        return
    ours, our_size = read_response(request, head)
    assert our_size == size
    for name in ("http_version", "status_code", "reason"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.headers.fields == theirs.headers.fields


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["GET", "HEAD"]),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 "]),
    st.sampled_from(["200", "204", "304", "101", "404", "099", "999", "20"]),
    st.sampled_from(["", " OK", "  OK", " OK ", " Not Found", " \xe9", " "]),
    st.lists(
        st.sampled_from(
            [
                b"Content-Length: 5",
                b"Content-Length: 05",
                b"Content-Length: 6",
                b"Content-Length: x",
                b"Content-Length: ",
                b"Transfer-Encoding: chunked",
                b"Transfer-Encoding: gzip",
                b"Connection: close",
                b"X-A: \xe9",
                b" folded",
                b"Bad Name: 1",
            ]
        )
        | st.binary(min_size=1, max_size=10).filter(lambda b: b"\r" not in b and b"\n" not in b),
        max_size=3,
    ),
)
def test_responses_are_read_as_mitmproxy_reads_them(
    method: str, version: str, status: str, reason: str, lines: list[bytes]
) -> None:
    head = b"\r\n".join([f"{version} {status}{reason}".encode("latin-1"), *lines])
    response_agrees(method, head)


@pytest.mark.parametrize(
    "head",
    [
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\n"
        b"Content-Length: 5",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\n folded",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\n\tfolded",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nX A: 1",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nX-A : 1",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nX-A: a\x00b",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nX-A: a\x7fb",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nX-A: a\rb",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\nX-A: b",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nTE: trailers",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nHTTP2-Settings: AAA",
        b"GET http://a.example/ HTTP/1.0\r\nHost: a.example",
        b"GET http://a.example/ HTTP/1.0\r\nHost: a.example\r\nConnection: keep-alive",
        b"GET http://a.example/ HTTP/1.1",  # no Host
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nHost: a.example",
        b"GET http://a.example/ HTTP/1.1\r\nHost: b.example",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example:81",
        b"GET http://a.example:81/ HTTP/1.1\r\nHost: a.example",
        b"GET https://a.example/ HTTP/1.1\r\nHost: a.example",
        b"GET /origin-form HTTP/1.1\r\nHost: a.example",
        b"POST http://a.example/ HTTP/1.1\r\nHost: a.example",
        b"get http://a.example/ HTTP/1.1\r\nHost: a.example",
        b"GET  http://a.example/ HTTP/1.1\r\nHost: a.example",
        b"GET http://a.example/ HTTP/1.1 \r\nHost: a.example",
        b"GET http://a.ex ample/ HTTP/1.1\r\nHost: a.example",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Hop",
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443",
    ],
)
def test_anything_odd_is_left_to_mitmproxy(head: bytes) -> None:
    assert read_plain(head) is None


@pytest.mark.parametrize(
    ("data", "serves"),
    [
        (b"", True),
        (b"G", True),
        (b"GET http://", True),
        (b"HEAD http://a", True),
        (b"GET /", False),
        (b"POST http://", False),
        (b"CONNECT ", False),
        (b"GET https://", False),
    ],
)
def test_which_first_bytes_may_be_served(data: bytes, serves: bool) -> None:
    assert may_serve(data) is serves


# --- the exchange -------------------------------------------------------------------------------

Hook = Callable[..., Awaitable[None] | None]


class Gate:
    """The gateway as the front door sees it: everyone a pupil, every host passed, each hook
    recorded; server_connect sends every connection to the local origin; responseheaders
    streams (as StripAltSvc does) unless a test says otherwise."""

    def __init__(self, origin_port: int) -> None:
        self.origin_port = origin_port
        self.hooks: list[str] = []
        self.extra: dict[str, Hook] = {}
        self.flows: list[http.HTTPFlow] = []

    def identify(self, header: str | None, peer: object) -> Identity:
        return Identity("pupil", IdentitySource.DEFAULT)

    def passes_through(self, host: str, port: int, identity: Identity, client: object) -> bool:
        return host != "blocked.example"

    async def run_hook(self, name: str, *args: Any) -> None:
        self.hooks.append(name)
        if name == "server_connect":
            args[0].server.address = ("127.0.0.1", self.origin_port)
        if name == "requestheaders":
            self.flows.append(args[0])
        if name == "responseheaders":
            args[0].response.stream = True
        extra = self.extra.get(name)
        if extra is not None:
            result = extra(*args)
            if result is not None:
                await result


class Door:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: Gate):
        self.reader, self.writer = reader, writer
        self.owner = SimpleNamespace(
            gate=gate, stats=GatewayStats(), validate_inbound_headers=True, gateway_host=""
        )
        self.client = Client(
            transport_protocol="tcp",
            peername=("127.0.0.1", 50000),
            sockname=("127.0.0.1", 8080),
            timestamp_start=time.time(),
            proxy_mode=mode_specs.ProxyMode.parse("regular"),
            state=ConnectionState.OPEN,
        )
        self.handed: list[bytes] = []
        self.ended = False

    read_head = _Door.read_head  # the front door's own head reader, on this stand-in

    async def _hand_over(self, data: bytes, *, tunnel: object) -> None:
        self.handed.append(data)
        self.writer.close()

    async def end(self) -> None:
        self.ended = True
        self.writer.close()


class Origin:
    """A local origin answering each request with the next scripted response (bytes)."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.connections = 0
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                answer = self.answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if answer.endswith(b"#close"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def run_door(
    answers: list[bytes],
    requests: bytes,
    setup: Callable[[Gate], None] | None = None,
    gateway_host: str = "",
) -> tuple[bytes, Gate, Door, Origin]:
    """Serve `requests` (sent at once after the first head is read by the door) through the front
    door; what the client received (until closed), the gate, the door and the origin."""
    origin = Origin(answers)
    port = await origin.start()
    gate = Gate(port)
    if setup is not None:
        setup(gate)
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    client_reader, client_writer = await asyncio.open_connection(sock=theirs)
    door = Door(reader, writer, gate)
    door.owner.gateway_host = gateway_host
    first, _, rest = requests.partition(b"\r\n\r\n")

    async def client() -> bytes:
        if rest:
            await asyncio.sleep(0.05)
            for one in rest.split(b"\r\n\r\n"):
                if one:
                    client_writer.write(one + b"\r\n\r\n")
                    await asyncio.sleep(0.05)
        return await asyncio.wait_for(client_reader.read(), 10)

    with taddons.context():
        received, _ = await asyncio.gather(
            client(), asyncio.wait_for(frontdoor_http.serve(door, first + b"\r\n\r\n"), 10)
        )
    client_writer.close()
    assert origin.server is not None
    origin.server.close()
    return received, gate, door, origin


def get(path: str, host: str = "a.example", *extra: str) -> bytes:
    lines = [f"GET http://{host}{path} HTTP/1.1", f"Host: {host}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


CLOSE = "Connection: close"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


async def test_kept_alive_requests_each_get_their_hooks_and_share_one_upstream() -> None:
    received, gate, door, origin = await run_door(
        [OK, OK, OK], get("/1") + get("/2") + get("/3", "a.example", "Connection: close")
    )
    assert received.count(b"HTTP/1.1 200 OK") == 3
    assert gate.hooks.count("requestheaders") == 3
    assert gate.hooks.count("response") == 3
    assert gate.hooks.count("server_connect") == 1
    assert origin.connections == 1
    assert [h.split(b" ")[1] for h in origin.heads] == [b"/1", b"/2", b"/3"]  # origin-form
    assert door.owner.stats.door_requests == 3
    assert door.ended


async def test_another_host_gets_a_new_upstream_and_a_blocked_one_is_handed_over() -> None:
    received, gate, door, _origin = await run_door(
        [OK, OK], get("/1") + get("/2", "b.example") + get("/3", "blocked.example")
    )
    assert received.count(b"200 OK") == 2
    assert gate.hooks.count("server_connect") == 2
    assert gate.hooks.count("server_disconnected") == 2
    assert door.handed == [get("/3", "blocked.example")]
    assert gate.hooks.count("requestheaders") == 2  # the handed-over request is mitmproxy's


async def test_a_chunked_response_is_decoded_and_sent_chunked_to_the_end() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
    )
    received, gate, _door, _ = await run_door(
        [chunked, OK], get("/c") + get("/after", "a.example", CLOSE)
    )
    first, _, after = received.partition(b"0\r\n\r\n")
    assert first.endswith(b"5\r\nhello\r\n7\r\n, world\r\n")
    assert after.startswith(b"HTTP/1.1 200 OK")
    assert after.endswith(b"hello")
    assert gate.hooks.count("response") == 2


async def test_a_response_until_close_ends_the_client_connection_too() -> None:
    received, gate, door, _ = await run_door(
        [b"HTTP/1.1 200 OK\r\n\r\nall of it#close"], get("/eof")
    )
    assert received.endswith(b"all of it#close")
    assert gate.hooks.count("response") == 1
    assert door.ended


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello#close",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
    ids=["te-and-cl", "two-lengths", "interim", "garbage"],
)
async def test_a_response_it_cannot_frame_is_a_502_and_an_error(answer: bytes) -> None:
    received, gate, door, _ = await run_door([answer], get("/bad"))
    assert received.startswith(b"HTTP/1.1 502")
    assert "error" in gate.hooks
    assert "response" not in gate.hooks
    assert door.ended


@pytest.mark.parametrize(
    ("length", "sent"),
    [(100, b"HTTP/1.1 502"), (frontdoor_http.READ_SIZE + 1, b"HTTP/1.1 200 OK")],
    ids=["small: a 502", "large: streamed, then cut"],
)
async def test_a_body_cut_short_is_an_error_and_the_client_is_closed(
    length: int, sent: bytes
) -> None:
    received, gate, door, _ = await run_door(
        [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nshort#close" % length], get("/short")
    )
    assert received.startswith(sent)
    assert "error" in gate.hooks
    assert "response" not in gate.hooks
    assert door.ended


async def test_an_answer_from_a_hook_is_sent_and_nothing_goes_upstream() -> None:
    def block(flow: http.HTTPFlow) -> None:
        flow.response = http.Response.make(403, b"blocked here", {"Content-Type": "text/plain"})

    received, gate, _door, origin = await run_door(
        [], get("/x", "a.example", CLOSE), lambda g: g.extra.update(requestheaders=block)
    )
    assert received.startswith(b"HTTP/1.1 403")
    assert received.endswith(b"blocked here")
    assert "server_connect" not in gate.hooks
    assert gate.hooks[-2:] == ["responseheaders", "response"]
    assert origin.connections == 0


async def test_a_flow_killed_by_a_hook_gets_the_error_hook_and_no_answer() -> None:
    def kill(flow: http.HTTPFlow) -> None:
        flow.kill()

    received, gate, _door, origin = await run_door(
        [OK], get("/k"), lambda g: g.extra.update(requestheaders=kill)
    )
    assert received == b""
    assert gate.hooks == ["requestheaders", "error"]
    assert origin.connections == 0


async def test_a_response_held_back_is_read_whole_before_the_response_hook() -> None:
    seen: list[bytes | None] = []

    def hold(flow: http.HTTPFlow) -> None:
        assert flow.response is not None
        flow.response.stream = False

    def check(flow: http.HTTPFlow) -> None:
        assert flow.response is not None
        seen.append(flow.response.content)
        flow.response = http.Response.make(403, b"replaced")

    def setup(gate: Gate) -> None:
        gate.extra.update(responseheaders=hold, response=check)

    received, _gate, _door, _ = await run_door([OK], get("/held", "a.example", CLOSE), setup)
    assert seen == [b"hello"]
    assert received.startswith(b"HTTP/1.1 403")
    assert received.endswith(b"replaced")


async def test_a_refused_upstream_is_a_502_with_the_connect_error_hooks() -> None:
    def refuse(data: Any) -> None:
        data.server.error = "refused by the school's web filter (internal address)"

    received, gate, _door, origin = await run_door(
        [OK], get("/r"), lambda g: g.extra.update(server_connect=refuse)
    )
    assert received.startswith(b"HTTP/1.1 502")
    assert "server_connect_error" in gate.hooks
    assert "error" in gate.hooks
    assert origin.connections == 0


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.1 200 OK\r\nX: a\nContent-Length: 0", b"HTTP/1.1 200 OK\r\nX: a\rY: b"],
)
def test_a_response_head_with_a_bare_cr_or_lf_is_refused(head: bytes) -> None:
    with pytest.raises(ValueError, match="bare CR or LF"):
        read_response(http.Request.make("GET", "http://a.example/"), head)


async def test_a_request_for_the_gateways_own_name_is_handed_over() -> None:
    pac = get("/proxy.pac", "gateway.school.test")
    received, _gate, door, origin = await run_door(
        [OK], get("/1") + pac, gateway_host="gateway.school.test"
    )
    assert received.count(b"200 OK") == 1  # the first, from the origin
    assert door.handed == [pac]  # GatewayPages answers it, in mitmproxy
    assert [h.split(b" ")[1] for h in origin.heads] == [b"/1"]
