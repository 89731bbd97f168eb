"""The front door (proxy_addons/frontdoor.py) through the real lean gateway, real clients and
local origins: which connections it splices itself (the metric says so), that what it splices
is decided, recorded and limited exactly as mitmproxy would, and that everything it does not
fully understand is handed to mitmproxy (mismatches, ECH, other ports, sign-ins the directory
must check, hostile clients). The whole gateway suite (tests/e2e) also runs through it, since
it is on by default in the lean engine."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
import struct
import time
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto import events as wsevents

from schoolgate.store.db import upgrade
from tests.e2e.test_detection_e2e import events
from tests.support.gateway import (
    PASSWORD,
    Gateway,
    free_port,
    running_gateway,
    wait_for,
    write_identity,
    write_policy,
)
from tests.support.tls_hello import ECH, ECH_PAYLOAD, real_client_hello_record

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'schoolgate.db'}"
    upgrade(url)
    return url


@contextlib.contextmanager
def lean_gateway(folder: Path, *extra: str, signs_in: bool = True) -> Iterator[Gateway]:
    """The lean gateway in lesson time, with metrics (`gw.metrics_port`) and `extra` options."""
    policy_file = folder / "policy.yaml"
    write_policy(policy_file, in_break=False)
    metrics = free_port()
    identity = write_identity(folder / "id") if signs_in else None
    with running_gateway(
        folder,
        policy=policy_file,
        identity=identity,
        engine="lean",
        extra_args=["--set", f"schoolgate_metrics_port={metrics}", *extra],
    ) as gw:
        gw.metrics_port = metrics  # type: ignore[attr-defined]
        yield gw


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory, db: str) -> Iterator[Gateway]:
    """The lean gateway (front door on, the default), with sign-ins, recording into SQLite and
    a short head time-out."""
    with lean_gateway(
        tmp_path_factory.mktemp("door"),
        "--set",
        f"schoolgate_database_url={db}",
        "--set",
        "schoolgate_head_timeout=3",
    ) as gw:
        yield gw


@pytest.fixture(scope="module")
def tried(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The same gateway, not recording, for the tests that make circumvention attempts (which,
    recorded and repeated, put a sanction on the user and would change what others see)."""
    with lean_gateway(tmp_path_factory.mktemp("tried")) as gw:
        yield gw


def metrics_text(gw: Gateway) -> str:
    """The gateway's Prometheus page."""
    return httpx.get(
        f"http://127.0.0.1:{gw.metrics_port}/metrics",  # type: ignore[attr-defined]
        timeout=10,
        trust_env=False,
    ).text


def door_counts(gw: Gateway) -> dict[str, float]:
    text = metrics_text(gw)
    return {
        m[1]: float(m[2])
        for m in re.finditer(r'^schoolgate_front_door_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
    }


def counted(gw: Gateway, outcome: str, before: dict[str, float], more: int = 1) -> None:
    wait_for(
        lambda: door_counts(gw).get(outcome, 0) >= before.get(outcome, 0) + more,
        timeout=10,
        what=f"{more} more {outcome} in the front door's metric",
    )


def auth(user: str, password: str = PASSWORD) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


def spliced(gw: Gateway, user: str, url: str) -> httpx.Response:
    """GET `url` as `user`, trusting only the origin's certificate; the front door spliced it."""
    before = door_counts(gw)
    with gw.client(user, trust="origin") as client:
        response = client.get(url)
    assert response.status_code == 200
    counted(gw, "spliced", before)
    return response


def signed_in(gw: Gateway, user: str) -> None:
    """Sign `user` in once (mitmproxy asks the directory), so later tunnels are the door's."""
    with gw.client(user, trust="both") as client:
        assert client.get("http://learning.test/").status_code == 200


def connect(gw: Gateway, target: str, user: str | None = "pupil1") -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    header = f"Proxy-Authorization: {auth(user)}\r\n" if user else ""
    raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{header}\r\n".encode())
    return raw


def read_all(raw: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(OSError):
        while chunk := raw.recv(65536):
            received += chunk
    return received


# --- what it splices ----------------------------------------------------------------------------


def test_an_allowed_uncategorised_tunnel_is_spliced_by_the_front_door(
    door: Gateway, db: str
) -> None:
    signed_in(door, "pupil1")
    response = spliced(door, "pupil1", "https://learning.test/spliced")
    assert "hello from the origin" in response.text
    # Recorded as mitmproxy's relayed tunnels are: one event, not intercepted, by the user.
    row = None

    def recorded() -> bool:
        nonlocal row
        rows = [e for e in events(db) if e.host == "learning.test" and not e.intercepted]
        row = rows[-1] if rows else None
        return row is not None

    wait_for(recorded, timeout=20, what="the spliced tunnel's event")
    assert row is not None
    assert (row.verdict, row.user) == ("allow", "pupil1")


def test_a_never_decrypted_host_is_spliced_even_though_categorised(door: Gateway) -> None:
    signed_in(door, "pupil1")
    spliced(door, "pupil1", "https://bank.test/")


def test_large_transfers_both_ways_keep_every_byte(door: Gateway) -> None:
    """A websocket echo through a spliced tunnel: 4 MiB each way in big writes exercises the
    splice's flow control (a side stops reading while the other is behind)."""
    signed_in(door, "pupil1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(door.test_ca.ca_pem))
    raw = connect(door, "learning.test:443")
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    ws = WSConnection(ConnectionType.CLIENT)
    with context.wrap_socket(raw, server_hostname="learning.test") as tls:
        tls.sendall(ws.send(wsevents.Request(host="learning.test", target="/ws")))
        payload = bytes(range(256)) * 4096  # 1 MiB
        echoed = bytearray()
        accepted = False
        while not accepted:
            data = tls.recv(65536)
            assert data, "the tunnel closed during the websocket handshake"
            ws.receive_data(data)
            accepted = any(isinstance(e, wsevents.AcceptConnection) for e in ws.events())
        for _ in range(4):
            tls.sendall(ws.send(wsevents.BytesMessage(data=payload)))
        while len(echoed) < 4 * len(payload):
            data = tls.recv(1 << 20)
            assert data, "the tunnel closed early"
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, wsevents.BytesMessage):
                    echoed += event.data
        same = bytes(echoed) == payload * 4  # (not compared in the assert: 4 MiB of diff)
        assert same


# --- what it hands to mitmproxy -----------------------------------------------------------------


def test_a_hello_naming_another_host_is_handed_to_mitmproxy_and_blocked(tried: Gateway) -> None:
    signed_in(tried, "pupil1")
    before = door_counts(tried)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(tried.ca_pem))
    context.check_hostname = False  # the point is to lie about the name
    raw = connect(tried, "learning.test:443")
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    with context.wrap_socket(raw, server_hostname="x.com") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x.com\r\nConnection: close\r\n\r\n")
        reply = read_all(tls)
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
    assert b"host_mismatch" in reply
    assert not tried.contacted("x.com")
    counted(tried, "handed_over_in_tunnel", before)


def test_an_encrypted_client_hello_is_handed_to_mitmproxy(tried: Gateway) -> None:
    signed_in(tried, "pupil1")
    before, origin = door_counts(tried), tried.https_origin.connections
    raw = connect(tried, "learning.test:443")
    with raw:
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        raw.sendall(real_client_hello_record("learning.test", {ECH: ECH_PAYLOAD}))
        reply = raw.recv(4096)
    assert reply[:1] == b"\x16"  # a handshake record: the gateway answered it itself
    counted(tried, "handed_over_in_tunnel", before)
    assert tried.https_origin.connections == origin  # never relayed to the origin


def test_bytes_that_are_not_tls_are_handed_to_mitmproxy_and_refused(tried: Gateway) -> None:
    signed_in(tried, "pupil1")
    before = door_counts(tried)
    raw = connect(tried, "learning.test:443")
    with raw:
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        raw.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        assert read_all(raw) == b""
    counted(tried, "handed_over_in_tunnel", before)


@pytest.mark.parametrize("target", ["learning.test:8443", "learning.test:22", "x.com:443"])
def test_other_ports_and_blocked_hosts_are_refused_never_contacted(
    tried: Gateway, target: str
) -> None:
    signed_in(tried, "smm1")
    before = door_counts(tried)
    connections = (tried.http_origin.connections, tried.https_origin.connections)
    raw = connect(tried, target, user="smm1")
    with raw:
        reply = raw.recv(4096)
    # Refused (other ports), or 200 for the block page (x.com): mitmproxy's answers either way.
    assert reply.startswith(b"HTTP/1.1 403" if target != "x.com:443" else b"HTTP/1.1 200")
    assert (tried.http_origin.connections, tried.https_origin.connections) == connections
    # Other ports: refused by the gateway's CONNECT hooks, answered by the front door; a
    # blocked host with a block page: mitmproxy's.
    counted(tried, "answered" if target != "x.com:443" else "handed_over", before)
    assert door_counts(tried).get("spliced", 0) == before.get("spliced", 0)


def test_sign_ins_go_to_mitmproxy_until_the_directory_has_answered(door: Gateway) -> None:
    """An unknown password is checked (and throttled) by mitmproxy's Identify; a wrong one is
    asked again; the tunnel after a successful sign-in is the front door's."""
    before = door_counts(door)
    raw = connect(door, "learning.test:443", user=None)
    with raw:
        assert raw.recv(4096).startswith(b"HTTP/1.1 407")
    with socket.create_connection(("127.0.0.1", door.port), timeout=10) as raw:
        raw.sendall(
            b"CONNECT learning.test:443 HTTP/1.1\r\nHost: learning.test:443\r\n"
            b"Proxy-Authorization: " + auth("staff1", "wrong").encode() + b"\r\n\r\n"
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 407")
    counted(door, "handed_over", before, more=2)
    assert door_counts(door).get("spliced", 0) == before.get("spliced", 0)
    signed_in(door, "staff1")
    spliced(door, "staff1", "https://learning.test/")


# --- hostile clients ------------------------------------------------------------------------------


def test_a_client_that_never_finishes_its_connect_is_closed(door: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", door.port), timeout=20) as raw:
        raw.sendall(b"CONNECT learning.test:443 HTTP/1.1\r\nHost: learn")
        started = time.monotonic()
        reply = read_all(raw)
    # Closed (with a 408 if the head's own time-out came first, else by Limits' timer).
    assert reply in (b"",) or reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert time.monotonic() - started < 15  # schoolgate_head_timeout=3, with slack
    # Whichever came first, the other is no failure (the 408 was once written to the connection
    # Limits had closed: "the front door failed on a connection" and a traceback).
    time.sleep(0.5)
    assert "the front door failed" not in door.log_text()


def test_an_oversized_connect_head_is_refused(door: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", door.port), timeout=20) as raw:
        raw.sendall(
            b"CONNECT learning.test:443 HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 40_000 + b"\r\n\r\n"
        )
        reply = read_all(raw)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]


def test_clients_vanishing_mid_hello_leave_the_gateway_serving(door: Gateway) -> None:
    signed_in(door, "pupil1")
    hello = real_client_hello_record("learning.test", {})
    for cut in (0, 3, len(hello) // 2):
        raw = connect(door, "learning.test:443")
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        raw.sendall(hello[:cut])
        raw.close()
    spliced(door, "pupil1", "https://learning.test/after")


def engine_errors(gw: Gateway) -> float:
    text = metrics_text(gw)
    found = re.search(r'^schoolgate_engine_errors_total\{addon="frontdoor"\} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


def reset(raw: socket.socket) -> None:
    """Close with a TCP reset (RST), as a browser tab killed mid-load or wrk's last round does."""
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


def test_clients_resetting_their_connections_are_not_front_door_failures(door: Gateway) -> None:
    """A reset is an ordinary way for a client to go (found by the benchmark: wrk's connections
    ended in "the front door failed on a connection" with a traceback, and an engine error)."""
    signed_in(door, "pupil1")
    errors = engine_errors(door)
    hello = real_client_hello_record("learning.test", {})
    raw = socket.create_connection(("127.0.0.1", door.port), timeout=10)
    raw.sendall(b"CONNECT learning.test:443 HTTP/1.1\r\nHost: learn")  # mid-head
    time.sleep(0.2)
    reset(raw)
    for cut in (0, len(hello) // 2):  # after the 200, before or in the ClientHello
        raw = connect(door, "learning.test:443")
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        raw.sendall(hello[:cut])
        time.sleep(0.2)
        reset(raw)
    raw = socket.create_connection(("127.0.0.1", door.port), timeout=10)  # kept-alive plain HTTP
    raw.sendall(
        b"GET http://learning.test/then-reset HTTP/1.1\r\nHost: learning.test\r\n"
        + f"Proxy-Authorization: {auth('pupil1')}\r\n\r\n".encode()
    )
    assert raw.recv(65536).startswith(b"HTTP/1.1 200")
    time.sleep(0.2)
    reset(raw)
    spliced(door, "pupil1", "https://learning.test/after-resets")
    time.sleep(0.5)
    assert "the front door failed" not in door.log_text()
    assert engine_errors(door) == errors


def test_the_front_door_can_be_switched_off(tmp_path: Path) -> None:
    with lean_gateway(tmp_path, "--set", "schoolgate_front_door=false", signs_in=False) as gw:
        with gw.client(None, trust="origin") as client:
            assert client.get("https://learning.test/").status_code == 200
        counts = door_counts(gw)
        assert counts  # exported...
        assert not any(counts.values())  # ...and nothing went through it


def loaded_loop(gw: Gateway) -> str:
    """Which event loop the gateway's process has loaded: uvloop's library, or none of it."""
    maps = Path(f"/proc/{gw.proc.pid}/maps").read_text()
    return "uvloop" if "/uvloop/loop." in maps else "asyncio"


def test_the_gateway_runs_on_uvloop_and_splices_there(door: Gateway) -> None:
    pytest.importorskip("uvloop")
    if os.environ.get("SCHOOLGATE_EVENT_LOOP", "").strip().lower() == "asyncio":
        pytest.skip("this run asks for asyncio's loop (SCHOOLGATE_EVENT_LOOP=asyncio)")
    signed_in(door, "pupil1")
    spliced(door, "pupil1", "https://learning.test/on-uvloop")
    assert loaded_loop(door) == "uvloop"


def test_the_gateway_runs_on_asyncios_loop_when_told_and_splices_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHOOLGATE_EVENT_LOOP", "asyncio")
    with lean_gateway(tmp_path) as gw:
        signed_in(gw, "pupil1")
        spliced(gw, "pupil1", "https://learning.test/on-asyncio")
        assert loaded_loop(gw) == "asyncio"


def echo_once(tls: ssl.SSLSocket, ws: WSConnection, payload: bytes) -> bytes:
    tls.sendall(ws.send(wsevents.BytesMessage(data=payload)))
    while True:
        data = tls.recv(65536)
        assert data, "the tunnel closed"
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, wsevents.BytesMessage):
                return bytes(event.data)


def test_a_spliced_tunnel_lives_while_used_and_closes_after_a_silent_time_out(
    tmp_path: Path,
) -> None:
    with lean_gateway(tmp_path, "--set", "tcp_timeout=2", signs_in=False) as gw:
        before = door_counts(gw)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=str(gw.test_ca.ca_pem))
        raw = connect(gw, "learning.test:443", user=None)
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        ws = WSConnection(ConnectionType.CLIENT)
        with context.wrap_socket(raw, server_hostname="learning.test") as tls:
            tls.sendall(ws.send(wsevents.Request(host="learning.test", target="/ws")))
            while not any(isinstance(e, wsevents.AcceptConnection) for e in ws.events()):
                data = tls.recv(65536)
                assert data, "the tunnel closed during the websocket handshake"
                ws.receive_data(data)
            counted(gw, "spliced", before)
            for n in range(6):  # 4.8 s in use, more than twice the time-out
                assert echo_once(tls, ws, b"tick %d" % n) == b"tick %d" % n
                time.sleep(0.8)
            silent = time.monotonic()
            tls.settimeout(15)
            with contextlib.suppress(OSError):
                while tls.recv(65536):
                    pass
            waited = time.monotonic() - silent
        assert 1.5 <= waited <= 6, f"closed after {waited:.1f} s of silence (time-out 2 s)"


@pytest.mark.parametrize(
    "header", ["Content-Length: 0", "Transfer-Encoding: chunked", "X-Note: no content-length"]
)
def test_a_connect_naming_a_body_goes_to_mitmproxy(door: Gateway, header: str) -> None:
    """A CONNECT with a body, or a header line that merely names one, is never the front
    door's: mitmproxy reads it (and answers it as it always has)."""
    signed_in(door, "pupil1")
    before = door_counts(door)
    with socket.create_connection(("127.0.0.1", door.port), timeout=10) as raw:
        raw.sendall(
            b"CONNECT learning.test:443 HTTP/1.1\r\nHost: learning.test:443\r\n"
            b"Proxy-Authorization: "
            + auth("pupil1").encode()
            + b"\r\n"
            + header.encode()
            + b"\r\n\r\n"
        )
        raw.recv(4096)
    counted(door, "handed_over", before)
    assert door_counts(door).get("tunnels", 0) == before.get("tunnels", 0)
