"""The front door's CONNECT reader (proxy_addons/frontdoor_connect.py) against mitmproxy's own
request-head parser: whatever it reads, mitmproxy reads the same way; whatever it does not
fully understand is None (the front door then uses mitmproxy's parser)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.net.http import http1

from schoolgate.proxy_addons.frontdoor_connect import read_connect


def agrees(head: bytes) -> http.Request | None:
    ours = read_connect(head)
    if ours is None:
        return None
    theirs = http1.read_request_head(head.split(b"\r\n"))
    for name in ("host", "port", "method", "scheme", "authority", "path", "http_version"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.headers.fields == theirs.headers.fields
    return ours


def test_a_plain_connect_is_read_as_mitmproxy_reads_it() -> None:
    request = agrees(
        b"CONNECT www.BBC.co.uk:443 HTTP/1.1\r\nHost: www.bbc.co.uk:443\r\n"
        b"Proxy-Authorization: Basic cHVwaWwxOnNlY3JldA==  \r\nUser-Agent: curl/8.0"
    )
    assert request is not None
    assert (request.host, request.port) == ("www.BBC.co.uk", 443)
    assert request.headers["proxy-authorization"] == "Basic cHVwaWwxOnNlY3JldA=="


@pytest.mark.parametrize(
    "head",
    [
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example",
        b"CONNECT [::1]:443 HTTP/1.1",
        b"CONNECT xn--bcher-kva.example:443 HTTP/1.1",
        b"CONNECT a.example:0 HTTP/1.1",
        b"CONNECT a.example:70000 HTTP/1.1",
        b"CONNECT a.example HTTP/1.1",
        b"CONNECT a.example:443 HTTP/2.0",
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n folded",
        b"CONNECT a.example:443 HTTP/1.1\r\nHost : a.example",
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a\nX: b",
        b"CONNECT a.example:443 HTTP/1.1\r\nX: \x00",
        b"CONNECT a..example:443 HTTP/1.1",
        b"CONNECT  a.example:443 HTTP/1.1",
    ],
)
def test_what_it_does_not_fully_understand_is_left_to_mitmproxy(head: bytes) -> None:
    assert read_connect(head) is None


HOSTS = st.sampled_from(
    ["a.example", "A.Example", "xn--bcher-kva.example", "a_b.example", "-a.example", "1.2.3.4"]
) | st.text("abcXY09.-_:[]", min_size=0, max_size=12)
HEADERS = st.lists(
    st.sampled_from([b"Host: a", b"X-A:  b ", b" folded", b"Bad Name: x", b"Y:"])
    | st.binary(max_size=12),
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(
    HOSTS,
    st.sampled_from(["443", "0", "65536", "00443", "8080", "x"]),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "http/1.1"]),
    HEADERS,
)
def test_built_connects_are_read_as_mitmproxy_reads_them_or_left_to_it(
    host: str, port: str, version: str, headers: list[bytes]
) -> None:
    head = b"\r\n".join([f"CONNECT {host}:{port} {version}".encode(), *headers])
    agrees(head)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_after_a_connect_line_never_disagree(junk: bytes) -> None:
    agrees(b"CONNECT a.example:443 HTTP/1.1\r\n" + junk)
    agrees(b"CONNECT a.example:443 HTTP/1.1\r\nX: " + junk)


def test_remembered_host_checks_never_keep_a_huge_name() -> None:
    """The host check is remembered per name (a bounded cache); a hostile ClientHello's 60 KB
    server name must not be kept, or 4,096 of them would hold 240 MB."""
    from schoolgate.proxy_addons import detect, frontdoor_connect

    huge = b"a" * 60_000

    def sizes() -> tuple[int, int]:
        return (
            frontdoor_connect.valid_host.cache_info().currsize,
            detect.is_viewer_host.cache_info().currsize,
        )

    before = sizes()
    assert not frontdoor_connect.valid_host(huge)
    assert detect.is_viewer_host("a" * 60_000 + ".web.archive.org")  # still answered right
    assert not detect.is_viewer_host("a" * 60_000 + ".example.org")
    assert sizes() == before
    assert frontdoor_connect.valid_host(b"www.example.com")
    assert detect.is_viewer_host("web.archive.org")
    assert frontdoor_connect.valid_host.cache_info().currsize >= 1
    assert detect.is_viewer_host.cache_info().currsize >= 1
