"""The outside checker's tricks through a real gateway running the shipped seed policy and lists.

Two gateways run the seed policy with its calendar moved so that a break is on now (staff may use
Facebook) or is long past (lesson time); everything else (rules, lists, circumvention settings)
is the shipped file. A pupil and a member of staff try the platforms' real host names, odd
spellings of a host, a Host header or SNI that disagrees with the CONNECT, userinfo and
percent-encoding in the URL, empty and missing Host headers, protocol upgrades, mirrors and
reader proxies of a blocked page, and DNS-over-HTTPS. Each blocked attempt must be a block page
(or a refusal) and the origin must never be asked for the blocked site; nothing may be a 500.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from base64 import b64encode
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import yaml

from tests.support.gateway import PASSWORD, Gateway, noon_zone, running_gateway, write_identity
from tests.support.tls_hello import ECH, ECH_PAYLOAD, client_hello_record

pytestmark = pytest.mark.e2e

SEED = Path(__file__).resolve().parents[2] / "schoolgate" / "policy" / "data" / "seed.yaml"
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def write_seed(
    path: Path, *, in_break: bool, start: datetime | None = None, end: datetime | None = None
) -> None:
    """The shipped seed policy, its calendar moved so that now is in a break (or in lesson),
    or so that its one break runs from `start` to `end`."""
    now = datetime.now(UTC)
    zone = noon_zone(now)  # now is 12:xx there: the day's windows never cross midnight
    if start is None or end is None:
        if in_break:
            start, end = now - timedelta(minutes=5), now + timedelta(hours=1)
        else:
            start, end = now - timedelta(hours=4), now - timedelta(hours=3, minutes=30)
    local = ZoneInfo(zone)
    spec = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    spec["calendar"].update(
        timezone=zone,
        school_days=DAYS,
        school_day={"start": "00:30", "end": "23:30"},
        periods=[
            {
                "name": "lunch",
                "kind": "break",
                "start": start.astimezone(local).strftime("%H:%M:%S"),
                "end": end.astimezone(local).strftime("%H:%M:%S"),
            }
        ],
        bank_holidays="none",
    )
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


def _seed_gateway(factory: pytest.TempPathFactory, *, in_break: bool) -> Iterator[Gateway]:
    folder = factory.mktemp("break" if in_break else "lesson")
    policy = folder / "policy.yaml"
    write_seed(policy, in_break=in_break)  # no lists beside it: the shipped ones are used
    with running_gateway(folder, policy=policy, identity=write_identity(folder / "id")) as gw:
        yield gw


@pytest.fixture(scope="module")
def at_break(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _seed_gateway(tmp_path_factory, in_break=True)


@pytest.fixture(scope="module")
def in_lesson(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _seed_gateway(tmp_path_factory, in_break=False)


def _auth(user: str) -> str:
    return "Basic " + b64encode(f"{user}:{PASSWORD}".encode()).decode()


def _get(gw: Gateway, user: str, url: str, **kwargs: object) -> httpx.Response:
    with gw.client(user, trust="both") as client:
        return client.request(kwargs.pop("method", "GET"), url, **kwargs)  # type: ignore[arg-type]


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _plain(gw: Gateway, user: str, head: str) -> bytes:
    """Send one plain-HTTP request head (Proxy-Authorization added) and read the reply."""
    first, _, rest = head.partition("\r\n")
    auth = f"Proxy-Authorization: {_auth(user)}\r\n"
    with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as raw:
        raw.sendall(f"{first}\r\n{auth}{rest}".encode("latin-1"))
        return _read_all(raw)


def _tunnel(gw: Gateway, user: str, *, connect: str, sni: str | None, request: str) -> bytes:
    """CONNECT to `connect`, TLS with SNI `sni` (None: no SNI), send `request`; the reply (the
    CONNECT's own answer when it is not 200)."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as raw:
        raw.sendall(
            f"CONNECT {connect} HTTP/1.1\r\nHost: {connect}\r\n"
            f"Proxy-Authorization: {_auth(user)}\r\n\r\n".encode()
        )
        reply = raw.recv(4096)
        if not reply.startswith(b"HTTP/1.1 200"):
            return reply
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=str(gw.ca_pem))
        context.check_hostname = False  # the point is to lie about the name
        try:
            with context.wrap_socket(raw, server_hostname=sni) as tls:
                tls.sendall(request.encode("latin-1"))
                return _read_all(tls)
        except (ssl.SSLError, OSError):
            return b""  # refused during the handshake: nothing was served


def _refused(reply: bytes) -> bool:
    """A block page or a refusal (4xx, or the connection closed): never a page, never a 500."""
    status = reply.split(b" ", 2)[1] if reply.startswith(b"HTTP/1.") else b""
    return reply == b"" or status.startswith(b"4")


def _untouched(gw: Gateway) -> bool:
    """Was neither X nor Instagram ever asked for (by Host or SNI) at the origins?"""
    return not (gw.contacted("x.com") or gw.contacted("instagram.com"))


# --- the platforms' real host names ----------------------------------------------------------

BLOCKED_FOR_PUPILS = [
    ("x.com", "x"),
    ("pbs.twimg.com", "x"),
    ("t.co", "x"),
    ("www.instagram.com", "instagram"),
    ("scontent-lhr8-1.cdninstagram.com", "instagram"),
    ("instagram.flhr8-1.fna.fbcdn.net", "instagram"),
    ("mbasic.facebook.com", "facebook"),
    ("graph.facebook.com", "facebook"),
    ("fb.me", "facebook"),
    ("www.messenger.com", "facebook"),
    ("www.threads.com", "social"),
    ("v16-webapp-prime.tiktok.com", "social"),
    ("p16-sign-va.tiktokcdn.com", "social"),
    ("web.snapchat.com", "social"),
    ("urlebird.com", "social"),
    ("tiktokviewer.net", "social"),
    # the circumvention categories
    ("nordvpn.com", "vpn"),
    ("www.croxyproxy.com", "web_proxy"),
    ("bridges.torproject.org", "tor"),
    ("dns.google", "doh"),
    ("nitter.net", "platform_frontend"),
    ("xn--fcebook-8va.com", "lookalike"),
    ("www.instagram.com.evil.example", "platform_frontend"),  # a suffix proxy
]


@pytest.mark.parametrize(("host", "category"), BLOCKED_FOR_PUPILS)
def test_a_pupil_at_break_is_blocked_from_every_platform_host(
    at_break: Gateway, host: str, category: str
) -> None:
    response = _get(at_break, "pupil1", f"https://{host}/")
    assert response.status_code == 403, (host, response.text[:200])
    assert f"<dt>Category</dt><dd>{category}</dd>" in response.text
    assert not at_break.contacted(host)


@pytest.mark.parametrize(
    "host", ["x.com", "pbs.twimg.com", "www.instagram.com", "instagram.flhr8-1.fna.fbcdn.net"]
)
def test_staff_at_break_are_blocked_from_x_and_instagram(at_break: Gateway, host: str) -> None:
    assert _get(at_break, "staff1", f"https://{host}/").status_code == 403
    assert not at_break.contacted(host)


@pytest.mark.parametrize("host", ["www.facebook.com", "m.facebook.com", "mbasic.facebook.com"])
def test_staff_reach_facebook_at_break_only(
    at_break: Gateway, in_lesson: Gateway, host: str
) -> None:
    assert _get(at_break, "staff1", f"https://{host}/").status_code == 200
    response = _get(in_lesson, "staff1", f"https://{host}/")
    assert response.status_code == 403
    assert "<dt>Rule</dt><dd>staff-social-media-otherwise</dd>" in response.text
    assert not in_lesson.contacted("facebook.com")


# --- spellings of a host, at the CONNECT and in a plain-HTTP URL ------------------------------

SPELLINGS = [
    "X.COM.",
    "x.com.",
    "WWW.INSTAGRAM.COM",
    "157.240.1.35",  # Facebook's address: a public IP literal
    "2649751843",  # the same, as one decimal number
    "0x9d.0xf0.0x1.0x23",
    "0235.0360.01.043",
    "157.15728931",
    "[::ffff:157.240.1.35]",
    "[2a03:2880:f10c:83:face:b00c:0:25de]",
    "xn--fcebook-8va.com",  # a lookalike of facebook.com
]


@pytest.mark.parametrize("host", SPELLINGS)
@pytest.mark.parametrize("via", ["connect", "plain"])
def test_spellings_are_blocked_for_staff_at_break(at_break: Gateway, host: str, via: str) -> None:
    head = f"Host: {host}\r\nConnection: close\r\n\r\n"
    if via == "connect":
        reply = _tunnel(
            at_break, "staff1", connect=f"{host}:443", sni=None, request="GET / HTTP/1.1\r\n" + head
        )
    else:
        reply = _plain(at_break, "staff1", f"GET http://{host}/ HTTP/1.1\r\n" + head)
    assert _refused(reply), reply[:300]
    assert _untouched(at_break)


# --- the Host header, the URL and the SNI against each other ----------------------------------

FB = "www.facebook.com:443"
# (CONNECT target, SNI, request): staff at break, where the tunnel to Facebook is allowed.
TUNNEL_TRICKS = [
    ("www.facebook.com:443", "www.facebook.com", "GET / HTTP/1.1\r\nHost: x.com\r\n"),
    ("www.facebook.com:443", None, "GET / HTTP/1.1\r\nHost: www.instagram.com\r\n"),
    ("www.facebook.com:443", "x.com", "GET / HTTP/1.1\r\nHost: www.facebook.com\r\n"),
    (
        "www.facebook.com:443",
        "instagram.flhr8-1.fna.fbcdn.net",
        "GET / HTTP/1.1\r\nHost: x.com\r\n",
    ),
    # an absolute-form URL inside the tunnel names another site than its Host and CONNECT
    (
        "www.facebook.com:443",
        "www.facebook.com",
        "GET https://x.com/ HTTP/1.1\r\nHost: www.facebook.com\r\n",
    ),
    ("www.facebook.com:443", "www.facebook.com", "GET https://x.com/ HTTP/1.1\r\nHost: x.com\r\n"),
    (
        "www.facebook.com:443",
        "www.facebook.com",
        "GET http://x.com/ HTTP/1.1\r\nHost: www.facebook.com\r\n",
    ),
    ("www.facebook.com:443", "www.facebook.com", "GET / HTTP/1.1\r\nHost: x.com.\r\n"),
    ("www.facebook.com:443", "www.facebook.com", "GET / HTTP/1.1\r\nHost: X.COM:443\r\n"),
    # two Host headers, either order, and two names in one
    (FB, "www.facebook.com", "GET / HTTP/1.1\r\nHost: www.facebook.com\r\nHost: x.com\r\n"),
    (FB, "www.facebook.com", "GET / HTTP/1.1\r\nHost: x.com\r\nHost: www.facebook.com\r\n"),
    (FB, "www.facebook.com", "GET / HTTP/1.1\r\nHost: www.facebook.com, x.com\r\n"),
    (
        FB,
        "www.facebook.com",
        "GET https://www.facebook.com@x.com/ HTTP/1.1\r\nHost: www.facebook.com\r\n",
    ),
    # a forwarding header a front may route by instead of Host
    (
        FB,
        "www.facebook.com",
        "GET / HTTP/1.1\r\nHost: www.facebook.com\r\nX-Forwarded-Host: x.com\r\n",
    ),
    (
        FB,
        "www.facebook.com",
        "GET / HTTP/1.1\r\nHost: www.facebook.com\r\nX-Host: www.instagram.com\r\n",
    ),
    (
        FB,
        "www.facebook.com",
        "GET / HTTP/1.1\r\nHost: www.facebook.com\r\nForwarded: for=1.2.3.4;host=x.com;proto=https\r\n",
    ),
]


@pytest.mark.parametrize(("connect", "sni", "request_head"), TUNNEL_TRICKS)
def test_a_tunnel_to_facebook_cannot_carry_x_or_instagram(
    at_break: Gateway, connect: str, sni: str | None, request_head: str
) -> None:
    reply = _tunnel(
        at_break,
        "staff1",
        connect=connect,
        sni=sni,
        request=request_head + "Connection: close\r\n\r\n",
    )
    assert _refused(reply), reply[:300]
    assert _untouched(at_break)


@pytest.mark.parametrize(
    "request_head",
    [
        "GET / HTTP/1.0\r\n",  # HTTP/1.0 without a Host
        "GET / HTTP/1.1\r\nHost: \r\n",  # an empty Host
        "GET / HTTP/1.1\r\nHost: www.facebook.com:443\r\n",  # the port in Host: the same site
        # a forwarding header naming an allowed site (or the same one) is not a trick
        "GET / HTTP/1.1\r\nHost: www.facebook.com\r\nX-Forwarded-Host: www.bbc.co.uk\r\n",
        "GET / HTTP/1.1\r\nHost: www.facebook.com\r\nForwarded: host=www.facebook.com\r\n",
    ],
)
def test_a_tunnel_to_facebook_without_a_usable_host_stays_on_facebook(
    at_break: Gateway, request_head: str
) -> None:
    before = len(at_break.https_origin.requests)
    reply = _tunnel(
        at_break,
        "staff1",
        connect="www.facebook.com:443",
        sni="www.facebook.com",
        request=request_head + "Connection: close\r\n\r\n",
    )
    assert not reply.startswith((b"HTTP/1.1 5", b"HTTP/1.0 5")), reply[:300]
    assert _untouched(at_break)
    # whatever was served came from the site the tunnel was decided for
    assert {seen.sni for seen in at_break.https_origin.requests[before:]} <= {"www.facebook.com"}


PLAIN_TRICKS = [
    "GET http://www.facebook.com/ HTTP/1.1\r\nHost: x.com\r\n",
    "GET http://learning.test/ HTTP/1.1\r\nHost: www.instagram.com\r\n",
    "GET http://learning.test@x.com/ HTTP/1.1\r\nHost: x.com\r\n",  # userinfo
    "GET http://learning.test%40x.com/ HTTP/1.1\r\nHost: learning.test\r\n",
    "GET http://x%2ecom/ HTTP/1.1\r\nHost: learning.test\r\n",  # percent-encoded host
    "GET http://x.com:80/ HTTP/1.1\r\nHost: learning.test\r\n",
    "GET / HTTP/1.1\r\nHost: x.com\r\n",  # origin form, as if the gateway were the site
    "GET / HTTP/1.1\r\nHost: \r\n",
    "GET / HTTP/1.0\r\n",
    "GET ftp://x.com/ HTTP/1.1\r\nHost: x.com\r\n",
    "GET http://www.facebook.com/ HTTP/1.1\r\nHost: www.facebook.com\r\nHost: x.com\r\n",
    # a body framed two ways (request smuggling): refused, never passed on
    "POST http://learning.test/ HTTP/1.1\r\nHost: learning.test\r\nTransfer-Encoding: chunked\r\n"
    "Content-Length: 40\r\n\r\n0\r\n\r\nGET http://x.com/ HTTP/1.1\r\nHost: x.com\r\n",
    "CONNECT learning.test@x.com:443 HTTP/1.1\r\nHost: x.com\r\n",  # userinfo at the CONNECT
    "CONNECT x%2ecom:443 HTTP/1.1\r\nHost: x.com\r\n",
]


@pytest.mark.parametrize("request_head", PLAIN_TRICKS)
def test_plain_http_host_tricks_are_refused_for_a_pupil(
    at_break: Gateway, request_head: str
) -> None:
    reply = _plain(at_break, "pupil1", request_head + "Connection: close\r\n\r\n")
    assert _refused(reply), reply[:300]
    assert _untouched(at_break)


# --- protocols that would carry a blocked site past the filter --------------------------------

UPGRADES = [
    "GET http://learning.test/ HTTP/1.1\r\nHost: learning.test\r\nConnection: Upgrade, "
    "HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n",
    "GET http://learning.test/.well-known/masque/udp/x.com/443/ HTTP/1.1\r\n"
    "Host: learning.test\r\nConnection: Upgrade\r\nUpgrade: connect-udp\r\n",
    "GET http://x.com/chat HTTP/1.1\r\nHost: x.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    "CONNECT x.com:80 HTTP/1.1\r\nHost: x.com:80\r\n",  # how a browser sends ws:// via a proxy
]


@pytest.mark.parametrize("request_head", UPGRADES)
def test_protocol_upgrades_are_refused(at_break: Gateway, request_head: str) -> None:
    reply = _plain(at_break, "pupil1", request_head + "\r\n")
    if request_head.startswith("CONNECT"):
        # answered 200 only to show the block page inside
        assert reply == b"" or not reply.startswith(b"HTTP/1.1 101")
    else:
        assert _refused(reply), reply[:300]
    assert not at_break.contacted("x.com")


# --- mirrors, archives and reader proxies of a blocked page -----------------------------------

VIEWERS = [
    "https://x-com.translate.goog/",
    "https://www-instagram-com.translate.goog/",
    "https://translate.google.com/translate?sl=auto&tl=fr&u=https://x.com/",
    "https://web.archive.org/web/2024/https://www.instagram.com/",
    "https://archive.ph/newest/https://x.com/",
    "https://webcache.googleusercontent.com/search?q=cache:https://x.com/",
    # found by these checks: reader and translation proxies that fetch the page for you
    "https://r.jina.ai/https://x.com/",
    "https://translate.yandex.com/translate?url=https://www.instagram.com/&lang=en-fr",
    "https://translated.turbopages.org/proxy_u/en-fr.fr.1a2b3c4d-5e6f7a8b-9c0d1e2f-74722d776562/https/x.com/",
    # image proxies: the platforms' pictures by their address
    "https://i0.wp.com/pbs.twimg.com/media/a.jpg",
    "https://wsrv.nl/?url=https://scontent.cdninstagram.com/v/1.jpg",
]


@pytest.mark.parametrize("url", VIEWERS)
def test_viewers_of_a_blocked_page_are_blocked(at_break: Gateway, url: str) -> None:
    for user in ("pupil1", "staff1"):
        response = _get(at_break, user, url)
        assert response.status_code == 403, (user, url, response.text[:300])
    assert _untouched(at_break)


@pytest.mark.parametrize(
    "url",
    [
        "https://web.archive.org/web/2024/https://www.bbc.co.uk/",
        "https://www-bbc-co-uk.translate.goog/",
        "https://i0.wp.com/www.bbc.co.uk/news/1.jpg",  # a school blog's pictures through Jetpack
    ],
)
def test_viewers_of_an_allowed_page_stay_open(at_break: Gateway, url: str) -> None:
    assert _get(at_break, "pupil1", url).status_code == 200


# --- DNS-over-HTTPS ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("https://dns.google/dns-query?dns=AAABAAABAAAAAAAAAXgDY29tAAABAAE", {}),
        ("https://cloudflare-dns.com/dns-query?name=x.com", {"Accept": "application/dns-json"}),
        ("https://learning.test/dns-query?dns=AAABAAABAAAAAAAAAXgDY29tAAABAAE", {}),
        ("https://learning.test/resolve?name=x.com", {"Accept": "application/dns-json"}),
    ],
)
def test_dns_over_https_is_blocked_for_a_pupil(
    at_break: Gateway, url: str, headers: dict[str, str]
) -> None:
    response = _get(at_break, "pupil1", url, headers=headers)
    assert response.status_code == 403, response.text[:300]
    assert "<dt>Reason code</dt><dd>circumvention</dd>" in response.text


@pytest.mark.parametrize(
    "url", ["https://x.com/", "https://www.instagram.com/", "http://x.com:443/"]
)
def test_a_request_line_naming_another_site_is_host_mismatch(at_break: Gateway, url: str) -> None:
    # Servers route an absolute-form request by its URL, not its Host header (RFC 9112 3.2.2):
    # inside a tunnel to an allowed site it would ask a shared front for the blocked one.
    reply = _tunnel(
        at_break,
        "pupil1",
        connect="learning.test:443",
        sni="learning.test",
        request=f"GET {url} HTTP/1.1\r\nHost: learning.test\r\nConnection: close\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 403"), reply[:300]
    assert b"<dt>Technique</dt><dd>host_mismatch</dd>" in reply
    assert _untouched(at_break)


def test_http2_coalescing_cannot_reach_x_through_a_facebook_connection(at_break: Gateway) -> None:
    """One HTTP/2 connection to Facebook, a second stream for x.com (what browsers do for hosts
    sharing a certificate): the second is decided on its own and blocked."""
    raw = socket.create_connection(("127.0.0.1", at_break.port), timeout=20)
    raw.sendall(
        f"CONNECT {FB} HTTP/1.1\r\nHost: {FB}\r\n"
        f"Proxy-Authorization: {_auth('staff1')}\r\n\r\n".encode()
    )
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(at_break.ca_pem))
    context.set_alpn_protocols(["h2"])
    with context.wrap_socket(raw, server_hostname="www.facebook.com") as tls:
        assert tls.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration())
        conn.initiate_connection()
        statuses = []
        for authority in ("www.facebook.com", "x.com"):
            stream = conn.get_next_available_stream_id()
            request = [(":method", "GET"), (":scheme", "https"), (":path", "/")]
            conn.send_headers(stream, [*request, (":authority", authority)], end_stream=True)
            tls.sendall(conn.data_to_send())
            ended = False
            while not ended and (data := tls.recv(65536)):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        statuses.append(dict(event.headers)[b":status"])
                    ended = ended or (
                        isinstance(event, h2.events.StreamEnded) and event.stream_id == stream
                    )
                tls.sendall(conn.data_to_send())
    assert statuses == [b"200", b"403"]
    assert _untouched(at_break)


def test_an_encrypted_client_hello_hiding_the_site_is_refused(at_break: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", at_break.port), timeout=20) as raw:
        raw.sendall(
            b"CONNECT learning.test:443 HTTP/1.1\r\nHost: learning.test:443\r\n"
            + f"Proxy-Authorization: {_auth('pupil1')}\r\n\r\n".encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        before = at_break.https_origin.connections
        raw.sendall(client_hello_record("cover.example", {ECH: ECH_PAYLOAD}))
        reply = _read_all(raw)
    assert not reply.startswith(b"\x16\x03")  # no handshake: the hidden site was never reached
    assert at_break.https_origin.connections == before


@pytest.mark.parametrize(
    "request_head",
    [
        "GET / HTTP/1.1\r\nHost: x.com\r\n",
        "GET http://x.com/ HTTP/1.1\r\nHost: learning.test\r\n",
    ],
)
def test_plain_http_in_a_port_80_tunnel_is_decided_like_any_request(
    at_break: Gateway, request_head: str
) -> None:
    # Browsers send ws:// through a proxy as CONNECT host:80; the HTTP inside is decided too.
    with socket.create_connection(("127.0.0.1", at_break.port), timeout=20) as raw:
        raw.sendall(
            b"CONNECT learning.test:80 HTTP/1.1\r\nHost: learning.test:80\r\n"
            + f"Proxy-Authorization: {_auth('pupil1')}\r\n\r\n".encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        raw.sendall((request_head + "Connection: close\r\n\r\n").encode())
        reply = _read_all(raw)
    assert reply.startswith(b"HTTP/1.1 403"), reply[:300]
    assert _untouched(at_break)


def test_the_break_opens_and_closes_on_the_second_on_one_kept_alive_connection(
    tmp_path: Path,
) -> None:
    """Staff keep one connection to Facebook open across the break's start and its end: the
    first request after each edge gets the new verdict (nothing is remembered per connection)."""
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now + timedelta(seconds=15), now + timedelta(seconds=23)
    policy = tmp_path / "policy.yaml"
    write_seed(policy, in_break=False, start=start, end=end)
    with (
        running_gateway(tmp_path, policy=policy, identity=write_identity(tmp_path / "id")) as gw,
        gw.client("staff1", trust="both") as client,
    ):
        seen = []
        for edge in (start, end):
            before = client.get("https://www.facebook.com/")
            assert datetime.now(UTC) < edge, "the machine was too slow to ask before the edge"
            time.sleep(max(0.0, (edge - datetime.now(UTC)).total_seconds()) + 0.3)
            seen.append((before.status_code, client.get("https://www.facebook.com/").status_code))
    assert seen == [(403, 200), (200, 403)]


@pytest.mark.parametrize(
    "header",
    ["X-Forwarded-Host: x.com", "X-Host: www.instagram.com", "Forwarded: host=x.com;proto=http"],
)
def test_plain_http_naming_a_blocked_site_in_a_forwarding_header_is_refused(
    at_break: Gateway, header: str
) -> None:
    """The same trick in plain HTTP, which the front door may serve itself: refused, and the
    allowed site asked for is not sent it either."""
    for _ in range(2):  # the second time, the sign-in is known: the front door's own path
        reply = _plain(
            at_break,
            "pupil1",
            f"GET http://learning.test/ HTTP/1.1\r\nHost: learning.test\r\n{header}\r\n"
            "Connection: close\r\n\r\n",
        )
        assert _refused(reply), reply[:300]
        assert b"host_mismatch" in reply
    assert _untouched(at_break)
