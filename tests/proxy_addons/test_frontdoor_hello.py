"""The front door's ClientHello reader (proxy_addons/frontdoor_hello.py) against mitmproxy's own
parser: on real ClientHellos (Python's ssl, openssl s_client, curl, cut at every byte) it gives
the same SNI, ALPN offers and extensions; on anything else it either agrees with mitmproxy or
refuses (ValueError, so the front door hands the connection to mitmproxy). It never says
"complete" where mitmproxy says "not yet", nor the reverse."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy.proxy.layers.tls import parse_client_hello

from schoolgate.proxy_addons.frontdoor_hello import read_hello
from schoolgate.proxy_addons.mitm_internals import PreparsedHello as Hello
from tests.support.tls_hello import ECH, ECH_PAYLOAD, client_hello_record, real_client_hello_record


def _vec(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def agrees(data: bytes) -> Hello | None:
    """read_hello's answer on `data`, checked against mitmproxy's: when it reads a hello, so
    does mitmproxy, with the same answers; when it waits for more, so does mitmproxy."""
    try:
        ours = read_hello(data)
    except ValueError:
        return None
    try:
        theirs = parse_client_hello(data)
    except ValueError:
        pytest.fail(f"read {ours!r} where mitmproxy refuses: {data!r}")
    if ours is None:
        assert theirs is None, data
        return None
    assert theirs is not None, data
    assert ours.sni == theirs.sni
    assert ours.alpn_protocols == theirs.alpn_protocols
    assert ours.extensions == theirs.extensions
    assert ours.cipher_suites == theirs.cipher_suites  # parsed by mitmproxy on demand
    assert ours.raw_bytes() == theirs.raw_bytes()
    return ours


def python_hello(sni: str, alpn: list[str] | None = None) -> bytes:
    context = ssl.create_default_context()
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


@contextlib.contextmanager
def capture_hello() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback listener that keeps the first bytes of one connection (a client's hello)."""
    got: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(15)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                data = b""
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    with contextlib.suppress(ValueError):
                        if parse_client_hello(data) is not None:
                            break
                got.append(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], got
    finally:
        thread.join(20)
        listener.close()


def tool_hello(command: list[str]) -> bytes:
    with capture_hello() as (port, got):
        subprocess.run(
            [part.replace("PORT", str(port)) for part in command],
            capture_output=True,
            timeout=20,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    assert got, "the client sent nothing"
    return got[0]


@pytest.mark.parametrize(
    ("sni", "alpn"),
    [
        ("example.com", None),
        ("www.bbc.co.uk", ["h2", "http/1.1"]),
        ("xn--bcher-kva.example", ["http/1.1"]),
        ("a." * 100 + "uk", None),
    ],
)
def test_python_hellos_read_as_mitmproxy_reads_them(sni: str, alpn: list[str] | None) -> None:
    hello = agrees(python_hello(sni, alpn))
    assert hello is not None
    assert hello.sni == sni
    assert hello.alpn_protocols == [p.encode() for p in alpn or []]


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["openssl", "s_client", "-connect", "127.0.0.1:PORT", "-servername", "pass.example"],
        [
            "openssl",
            "s_client",
            "-connect",
            "127.0.0.1:PORT",
            "-servername",
            "pass.example",
            "-alpn",
            "h2,http/1.1",
            "-tls1_2",
        ],
        [
            "curl",
            "-sk",
            "--max-time",
            "5",
            "--resolve",
            "pass.example:PORT:127.0.0.1",
            "https://pass.example:PORT/",
        ],
    ],
    ids=["openssl", "openssl-tls12-alpn", "curl"],
)
def test_real_clients_hellos_read_as_mitmproxy_reads_them(command: list[str]) -> None:
    data = tool_hello(command)
    hello = agrees(data)
    assert hello is not None
    assert hello.sni == "pass.example"


def test_every_cut_of_a_hello_is_incomplete_until_the_last_byte() -> None:
    data = python_hello("cut.example", ["h2"])
    for cut in range(len(data)):
        assert read_hello(data[:cut]) is None
        assert parse_client_hello(data[:cut]) is None
    assert agrees(data) is not None


def test_a_hello_split_over_records_is_read_like_mitmproxy() -> None:
    record = client_hello_record("split.example")
    message = record[5:]
    records = b"".join(
        b"\x16\x03\x01" + _vec(message[i : i + 7], 2) for i in range(0, len(message), 7)
    )
    hello = agrees(records)
    assert hello is not None
    assert hello.sni == "split.example"
    assert read_hello(records[:-1]) is None


def test_the_ech_extension_is_seen() -> None:
    hello = agrees(real_client_hello_record("outer.example", {ECH: ECH_PAYLOAD}))
    assert hello is not None
    assert (ECH, ECH_PAYLOAD) in hello.extensions


def _body(extensions: bytes, suites: bytes = b"\x13\x01", compression: bytes = b"\x00") -> bytes:
    return b"\x03\x03" + bytes(32) + b"\x00" + _vec(suites, 2) + _vec(compression, 1) + extensions


def _record(body: bytes, kind: int = 1) -> bytes:
    return b"\x16\x03\x01" + _vec(bytes([kind]) + len(body).to_bytes(3, "big") + body, 2)


def _sni(*names: bytes, kind: int = 0) -> bytes:
    entries = b"".join(bytes([kind]) + _vec(name, 2) for name in names)
    return b"\x00\x00" + _vec(_vec(entries, 2), 2)


@pytest.mark.parametrize(
    ("error", "data"),
    [
        ("not a ClientHello", _record(_body(_vec(_sni(b"a.example"), 2)), kind=2)),
        ("not one host name", _record(_body(_vec(_sni(b"a.example", b"b.example"), 2)))),
        ("not one host name", _record(_body(_vec(_sni(b"a.example", kind=1), 2)))),
        ("not a valid host name", _record(_body(_vec(_sni(b"a b.example"), 2)))),
        ("not one host name", _record(_body(_vec(_sni("bücher.example".encode()), 2)))),
        ("a repeated extension", _record(_body(_vec(_sni(b"a.example") + _sni(b"b.example"), 2)))),
        ("bad cipher suites", _record(_body(_vec(_sni(b"a.example"), 2), suites=b"\x13\x01\x13"))),
        ("no compression method", _record(_body(_vec(_sni(b"a.example"), 2), compression=b""))),
        ("extensions' length", _record(_body(b""))),
        ("extensions' length", _record(_body(b"\x00\x01" + _sni(b"a.example")))),
        ("longer than the ClientHello", _record(_body(_vec(b"\x00\x00\x00\xff", 2)))),
        ("bad ALPN protocol", _record(_body(_vec(b"\x00\x10" + _vec(_vec(b"\x00", 2), 2), 2)))),
        ("not a TLS handshake record", b"\x17\x03\x01\x00\x05hello"),
        ("an empty TLS record", b"\x16\x03\x01\x00\x00"),
    ],
)
def test_what_it_does_not_fully_understand_is_refused(error: str, data: bytes) -> None:
    with pytest.raises(ValueError, match=error):
        read_hello(data)


def test_a_repeated_server_name_is_refused_where_mitmproxy_would_take_the_second() -> None:
    data = _record(_body(_vec(_sni(b"a b") + _sni(b"real.example"), 2)))
    assert parse_client_hello(data).sni == "real.example"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"valid host name|repeated"):
        read_hello(data)


# --- hostile bytes -----------------------------------------------------------------------------

EXTENSION = st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40))


@st.composite
def hellos(draw: st.DrawFn) -> bytes:
    """ClientHellos built field by field, with lengths sometimes lying."""
    names = draw(st.lists(st.from_regex(r"[a-z0-9.\-]{0,20}", fullmatch=True), max_size=2))
    exts = b""
    if names:
        exts += _sni(*(n.encode() for n in names))
    if draw(st.booleans()):
        protos = draw(st.lists(st.binary(min_size=0, max_size=5), max_size=3))
        exts += b"\x00\x10" + _vec(_vec(b"".join(_vec(p, 1) for p in protos), 2), 2)
    for kind, value in draw(st.lists(EXTENSION, max_size=4)):
        exts += kind.to_bytes(2, "big") + _vec(value, 2)
    body = _body(_vec(exts, 2), suites=draw(st.sampled_from([b"\x13\x01", b"\x13", b""])))
    data = _record(body)
    if draw(st.booleans()):  # a lie somewhere
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hellos())
def test_built_and_broken_hellos_never_disagree_with_mitmproxy(data: bytes) -> None:
    agrees(data)


MUTATED = python_hello("mutate.example", ["h2"])


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 2000))
def test_a_real_hello_with_any_byte_changed_never_disagrees(junk: bytes, where: int) -> None:
    data = MUTATED
    at = where % len(data)
    agrees(data[:at] + junk[:4] + data[at + len(junk[:4]) :])
    agrees(data + junk)
    agrees(junk)


def test_an_oversized_declared_hello_waits_without_reading_past_the_data() -> None:
    data = b"\x16\x03\x01\xff\xff\x01\xff\xff\xff" + bytes(100)
    assert read_hello(data) is None
    assert parse_client_hello(data) is None
