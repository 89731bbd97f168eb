"""The helpers in proxy_addons/flows.py answer exactly as mitmproxy's do (headers, pretty_host)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import http

from schoolgate.proxy_addons.flows import (
    _authority_hosts,
    has_header,
    header_value,
    pretty_host,
    same_host,
)

NAMES = st.sampled_from(
    [b"Proxy-Authorization", b"proxy-authorization", b"PROXY-AUTHORIZATION", b"Host", b"X-A"]
)
VALUES = st.binary(max_size=20).filter(lambda v: b"\r" not in v and b"\n" not in v)


@given(st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_header_helpers_agree_with_mitmproxy(fields: list[tuple[bytes, bytes]]) -> None:
    headers = http.Headers(fields)
    for name in (b"proxy-authorization", b"host", b"x-a", b"upgrade"):
        assert has_header(headers, name) == (name in headers)
        assert header_value(headers, name) == headers.get(name)


def test_same_host_spelt_the_same_is_still_checked() -> None:
    assert same_host("example.com", "example.com")
    assert same_host("Example.COM.", "example.com")
    assert not same_host("bad host", "bad host")  # not a host at all, however it is spelt
    assert not same_host("a.example.com", "example.com")


AUTHORITIES = st.text(min_size=0, max_size=40) | st.sampled_from(
    [
        "x.com",
        "WWW.Instagram.COM.:443",
        "[::1]:8080",
        "[::1",
        "bücher.de",
        "xn--bcher-kva.de:80",
        "a..b",
        "host:99999",
        "ｘ.ｃｏｍ",
        "a" * 300 + ".example",
    ]
)


def request_with(authority: str | None, version: str = "HTTP/1.1") -> http.Request:
    headers = http.Headers() if authority is None else http.Headers(Host=authority)
    return http.Request(
        "origin.example", 80, b"GET", b"http", b"", b"/", version.encode(), headers, b"", None, 0, 0
    )


@given(AUTHORITIES, st.sampled_from(["HTTP/1.1", "HTTP/2.0"]))
def test_pretty_host_is_mitmproxys_remembered(authority: str, version: str) -> None:
    for header in (authority, None):
        request = request_with(header, version)
        assert pretty_host(request) == request.pretty_host
        assert pretty_host(request) == request.pretty_host  # and again, from the memo


def test_a_huge_host_header_is_read_but_not_remembered() -> None:
    huge = "a" * 60_000 + ".example"
    before = _authority_hosts.cache_info().currsize
    request = request_with(huge)
    assert pretty_host(request) == request.pretty_host
    assert _authority_hosts.cache_info().currsize == before
