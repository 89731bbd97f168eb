"""The gateway's counters, in one typed value: every addon is given the same `GatewayStats` (by
constructor, in proxy_addons/main.py) and increments its fields; the Metrics addon exports them
field by field, each under the Prometheus name and labels its metadata gives. A counter without
a metric cannot be added (tests/proxy_addons/test_stats.py), and nothing is looked up by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from schoolgate.store.event_writer import WriterStats

ENGINE_ERRORS = (
    "Errors inside the gateway's addons. A deciding addon failed closed (the flow "
    "was blocked, or given the default role); recording, alert and shadow errors "
    "changed no verdict (an event or alert may be late or lost: see the logs)."
)
CONNECTIONS = "TLS connections by how the gateway handled them."
RELOADS = "Policy file reloads by result."


@dataclass(frozen=True, slots=True)
class Metric:
    """Where a counter is exported: the metric family (without _total) and its labels."""

    name: str
    help: str
    labels: Mapping[str, str]


def _counter(name: str, text: str, **labels: str) -> Any:
    return field(default=0, metadata={"metric": Metric(name, text, labels)})


def _error(addon: str) -> Any:
    return _counter("schoolgate_engine_errors", ENGINE_ERRORS, addon=addon)


FRONT_DOOR = (
    "Connections by what the front door did with them (spliced: relayed by "
    "schoolgate itself; handed_over: served by mitmproxy; http_requests: plain HTTP "
    "requests served by schoolgate itself)."
)


def _door(outcome: str) -> Any:
    return _counter("schoolgate_front_door", FRONT_DOOR, outcome=outcome)


@dataclass(slots=True)
class GatewayStats:
    """Counters since the gateway started; only the event loop's thread changes them."""

    # PolicySource
    policy_reloads: int = _counter("schoolgate_policy_reloads", RELOADS, result="ok")
    policy_reloads_refused: int = _counter("schoolgate_policy_reloads", RELOADS, result="refused")
    policy_refresh_errors: int = _counter("schoolgate_policy_reloads", RELOADS, result="error")
    # Identify
    identify_errors: int = _error("identify")
    directory_lookups: int = _counter(
        "schoolgate_directory_lookups", "Sign-ins checked against the directory (cache misses)."
    )
    directory_errors: int = _counter(
        "schoolgate_directory_errors",
        "Directory look-ups that failed (unreachable, timed out, refused the service account).",
    )
    directory_seconds: float = _counter(
        "schoolgate_directory_seconds",
        "Time spent waiting for the directory (divide by the look-ups for the mean).",
    )
    cache_hits: int = _counter(
        "schoolgate_identity_cache_hits", "Sign-ins answered from the identity cache."
    )
    challenged: int = _counter(
        "schoolgate_identity_challenges", "Requests answered with 407 (sign in)."
    )
    rejected: int = _counter(
        "schoolgate_identity_rejected",
        "Sign-ins the directory refused (wrong user name or password).",
    )
    throttled: int = _counter(
        "schoolgate_identity_throttled",
        "Sign-ins refused without asking the directory: too many wrong passwords (back-off).",
    )
    unverified: int = _counter(
        "schoolgate_identity_unverified",
        "Sign-ins asked again because the directory could not check them (it was down).",
    )
    stale_identities: int = _counter(
        "schoolgate_identity_stale",
        "Sign-ins answered from an expired cache entry because the directory was down.",
    )
    authenticated: int = _counter(
        "schoolgate_identity_authenticated", "Sign-ins the directory accepted."
    )
    # Enforce
    enforce_errors: int = _error("enforce")
    intercepted: int = _counter("schoolgate_connections", CONNECTIONS, handling="intercepted")
    passed_through: int = _counter("schoolgate_connections", CONNECTIONS, handling="passed_through")
    refused: int = _counter("schoolgate_connections", CONNECTIONS, handling="refused")
    websockets_cut: int = _counter(
        "schoolgate_websockets_cut", "Live websockets closed because their verdict became a block."
    )
    # Shadow
    shadow_errors: int = _error("shadow")
    shadow_compared: int = _counter(
        "schoolgate_shadow_compared", "Requests decided again by the policy in shadow."
    )
    shadow_written: int = _counter(
        "schoolgate_shadow_differences_written",
        "Differences from the policy in shadow written to the database.",
    )
    # Detect
    detect_errors: int = _error("detect")
    detect_blocked: int = _counter(
        "schoolgate_detect_blocks", "Flows Detect blocked on top of an allowed verdict."
    )
    ech_seen: int = _counter(
        "schoolgate_ech_hellos", "TLS ClientHellos carrying Encrypted ClientHello (real or dummy)."
    )
    ech_intercepted: int = _counter(
        "schoolgate_ech_intercepted",
        "Connections decrypted instead of relayed because their "
        "ClientHello carried Encrypted ClientHello.",
    )
    viewers_intercepted: int = _counter(
        "schoolgate_viewers_intercepted",
        "Archive and translation viewers decrypted so that each page they show is decided.",
    )
    # SafeSearch
    safesearch_errors: int = _error("safesearch")
    youtube_restricted: int = _counter(
        "schoolgate_youtube_restricted", "Requests given YouTube's Restricted Mode header."
    )
    safe_search_forced: int = _counter(
        "schoolgate_safe_search_forced", "Searches whose engine's safe mode was forced."
    )
    unsafe_search_blocked: int = _counter(
        "schoolgate_unsafe_searches_blocked",
        "Searches blocked on engines whose safe mode cannot be forced.",
    )
    safeguarding_searches: int = _counter(
        "schoolgate_safeguarding_searches", "Searches containing a safeguarding term."
    )
    # GuardDestinations
    destinations_errors: int = _error("destinations")
    destinations_blocked: int = _counter(
        "schoolgate_destinations_refused",
        "Connections refused because the destination's "
        "address is internal and not on the internal allow list.",
    )
    destinations_lookup_failed: int = _counter(
        "schoolgate_destination_lookups_failed",
        "Destination names that could not be looked up (the connection was refused).",
    )
    # FrontDoor (the lean engine's own listener, proxy_addons/frontdoor.py)
    front_door_errors: int = _error("frontdoor")
    door_refused: int = _door("refused")
    door_handed_over: int = _door("handed_over")
    door_tunnels: int = _door("tunnels")
    door_answered: int = _door("answered")
    door_handed_over_in_tunnel: int = _door("handed_over_in_tunnel")
    door_disagreed: int = _door("disagreed")
    door_spliced: int = _door("spliced")
    door_requests: int = _door("http_requests")  # plain HTTP requests served (frontdoor_http)
    # CheckPages
    page_check_errors: int = _error("page_check")
    pages_held: int = _counter(
        "schoolgate_pages_checked", "Allowed HTML pages held back to look for a web-proxy form."
    )
    pages_too_large: int = _counter(
        "schoolgate_pages_too_large_to_check",
        "HTML pages larger than the check reads (their first part is checked).",
    )
    pages_blocked: int = _counter(
        "schoolgate_web_proxy_pages_blocked",
        "Pages blocked because they are a web-proxy script's form.",
    )
    # RecordEvents, and the alert and sanction worker it feeds
    record_errors: int = _error("record")
    alerts_errors: int = _error("alerts")
    events: int = _counter("schoolgate_events_recorded", "Events built from decisions.")
    attempts: int = _counter(
        "schoolgate_attempt_events", "Events that are circumvention attempts (follow-ups included)."
    )
    acts: int = _counter(
        "schoolgate_attempt_acts",
        "Attempts this process saw first of their act (then decided for all workers).",
    )
    follow_ups: int = _counter(
        "schoolgate_attempt_follow_ups",
        "Attempt requests this process saw as follow-ups of an act it counted.",
    )
    alerts_raised: int = _counter(
        "schoolgate_gateway_alerts_raised", "Alerts and sanction checks the gateway wrote."
    )
    alerts_pushed: int = _counter(
        "schoolgate_gateway_alerts_pushed", "Alerts pushed at once (email, webhook)."
    )
    alert_jobs_dropped: int = _counter(
        "schoolgate_gateway_alerts_dropped",
        "Alert and sanction writes given up (queue full, "
        "or the database stayed down through every retry). Must stay 0.",
    )
    alert_write_failures: int = _counter(
        "schoolgate_gateway_alert_write_failures",
        "Alert and sanction writes the database refused or timed out on (each is retried).",
    )
    alert_push_failures: int = _counter(
        "schoolgate_gateway_alert_push_failures",
        "Alert pushes (email, webhook) that failed; the alert is still in the admin.",
    )
    # Limits
    refused_per_client: int = _counter(
        "schoolgate_connections_over_limit",
        "Connections refused by a connection cap.",
        limit="per_client",
    )
    refused_total: int = _counter(
        "schoolgate_connections_over_limit",
        "Connections refused by a connection cap.",
        limit="total",
    )
    first_request_timeouts: int = _counter(
        "schoolgate_first_request_timeouts",
        "Connections closed because no request arrived in time.",
    )
    answered_body_closed: int = _counter(
        "schoolgate_large_bodies_refused",
        "Connections closed instead of reading the large body of a request already answered.",
    )
    # Not a counter: how to read the event writer's own counters, set by RecordEvents once it
    # has a database writer (store/event_writer.py keeps them: it runs without the gateway too).
    event_writer: Callable[[], WriterStats] | None = None


def counters(stats: GatewayStats) -> Iterator[tuple[Metric, float]]:
    """Every counter with where it is exported, in field order."""
    for item in fields(GatewayStats):
        metric = item.metadata.get("metric")
        if isinstance(metric, Metric):
            yield metric, float(getattr(stats, item.name))
