"""The header helpers in proxy_addons/flows.py answer exactly as mitmproxy's Headers do."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import http

from schoolgate.proxy_addons.flows import has_header, header_value, same_host

NAMES = st.sampled_from(
    [b"Proxy-Authorization", b"proxy-authorization", b"PROXY-AUTHORIZATION", b"Host", b"X-A"]
)
VALUES = st.binary(max_size=20).filter(lambda v: b"\r" not in v and b"\n" not in v)


@given(st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_header_helpers_agree_with_mitmproxy(fields: list[tuple[bytes, bytes]]) -> None:
    headers = http.Headers(fields)
    assert has_header(headers, b"proxy-authorization") == ("Proxy-Authorization" in headers)
    assert header_value(headers, b"proxy-authorization") == headers.get("Proxy-Authorization")


def test_same_host_spelt_the_same_is_still_checked() -> None:
    assert same_host("example.com", "example.com")
    assert same_host("Example.COM.", "example.com")
    assert not same_host("bad host", "bad host")  # not a host at all, however it is spelt
    assert not same_host("a.example.com", "example.com")
