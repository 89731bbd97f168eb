"""The gateway's addons, in the order mitmproxy runs them; the order is the precedence.

0. PolicySource - the policy and overrides in force (options, validation, snapshots, refresh);
                  decides nothing, so it is first: every addon below that reads the policy gets
                  it by constructor, here.
1. GatewayPages - requests addressed to the gateway itself (PAC, CA, instructions) are answered
                  first: browsers fetch the PAC file without proxy credentials, and such a
                  request must never be forwarded (mitmproxy would send it to itself).
2. Identify     - who is asking (proxy auth, subnet, else the default role); answers 407s.
3. Enforce      - the policy's verdict at CONNECT, ClientHello and every request; block pages.
   Shadow       - a proposed policy (shadow.yaml) decides again for chosen roles; differences
                  are recorded, nothing is enforced.
4. Detect       - circumvention signals that need more than the host name (DoH by content,
                  archive viewers, ECH, odd ports, tunnels, repeats, widgets); blocks on top of
                  an allowed verdict, and marks Enforce's blocks that are attempts.
   GuardDestinations - an allowed destination is looked up once; any internal address not on
                  the policy's internal allow list is refused; the connection is pinned to the
                  checked address (no DNS rebinding).
5. StripAltSvc  - allowed responses: drop Alt-Svc (no HTTP/3 round the proxy), stream bodies.
6. RecordEvents - every final decision becomes an event; attempts feed sanctions/alerts.
7. Metrics      - after the deciders, so it sees every decision: Prometheus counters.
8. Limits       - connection caps and time-outs (hooks that decide nothing), and, after every
                  other addon has answered a request, refuses to read a large body for it.

Each addon leaves a flow alone once an earlier one has answered it (`flow.response` set);
Detect and RecordEvents read what Enforce decided (flow.metadata) rather than deciding again.
"""

from __future__ import annotations

from proxy_addons.altsvc import StripAltSvc
from proxy_addons.destinations import GuardDestinations
from proxy_addons.detect import Detect
from proxy_addons.enforce import Enforce
from proxy_addons.gateway_pages import GatewayPages
from proxy_addons.identity import Identify
from proxy_addons.limits import Limits
from proxy_addons.metrics import Metrics
from proxy_addons.policy_source import PolicySource
from proxy_addons.record import RecordEvents
from proxy_addons.safesearch import SafeSearch
from proxy_addons.shadow import Shadow
from proxy_addons.stats import GatewayStats

stats = GatewayStats()  # every addon's counters, exported by Metrics
source = PolicySource(stats)  # the policy and overrides in force

addons: list[object] = [
    source,
    GatewayPages(source),
    Identify(stats),
    Enforce(source, stats),
    Shadow(source, stats),
    Detect(stats),
    SafeSearch(stats),
    GuardDestinations(stats),
    StripAltSvc(),
    RecordEvents(stats),
    Metrics(source, stats),
    Limits(stats),
]
