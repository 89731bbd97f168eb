"""The whole gateway: its addons, built and wired here, in the order mitmproxy runs them; the
order is the precedence. Addons never import or look up each other: what they share is given
by constructor (the policy source, the counters) or left on the flow (proxy_addons/context.py).
Each addon leaves a flow alone once an earlier one has answered it (`flow.response` set).
"""

from __future__ import annotations

from schoolgate.proxy_addons.altsvc import StripAltSvc
from schoolgate.proxy_addons.destinations import GuardDestinations
from schoolgate.proxy_addons.detect import Detect
from schoolgate.proxy_addons.enforce import Enforce
from schoolgate.proxy_addons.gateway_pages import GatewayPages
from schoolgate.proxy_addons.identity import Identify
from schoolgate.proxy_addons.limits import Limits
from schoolgate.proxy_addons.metrics import Metrics
from schoolgate.proxy_addons.page_check import CheckPages
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.proxy_addons.record import RecordEvents
from schoolgate.proxy_addons.safesearch import SafeSearch
from schoolgate.proxy_addons.shadow import Shadow
from schoolgate.proxy_addons.stats import GatewayStats

stats = GatewayStats()  # every addon's counters; Metrics exports them field by field
source = PolicySource(stats)  # the policy and overrides in force, refreshed in the background

addons: list[object] = [
    # Decides nothing: loads, validates and refreshes the policy and overrides snapshots.
    source,
    # Requests addressed to the gateway itself (PAC, CA, instructions), answered first: browsers
    # fetch the PAC file without proxy credentials, and it must never be forwarded.
    GatewayPages(source),
    # Who is asking (proxy auth, subnet, else the default role); answers 407s.
    Identify(stats),
    # The policy's verdict at CONNECT, ClientHello and every request; block pages.
    Enforce(source, stats),
    # A proposed policy decides again for chosen roles; differences recorded, nothing enforced.
    Shadow(source, stats),
    # Circumvention signals that need more than the host name (DoH by content, viewers, ECH,
    # odd ports, tunnels, repeats, widgets): blocks on top of an allowed verdict, and marks
    # Enforce's blocks that are attempts.
    Detect(stats),
    # Forces safe search and YouTube's Restricted Mode; alerts on safeguarding searches.
    SafeSearch(stats),
    # An allowed destination is looked up once; internal addresses not on the allow list are
    # refused; the connection is pinned to the checked address (no DNS rebinding).
    GuardDestinations(stats),
    # Allowed responses: drop Alt-Svc (no HTTP/3 round the proxy), stream bodies.
    StripAltSvc(),
    # For roles with `inspect: all`: holds an allowed HTML page back from streaming and blocks
    # it if it is a web-proxy script's own form (after StripAltSvc, before RecordEvents).
    CheckPages(stats),
    # Every final decision becomes an event (store/event_writer.py); attempts feed the alert
    # and sanction worker (store/escalation.py). Reads what the deciders left on the flow.
    RecordEvents(stats, source),
    # After the deciders, so it sees every decision: Prometheus counters and /healthz.
    Metrics(source, stats),
    # Connection caps and time-outs; after every other addon has answered a request, refuses
    # to read a large body for it.
    Limits(stats),
]
