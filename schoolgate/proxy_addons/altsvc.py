"""Keep browsers on TCP, where the gateway sees them, and keep allowed responses flowing.

Dropping `Alt-Svc` stops sites advertising HTTP/3 (QUIC over UDP), which would go round the
proxy. Streaming allowed responses means the gateway never holds a whole download in memory.
"""

from __future__ import annotations

from mitmproxy import http

from schoolgate.proxy_addons.flows import has_header


class StripAltSvc:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Only upstream responses reach this hook; block pages are made locally and never do.
        if flow.response is None:
            return
        if has_header(flow.response.headers, b"alt-svc"):
            del flow.response.headers["alt-svc"]
        flow.response.stream = True
