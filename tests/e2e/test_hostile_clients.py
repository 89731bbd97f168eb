"""Finding 4 (unauthenticated memory and connection exhaustion) through a real gateway: header
floods, slow headers (slowloris) and thousands of idle connections, each bounded in count and
time. The gateway's RSS stays under a stated ceiling, comes back afterwards, and a normal user
is served throughout. Before the limits, the header flood alone took the gateway past 1 GiB.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gateway import Gateway, running_gateway, write_identity, write_policy
from tests.support.hostile import (
    RssWatch,
    closed_count,
    connect,
    header_flood,
    header_lines,
    held_connections,
    read_reply,
    rss_mib,
    source_addresses,
    timed,
    trickle,
    wait_closed,
)

pytestmark = pytest.mark.e2e

HEAD_TIMEOUT = 5  # seconds, set on the test gateway (default 30) to keep the test short
PER_CLIENT = 100
# Stated ceilings: the gateway's RSS may grow this much above its idle size during an attack
# (the Kubernetes limit is 1 GiB; before the fix 30 connections added over 1 GiB), and must be
# back within RETURN_MIB of its idle size afterwards.
GROWTH_CEILING_MIB = 150
RETURN_MIB = 60
NORMAL_SECONDS = 2.0  # a normal request under attack is answered within this


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("hostile")
    policy = folder / "policy.yaml"
    write_policy(policy, in_break=False)
    with running_gateway(
        folder,
        policy=policy,
        identity=write_identity(folder / "id"),
        extra_args=[
            "--set",
            f"schoolgate_head_timeout={HEAD_TIMEOUT}",
            "--set",
            f"schoolgate_keepalive_timeout={HEAD_TIMEOUT}",
            "--set",
            f"schoolgate_max_connections_per_client={PER_CLIENT}",
        ],
    ) as gw:
        served(gw)  # warm: the first request loads what the gateway loads lazily
        yield gw


def served(gw: Gateway) -> float:
    """A normal signed-in user's request; the seconds it took (asserts it was served)."""

    def get() -> None:
        with gw.client("staff1") as client:
            assert client.get("http://learning.test/").status_code == 200

    return timed(get)


def test_header_flood_is_cut_off_and_memory_stays_bounded(gateway: Gateway) -> None:
    idle = rss_mib(gateway.proc.pid)
    with RssWatch(gateway.proc.pid) as watch:
        replies = header_flood(gateway.port, connections=30, megabytes=20)
        assert served(gateway) < NORMAL_SECONDS
    assert watch.peak - idle < GROWTH_CEILING_MIB, (idle, watch.peak)
    # Every flood got a 431 (or, when its send was cut off first, at least a close).
    assert all(r.startswith(b"HTTP/1.1 431") or r == b"" for r in replies)
    assert any(r.startswith(b"HTTP/1.1 431") for r in replies)
    assert rss_mib(gateway.proc.pid) - idle < RETURN_MIB


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET http://learning.test/" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET http://learning.test/ HTTP/1.1\r\nX: " + b"a" * 40_000 + b"\r\n\r\n", b"431"),
    ],
)
def test_oversized_heads_are_refused_without_naming_the_proxy(
    gateway: Gateway, head: bytes, status: bytes
) -> None:
    with connect(gateway.port) as sock:
        sock.sendall(head)
        reply = read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 " + status), reply[:100]
    assert b"mitmproxy" not in reply.lower()
    assert b"Server: schoolgate" in reply


def test_a_hundred_thousand_header_lines_are_refused(gateway: Gateway) -> None:
    replies: list[bytes] = []
    # Answered and closed at once (mitmproxy 12.2.3 alone left such a socket open for ever).
    assert timed(lambda: replies.append(header_lines(gateway.port, lines=100_000))) < 5
    assert replies[0].startswith(b"HTTP/1.1 431")


def test_slowloris_connections_are_closed_and_users_served(gateway: Gateway) -> None:
    idle = rss_mib(gateway.proc.pid)
    times: list[float] = []
    with (
        RssWatch(gateway.proc.pid) as watch,
        held_connections(
            gateway.port,
            source_addresses(3),
            PER_CLIENT,
            first_bytes=b"GET http://learning.test/ HTTP/1.1\r\nHost: learning.test\r\nX-A: ",
        ) as socks,
    ):
        # One byte a second on each: the gateway must not wait for the head for ever.
        trickle(socks, seconds=HEAD_TIMEOUT - 2, during=lambda: times.append(served(gateway)))
        closed, _waited = wait_closed(socks, timeout=HEAD_TIMEOUT + 10)
        assert closed == len(socks), f"{len(socks) - closed} slow connections still open"
    assert max(times) < NORMAL_SECONDS, times
    assert watch.peak - idle < GROWTH_CEILING_MIB


def test_slow_second_request_on_a_kept_alive_connection_is_closed(gateway: Gateway) -> None:
    with connect(gateway.port) as sock:
        here = f"127.0.0.1:{gateway.port}".encode()
        sock.sendall(b"GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n" % (here, here))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # the gateway's own page
        assert closed_count([sock]) == 0  # kept alive
        sock.sendall(b"GET http://127.0.0.1/ HTTP/1.1\r\n")  # ... and never the rest
        closed, _waited = wait_closed([sock], timeout=HEAD_TIMEOUT + 10)
    assert closed == 1


def test_connections_per_client_address_are_capped(gateway: Gateway) -> None:
    source = source_addresses(1, start=400)
    with held_connections(gateway.port, source, PER_CLIENT) as socks:
        with held_connections(gateway.port, source, 10) as extra:
            closed, _ = wait_closed(extra, timeout=3)
            assert closed == 10  # over the cap: closed at once
        assert closed_count(socks) == 0  # the ones within the cap are still open
        # Another address is not affected by this one's cap.
        with held_connections(gateway.port, source_addresses(1, start=401), 10) as other:
            assert closed_count(other) == 0


def test_thousands_of_idle_connections_are_closed(gateway: Gateway) -> None:
    idle = rss_mib(gateway.proc.pid)
    sources = source_addresses(30, start=20)
    times: list[float] = []
    with (
        RssWatch(gateway.proc.pid) as watch,
        held_connections(gateway.port, sources, PER_CLIENT) as socks,
    ):
        times.append(served(gateway))
        # Nothing sent: each is closed once the head time-out has passed since it opened.
        closed, _ = wait_closed(socks, timeout=HEAD_TIMEOUT + 15)
        assert closed == len(socks) == 30 * PER_CLIENT
        times.append(served(gateway))
    assert max(times) < NORMAL_SECONDS, times
    assert watch.peak - idle < GROWTH_CEILING_MIB, (idle, watch.peak)
    assert rss_mib(gateway.proc.pid) - idle < RETURN_MIB


def test_connect_without_a_tls_handshake_is_closed(gateway: Gateway) -> None:
    with connect(gateway.port) as sock:
        sock.sendall(
            b"CONNECT learning.test:443 HTTP/1.1\r\nHost: learning.test:443\r\n"
            b"Proxy-Authorization: Basic c3RhZmYxOmNvcnJlY3QgaG9yc2U=\r\n\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        closed, _waited = wait_closed([sock], timeout=HEAD_TIMEOUT + 10)  # no ClientHello
    assert closed == 1


def test_large_body_for_a_sign_in_answer_is_not_read(gateway: Gateway) -> None:
    # No credentials: the answer is 407, and the gateway must not read 50 MB to send it.
    idle = rss_mib(gateway.proc.pid)
    sent = [0]

    def upload() -> None:
        with connect(gateway.port, timeout=5) as sock:
            sock.sendall(
                b"POST http://learning.test/upload HTTP/1.1\r\n"
                b"Host: learning.test\r\nContent-Length: 50000000\r\n\r\n"
            )
            while sent[0] < 50_000_000:
                sent[0] += sock.send(b"a" * (1 << 20))

    with pytest.raises(ConnectionError):  # closed by the gateway (not a time-out)
        upload()
    assert sent[0] < 50_000_000
    assert rss_mib(gateway.proc.pid) - idle < RETURN_MIB


def test_the_running_gateways_data_is_private(gateway: Gateway) -> None:
    # Review finding 15, on a gateway started by hand (no systemd UMask).
    assert gateway.data_dir.stat().st_mode & 0o777 == 0o750
    for name in ("schoolgate.db", "schoolgate.db-wal", "schoolgate.db-shm"):
        path = gateway.data_dir / name
        if path.exists():
            assert path.stat().st_mode & 0o777 == 0o600, name
    assert (gateway.data_dir / "schoolgate.db").exists()
