"""Every refusal recorded, through the real gateway: requests mitmproxy refuses before any addon
sees them (a malformed request line, a URL with user-info, invalid characters) are recorded as
attempts with what was sent (bounded, escaped, no password), and a TLS handshake towards a
blocked host that is cut with no request after it is recorded once."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from schoolgate.policy.techniques import Technique
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import CircumventionAttemptRow, EventRow
from tests.support.gateway import Gateway, running_gateway, wait_for, write_policy

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'schoolgate.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, db: str) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gw")
    policy = folder / "policy.yaml"
    write_policy(policy, in_break=False)
    with running_gateway(
        folder, policy=policy, extra_args=["--set", f"schoolgate_database_url={db}"]
    ) as gateway:
        yield gateway


def send_raw(gw: Gateway, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", gw.port), 10) as raw:
        raw.sendall(data)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := raw.recv(4096):
                received += chunk
        return received


def malformed(url: str) -> list[CircumventionAttemptRow]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return list(
                session.scalars(
                    select(CircumventionAttemptRow).where(
                        CircumventionAttemptRow.technique == Technique.MALFORMED_REQUEST
                    )
                )
            )
    finally:
        engine.dispose()


def events_for(url: str, host: str) -> list[EventRow]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(EventRow).where(EventRow.host == host)))
    finally:
        engine.dispose()


def recorded_with(url: str, text: str) -> CircumventionAttemptRow:
    found: list[CircumventionAttemptRow] = []

    def seen() -> bool:
        found[:] = [a for a in malformed(url) if text in str(a.evidence.get("sent"))]
        return bool(found)

    wait_for(seen, timeout=20, what=f"a malformed request with {text!r} recorded")
    return found[0]


def test_a_url_with_user_info_is_recorded_without_the_password(gw: Gateway, db: str) -> None:
    reply = send_raw(
        gw, b"GET http://pupil:hunter2@www.tiktok.com/ HTTP/1.1\r\nHost: www.tiktok.com\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 400")
    row = recorded_with(db, "[redacted]@www.tiktok.com")
    assert row.host == "www.tiktok.com"
    assert row.client_ip == "127.0.0.1"
    assert "hunter2" not in repr(row.evidence)
    assert row.evidence["error"] == "Bad HTTP request line"
    assert not gw.contacted("www.tiktok.com")


def test_invalid_characters_and_garbage_are_recorded_escaped_and_bounded(
    gw: Gateway, db: str
) -> None:
    send_raw(gw, b"GET http://x.com/a\x01b\xff HTTP/1.1\r\nHost: x.com\r\n\r\n")
    row = recorded_with(db, "a\\x01b\\xff")  # escaped, never raw control bytes
    assert row.host == "x.com"
    send_raw(gw, b"NONSENSE" + b"A" * 5000 + b"\r\n\r\n")
    long = recorded_with(db, "NONSENSE")
    assert long.host == "(unreadable request)"
    assert len(str(long.evidence["sent"])) <= 300


def test_a_handshake_to_a_blocked_host_cut_with_no_request_is_recorded_once(
    gw: Gateway, db: str
) -> None:
    host = "tiktok.com"
    before = len(events_for(db, host))
    with socket.create_connection(("127.0.0.1", gw.port), 10) as raw:
        raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=str(gw.ca_pem))
        with context.wrap_socket(raw, server_hostname=host):
            pass  # the handshake completes; no request; the client goes away
    wait_for(
        lambda: len(events_for(db, host)) > before, timeout=20, what="the cut handshake recorded"
    )
    with contextlib.suppress(Exception):
        wait_for(lambda: len(events_for(db, host)) > before + 1, timeout=3, what="a second")
    rows = events_for(db, host)[before:]
    assert len(rows) == 1
    assert rows[0].verdict == "block"


def test_a_handshake_followed_by_a_request_is_recorded_once_not_twice(gw: Gateway, db: str) -> None:
    host = "www.tiktok.com"
    before = len(events_for(db, host))
    with gw.client(None, trust="gateway") as client:
        assert client.get(f"https://{host}/").status_code == 403
    wait_for(lambda: len(events_for(db, host)) > before, timeout=20, what="the request")
    with contextlib.suppress(Exception):
        wait_for(lambda: len(events_for(db, host)) > before + 1, timeout=3, what="a second")
    assert len(events_for(db, host)) == before + 1


def upgrade_attempts(url: str) -> list[CircumventionAttemptRow]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return list(
                session.scalars(
                    select(CircumventionAttemptRow).where(
                        CircumventionAttemptRow.technique == Technique.PROTOCOL_UPGRADE
                    )
                )
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("upgrade", ["h2c", "TLS/1.2", "connect-udp"])
def test_an_upgrade_to_another_protocol_is_refused_and_recorded(
    gw: Gateway, db: str, upgrade: str
) -> None:
    reply = send_raw(
        gw,
        b"GET http://learning.test/upgrade HTTP/1.1\r\nHost: learning.test\r\n"
        b"Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__"
        b"\r\nUpgrade: " + upgrade.encode() + b"\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 403")
    wait_for(
        lambda: any(a.evidence.get("upgrade") == upgrade for a in upgrade_attempts(db)),
        timeout=20,
        what=f"the {upgrade} upgrade recorded",
    )
    assert not any(s.path == "/upgrade" for s in gw.http_origin.requests)


def test_a_websocket_upgrade_is_not_refused(gw: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gw.port), 10) as raw:
        raw.sendall(
            b"GET http://learning.test/ws HTTP/1.1\r\nHost: learning.test\r\n"
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13"
            b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        reply = raw.recv(4096)
    assert reply.startswith(b"HTTP/1.1 101")


def test_http2_extended_connect_is_refused_and_recorded(gw: Gateway, db: str) -> None:
    import h2.config
    import h2.connection

    host = "www.tiktok.com"  # decrypted (to show the block page), so spoken to in HTTP/2
    with socket.create_connection(("127.0.0.1", gw.port), 10) as raw:
        raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=str(gw.ca_pem))
        context.set_alpn_protocols(["h2"])
        with context.wrap_socket(raw, server_hostname=host) as tls:
            assert tls.selected_alpn_protocol() == "h2"
            conn = h2.connection.H2Connection(
                h2.config.H2Configuration(
                    client_side=True,
                    validate_outbound_headers=False,
                    normalize_outbound_headers=False,
                )
            )
            conn.initiate_connection()
            conn.send_headers(
                1,
                [
                    (":method", "CONNECT"),
                    (":protocol", "websocket"),
                    (":scheme", "https"),
                    (":path", "/chat"),
                    (":authority", host),
                    ("sec-websocket-version", "13"),
                ],
            )
            tls.sendall(conn.data_to_send())
            received = b""
            with contextlib.suppress(OSError):
                while chunk := tls.recv(4096):
                    received += chunk
                    events = conn.receive_data(chunk)
                    if any(
                        type(e).__name__
                        in ("ConnectionTerminated", "StreamReset", "ResponseReceived")
                        for e in events
                    ):
                        break
    wait_for(
        lambda: any(":protocol" in str(a.evidence.get("sent")) for a in upgrade_attempts(db)),
        timeout=20,
        what="the extended CONNECT recorded",
    )
    assert not any(s.path == "/chat" for s in gw.https_origin.requests)
