"""The real gateway (`schoolgate gateway` -> mitmdump + our addons) on loopback, with real
clients and real local origins: the seed rules, passthrough, mismatches, fail-closed, reloads."""

from __future__ import annotations

import html
import re
import socket
import ssl
from base64 import b64encode
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import (
    PASSWORD,
    Gateway,
    running_gateway,
    wait_for,
    write_identity,
    write_policy,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose policy puts "now" in lesson time."""
    folder = tmp_path_factory.mktemp("lesson")
    policy = folder / "policy.yaml"
    write_policy(policy, in_break=False)
    with running_gateway(folder, policy=policy, identity=write_identity(folder / "id")) as gw:
        yield gw


@pytest.fixture(scope="module")
def lunch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose policy puts "now" in the lunch break."""
    folder = tmp_path_factory.mktemp("lunch")
    policy = folder / "policy.yaml"
    write_policy(policy, in_break=True)
    with running_gateway(folder, policy=policy, identity=write_identity(folder / "id")) as gw:
        yield gw


def fetch(gw: Gateway, user: str | None, url: str) -> httpx.Response:
    with gw.client(user, trust="both") as client:
        return client.get(url)


# (who, url, lesson-time status, break-time status): the seed policy as a table.
SEED_RULES = [
    ("pupil1", "https://x.com/home", 403, 403),
    ("staff1", "https://x.com/home", 403, 403),
    ("smm1", "https://api.twitter.com/2/tweets", 403, 403),
    ("staff1", "http://t.co/abc", 403, 403),
    ("pupil1", "https://www.instagram.com/", 403, 403),
    ("staff1", "https://www.instagram.com/", 403, 403),
    ("pupil1", "https://www.facebook.com/", 403, 403),
    ("staff1", "https://www.facebook.com/", 403, 200),
    ("smm1", "https://www.facebook.com/", 200, 200),
    ("pupil1", "https://www.tiktok.com/", 403, 403),
    ("staff1", "https://www.tiktok.com/", 403, 200),  # staff: social media at break only
    ("smm1", "https://www.tiktok.com/", 200, 200),
    ("pupil1", "https://violence.test/", 403, 403),  # content blocked for pupils only
    ("staff1", "https://violence.test/", 200, 200),
    ("pupil1", "https://proxysite.test/browse?u=x.com", 403, 403),
    ("staff1", "https://proxysite.test/", 403, 403),
    ("pupil1", "https://learning.test/", 200, 200),
    ("pupil1", "http://learning.test/", 200, 200),
]


@pytest.mark.parametrize(("user", "url", "in_lesson", "in_break"), SEED_RULES)
def test_seed_rules_in_lesson_and_break(
    lesson: Gateway, lunch: Gateway, user: str, url: str, in_lesson: int, in_break: int
) -> None:
    for gw, expected in ((lesson, in_lesson), (lunch, in_break)):
        response = fetch(gw, user, url)
        assert response.status_code == expected, (url, user, response.text[:300])
        if expected == 403:
            assert "This website is blocked at school" in response.text
            assert response.headers["cache-control"] == "no-store"
        else:
            assert "hello from the origin" in response.text


def test_block_page_says_when_facebook_opens_for_staff(lesson: Gateway) -> None:
    response = fetch(lesson, "staff1", "https://www.facebook.com/")
    assert response.status_code == 403
    assert "You can use it at lunch" in response.text
    assert "staff-social-media-otherwise" in response.text  # details for staff: the rule
    assert "/requests/new?token=" in response.text


def page_words(response: httpx.Response) -> tuple[str, str]:
    """The block page's text for the reader, and the staff details, without tags."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.unescape(response.text)))
    main, _, details = text.partition("Details for staff")
    return main, details


def test_staff_read_adult_words_on_the_block_page(lesson: Gateway) -> None:
    """Newcomer review finding 9: a member of staff blocked from Facebook in lesson time reads
    who decides, when it opens and how to ask the Business Manager, not a child's words."""
    response = fetch(lesson, "staff1", "https://www.facebook.com/")
    assert response.status_code == 403
    main, details = page_words(response)
    assert "The school's policy does not allow this site for your role at this time." in main
    assert "You can use it at lunch" in main
    assert "you can ask the Business Manager to unblock it" in main
    assert "The Business Manager decides each request" in main
    for childish in ("your learning", "your teacher", "A grown-up", "school work"):
        assert childish not in main + details


def test_pupils_still_read_a_childs_words(lesson: Gateway) -> None:
    response = fetch(lesson, "pupil1", "https://www.tiktok.com/")
    assert response.status_code == 403
    main, _ = page_words(response)
    assert "Do you need this website for your school work? You can ask to use it." in main
    assert "A grown-up at school will read what you write and decide." in main
    assert "Business Manager" not in main


@pytest.mark.parametrize("user", ["pupil1", "staff1"])
def test_x_cannot_be_unblocked_anywhere_on_the_page(lesson: Gateway, user: str) -> None:
    """Newcomer review finding 6: the staff details agree with the page's main text."""
    response = fetch(lesson, user, "https://x.com/home")
    assert response.status_code == 403
    main, details = page_words(response)
    assert "cannot be unblocked at school, even if you ask" in main
    assert "it cannot be unblocked at school, even if you ask." in details
    assert "Business Manager" not in main + details
    assert "/requests/new?token=" not in response.text


def test_without_credentials_the_gateway_asks_for_them(lesson: Gateway) -> None:
    response = fetch(lesson, None, "http://learning.test/")
    assert response.status_code == 407


def test_blocked_sites_are_never_contacted(lesson: Gateway) -> None:
    before = (lesson.http_origin.connections, lesson.https_origin.connections)
    for url in ("https://x.com/", "http://x.com/", "https://www.instagram.com/"):
        assert fetch(lesson, "staff1", url).status_code == 403
    assert not lesson.contacted("x.com")
    assert not lesson.contacted("instagram.com")
    assert (lesson.http_origin.connections, lesson.https_origin.connections) == before


def test_allowed_uncategorised_https_is_passed_through(lesson: Gateway) -> None:
    # Trusting only the origins' own CA: this succeeds only if the client saw the origin's
    # certificate, i.e. the gateway did not decrypt.
    with lesson.client("pupil1", trust="origin") as client:
        response = client.get("https://learning.test/passthrough")
    assert response.status_code == 200
    assert "learning.test" in lesson.https_origin.snis


def test_intercepted_allowed_site_shows_the_school_certificate_and_drops_alt_svc(
    lunch: Gateway,
) -> None:
    with lunch.client("staff1", trust="gateway") as client:
        response = client.get("https://www.facebook.com/")
    assert response.status_code == 200
    assert "alt-svc" not in response.headers
    with lunch.client("staff1", trust="origin") as client, pytest.raises(httpx.ConnectError):
        client.get("https://www.facebook.com/")


def _auth(user: str) -> str:
    return "Basic " + b64encode(f"{user}:{PASSWORD}".encode()).decode()


def _tunnel_request(gw: Gateway, *, connect: str, sni: str, host: str) -> bytes:
    """CONNECT to `connect`, TLS with SNI `sni` (trusting the school CA), then GET with Host
    `host`; the raw response."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as raw:
        raw.sendall(
            f"CONNECT {connect}:443 HTTP/1.1\r\nHost: {connect}:443\r\n"
            f"Proxy-Authorization: {_auth('staff1')}\r\n\r\n".encode()
        )
        reply = raw.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=str(gw.ca_pem))
        context.check_hostname = False  # the point is to lie about the name
        with context.wrap_socket(raw, server_hostname=sni) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while chunk := tls.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("connect", "sni", "host"),
    [
        ("www.facebook.com", "x.com", "www.facebook.com"),  # SNI differs from CONNECT
        ("www.facebook.com", "www.facebook.com", "x.com"),  # Host differs (domain fronting)
    ],
)
def test_connect_sni_host_mismatch_is_blocked(
    lunch: Gateway, connect: str, sni: str, host: str
) -> None:
    reply = _tunnel_request(lunch, connect=connect, sni=sni, host=host)
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
    assert b"host_mismatch" in reply
    assert not lunch.contacted("x.com")


def test_plain_http_host_header_mismatch_is_blocked(lunch: Gateway) -> None:
    with lunch.client("staff1") as client:
        response = client.get("http://learning.test/", headers={"Host": "x.com"})
    assert response.status_code == 403
    assert "host_mismatch" in response.text
    assert not lunch.contacted("x.com")


def test_sensitive_site_is_passed_through_even_when_categorised(lesson: Gateway) -> None:
    with lesson.client("pupil1", trust="origin") as client:
        assert client.get("https://bank.test/").status_code == 200


def test_pac_and_ca_are_served_by_the_gateway(lesson: Gateway) -> None:
    base = f"http://127.0.0.1:{lesson.port}"
    with httpx.Client(timeout=10, trust_env=False) as client:
        pac = client.get(f"{base}/proxy.pac")
        wpad = client.get(f"{base}/wpad.dat")
        pem = client.get(f"{base}/ca.pem")
        der = client.get(f"{base}/ca.crt")
        index = client.get(f"{base}/")
    assert pac.status_code == 200
    assert pac.headers["content-type"] == "application/x-ns-proxy-autoconfig"
    assert f'"PROXY 127.0.0.1:{lesson.port}"' in pac.text
    assert wpad.text == pac.text
    assert pem.content == lesson.ca_pem.read_bytes()
    assert b"schoolgate CA (Test Primary School)" in der.content
    assert index.status_code == 200


@pytest.fixture
def fault_gateway(tmp_path: Path) -> Iterator[Gateway]:
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)
    with running_gateway(
        tmp_path,
        policy=policy,
        identity=write_identity(tmp_path / "id"),
        extra_scripts=[Path(__file__).parents[1] / "support" / "faulty_decide.py"],
    ) as gw:
        yield gw


def test_an_error_while_deciding_blocks(fault_gateway: Gateway) -> None:
    gw = fault_gateway
    with gw.client("staff1") as client:
        plain = client.get("http://explode.test/")
        with pytest.raises(httpx.ProxyError, match="403"):
            client.get("https://explode.test/")
        control = client.get("http://learning.test/")
    assert plain.status_code == 403
    assert "engine_error" in plain.text
    assert control.status_code == 200
    assert not gw.contacted("explode.test")
    assert "injected fault" in gw.log_text()


def test_a_broken_policy_reload_keeps_the_running_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)
    with running_gateway(tmp_path, policy=policy, identity=write_identity(tmp_path / "id")) as gw:
        assert fetch(gw, "staff1", "http://learning.test/").status_code == 200
        policy.write_text("name: broken\nroles: [this is not a mapping\n")
        wait_for(lambda: "was refused" in gw.log_text(), what="the refused reload")
        assert fetch(gw, "staff1", "https://x.com/").status_code == 403
        assert fetch(gw, "staff1", "http://learning.test/").status_code == 200
        # A good change is picked up: the reload really happens.
        write_policy(policy, in_break=False, extra_x_domains=["learning.test"])
        wait_for(
            lambda: fetch(gw, "staff1", "http://learning.test/").status_code == 403,
            what="the good policy to take effect",
        )


def test_gateway_refuses_to_start_with_a_bad_policy(tmp_path: Path) -> None:
    import subprocess

    from tests.support.gateway import SCHOOLGATE

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nroles: {pupil: p}\ndefault_role: nobody\n")
    result = subprocess.run(
        [
            str(SCHOOLGATE),
            "gateway",
            "--policy",
            str(bad),
            "--data-dir",
            str(tmp_path / "data"),
            "--listen-port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "gateway was not started" in result.stderr
    assert "bad.yaml" in result.stderr


def test_a_websocket_opened_in_the_break_is_cut_when_the_break_ends(tmp_path: Path) -> None:
    from wsproto import ConnectionType, WSConnection
    from wsproto import events as ws_events

    policy = tmp_path / "policy.yaml"
    break_ends = write_policy(policy, in_break=True, break_seconds=25)
    with running_gateway(tmp_path, policy=policy, identity=write_identity(tmp_path / "id")) as gw:
        raw = socket.create_connection(("127.0.0.1", gw.port), timeout=20)
        raw.sendall(
            b"CONNECT www.facebook.com:443 HTTP/1.1\r\nHost: www.facebook.com:443\r\n"
            + f"Proxy-Authorization: {_auth('staff1')}\r\n\r\n".encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=str(gw.ca_pem))
        tls = context.wrap_socket(raw, server_hostname="www.facebook.com")
        ws = WSConnection(ConnectionType.CLIENT)
        tls.sendall(ws.send(ws_events.Request(host="www.facebook.com", target="/chat")))

        def next_event() -> ws_events.Event | None:
            while True:
                for event in ws.events():
                    return event
                data = tls.recv(65536)
                ws.receive_data(data or None)
                if not data:
                    return None

        assert isinstance(next_event(), ws_events.AcceptConnection)
        tls.sendall(ws.send(ws_events.Message(data="hello in the break")))
        echo = next_event()
        assert isinstance(echo, ws_events.TextMessage)
        assert echo.data == "hello in the break"
        # Nothing more is sent: the gateway must close the idle socket itself once the break
        # ends (the policy's lunch ends 25 s after it was written).
        tls.settimeout(120)
        try:
            closed = next_event()
        except (ConnectionError, ssl.SSLError):
            closed = None
        assert closed is None or isinstance(closed, ws_events.CloseConnection)
        assert datetime.now(UTC) >= break_ends  # cut because the break ended, not before
        tls.close()
        assert fetch(gw, "staff1", "https://www.facebook.com/").status_code == 403
