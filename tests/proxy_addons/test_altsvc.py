"""StripAltSvc: no HTTP/3 advertisements reach the browser; allowed responses are streamed."""

from __future__ import annotations

from mitmproxy.test import tflow, tutils

from schoolgate.proxy_addons.altsvc import StripAltSvc


def test_alt_svc_is_dropped_and_the_response_streamed() -> None:
    flow = tflow.tflow(
        resp=tutils.tresp(headers=[(b"Alt-Svc", b'h3=":443"'), (b"Content-Type", b"text/html")])
    )
    StripAltSvc().responseheaders(flow)
    assert flow.response is not None
    assert "alt-svc" not in flow.response.headers
    assert flow.response.headers["content-type"] == "text/html"
    assert flow.response.stream is True


def test_a_flow_without_response_is_left_alone() -> None:
    flow = tflow.tflow()
    StripAltSvc().responseheaders(flow)
    assert flow.response is None
