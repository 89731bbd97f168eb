"""Prometheus metrics for the gateway, served on a port of their own (`/metrics`, `/healthz`).

Per-flow counters are observed at the end of the addon chain from what the other addons left in
`flow.metadata`; what the addons count themselves is one `GatewayStats` (proxy_addons/stats.py),
exported field by field at scrape time with the policy's state from `PolicySource`, both given
by constructor, so no addon imports or looks up another. Every label value comes from a small,
fixed set (verdicts, reasons, the policy's roles and categories, technique names): never a user,
a host or an address.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Client
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.background import Background
from schoolgate.proxy_addons.errors import options_error
from schoolgate.proxy_addons.policy_source import PolicySource, ReloadResult
from schoolgate.proxy_addons.stats import GatewayStats, counters
from schoolgate.store.event_writer import WriterStats
from schoolgate.store.list_status import ListsReport, ListStatusReader

logger = logging.getLogger(__name__)

NONE = "none"  # label value when a flow has no category / role / technique
OTHER = "other"  # label value once a label has seen MAX_LABEL_VALUES distinct values
MAX_LABEL_VALUES = 64
CHILDREN_LIMIT = 4096  # labelled children remembered (then forgotten all at once)
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
STALL_SECONDS = 15.0  # /healthz fails when the event loop has not ticked for this long
LISTS_EVERY_SECONDS = 30.0  # how often the lists' state is re-read (and at every reload)
# The event writer's own counters (store.event_writer.WriterStats field, metric name, help).
WRITER_GAUGES = (
    ("queued", "schoolgate_events_queue_depth", "Events waiting in memory for the writer."),
    (
        "spool_bytes",
        "schoolgate_events_spool_bytes",
        "Size of the on-disk spool of events not yet in the database.",
    ),
)
WRITER_COUNTERS = (
    ("written", "schoolgate_events_written_total", "Events written to the database."),
    ("dropped", "schoolgate_events_dropped_total", "Events lost. Must stay 0."),
    ("spooled", "schoolgate_events_spooled_total", "Events written to the spool file."),
    (
        "replayed",
        "schoolgate_events_replayed_total",
        "Spooled events inserted once the database answered again.",
    ),
    (
        "db_failures",
        "schoolgate_events_write_errors_total",
        "Batches the database refused or timed out on (then spooled).",
    ),
    (
        "rejected",
        "schoolgate_events_rejected_total",
        "Events the database refused for their content (kept in rejected.events).",
    ),
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


class GatewayCollector(Collector):
    """Exports `GatewayStats` field by field, the policy's version and reload state, the event
    writer's counters and the lists' state, at scrape time. Runs in the metrics server's
    thread: it only reads, never changes anything."""

    def __init__(
        self,
        stats: GatewayStats,
        source: PolicySource,
        lists: Callable[[], ListsReport | None] = lambda: None,
    ) -> None:
        self._stats = stats
        self._source = source
        self._lists = lists

    def collect(self) -> Iterator[Metric]:
        yield from stats_metrics(self._stats)
        yield from policy_metrics(self._source)
        yield from writer_metrics(self._stats.event_writer)
        yield from list_metrics(self._lists(), time.time())


def stats_metrics(stats: GatewayStats) -> Iterator[Metric]:
    """One counter family per metric name, one sample per GatewayStats field."""
    families: dict[str, CounterMetricFamily] = {}
    for metric, value in counters(stats):
        family = families.get(metric.name)
        if family is None:
            family = families[metric.name] = CounterMetricFamily(
                metric.name, metric.help, labels=list(metric.labels)
            )
        family.add_metric(list(metric.labels.values()), value)
    yield from families.values()


def policy_metrics(source: PolicySource) -> Iterator[Metric]:
    """The policy in force and how its last (re)load went."""
    snapshot = getattr(source, "snapshot", None)
    info = GaugeMetricFamily(
        "schoolgate_policy_info",
        "The policy in force (version: hash of the file; 1 = current).",
        labels=["version"],
    )
    info.add_metric([snapshot.version if snapshot is not None else "none"], 1.0)
    last_reload = source.last_reload
    last = GaugeMetricFamily(
        "schoolgate_policy_last_reload_success",
        "1 if the last policy (re)load was accepted, 0 if refused.",
    )
    last.add_metric([], 1.0 if last_reload.result is ReloadResult.OK else 0.0)
    when = GaugeMetricFamily(
        "schoolgate_policy_last_reload_timestamp_seconds",
        "When the policy was last (re)loaded or refused (Unix time).",
    )
    when.add_metric([], last_reload.at)
    yield from (info, last, when)


def writer_metrics(read: Callable[[], WriterStats] | None) -> Iterator[Metric]:
    """The event writer's counters, when this gateway has one (recording to a database)."""
    present = GaugeMetricFamily(
        "schoolgate_event_writer_present", "1 if the event recorder is loaded in this gateway."
    )
    present.add_metric([], 0.0 if read is None else 1.0)
    yield present
    if read is None:
        return
    stats = read()
    for attribute, name, text in WRITER_GAUGES:
        gauge = GaugeMetricFamily(name, text)
        gauge.add_metric([], float(getattr(stats, attribute)))
        yield gauge
    for attribute, name, text in WRITER_COUNTERS:
        yield _counter(name, text, getattr(stats, attribute))


class Metrics:
    """Counts decisions, latency and circumvention per flow; serves /metrics and /healthz."""

    def __init__(
        self, source: PolicySource, stats: GatewayStats, registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._source = source
        self._stats = stats
        self._server: WSGIServer | None = None
        self._tick_task = Background(self._tick_forever)
        self._last_tick = time.monotonic()
        self._seen_reloads = 0
        self._labels = {name: BoundedLabel() for name in ("category", "role", "technique")}
        # Tunnels opened as an attempt, by client connection: the attempt is counted once, with
        # the tunnel's first request, or when the client leaves without one (as it is
        # recorded, proxy_addons/record.py), never at the CONNECT and again at the request.
        self._tunnel_attempts: dict[str, str] = {}
        # Labelled children looked up before (prometheus_client checks and locks on every
        # `labels()`): the latency's by stage, the requests' by the values they were made from
        # (a BoundedLabel maps a value the same way once it has seen it).
        self._children: dict[object, Any] = {}
        self.requests = Counter(
            "schoolgate_requests",
            "Decisions on requests (stage=request) and on CONNECT tunnels (stage=connect).",
            ["stage", "verdict", "reason", "category", "role"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "schoolgate_decision_seconds",
            "From the request head being read to the verdict "
            "(identity, directory wait and policy together).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.attempts = Counter(
            "schoolgate_circumvention_attempts",
            "Requests that tried to get round the filter, by technique (an HTTPS attempt once: "
            "with its request, or with its tunnel if no request followed).",
            ["technique"],
            registry=self.registry,
        )
        self.identities = Counter(
            "schoolgate_identities",
            "Requests by where the user's identity came from.",
            ["source"],
            registry=self.registry,
        )
        self._list_reader = ListStatusReader()
        self.lists: ListsReport | None = None
        self._lists_due = 0.0
        self.registry.register(GatewayCollector(stats, source, lambda: self.lists))

    # --- lifecycle -----------------------------------------------------------------------------

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_metrics_port",
            int,
            9090,
            "Port of the Prometheus endpoint (/metrics, and /healthz for probes). "
            "0: no endpoint. With several workers, worker i uses this port + i.",
        )
        loader.add_option(
            "schoolgate_metrics_host",
            str,
            "127.0.0.1",
            "Address the Prometheus endpoint listens on (0.0.0.0 in containers, "
            "so the scraper can reach it).",
        )

    def configure(self, updated: set[str]) -> None:
        if "schoolgate_metrics_port" in updated:
            port = ctx.options.schoolgate_metrics_port
            if not 0 <= port <= 65535:
                raise options_error(
                    f"schoolgate_metrics_port: {port} is not a port (0-65535; 0 turns the "
                    "metrics endpoint off)"
                )
        if "schoolgate_metrics_host" in updated and not ctx.options.schoolgate_metrics_host:
            raise options_error(
                "schoolgate_metrics_host is empty: give an address such as 127.0.0.1"
            )

    def running(self) -> None:
        self._tick_task.start()
        port = ctx.options.schoolgate_metrics_port
        if port and self._server is None:
            host = ctx.options.schoolgate_metrics_host
            try:
                self._server, _thread = start_http_server(port, host, self.registry)
            except OSError as exc:  # WARNING, not ERROR: errorcheck would end the gateway
                logger.warning(
                    "the metrics endpoint cannot listen on %s:%s (%s); the gateway "
                    "runs on without it",
                    host,
                    port,
                    exc,
                )
                return
            self._server.set_app(self._app())
            logger.info("metrics on http://%s:%s/metrics", host, port)

    async def done(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        await self._tick_task.stop()

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

    def client_disconnected(self, client: Client) -> None:
        technique = self._tunnel_attempts.pop(client.id, None)
        if technique is not None:  # no request followed: the tunnel was the attempt
            self._count_attempt(technique)

    def _observe_latency(self, flow: http.HTTPFlow, stage: str) -> None:
        if context.DECISION in flow.metadata:
            started = flow.request.timestamp_start
            child = self._children.get(stage)
            if child is None:
                child = self._children[stage] = self.latency.labels(stage)
            child.observe(max(0.0, time.time() - started))

    def _count(self, flow: http.HTTPFlow, stage: str) -> None:
        decision = flow.metadata.get(context.DECISION)
        if decision is None:
            return  # answered before any decision (gateway pages, 407) or never decided
        identity = flow.metadata.get(context.IDENTITY)
        role = getattr(identity, "role", None) or "default"
        key = (stage, decision.verdict, decision.reason, decision.category, role)
        child = self._children.get(key)
        if child is None:
            if len(self._children) >= CHILDREN_LIMIT:
                self._children.clear()
            child = self._children[key] = self.requests.labels(
                stage,
                str(decision.verdict),
                str(decision.reason),
                self._labels["category"](decision.category),
                self._labels["role"](role),
            )
        child.inc()
        if stage == "request" and identity is not None:
            self.identities.labels(str(getattr(identity, "source", NONE))).inc()
        technique = flow.metadata.get(context.TECHNIQUE) or decision.technique
        client = flow.client_conn.id
        if stage == "request":
            self._tunnel_attempts.pop(client, None)  # the tunnel's request is the attempt
        elif technique and flow.response is None:  # a tunnel: counted with what follows
            self._tunnel_attempts[client] = str(technique)
            return
        if technique:
            self._count_attempt(str(technique))

    def _count_attempt(self, technique: str) -> None:
        self.attempts.labels(self._labels["technique"](technique)).inc()

    # --- helpers -------------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        """Proves the event loop is alive (for /healthz) and re-reads the lists' state."""
        while True:
            self._last_tick = time.monotonic()
            if self._stats.policy_reloads != self._seen_reloads:
                self._seen_reloads = self._stats.policy_reloads
                self._lists_due = 0.0  # a reload may have brought new lists
            if time.monotonic() >= self._lists_due:
                self._lists_due = time.monotonic() + LISTS_EVERY_SECONDS
                await self.refresh_lists()
            await asyncio.sleep(1.0)

    async def refresh_lists(self) -> None:
        """Re-read each list's age and entry count (counting a changed file once)."""
        try:
            path = self._source.snapshot.path
        except AttributeError:  # not configured yet
            return
        try:
            self.lists = await asyncio.to_thread(
                self._list_reader.read, path, now=datetime.now(UTC)
            )
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
                overrides = self._source.overrides_state
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
    entries = GaugeMetricFamily(
        "schoolgate_list_entries",
        "Entries in each domain list file the policy names.",
        labels=["list"],
    )
    age = GaugeMetricFamily(
        "schoolgate_list_age_seconds",
        "Seconds since each list was last updated ('lists update') or compiled (its header date).",
        labels=["list"],
    )
    stale = GaugeMetricFamily(
        "schoolgate_list_stale",
        "1 if a list that 'lists update' keeps is older than its allowed age, or missing.",
        labels=["list"],
    )
    for status in report.lists:
        label = Path(status.name).stem  # no dots or slashes in label values
        entries.add_metric([label], float(status.entries))
        if status.updated_at is not None:
            age.add_metric([label], max(0.0, now - status.updated_at.timestamp()))
        stale.add_metric([label], 1.0 if status.stale else 0.0)
    empty = GaugeMetricFamily(
        "schoolgate_category_empty",
        "1 for each category with no domains (it blocks nothing until filled).",
        labels=["category"],
    )
    for category in report.empty:
        empty.add_metric([category.name], 1.0)
    yield from (entries, age, stale, empty)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name.removesuffix("_total"), text)
    family.add_metric([], float(value))
    return family
