"""Detect: the pure detection helpers as tables, and the addon after a real Enforce (taddons/tflow,
a real policy file) for each technique."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import exceptions, http
from mitmproxy.connection import Server
from mitmproxy.proxy import context as proxy_context
from mitmproxy.test import taddons, tflow, tutils
from mitmproxy.tls import ClientHello, ClientHelloData, TlsData

from schoolgate.policy.model import Decision, Reason, Verdict
from schoolgate.policy.techniques import Technique
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.context import Identity, IdentitySource
from schoolgate.proxy_addons.detect import (
    Detect,
    RepeatCounter,
    doh_evidence,
    ech_refused,
    forwarded_hosts,
    forwarding_values,
    fronted_host,
    has_ech,
    is_viewer_host,
    looks_embedded,
    parse_ports,
    url_host,
    viewed_target,
)
from schoolgate.proxy_addons.enforce import Enforce
from schoolgate.proxy_addons.policy_source import PolicySource
from tests.support.gateway import write_policy
from tests.support.tls_hello import ECH, ECH_PAYLOAD, client_hello_body

# --- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "ctype", "accept", "signal"),
    [
        ("/anything", "", "application/dns-message", "", "content-type"),
        ("/x", "", "", "application/dns-json", "accept"),
        ("/x", "", "", "text/html, application/dns-message;q=0.9", "accept"),
        ("/dns-query", "", "", "", "path"),
        ("/resolver/dns-query/", "", "", "", "path"),
        ("/", "dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB", "", "", "query"),
        ("/search", "q=dns", "", "", None),  # the word in a search is not DoH
        ("/dns-queryx", "", "text/html", "text/html", None),
        ("/", "adns=1", "application/json", "*/*", None),
    ],
)
def test_doh_evidence(path: str, query: str, ctype: str, accept: str, signal: str | None) -> None:
    found = doh_evidence(path, query, ctype, accept)
    assert (found["signal"] if found else None) == signal


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("https://www.instagram.com/p/abc", "www.instagram.com"),
        ("http:/instagram.com/", "instagram.com"),  # Wayback collapses the slashes
        ("instagram.com/foo", "instagram.com"),
        ("*.instagram.com", "instagram.com"),
        ("https%3A%2F%2FX.COM%2Fhome", "x.com"),
        ("https://user:pw@x.com:8443/a", "x.com"),
        ("AbC12", None),  # an archive's short id, no host
        ("", None),
        ("https://*/", None),
        ("X.COM:443/home", "x.com"),  # a host and port, not a scheme "x.com:"
        ("ssl:pbs.twimg.com/a.jpg", "pbs.twimg.com"),  # weserv's old spelling of https
    ],
)
def test_url_host(text: str, host: str | None) -> None:
    assert url_host(text) == host


ARCHIVE, PROXY = Technique.ARCHIVE_VIEWER, Technique.REWRITING_PROXY


@pytest.mark.parametrize(
    ("authority", "asked", "fronted"),
    [
        ("", "www.facebook.com", None),  # origin form: no URL in the request line
        ("www.facebook.com", "www.facebook.com", None),
        ("WWW.Facebook.com.:443", "www.facebook.com", None),
        ("x.com", "www.facebook.com", "x.com"),
        ("x.com:443", "learning.test", "x.com"),
        ("[::1]:443", "learning.test", "::1"),
        ("a b", "learning.test", "a b"),  # not a host at all: still not the site asked for
    ],
)
def test_fronted_host(authority: str, asked: str, fronted: str | None) -> None:
    assert fronted_host(authority, asked) == fronted


@pytest.mark.parametrize(
    ("fields", "found"),
    [
        ([("X-Forwarded-Host", "x.com")], ["x.com"]),
        ([("X-Forwarded-Host", "www.facebook.com, X.COM:443")], ["x.com"]),
        ([("x-host", "https://www.instagram.com/")], ["www.instagram.com"]),
        ([("Forwarded", 'for=1.2.3.4;host="x.com";proto=https')], ["x.com"]),
        ([("Forwarded", "for=1.2.3.4, host=x.com")], ["x.com"]),
        ([("Forwarded", "for=1.2.3.4;proto=https")], []),
        ([("X-Original-Host", "x.com"), ("X-Forwarded-Server", "x.com")], ["x.com"]),
        ([("X-Forwarded-Host", "www.facebook.com")], []),
        ([("X-Forwarded-For", "x.com")], []),  # an address list, not a site
    ],
)
def test_forwarded_hosts(fields: list[tuple[str, str]], found: list[str]) -> None:
    headers = http.Headers([(k.encode(), v.encode()) for k, v in fields])
    assert forwarded_hosts(headers, "www.facebook.com") == found


def forwarding_values_through_mitmproxy(headers: http.Headers) -> list[str]:
    """forwarding_values as it was written with mitmproxy's `get_all` (one look-up a name)."""
    values = [
        value
        for name in ("x-forwarded-host", "x-host", "x-original-host", "x-forwarded-server")
        for value in headers.get_all(name)
    ]
    for value in headers.get_all("forwarded"):
        values += re.findall(r"(?:^|[;,\s])host\s*=\s*\"?([^\";,\s]+)", value, re.IGNORECASE)
    return values


FORWARDING = st.sampled_from(
    [
        *(b"X-Forwarded-Host", b"x-host", b"X-ORIGINAL-HOST", b"x-forwarded-server", b"Forwarded"),
        *(b"X-Forwarded-For", b"Host", b"Accept"),
    ]
)
SITES = st.sampled_from(
    [
        *("x.com", "X.COM:443", "www.facebook.com", "https://i.instagram.com/"),
        *("for=1.2.3.4;host=x.com", 'host="b\xc3\xbccher.de"', "a.example, b.example", ""),
        "h\xff.example",
    ]
)


@given(st.lists(st.tuples(FORWARDING, SITES), max_size=6))
def test_forwarding_values_in_one_pass_are_mitmproxys_in_order(
    fields: list[tuple[bytes, str]],
) -> None:
    headers = http.Headers([(name, value.encode("latin-1")) for name, value in fields])
    assert forwarding_values(headers) == forwarding_values_through_mitmproxy(headers)


@pytest.mark.parametrize(
    ("host", "path", "query", "found"),
    [
        (
            "web.archive.org",
            "/web/20240101000000/https://www.instagram.com/",
            "",
            (ARCHIVE, "www.instagram.com"),
        ),
        ("web.archive.org", "/web/2024*/instagram.com*", "", (ARCHIVE, "instagram.com")),
        ("web.archive.org", "/web/*/instagram.com/*", "", (ARCHIVE, "instagram.com")),
        ("web.archive.org", "/web/20240101000000id_/http:/x.com/home", "", (ARCHIVE, "x.com")),
        ("web.archive.org", "/web/https://x.com", "", (ARCHIVE, "x.com")),
        ("web.archive.org", "/cdx/search/cdx", "url=instagram.com", (ARCHIVE, "instagram.com")),
        ("web.archive.org", "/", "", None),
        ("archive.ph", "/newest/https://www.instagram.com/", "", (ARCHIVE, "www.instagram.com")),
        ("archive.today", "/2024.01.01-000000/https://x.com/", "", (ARCHIVE, "x.com")),
        ("archive.is", "/https://x.com/elonmusk", "", (ARCHIVE, "x.com")),
        ("archive.ph", "/submit/", "url=https%3A%2F%2Fx.com%2F", (ARCHIVE, "x.com")),
        ("archive.ph", "/AbC12", "", None),  # a short id: the target is unknown
        (
            "webcache.googleusercontent.com",
            "/search",
            "q=cache:https://www.instagram.com/",
            (ARCHIVE, "www.instagram.com"),
        ),
        (
            "webcache.googleusercontent.com",
            "/search",
            "q=cache:AbCdEf123:x.com/home",
            (ARCHIVE, "x.com"),
        ),
        (
            "translate.google.com",
            "/translate",
            "sl=auto&tl=fr&u=https://www.instagram.com/",
            (PROXY, "www.instagram.com"),
        ),
        ("translate.google.co.uk", "/website", "u=x.com", (PROXY, "x.com")),
        ("translate.googleusercontent.com", "/translate_c", "u=https://x.com", (PROXY, "x.com")),
        ("www.translatetheweb.com", "/", "from=&to=en&a=https://x.com/", (PROXY, "x.com")),
        ("translate.google.com", "/", "", None),
        ("www.bbc.co.uk", "/web/2024/https://x.com", "", None),  # not an archive
        # found by the outside checks (tests/e2e/test_outside_checks.py)
        ("r.jina.ai", "/https://x.com/home", "", (PROXY, "x.com")),
        ("r.jina.ai", "/www.instagram.com", "", (PROXY, "www.instagram.com")),
        ("r.jina.ai", "/", "", None),
        ("translate.yandex.com", "/translate", "url=https://x.com/&lang=en-fr", (PROXY, "x.com")),
        (
            "translate.yandex.ru",
            "/translate",
            "url=www.instagram.com",
            (PROXY, "www.instagram.com"),
        ),
        (
            "translated.turbopages.org",
            "/proxy_u/en-fr.fr.1a2b-3c4d-74722d776562/https/www.instagram.com/p/1/",
            "",
            (PROXY, "www.instagram.com"),
        ),
        ("translated.turbopages.org", "/", "", None),
        # image proxies: a blocked platform's pictures by their address
        (
            "i0.wp.com",
            "/scontent.cdninstagram.com/v/t51/1.jpg",
            "",
            (PROXY, "scontent.cdninstagram.com"),
        ),
        ("i2.wp.com", "/pbs.twimg.com/media/a.jpg", "ssl=1", (PROXY, "pbs.twimg.com")),
        ("i1.wp.com", "/www.bbc.co.uk/news/1.jpg", "", (PROXY, "www.bbc.co.uk")),
        ("wsrv.nl", "/", "url=https://pbs.twimg.com/media/a.jpg&w=300", (PROXY, "pbs.twimg.com")),
        (
            "images.weserv.nl",
            "/",
            "url=ssl:scontent.cdninstagram.com/1.jpg",
            (PROXY, "scontent.cdninstagram.com"),
        ),
        ("cdn.statically.io", "/img/pbs.twimg.com/media/a.jpg", "", (PROXY, "pbs.twimg.com")),
        ("cdn.statically.io", "/screenshot/https://x.com/", "", (PROXY, "x.com")),
        (
            "images1-focus-opensocial.googleusercontent.com",
            "/gadgets/proxy",
            "container=focus&url=https://pbs.twimg.com/a.jpg",
            (PROXY, "pbs.twimg.com"),
        ),
        ("i0.wp.com", "/", "", None),
        ("wsrv.nl", "/", "", None),
        ("i9.wp.com", "/x.com/a.jpg", "", None),  # not Jetpack's
    ],
)
def test_viewed_target(
    host: str, path: str, query: str, found: tuple[Technique, str] | None
) -> None:
    assert viewed_target(host, path, query) == found
    if found is not None:  # decrypted, so that the path can be read at all
        assert is_viewer_host(host)


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        ("OpenSSL Error([('SSL routines', '', 'tlsv1 alert ech required')])", True),
        ("OpenSSL Error([('SSL routines', '', 'ssl/tls alert ech_required')])", True),
        ("OpenSSL Error([('SSL routines', '', 'tlsv1 alert unknown (121)')])", True),
        ("OpenSSL Error([('SSL routines', '', 'tlsv1 alert unknown ca')])", False),
        ("The client may not trust the proxy's certificate (technical detail)", False),
        ("connection closed", False),
    ],
)
def test_ech_refused(error: str, refused: bool) -> None:
    assert ech_refused(error) is refused


def test_has_ech() -> None:
    assert has_ech(ClientHello(client_hello_body("ech.test", {ECH: ECH_PAYLOAD})).extensions)
    assert not has_ech(ClientHello(client_hello_body("plain.test")).extensions)


@pytest.mark.parametrize(
    ("headers", "embedded"),
    [
        (
            {
                "sec-fetch-dest": "iframe",
                "sec-fetch-site": "cross-site",
                "sec-fetch-mode": "navigate",
                "referer": "https://www.bbc.co.uk/",
            },
            True,
        ),
        (
            {
                "sec-fetch-dest": "script",
                "sec-fetch-site": "cross-site",
                "sec-fetch-mode": "no-cors",
            },
            True,
        ),
        (
            {
                "sec-fetch-dest": "document",
                "sec-fetch-site": "cross-site",
                "sec-fetch-mode": "navigate",
                "referer": "https://www.bbc.co.uk/",
            },
            False,
        ),  # a link
        ({"sec-fetch-dest": "document", "sec-fetch-site": "none"}, False),  # typed in
        ({"sec-fetch-dest": "image", "sec-fetch-site": "same-origin"}, False),  # its own favicon
        ({"referer": "https://www.bbc.co.uk/", "accept": "*/*"}, True),  # no Sec-Fetch: Accept
        ({"referer": "https://www.bbc.co.uk/", "accept": "text/html,*/*"}, False),
        ({"accept": "*/*"}, False),  # nothing says what embedded it
    ],
)
def test_looks_embedded(headers: dict[str, str], embedded: bool) -> None:
    assert looks_embedded(headers) is embedded


def test_repeat_counter_counts_per_person_and_platform_in_a_sliding_window() -> None:
    counter = RepeatCounter(3, 60)
    assert counter.add("pupil1", "x", 0) is None
    assert counter.add("pupil1", "instagram", 1) is None  # another platform
    assert counter.add("pupil2", "x", 2) is None  # another person
    assert counter.add("pupil1", "x", 30) is None
    assert counter.add("pupil1", "x", 59) == 3
    assert counter.add("pupil1", "x", 60) is None  # counting starts again
    assert counter.add("pupil1", "x", 200) is None
    assert counter.add("pupil1", "x", 261) is None  # 60 has left the window
    assert counter.add("pupil1", "x", 262) is None


def test_repeat_counter_stays_bounded() -> None:
    counter = RepeatCounter(3, 60, max_keys=10)
    for i in range(100):
        counter.add(f"user{i}", "x", i * 100)
    assert len(counter._seen) <= 10


def test_ports_may_be_comma_separated() -> None:
    assert parse_ports(["80, 443,8443"]) == frozenset({80, 443, 8443})


@pytest.mark.parametrize(
    ("values", "ok"),
    [
        (["80", "443"], True),
        (["8080"], True),
        (["http"], False),
        (["0"], False),
        (["70000"], False),
    ],
)
def test_parse_ports(values: list[str], ok: bool) -> None:
    if ok:
        assert parse_ports(values) == frozenset(int(v) for v in values)
    else:
        with pytest.raises(ValueError, match="not a port"):
            parse_ports(values)


# --- the addon after Enforce ------------------------------------------------------------------


@pytest.fixture
def addons(tmp_path: Path) -> Iterator[tuple[Enforce, Detect, taddons.context]]:
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)
    source = PolicySource()
    enforce, detect = Enforce(source), Detect()
    with taddons.context(source, enforce, detect) as tctx:
        tctx.configure(
            enforce,
            schoolgate_policy=str(policy),
            schoolgate_secret_file=str(tmp_path / "secret"),
            schoolgate_repeat_count=3,
        )
        yield enforce, detect, tctx


def request(
    host: str,
    path: str = "/",
    *,
    user: str = "pupil1",
    role: str = "pupil",
    headers: dict[str, str] | None = None,
) -> http.HTTPFlow:
    flow = tflow.tflow(
        req=tutils.treq(host=host, port=443, scheme=b"https", authority=b"", path=path.encode())
    )
    flow.request.headers["Host"] = host
    for name, value in (headers or {}).items():
        flow.request.headers[name] = value
    flow.client_conn.sni = host
    flow.metadata[context.IDENTITY] = Identity(role=role, source=IdentitySource.LOCAL, user=user)
    return flow


def run(addons: tuple[Enforce, Detect, taddons.context], flow: http.HTTPFlow) -> Decision:
    enforce, detect, _ = addons
    enforce.requestheaders(flow)
    detect.requestheaders(flow)
    decision = flow.metadata[context.DECISION]
    assert isinstance(decision, Decision)
    return decision


@pytest.mark.parametrize(
    ("host", "path", "headers", "technique"),
    [
        (
            "learning.test",
            "/anything",
            {"content-type": "application/dns-message"},
            Technique.DOH_CONTENT,
        ),
        ("learning.test", "/x", {"accept": "application/dns-json"}, Technique.DOH_CONTENT),
        ("learning.test", "/dns-query?dns=AAAB", {}, Technique.DOH_CONTENT),
        ("web.archive.org", "/web/2024/https://www.instagram.com/", {}, Technique.ARCHIVE_VIEWER),
        ("archive.ph", "/newest/https://x.com/", {}, Technique.ARCHIVE_VIEWER),
        (
            "translate.google.com",
            "/translate?u=https://www.instagram.com/",
            {},
            Technique.REWRITING_PROXY,
        ),
    ],
)
def test_signals_on_allowed_requests_are_blocked_with_the_block_page(
    addons: tuple[Enforce, Detect, taddons.context],
    host: str,
    path: str,
    headers: dict[str, str],
    technique: Technique,
) -> None:
    flow = request(host, path, headers=headers)
    decision = run(addons, flow)
    assert (decision.verdict, decision.reason, decision.technique) == (
        Verdict.BLOCK,
        Reason.CIRCUMVENTION,
        technique,
    )
    assert flow.metadata[context.TECHNIQUE] == technique
    assert flow.metadata[context.EVIDENCE]
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert b"This website is blocked at school" in flow.response.content


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("web.archive.org", "/web/2024/https://www.bbc.co.uk/"),  # an allowed page, archived
        ("translate.google.com", "/translate?u=https://learning.test/"),
        ("archive.ph", "/AbC12"),
        ("learning.test", "/search?q=dns+query"),
    ],
)
def test_allowed_viewers_and_lookalikes_pass(
    addons: tuple[Enforce, Detect, taddons.context], host: str, path: str
) -> None:
    flow = request(host, path)
    assert run(addons, flow).allowed
    assert flow.response is None
    assert context.TECHNIQUE not in flow.metadata


def test_archive_target_is_decided_for_this_person(
    addons: tuple[Enforce, Detect, taddons.context],
) -> None:
    """Facebook archived: blocked for a pupil, allowed for the official-accounts role."""
    path = "/web/2024/https://www.facebook.com/school"
    assert not run(addons, request("web.archive.org", path)).allowed
    assert run(
        addons, request("web.archive.org", path, user="smm1", role="social_media_manager")
    ).allowed


WIDGET = {
    "sec-fetch-dest": "iframe",
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "navigate",
    "referer": "https://www.bbc.co.uk/news",
}


def test_a_widget_on_an_allowed_page_is_blocked_but_not_an_attempt(
    addons: tuple[Enforce, Detect, taddons.context],
) -> None:
    for _ in range(5):  # more than the repeat threshold: widgets never add up
        flow = request("platform.twitter.com", "/embed/Tweet.html", headers=WIDGET)
        decision = run(addons, flow)
        assert not decision.allowed
        assert flow.response is not None
        assert flow.metadata[context.TECHNIQUE] == Technique.EMBEDDED_WIDGET
        assert flow.metadata[context.EVIDENCE]["page"] == "www.bbc.co.uk"


def test_a_widget_on_a_blocked_page_is_not_a_widget(
    addons: tuple[Enforce, Detect, taddons.context],
) -> None:
    headers = {**WIDGET, "referer": "https://www.instagram.com/"}
    flow = request("platform.twitter.com", "/embed/Tweet.html", headers=headers)
    run(addons, flow)
    assert flow.metadata.get(context.TECHNIQUE) != Technique.EMBEDDED_WIDGET


def test_the_same_blocked_platform_again_and_again_is_one_attempt(
    addons: tuple[Enforce, Detect, taddons.context],
) -> None:
    found = []
    for i in range(7):
        host = "x.com" if i % 2 else "twitter.com"  # one platform, several names
        flow = request(host, headers={"sec-fetch-dest": "document", "sec-fetch-site": "none"})
        run(addons, flow)
        found.append(flow.metadata.get(context.TECHNIQUE))
    assert found == [
        None,
        None,
        Technique.REPEATED_ATTEMPTS,
        None,
        None,
        Technique.REPEATED_ATTEMPTS,
        None,
    ]
    favicon = request(
        "x.com",
        "/favicon.ico",
        headers={"sec-fetch-dest": "image", "sec-fetch-site": "same-origin"},
    )
    run(addons, favicon)
    run(addons, favicon)
    assert context.TECHNIQUE not in favicon.metadata


def connect(host: str, port: int) -> http.HTTPFlow:
    flow = tflow.tflow(
        req=tutils.treq(
            method=b"CONNECT", host=host, port=port, path=b"", authority=f"{host}:{port}".encode()
        )
    )
    flow.metadata[context.IDENTITY] = Identity(
        role="pupil", source=IdentitySource.LOCAL, user="pupil1"
    )
    return flow


@pytest.mark.parametrize("host", ["learning.test", "x.com", "www.tiktok.com"])
def test_unusual_connect_port_is_refused_for_allowed_and_blocked_hosts(
    addons: tuple[Enforce, Detect, taddons.context], host: str
) -> None:
    enforce, detect, _ = addons
    for port, blocked in ((443, False), (80, False), (8443, True), (22, True), (6379, True)):
        flow = connect(host, port)
        enforce.http_connect(flow)
        detect.http_connect(flow)
        if not blocked:
            # an allowed host is let through; a blocked one is answered 200 for its block page
            assert flow.response is None, (host, port)
            continue
        assert flow.response is not None, (host, port)
        assert flow.response.status_code == 403
        assert flow.metadata[context.TECHNIQUE] == Technique.UNUSUAL_PORT
        assert flow.metadata[context.EVIDENCE] == {"port": str(port), "kind": "connect"}


def test_the_connect_ports_option_still_overrides_the_policy(
    addons: tuple[Enforce, Detect, taddons.context],
) -> None:
    enforce, detect, tctx = addons
    tctx.configure(detect, schoolgate_connect_ports=["443,8443"])
    for port, blocked in ((8443, False), (80, True)):
        flow = connect("learning.test", port)
        enforce.http_connect(flow)
        detect.http_connect(flow)
        assert (flow.response is not None) is blocked


@pytest.mark.parametrize(("port", "blocked"), [(80, False), (8080, True), (6379, True), (22, True)])
def test_plain_http_goes_only_to_the_policys_http_ports(
    addons: tuple[Enforce, Detect, taddons.context], port: int, blocked: bool
) -> None:
    flow = tflow.tflow(
        req=tutils.treq(host="learning.test", port=port, scheme=b"http", authority=b"", path=b"/")
    )
    flow.request.headers["Host"] = f"learning.test:{port}" if port != 80 else "learning.test"
    flow.client_conn.sni = None  # plain HTTP: no TLS to the gateway
    flow.metadata[context.IDENTITY] = Identity(
        role="staff", source=IdentitySource.LOCAL, user="staff1"
    )
    decision = run(addons, flow)
    assert (flow.response is not None) is blocked
    if blocked:
        assert decision.technique == Technique.UNUSUAL_PORT
        assert flow.metadata[context.EVIDENCE] == {"port": str(port), "kind": "http"}


def test_connect_ports_option_is_validated(addons: tuple[Enforce, Detect, taddons.context]) -> None:
    _, detect, tctx = addons
    with pytest.raises(exceptions.OptionsError, match="schoolgate_connect_ports"):
        tctx.configure(detect, schoolgate_connect_ports=["https"])


def hello(sni: str, extensions: dict[int, bytes] | None = None) -> ClientHelloData:
    ctx = proxy_context.Context(tflow.tclient_conn(), taddons.context().options)  # type: ignore[no-untyped-call]
    ctx.server = Server(address=(sni, 443))
    return ClientHelloData(ctx, ClientHello(client_hello_body(sni, extensions)))


def test_a_dummy_ech_extension_is_intercepted_not_refused(
    addons: tuple[Enforce, Detect, taddons.context],
) -> None:
    enforce, detect, _ = addons
    data = hello("learning.test", {ECH: ECH_PAYLOAD})
    enforce.tls_clienthello(data)
    assert data.ignore_connection  # Enforce would relay this allowed host unread ...
    detect.tls_clienthello(data)
    assert not data.ignore_connection  # ... but nothing carrying ECH is relayed unread
    note = context.hello_notes[data.context.client.id]
    assert note.decision.allowed
    assert note.decision.technique is None  # browsers send a dummy one: not an attempt


def test_ech_the_client_insists_on_is_an_attempt(
    addons: tuple[Enforce, Detect, taddons.context],
) -> None:
    enforce, detect, _ = addons
    data = hello("learning.test", {ECH: ECH_PAYLOAD})
    enforce.tls_clienthello(data)
    detect.tls_clienthello(data)
    client = data.context.client
    client.error = "OpenSSL Error([('SSL routines', '', 'tlsv1 alert ech required')])"
    detect.tls_failed_client(TlsData(client, data.context))
    note = context.hello_notes[client.id]
    assert (note.decision.verdict, note.decision.technique) == (Verdict.BLOCK, Technique.ECH)
    assert note.evidence is not None
    assert note.evidence["outer_sni"] == "learning.test"


def test_ech_with_a_sensitive_host_is_still_never_decrypted(
    addons: tuple[Enforce, Detect, taddons.context],
) -> None:
    enforce, detect, _ = addons
    data = hello("bank.test", {ECH: ECH_PAYLOAD})
    enforce.tls_clienthello(data)
    note = context.hello_notes[data.context.client.id]
    context.hello_notes[data.context.client.id] = replace(note, never_decrypt=True)
    detect.tls_clienthello(data)
    assert data.ignore_connection


def test_plain_client_hello_is_left_alone(addons: tuple[Enforce, Detect, taddons.context]) -> None:
    enforce, detect, _ = addons
    data = hello("learning.test")
    enforce.tls_clienthello(data)
    detect.tls_clienthello(data)
    note = context.hello_notes[data.context.client.id]
    assert note.decision.allowed
    assert note.passthrough
    assert note.evidence is None


def test_allowed_archive_viewers_are_decrypted_not_relayed(
    addons: tuple[Enforce, Detect, taddons.context],
) -> None:
    enforce, detect, _ = addons
    for sni, relayed in (
        ("web.archive.org", False),
        ("archive.ph", False),
        ("translate.google.com", False),
        ("learning.test", True),
    ):
        data = hello(sni)
        enforce.tls_clienthello(data)
        detect.tls_clienthello(data)
        assert data.ignore_connection is relayed
        assert context.hello_notes[data.context.client.id].passthrough is relayed


def test_a_tcp_tunnel_is_blocked(addons: tuple[Enforce, Detect, taddons.context]) -> None:
    _, detect, _ = addons
    flow = tflow.ttcpflow()
    flow.server_conn.timestamp_start = None
    detect.tcp_start(flow)
    assert flow.metadata[context.TECHNIQUE] == Technique.TUNNEL_PROTOCOL
    assert not flow.metadata[context.DECISION].allowed
    from mitmproxy.proxy.server_hooks import ServerConnectionHookData

    connect = ServerConnectionHookData(flow.server_conn, flow.client_conn)
    detect.server_connect(connect)
    assert flow.server_conn.error


def test_an_error_while_detecting_blocks(
    addons: tuple[Enforce, Detect, taddons.context], monkeypatch: pytest.MonkeyPatch
) -> None:
    import schoolgate.proxy_addons.detect as detect_module

    def explode(*_args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(detect_module, "doh_evidence", explode)
    flow = request("learning.test")
    decision = run(addons, flow)
    assert decision.reason is Reason.ENGINE_ERROR
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert addons[1].stats.detect_errors == 1
