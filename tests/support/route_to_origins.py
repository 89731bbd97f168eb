"""Test-only mitmdump script: sends traffic for the test's host names to local origins.

This machine has no DNS, so allowed hosts are routed here, after schoolgate's addons have
decided: intercepted requests by editing the request's destination (put back once the response
is in, so later checks of the flow see what the client asked for), passed-through TLS by editing
the server address. Never used outside tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

ORIGINAL = "test.original_destination"


class RouteToOrigins:
    def __init__(self) -> None:
        self.routes: dict[str, dict[str, int]] = {}

    def load(self, loader: Loader) -> None:
        loader.add_option("test_routes", str, "", "JSON file: host -> {http: port, https: port}")

    def configure(self, updated: set[str]) -> None:
        if "test_routes" in updated and ctx.options.test_routes:
            self.routes = json.loads(Path(ctx.options.test_routes).read_text())

    def _port(self, host: str, scheme: str) -> int | None:
        host = host.lower().rstrip(".")
        for name, ports in self.routes.items():
            if host == name or host.endswith("." + name):
                return ports.get(scheme)
        return None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error:
            return
        port = self._port(flow.request.host, flow.request.scheme)
        if port is None:
            return
        flow.metadata[ORIGINAL] = (flow.request.host, flow.request.port)
        host_header = flow.request.host_header
        flow.request.host = "127.0.0.1"
        flow.request.port = port
        flow.request.host_header = host_header

    def response(self, flow: http.HTTPFlow) -> None:
        original: Any = flow.metadata.get(ORIGINAL)
        if original:
            flow.request.data.host, flow.request.data.port = original

    def server_connect(self, data: ServerConnectionHookData) -> None:
        if data.server.address is None:
            return
        host, port = data.server.address
        target = self._port(str(host), "https" if port == 443 else "http")
        if target is not None:
            data.server.address = ("127.0.0.1", target)


addons = [RouteToOrigins()]
