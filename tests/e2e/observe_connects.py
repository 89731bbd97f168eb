"""Test-only mitmdump script: writes down every upstream connection the gateway is about to open
(after schoolgate's addons have checked and pinned it) and lets none of them leave loopback.

Loaded after schoolgate's addons and before tests/support/route_to_origins.py. A connection to
anything but loopback or the harness's stand-in address (which route_to_origins turns into a
local origin) is refused here, so even a failing test sends nothing off this machine.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from mitmproxy import ctx
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

STAND_IN = "192.0.0.9"  # tests/support/route_to_origins.py


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ObserveConnects:
    def load(self, loader: Loader) -> None:
        loader.add_option("test_connects_log", str, "", "JSON lines: every upstream connect")

    def server_connect(self, data: ServerConnectionHookData) -> None:
        if data.server.address is None:
            return
        host, port = str(data.server.address[0]), int(data.server.address[1])
        refused_before = data.server.error
        if not refused_before and host != STAND_IN and not _loopback(host):
            data.server.error = "test: never sent off loopback"
        if ctx.options.test_connects_log:
            with Path(ctx.options.test_connects_log).open("a") as log:
                log.write(
                    json.dumps({"host": host, "port": port, "refused_by_gateway": refused_before})
                    + "\n"
                )


addons = [ObserveConnects()]
