"""Plain HTTP in the front door (proxy_addons/frontdoor_http.py) through the real lean gateway,
raw sockets and httpx, and a local origin: which requests the front door serves itself (its
metric says so), that each is decided, recorded and counted as mitmproxy would, request by
request on a kept-alive connection, and that anything odd (smuggling shapes, upgrades, bodies,
pipelining, blocked or inspected hosts) is handed to mitmproxy with the bytes already read."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from schoolgate.store.db import upgrade
from tests.e2e.test_detection_e2e import events
from tests.e2e.test_frontdoor_e2e import auth, counted, door_counts, lean_gateway, metrics_text
from tests.support.gateway import Gateway, wait_for

pytestmark = pytest.mark.e2e

SERVED = "http_requests"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'schoolgate.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory, db: str) -> Iterator[Gateway]:
    """The lean gateway in lesson time, recording into SQLite, without sign-ins (everyone is a
    pupil unless the test signs in): the front door can identify every client itself."""
    with lean_gateway(
        tmp_path_factory.mktemp("door-http"),
        "--set",
        f"schoolgate_database_url={db}",
        signs_in=False,
    ) as gw:
        yield gw


def request_bytes(url: str, *lines: str, method: str = "GET", version: str = "HTTP/1.1") -> bytes:
    host = re.sub(r"^http://([^/]+).*$", r"\1", url)
    head = [f"{method} {url} {version}", f"Host: {host}", *lines]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def read_response(raw: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response (Content-Length framed, or until the connection closes) from `raw`."""
    while b"\r\n\r\n" not in buffer:
        chunk = raw.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if "content-length" in headers:
        size = int(headers["content-length"])
        while len(rest) < size:
            chunk = raw.recv(65536)
            if not chunk:
                break
            rest += chunk
        body, left = rest[:size], rest[size:]
    else:
        body = rest
        with contextlib.suppress(OSError):
            while chunk := raw.recv(65536):
                body += chunk
        left = b""
    buffer[:] = left
    return status, headers, body


@contextlib.contextmanager
def connection(gw: Gateway) -> Iterator[socket.socket]:
    raw = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        yield raw
    finally:
        raw.close()


def exchange(gw: Gateway, data: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """Send `data` on a new connection; the first response, or None if it was closed unanswered."""
    with connection(gw) as raw:
        raw.sendall(data)
        try:
            return read_response(raw, bytearray())
        except (ConnectionError, OSError):
            return None


def test_an_allowed_request_is_served_decided_and_recorded_by_the_front_door(
    door: Gateway, db: str
) -> None:
    before = door_counts(door)
    with door.client() as client:
        response = client.get("http://learning.test/served-here?q=1")
    assert response.status_code == 200
    assert response.text == "hello from the origin: host=learning.test\n"
    assert "alt-svc" not in response.headers  # StripAltSvc's responseheaders hook ran
    counted(door, SERVED, before)
    assert door_counts(door).get("handed_over", 0) == before.get("handed_over", 0)
    wait_for(
        lambda: any(e.path == "/served-here" and e.query == "q=1" for e in events(db)),
        timeout=20,
        what="the request's event",
    )
    event = next(e for e in events(db) if e.path == "/served-here")
    assert (event.host, event.method, event.scheme, event.role) == (
        "learning.test",
        "GET",
        "http",
        "pupil",
    )
    assert event.verdict.value == "allow"


def test_every_request_on_a_kept_alive_connection_is_decided_and_recorded(
    door: Gateway, db: str
) -> None:
    before = door_counts(door)
    buffer = bytearray()
    with connection(door) as raw:
        for n in range(5):
            raw.sendall(request_bytes(f"http://learning.test/kept/{n}"))
            status, _headers, body = read_response(raw, buffer)
            assert status == 200
            assert body == b"hello from the origin: host=learning.test\n"
        # The same connection, now to a blocked host: its own decision, mitmproxy's block page.
        raw.sendall(request_bytes("http://x.com/after-five"))
        status, _headers, body = read_response(raw, buffer)
    assert status == 403
    assert b"x.com" in body
    assert not door.contacted("x.com")
    counted(door, SERVED, before, more=5)
    counted(door, "handed_over", before)
    wait_for(
        lambda: {e.path for e in events(db)} >= {f"/kept/{n}" for n in range(5)} | {"/after-five"},
        timeout=20,
        what="an event for each request",
    )
    blocked = next(e for e in events(db) if e.path == "/after-five")
    assert blocked.verdict.value == "block"
    assert blocked.host == "x.com"
    assert sum(1 for e in events(db) if e.path.startswith("/kept/")) == 5
    # One upstream connection carried the five (reused: same host and port).
    assert door.http_origin.connections >= 1


@pytest.mark.parametrize(
    ("url", "user", "status"),
    [
        ("http://learning.test/", None, 200),  # uncategorised: allowed for everyone
        ("http://x.com/", None, 403),  # X: blocked for everyone
        ("http://twitter.com/", None, 403),
        ("http://instagram.com/", None, 403),  # Instagram: blocked for everyone
        ("http://facebook.com/", None, 403),  # Facebook: blocked for pupils
        ("http://tiktok.com/", None, 403),  # social: blocked for pupils
        ("http://violence.test/", None, 403),  # blocked content for pupils
        ("http://proxysite.test/", None, 403),  # circumvention
    ],
)
def test_the_seed_policy_holds_for_plain_http(
    door: Gateway, url: str, user: str | None, status: int
) -> None:
    before = door_counts(door)
    with door.client(user) as client:
        response = client.get(url)
    assert response.status_code == status
    if status == 200:
        counted(door, SERVED, before)
    else:  # blocked hosts keep mitmproxy's block page
        counted(door, "handed_over", before)
        assert door_counts(door).get(SERVED, 0) == before.get(SERVED, 0)


def test_staff_get_facebook_only_through_mitmproxy_and_not_in_lesson_time(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with lean_gateway(tmp_path_factory.mktemp("staff")) as gw:
        before = door_counts(gw)
        with gw.client("staff1") as client:
            assert client.get("http://facebook.com/").status_code == 403
            assert client.get("http://learning.test/").status_code == 200
        # Signed-in staff: the first request asks the directory (mitmproxy's path); later ones
        # with the same credentials are known and served by the front door.
        with gw.client("staff1") as client:
            assert client.get("http://learning.test/again").status_code == 200
        counted(gw, SERVED, before)
        assert not gw.contacted("facebook.com")


def test_a_wrong_password_is_challenged_never_served(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with lean_gateway(tmp_path_factory.mktemp("signin")) as gw:
        before = door_counts(gw)
        answer = exchange(
            gw,
            request_bytes(
                "http://learning.test/", f"Proxy-Authorization: {auth('pupil1', 'wrong')}"
            ),
        )
        assert answer is not None
        assert answer[0] == 407
        assert door_counts(gw).get(SERVED, 0) == before.get(SERVED, 0)
        assert not gw.contacted("learning.test")


SMUGGLING = {
    "content-length and transfer-encoding": [
        "Content-Length: 4",
        "Transfer-Encoding: chunked",
    ],
    "two content-lengths": ["Content-Length: 0", "Content-Length: 45"],
    "a body": ["Content-Length: 5"],
    "chunked": ["Transfer-Encoding: chunked"],
    "obs-fold": ["X-Folded: one", " two"],
    "a bad header name": ["X Bad: 1"],
    "a control byte in a value": ["X-Bad: a\x01b"],
    "upgrade": ["Connection: Upgrade", "Upgrade: websocket"],
    "expect": ["Expect: 100-continue"],
    "another host header": ["Host: x.com"],
    "an unknown connection option": ["Connection: keep-alive, X-Hop"],
}


@pytest.mark.parametrize("lines", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_odd_requests_go_to_mitmproxy_never_served_here(door: Gateway, lines: list[str]) -> None:
    before = door_counts(door)
    data = request_bytes("http://learning.test/odd", *lines)
    if any(line.startswith("Transfer-Encoding") for line in lines):
        data += b"0\r\n\r\nGET http://x.com/smuggled HTTP/1.1\r\nHost: x.com\r\n\r\n"
    elif "Content-Length: 5" in lines:
        data += b"hello"
    exchange(door, data)
    counted(door, "handed_over", before)
    assert door_counts(door).get(SERVED, 0) == before.get(SERVED, 0)
    assert not door.contacted("x.com")


@pytest.mark.parametrize(
    "data",
    [
        # HTTP/1.0 without keep-alive
        request_bytes("http://learning.test/ten", version="HTTP/1.0"),
        # a second request right behind the first (pipelined)
        request_bytes("http://learning.test/one") + request_bytes("http://x.com/pipelined"),
        # a POST (a body), and a method the front door does not serve
        request_bytes("http://learning.test/post", "Content-Length: 2", method="POST") + b"{}",
        request_bytes("http://learning.test/options", method="OPTIONS"),
    ],
    ids=["http/1.0", "pipelined", "post", "options"],
)
def test_other_shapes_go_to_mitmproxy(door: Gateway, data: bytes) -> None:
    before = door_counts(door)
    exchange(door, data)
    counted(door, "handed_over", before)
    assert door_counts(door).get(SERVED, 0) == before.get(SERVED, 0)
    assert not door.contacted("x.com")


def test_a_smuggling_attempt_on_a_kept_alive_connection_is_handed_over_there(
    door: Gateway,
) -> None:
    """The first request is the door's; the second (TE and CL) goes to mitmproxy, which refuses
    it; the request hidden in its body never reaches any origin."""
    before = door_counts(door)
    buffer = bytearray()
    with connection(door) as raw:
        raw.sendall(request_bytes("http://learning.test/first"))
        assert read_response(raw, buffer)[0] == 200
        raw.sendall(
            request_bytes(
                "http://learning.test/second", "Content-Length: 60", "Transfer-Encoding: chunked"
            )
            + b"0\r\n\r\nGET http://x.com/smuggled HTTP/1.1\r\nHost: x.com\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError, OSError):
            status = read_response(raw, buffer)[0]
            assert status == 400
    counted(door, SERVED, before)
    counted(door, "handed_over", before)
    assert not door.contacted("x.com")


def test_the_gateways_own_pages_and_search_hosts_stay_with_mitmproxy(door: Gateway) -> None:
    before = door_counts(door)
    answer = exchange(door, request_bytes(f"http://127.0.0.1:{door.port}/proxy.pac"))
    assert answer is not None
    assert answer[0] == 200
    assert b"FindProxyForURL" in answer[2]
    counted(door, "handed_over", before)
    assert door_counts(door).get(SERVED, 0) == before.get(SERVED, 0)


def test_requests_are_counted_in_the_gateways_metrics(door: Gateway) -> None:
    def requests_total() -> float:
        text = metrics_text(door)
        return sum(
            float(m[1])
            for m in re.finditer(
                r'^schoolgate_requests_total\{[^}]*stage="request"[^}]*\} (\S+)$', text, re.M
            )
        )

    start = requests_total()
    buffer = bytearray()
    with connection(door) as raw:
        for n in range(3):
            raw.sendall(request_bytes(f"http://learning.test/counted/{n}"))
            assert read_response(raw, buffer)[0] == 200
    wait_for(lambda: requests_total() >= start + 3, timeout=10, what="three counted requests")


def test_the_gateways_own_name_stays_with_mitmproxy(tmp_path: Path) -> None:
    """schoolgate_gateway_host (written as an IT technician might) is read once, as a name."""
    with lean_gateway(
        tmp_path, "--set", "schoolgate_gateway_host=Gateway.School.Test.", signs_in=False
    ) as gw:
        before = door_counts(gw)
        answer = exchange(gw, request_bytes("http://gateway.school.test/proxy.pac"))
        assert answer is not None
        assert answer[0] == 200
        assert b"FindProxyForURL" in answer[2]
        counted(gw, "handed_over", before)
        assert door_counts(gw).get(SERVED, 0) == before.get(SERVED, 0)
