"""Prometheus metrics for the gateway, served on a port of their own (`/metrics`, `/healthz`).

Per-flow counters are observed at the end of the addon chain from what the other addons left in
`flow.metadata`; everything the other addons count themselves (their `stats`) is read at scrape
time by a collector, so no other addon imports this one. Every label value comes from a small,
fixed set (verdicts, reasons, the policy's roles and categories, technique names): never a user,
a host or an address.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from proxy_addons import context
from store.list_status import ListsReport, ListStatusReader

logger = logging.getLogger(__name__)

NONE = "none"  # label value when a flow has no category / role / technique
OTHER = "other"  # label value once a label has seen MAX_LABEL_VALUES distinct values
MAX_LABEL_VALUES = 64
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
STALL_SECONDS = 15.0  # /healthz fails when the event loop has not ticked for this long
LISTS_EVERY_SECONDS = 30.0  # how often the lists' state is re-read (and at every reload)
WRITER_ADDONS = ("recordevents", "record")  # where the event writer may live, by addon name

# (stats key of the addon, metric name, help): counters other addons keep in their `stats`.
ENFORCE_CONNECTIONS = (("intercepted", "intercepted"), ("passthrough", "passed_through"),
                       ("refused", "refused"))
IDENTIFY_COUNTERS = (
    ("directory_lookups", "schoolgate_directory_lookups_total",
     "Sign-ins checked against the directory (cache misses)."),
    ("directory_errors", "schoolgate_directory_errors_total",
     "Directory look-ups that failed (unreachable, timed out, refused the service account)."),
    ("cache_hits", "schoolgate_identity_cache_hits_total",
     "Sign-ins answered from the identity cache."),
    ("challenged", "schoolgate_identity_challenges_total",
     "Requests answered with 407 (sign in)."),
    ("rejected", "schoolgate_identity_rejected_total",
     "Sign-ins the directory refused (wrong user name or password)."),
    ("throttled", "schoolgate_identity_throttled_total",
     "Sign-ins refused without asking the directory: too many wrong passwords (back-off)."),
    ("unverified", "schoolgate_identity_unverified_total",
     "Sign-ins asked again because the directory could not check them (it was down)."),
)
WRITER_GAUGES = (
    (("queue_depth", "queued"), "schoolgate_events_queue_depth",
     "Events waiting in memory for the writer."),
    (("spool_bytes",), "schoolgate_events_spool_bytes",
     "Size of the on-disk spool of events not yet in the database."),
    (("spooled_pending", "spool_events"), "schoolgate_events_spool_events",
     "Events in the on-disk spool not yet in the database."),
)
WRITER_COUNTERS = (
    (("written",), "schoolgate_events_written_total", "Events written to the database."),
    (("dropped",), "schoolgate_events_dropped_total", "Events lost. Must stay 0."),
    (("spooled",), "schoolgate_events_spooled_total", "Events written to the spool file."),
    (("replayed",), "schoolgate_events_replayed_total",
     "Spooled events inserted once the database answered again."),
    (("db_failures", "write_errors"), "schoolgate_events_write_errors_total",
     "Batches the database refused or timed out on (then spooled)."),
)


class BoundedLabel:
    """Admits at most `limit` distinct values for one label; later newcomers become 'other'.
    A guard, not the design: the values come from finite sets already."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self._seen: set[str] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = NONE if value is None or value == "" else str(value)
        if text in self._seen:
            return text
        with self._lock:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(text)
            return text


def policy_version(path: str) -> str:
    """A short, stable label for the policy in force: the first 12 hex digits of the SHA-256 of
    the file, or 'seed' when the shipped seed policy is used."""
    if not path:
        return "seed"
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError:
        return "unreadable"
    return hashlib.sha256(data).hexdigest()[:12]


class GatewayCollector(Collector):
    """Reads other addons' `stats` (and the event writer's) at scrape time. Runs in the metrics
    server's thread: it only reads counters, never changes them."""

    def __init__(self, find_addon: Callable[[str], Any], policy: Callable[[], tuple[str, float,
                                                                                    str]],
                 lists: Callable[[], ListsReport | None] = lambda: None) -> None:
        self._find = find_addon
        self._policy = policy
        self._lists = lists

    def collect(self) -> Iterator[Metric]:
        enforce = _stats(self._find("enforce"))
        identify = _stats(self._find("identify"))
        connections = CounterMetricFamily(
            "schoolgate_connections", "TLS connections by how the gateway handled them.",
            labels=["handling"])
        for key, handling in ENFORCE_CONNECTIONS:
            connections.add_metric([handling], float(enforce.get(key, 0)))
        yield connections
        door = _stats(self._find("frontdoor"))
        if door:
            yield _labelled("schoolgate_front_door", "Connections by what the front door did "
                            "with them (spliced: relayed by schoolgate itself; handed_over: "
                            "served by mitmproxy).", "outcome", door)
        errors = CounterMetricFamily(
            "schoolgate_engine_errors", "Errors inside the gateway's addons (each one failed "
            "closed: the flow was blocked or given the default role).", labels=["addon"])
        errors.add_metric(["enforce"], float(enforce.get("engine_errors", 0)))
        errors.add_metric(["identify"], float(identify.get("hook_errors", 0)))
        yield errors
        reloads = CounterMetricFamily(
            "schoolgate_policy_reloads", "Policy file reloads by result.", labels=["result"])
        reloads.add_metric(["ok"], float(enforce.get("policy_reloads", 0)))
        reloads.add_metric(["refused"], float(enforce.get("policy_reload_refused", 0)))
        reloads.add_metric(["error"], float(enforce.get("refresh_errors", 0)))
        yield reloads
        version, at, result = self._policy()
        info = GaugeMetricFamily("schoolgate_policy_info",
                                 "The policy in force (version: hash of the file; 1 = current).",
                                 labels=["version"])
        info.add_metric([version], 1.0)
        yield info
        last = GaugeMetricFamily("schoolgate_policy_last_reload_success",
                                 "1 if the last policy (re)load was accepted, 0 if refused.")
        last.add_metric([], 1.0 if result == "ok" else 0.0)
        yield last
        when = GaugeMetricFamily("schoolgate_policy_last_reload_timestamp_seconds",
                                 "When the policy was last (re)loaded or refused (Unix time).")
        when.add_metric([], at)
        yield when
        for key, name, text in IDENTIFY_COUNTERS:
            yield _counter(name, text, identify.get(key, 0))
        seconds = getattr(self._find("identify"), "directory_seconds", None)
        if seconds is not None:
            yield _counter("schoolgate_directory_seconds", "Time spent waiting for the "
                           "directory (divide by the look-ups for the mean).", seconds)
        yield from self._writer()
        yield from list_metrics(self._lists(), time.time())

    def _writer(self) -> Iterable[Metric]:
        stats = _writer_stats(self._find)
        present = GaugeMetricFamily("schoolgate_event_writer_present",
                                    "1 if the event recorder is loaded in this gateway.")
        present.add_metric([], 0.0 if stats is None else 1.0)
        yield present
        if stats is None:
            return
        for keys, name, text in WRITER_GAUGES:
            value = _first(stats, keys)
            if value is not None:
                gauge = GaugeMetricFamily(name, text)
                gauge.add_metric([], float(value))
                yield gauge
        for keys, name, text in WRITER_COUNTERS:
            value = _first(stats, keys)
            if value is not None or name == "schoolgate_events_dropped_total":
                yield _counter(name, text, value or 0)


class Metrics:
    """Counts decisions, latency and circumvention per flow; serves /metrics and /healthz."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._master: Any = None
        self._server: WSGIServer | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._last_tick = time.monotonic()
        self._policy_path = ""
        self._policy_state: tuple[str, float, str] = ("seed", time.time(), "ok")
        self._seen_reloads: tuple[int, int] = (0, 0)
        self._labels = {name: BoundedLabel() for name in ("category", "role", "technique")}
        self.requests = Counter(
            "schoolgate_requests", "Decisions on requests (stage=request) and on CONNECT "
            "tunnels (stage=connect).", ["stage", "verdict", "reason", "category", "role"],
            registry=self.registry)
        self.latency = Histogram(
            "schoolgate_decision_seconds", "From the request head being read to the verdict "
            "(identity, directory wait and policy together).", ["stage"],
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.attempts = Counter(
            "schoolgate_circumvention_attempts", "Attempts to get round the filter, by "
            "technique.", ["technique"], registry=self.registry)
        self.identities = Counter(
            "schoolgate_identities", "Requests by where the user's identity came from.",
            ["source"], registry=self.registry)
        self._list_reader = ListStatusReader()
        self.lists: ListsReport | None = None
        self._lists_due = 0.0
        self.registry.register(GatewayCollector(self._find, lambda: self._policy_state,
                                                lambda: self.lists))

    # --- lifecycle -----------------------------------------------------------------------------

    def load(self, loader: Loader) -> None:
        loader.add_option("schoolgate_metrics_port", int, 9090,
                          "Port of the Prometheus endpoint (/metrics, and /healthz for probes). "
                          "0: no endpoint. With several workers, worker i uses this port + i.")
        loader.add_option("schoolgate_metrics_host", str, "127.0.0.1",
                          "Address the Prometheus endpoint listens on (0.0.0.0 in containers, "
                          "so the scraper can reach it).")

    def configure(self, updated: set[str]) -> None:
        if "schoolgate_metrics_port" in updated:
            port = ctx.options.schoolgate_metrics_port
            if not 0 <= port <= 65535:
                raise exceptions.OptionsError(  # type: ignore[no-untyped-call]
                    f"schoolgate_metrics_port: {port} is not a port (0-65535; 0 turns the "
                    "metrics endpoint off)")
        if "schoolgate_metrics_host" in updated and not ctx.options.schoolgate_metrics_host:
            raise exceptions.OptionsError(  # type: ignore[no-untyped-call]
                "schoolgate_metrics_host is empty: give an address such as 127.0.0.1")
        if "schoolgate_policy" in updated and hasattr(ctx.options, "schoolgate_policy"):
            self._policy_path = ctx.options.schoolgate_policy
            self._policy_state = (policy_version(self._policy_path), time.time(), "ok")

    def running(self) -> None:
        self._master = ctx.master
        if self._tick_task is None:
            self._tick_task = asyncio.get_running_loop().create_task(self._tick_forever())
        port = ctx.options.schoolgate_metrics_port
        if port and self._server is None:
            host = ctx.options.schoolgate_metrics_host
            try:
                self._server, _thread = start_http_server(port, host, self.registry)
            except OSError as exc:  # WARNING, not ERROR: errorcheck would end the gateway
                logger.warning("the metrics endpoint cannot listen on %s:%s (%s); the gateway "
                               "runs on without it", host, port, exc)
                return
            self._server.set_app(self._app())
            logger.info("metrics on http://%s:%s/metrics", host, port)

    async def done(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
            self._tick_task = None

    # --- per-flow observations (this addon runs last, after every decision) -------------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._observe_latency(flow, "connect")
        self._count(flow, "connect")

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._observe_latency(flow, "request")

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.request.method != "CONNECT":
            self._count(flow, "request")

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.request.method != "CONNECT":
            self._count(flow, "request")

    def _observe_latency(self, flow: http.HTTPFlow, stage: str) -> None:
        if context.DECISION in flow.metadata:
            started = flow.request.timestamp_start
            self.latency.labels(stage).observe(max(0.0, time.time() - started))

    def _count(self, flow: http.HTTPFlow, stage: str) -> None:
        decision = flow.metadata.get(context.DECISION)
        if decision is None:
            return  # answered before any decision (gateway pages, 407) or never decided
        identity = flow.metadata.get(context.IDENTITY)
        role = getattr(identity, "role", None) or "default"
        self.requests.labels(stage, str(decision.verdict), str(decision.reason),
                             self._labels["category"](decision.category),
                             self._labels["role"](role)).inc()
        if stage == "request" and identity is not None:
            self.identities.labels(str(getattr(identity, "source", NONE))).inc()
        technique = flow.metadata.get(context.TECHNIQUE) or decision.technique
        if technique:
            self.attempts.labels(self._labels["technique"](technique)).inc()

    # --- helpers -------------------------------------------------------------------------------

    def _find(self, name: str) -> Any:
        master = self._master
        return master.addons.get(name) if master is not None else None

    async def _tick_forever(self) -> None:
        """Proves the event loop is alive (for /healthz) and notices policy reloads."""
        while True:
            self._last_tick = time.monotonic()
            stats = _stats(self._find("enforce"))
            seen = (int(stats.get("policy_reloads", 0)), int(stats.get("policy_reload_refused", 0)))
            if seen != self._seen_reloads:
                if seen[0] != self._seen_reloads[0]:
                    version = await asyncio.to_thread(policy_version, self._policy_path)
                    self._policy_state = (version, time.time(), "ok")
                else:
                    self._policy_state = (self._policy_state[0], time.time(), "refused")
                self._seen_reloads = seen
                self._lists_due = 0.0  # a reload may have brought new lists
            if time.monotonic() >= self._lists_due:
                self._lists_due = time.monotonic() + LISTS_EVERY_SECONDS
                await self.refresh_lists()
            await asyncio.sleep(1.0)

    async def refresh_lists(self) -> None:
        """Re-read each list's age and entry count (counting a changed file once)."""
        path = Path(self._policy_path).expanduser() if self._policy_path else None
        try:
            self.lists = await asyncio.to_thread(
                self._list_reader.read, path, now=datetime.now(UTC))
        except Exception:  # health must keep answering; the next tick tries again
            logger.warning("reading the lists' state failed", exc_info=True)

    def _app(self) -> Callable[..., Iterable[bytes]]:
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                stalled = time.monotonic() - self._last_tick > STALL_SECONDS
                status = "503 Service Unavailable" if stalled else "200 OK"
                start_response(status, [("Content-Type", "application/json")])
                answer = health(stalled, self.lists)
                # Still serving (200), but on old or no overrides: say so (store/snapshots.py).
                overrides = str(getattr(self._find("enforce"), "overrides_state", "") or "")
                if overrides and overrides != "database":
                    answer["overrides"] = overrides
                return [json.dumps(answer).encode()]
            result: Iterable[bytes] = metrics_app(environ, start_response)
            return result

        return app


def health(stalled: bool, lists: ListsReport | None) -> dict[str, Any]:
    """The /healthz body. Stale lists or empty categories do not fail the probe (restarting
    the gateway would not fix them); they are there for people and monitoring to read."""
    body: dict[str, Any] = {"status": "event loop stalled" if stalled else "ok"}
    if lists is not None:
        body.update(lists.as_json())
    return body


def list_metrics(report: ListsReport | None, now: float) -> Iterator[Metric]:
    """Each list's entries and age, whether it is stale, and the empty categories."""
    if report is None:
        return
    entries = GaugeMetricFamily("schoolgate_list_entries", "Entries in each domain list file "
                                "the policy names.", labels=["list"])
    age = GaugeMetricFamily("schoolgate_list_age_seconds", "Seconds since each list was last "
                            "updated ('lists update') or compiled (its header date).",
                            labels=["list"])
    stale = GaugeMetricFamily("schoolgate_list_stale", "1 if a list that 'lists update' keeps "
                              "is older than its allowed age, or missing.", labels=["list"])
    for status in report.lists:
        label = Path(status.name).stem  # no dots or slashes in label values
        entries.add_metric([label], float(status.entries))
        if status.updated_at is not None:
            age.add_metric([label], max(0.0, now - status.updated_at.timestamp()))
        stale.add_metric([label], 1.0 if status.stale else 0.0)
    empty = GaugeMetricFamily("schoolgate_category_empty", "1 for each category with no "
                              "domains (it blocks nothing until filled).", labels=["category"])
    for category in report.empty:
        empty.add_metric([category.name], 1.0)
    yield from (entries, age, stale, empty)


def _labelled(name: str, text: str, label: str, counts: Mapping[str, Any]
              ) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=[label])
    for key in sorted(counts):
        family.add_metric([key], float(counts[key]))
    return family


def _stats(addon: Any) -> Mapping[str, Any]:
    stats = getattr(addon, "stats", None)
    return stats if isinstance(stats, Mapping) else {}


def _writer_stats(find: Callable[[str], Any]) -> Mapping[str, Any] | None:
    for name in WRITER_ADDONS:
        addon = find(name)
        if addon is None:
            continue
        writer = getattr(addon, "writer", None)
        stats = getattr(writer, "stats", None) if writer is not None else None
        if stats is None:
            stats = getattr(addon, "writer_stats", None)
        if callable(stats):
            stats = stats()
        if isinstance(stats, Mapping):
            return stats
        if stats is not None and hasattr(stats, "__dataclass_fields__"):
            return {f: getattr(stats, f) for f in stats.__dataclass_fields__}
    return None


def _first(stats: Mapping[str, Any], keys: Iterable[str]) -> float | None:
    for key in keys:
        value = stats.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name.removesuffix("_total"), text)
    family.add_metric([], float(value))
    return family

