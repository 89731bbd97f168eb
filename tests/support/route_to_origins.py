"""Test-only mitmdump script: sends traffic for the test's host names to local origins.

This machine has no DNS. The harness gives the gateway a hosts file (schoolgate_hosts_file) that
names every origin host with one stand-in public address, STAND_IN; the gateway decides, looks
the name up there, checks the address and pins the connection to it; then this script, loaded
after schoolgate's addons, turns a connection to STAND_IN (or, without the hosts file, to an
origin host name) into one to the local origin: the HTTPS origin for TLS or port 443, else the
HTTP origin. Nothing is ever sent to STAND_IN. Never used outside tests.
"""

from __future__ import annotations

import json
from pathlib import Path

from mitmproxy import ctx
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

STAND_IN = "192.0.0.9"  # a public address no test ever reaches: always rewritten here


class RouteToOrigins:
    def __init__(self) -> None:
        self.routes: dict[str, dict[str, int]] = {}

    def load(self, loader: Loader) -> None:
        loader.add_option("test_routes", str, "", "JSON file: host -> {http: port, https: port}")

    def configure(self, updated: set[str]) -> None:
        if "test_routes" in updated and ctx.options.test_routes:
            self.routes = json.loads(Path(ctx.options.test_routes).read_text())

    def _ports(self, host: str) -> dict[str, int] | None:
        host = host.lower().rstrip(".")
        if host == STAND_IN:
            return next(iter(self.routes.values()), None)
        for name, ports in self.routes.items():
            if host == name or host.endswith("." + name):
                return ports
        return None

    def server_connect(self, data: ServerConnectionHookData) -> None:
        if data.server.address is None or data.server.error:
            return
        host, port = data.server.address
        ports = self._ports(str(host))
        if ports is None:
            if str(host) == STAND_IN:
                data.server.error = "test routing: no origin for the stand-in address"
            return
        scheme = "https" if data.server.tls or port == 443 else "http"
        data.server.address = ("127.0.0.1", ports[scheme])


addons = [RouteToOrigins()]
