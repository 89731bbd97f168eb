"""The mitmproxy internals schoolgate relies on (proxy_addons/mitm_internals.py) are where we
expect them; if an upgrade moves one, these fail loudly rather than a limit silently lapsing.
Also the head checks as a table, and the Limits addon's option validation."""

from __future__ import annotations

import asyncio
import inspect
import uuid

import pytest
from mitmproxy import exceptions, flow, http, version
from mitmproxy.addons import proxyserver
from mitmproxy.proxy import commands, events, layer, mode_servers, server
from mitmproxy.proxy.layers import modes
from mitmproxy.proxy.layers.http import _base, _http1, _http2, _http3
from mitmproxy.test import taddons, tflow
from mitmproxy.tls import ClientHello

from schoolgate.proxy_addons import mitm_internals
from schoolgate.proxy_addons.limits import Limits
from schoolgate.proxy_addons.mitm_internals import HeadLimits, _check_head
from tests.support.tls_hello import ECH, client_hello_record


def test_mitmproxy_is_the_version_the_internals_were_read_from() -> None:
    assert version.VERSION.startswith("12."), (
        f"mitmproxy {version.VERSION}: re-read proxy_addons/mitm_internals.py against it"
    )


def test_http1_server_still_buffers_the_head_where_we_bound_it() -> None:
    source = inspect.getsource(_http1.Http1Connection._handle_event)
    assert "self.buf += event.data" in source
    assert "self.state(event)" in source
    head = inspect.getsource(_http1.Http1Server.read_headers)
    assert "self.buf.maybe_extract_lines()" in head
    for state in ("read_headers", "read_body", "wait", "done", "passthrough"):
        assert callable(getattr(_http1.Http1Server, state)), state
    assert inspect.signature(_http1.make_error_response).parameters.keys() >= {"status_code"}


def test_the_patches_are_installed_by_the_addon() -> None:
    with taddons.context(Limits()):
        assert _http1.Http1Server._handle_event is mitm_internals._limited_handle_event
        assert version.MITMPROXY == "schoolgate"
        for module in (_base, _http1, _http2, _http3):
            assert module.format_error is mitm_internals.format_error  # type: ignore[attr-defined]
        body = _http1.make_error_response(502, "x")
        assert b"mitmproxy" not in body.lower()
        assert b"Server: schoolgate" in body


def test_wakeups_and_closing_are_where_we_use_them() -> None:
    assert "delay" in inspect.signature(commands.RequestWakeup).parameters
    assert issubclass(events.Wakeup, events.CommandCompleted)
    assert callable(server.ConnectionHandler.on_timeout)
    assert "self.connections" in inspect.getsource(proxyserver.Proxyserver.register_connection)
    assert "self.client.error" in inspect.getsource(server.ConnectionHandler.handle_client)
    close = inspect.getsource(
        mitm_internals._original_close_connection or server.ConnectionHandler.close_connection
    )
    assert "handler.cancel(" in close
    assert "self.transports[connection]" in close
    assert "writer.close()" in inspect.getsource(server.ConnectionHandler.handle_connection)


LIMITS = HeadLimits(max_line=100, max_bytes=400, max_headers=5)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"GET http://a.test/ HTTP/1.1\r\nHost: a\r\n\r\n", None),
        (b"GET http://a.test/ HTTP/1.1\r\nHo", None),  # incomplete but within bounds
        (b"GET /" + b"a" * 100, 414),  # no end of line yet, already too long
        (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 400, 431),  # never-ending header
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 6, 431),  # too many header lines, unfinished
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 4 + b"\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" + b"b" * 5000, None),  # a body is not the head
    ],
)
def test_head_checks(data: bytes, expected: int | None) -> None:
    problem = _check_head(data, LIMITS)
    assert (problem[1] if problem else None) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("schoolgate_max_header_bytes", 10),
        ("schoolgate_head_timeout", 0),
        ("schoolgate_max_connections_per_client", 0),
        ("schoolgate_max_request_line", 1 << 20),  # larger than the whole head
    ],
)
def test_bad_limits_are_refused_and_the_old_ones_stay(name: str, value: int) -> None:
    addon = Limits()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, schoolgate_max_headers=50)
        with pytest.raises(exceptions.OptionsError, match=name):
            tctx.configure(addon, **{name: value})
        assert mitm_internals._limits.max_headers == 50
        tctx.configure(addon, schoolgate_max_headers=100)


def test_an_open_server_connection_can_be_given_back_its_name() -> None:
    from mitmproxy.connection import ConnectionState, Server

    from schoolgate.proxy_addons.mitm_internals import name_open_server

    conn = Server(address=("192.0.2.7", 443))
    conn.state = ConnectionState.OPEN
    with pytest.raises(RuntimeError, match="open connection"):
        conn.address = ("www.example.org", 443)  # why the helper exists
    name_open_server(conn, ("www.example.org", 443))
    assert conn.address == ("www.example.org", 443)


# --- item 6: the front door's way in, its hand-over, and the ClientHello parser ------------


def test_a_regular_server_still_listens_with_its_handle_stream_attribute() -> None:
    """The front door's way in: an instance attribute `handle_stream`, set when the servers
    change and before they listen, receives every accepted connection."""
    listen = inspect.getsource(mode_servers.AsyncioServerInstance.listen)
    assert "asyncio.start_server(self.handle_stream" in listen
    update = inspect.getsource(proxyserver.Servers.update)
    # the signal is sent with the new instances before any of them starts
    assert "await self.changed.send()" in update.split("for ret in")[0]
    instance = mode_servers.ServerInstance.make("regular", proxyserver.Proxyserver())
    assert inspect.signature(instance.handle_stream).parameters.keys() == {"reader", "writer"}
    assert callable(instance.make_top_layer)


def test_the_hand_over_still_fits_mitmproxys_connection_handler() -> None:
    init = inspect.signature(mode_servers.ProxyConnectionHandler.__init__).parameters
    assert list(init) == ["self", "master", "r", "w", "options", "mode"]
    handle = inspect.getsource(server.ConnectionHandler.handle_client)
    assert handle.index("ClientConnectedHook(self.client)") < handle.index("handle_connection")
    assert "self.transports[self.client]" in handle
    assert set(inspect.signature(server.ConnectionIO).parameters) == {"handler", "reader", "writer"}
    assert list(inspect.signature(server.TimeoutWatchdog).parameters) == ["timeout", "callback"]
    start = inspect.getsource(modes.DestinationKnown.finish_start)
    assert "self.child_layer.handle_event(events.Start())" in start
    assert next(iter(inspect.signature(layer.NextLayer).parameters)) == "context"


def test_a_stream_reader_still_keeps_its_bytes_in_a_buffer() -> None:
    async def check() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"world")
        mitm_internals.unread(reader, b"hello ")
        assert await reader.readexactly(11) == b"hello world"
        reader.feed_data(b"left")
        assert mitm_internals.take_buffered(reader) == b"left"
        reader.feed_eof()
        assert await reader.read() == b""

    asyncio.run(check())


def test_a_preparsed_hello_is_mitmproxys_client_hello_and_parses_the_rest_on_demand() -> None:
    record = client_hello_record("learning.test", {ECH: b"\x00"})
    body = record[9:]
    hello = mitm_internals.PreparsedHello(body, "learning.test", (b"h2",), ((ECH, b"\x00"),))
    assert isinstance(hello, ClientHello)
    assert hello.sni == "learning.test"
    assert hello.alpn_protocols == [b"h2"]
    assert hello.extensions == [(ECH, b"\x00")]
    assert hello.cipher_suites == ClientHello(body).cipher_suites  # mitmproxy's parser, lazily
    assert hello.raw_bytes(wrap_in_record=False) == body
    for hook, name in (
        (mitm_internals.HttpConnectHook, "http_connect"),
        (mitm_internals.HttpConnectedHook, "http_connected"),
        (mitm_internals.HttpConnectErrorHook, "http_connect_error"),
        (mitm_internals.TlsClienthelloHook, "tls_clienthello"),
    ):
        assert hook.name == name


def test_the_lean_engine_can_build_messages_without_mitmproxys_type_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Restored after the test: the checks stay on in this test process.
    monkeypatch.setattr(http.MessageData, "__post_init__", http.MessageData.__post_init__)
    headers = http.Response.make(200).headers

    def built() -> http.ResponseData:  # a str where mitmproxy wants bytes
        return http.ResponseData("HTTP/1.1", headers, b"", None, 0.0, None, 200, b"OK")  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="http_version"):
        built()
    mitm_internals.skip_message_type_checks()
    assert built().http_version == "HTTP/1.1"  # not checked any more


def test_mitmproxys_master_installs_its_eager_task_factory_where_we_replace_it() -> None:
    from mitmproxy import master
    from mitmproxy.utils import asyncio_utils

    assert "asyncio_utils.set_eager_task_factory()" in inspect.getsource(master.Master.run)
    assert callable(asyncio_utils.set_eager_task_factory)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_the_eager_task_factory_runs_on_asyncio_and_on_uvloop(loop_kind: str) -> None:
    """uvloop 0.23 passes `eager_start` to the task factory, which asyncio's own eager factory
    refuses (TypeError): mitmproxy's master could not run on it."""
    from mitmproxy.utils import asyncio_utils

    uvloop = pytest.importorskip("uvloop") if loop_kind == "uvloop" else None
    new_loop = asyncio.new_event_loop if uvloop is None else uvloop.new_event_loop
    mitm_internals.eager_tasks_on_any_loop()
    started: list[str] = []

    async def note() -> str:
        started.append("at once")
        await asyncio.sleep(0)
        return "done"

    async def main() -> tuple[list[str], str]:
        with asyncio_utils.set_eager_task_factory():
            task = asyncio.get_running_loop().create_task(note(), name="eager")
            seen = list(started)  # an eager task has run to its first await already
            return seen, await task

    with asyncio.Runner(loop_factory=new_loop) as runner:
        assert runner.run(main()) == (["at once"], "done")


def test_a_context_for_a_known_server_is_what_mitmproxy_would_make_with_it() -> None:
    from mitmproxy import options
    from mitmproxy.connection import Client, Server
    from mitmproxy.proxy.context import Context

    client = Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2), timestamp_start=0)
    tunnel = Server(address=("example.test", 443))
    opts = options.Options()
    made = mitm_internals.context_for(client, tunnel, opts)
    theirs = Context(client, opts)
    theirs.server = tunnel
    assert vars(made) == vars(theirs)
    assert made.fork().server is tunnel


def test_the_chunked_reader_is_mitmproxys_and_decodes_a_body_to_its_end() -> None:
    read, buffer = mitm_internals.chunked_reader()
    assert type(read) is type(_http1.make_body_reader(None))
    buffer += b"5;x=1\r\nhello\r\n0\r\n\r\n"
    first = read(buffer)
    assert bytes(first.data) == b"hello"
    assert not mitm_internals.is_end_of_message(first)
    assert mitm_internals.is_end_of_message(read(buffer))
    assert not len(buffer)


def test_ids_are_unique_and_in_mitmproxys_uuid_form() -> None:
    made = [mitm_internals.new_id() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(str(uuid.UUID(one)) == one for one in made)
    assert len({one[:24] for one in made}) == 1  # one random prefix per process, then a count


def test_flows_take_counted_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "uuid.uuid4()" in inspect.getsource(flow.Flow.__init__)
    monkeypatch.setattr(flow, "uuid", flow.uuid)  # restored after the test
    mitm_internals.counted_flow_ids()
    first = tflow.tflow()
    second = http.HTTPFlow(first.client_conn, first.server_conn)
    copied = first.copy()  # (a copy's id comes from mitmproxy's serializer: a uuid4)
    assert len({first.id, second.id, copied.id}) == 3
    prefix = mitm_internals.new_id()[:24]  # made by new_id, not by uuid4
    assert all(str(uuid.UUID(one)) == one and one[:24] == prefix for one in (first.id, second.id))


def test_a_new_server_is_the_server_mitmproxy_makes_and_still_guards_its_address() -> None:
    from mitmproxy.connection import ConnectionState, Server

    assert not hasattr(Server, "__post_init__")  # (nor on Connection)
    assert not hasattr(Server, "__slots__")
    made = mitm_internals.new_server()
    theirs = Server(id=made.id, address=None, transport_protocol="tcp")
    assert list(vars(made).items()) == list(vars(theirs).items())  # same fields, same order
    for name, value in vars(theirs).items():  # shared between Servers: none may be mutable
        assert hash(value) is not None, name  # (a list or a dict raises TypeError here)
    assert made.id != mitm_internals.new_server().id
    made.address = ("example.test", 443)  # closed: may be set
    made.state = ConnectionState.OPEN
    with pytest.raises(RuntimeError, match="open connection"):
        made.address = ("elsewhere.test", 443)
