"""The bytes the front door answers a CONNECT with: the usual 200 from a table, anything the
gateway's hooks changed through mitmproxy's own assembly, byte for byte as mitmproxy sends it."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.net.http import http1

from schoolgate.proxy_addons.frontdoor import _assemble, _established


def mitmproxys(response: http.Response) -> bytes:
    return bytes(http1.assemble_response(response))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/1.1"])
def test_the_usual_200_is_the_bytes_mitmproxy_would_send(version: bytes) -> None:
    response = _established(version)
    assert _assemble(response) == mitmproxys(response)
    assert _assemble(response).startswith(version + b" 200 Connection established\r\n")


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.headers.add("Proxy-Agent", "schoolgate"),
        lambda r: setattr(r, "status_code", 403),
        lambda r: setattr(r, "reason", "Blocked"),
        lambda r: setattr(r, "content", b"no"),
        lambda r: setattr(r, "http_version", "HTTP/2.0"),
    ],
)
def test_a_200_the_hooks_changed_is_assembled_by_mitmproxy(change: object) -> None:
    response = _established(b"HTTP/1.1")
    usual = _assemble(response)
    change(response)  # type: ignore[operator]
    assert _assemble(response) == mitmproxys(response) != usual
