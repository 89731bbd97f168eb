"""The gateway's addons, in the order mitmproxy runs them; the order is the precedence.

1. GatewayPages - requests addressed to the gateway itself (PAC, CA, instructions) are answered
                  first: browsers fetch the PAC file without proxy credentials, and such a
                  request must never be forwarded (mitmproxy would send it to itself).
2. Identify     - who is asking (proxy auth, subnet, else the default role); answers 407s.
3. Enforce      - the policy's verdict at CONNECT, ClientHello and every request; block pages.
4. StripAltSvc  - allowed responses: drop Alt-Svc (no HTTP/3 round the proxy), stream bodies.

Each addon leaves a flow alone once an earlier one has answered it (`flow.response` set).
"""

from __future__ import annotations

from proxy_addons.altsvc import StripAltSvc
from proxy_addons.enforce import Enforce
from proxy_addons.gateway_pages import GatewayPages
from proxy_addons.identity import Identify

addons: list[object] = [
    GatewayPages(),
    Identify(),
    Enforce(),
    StripAltSvc(),
]
