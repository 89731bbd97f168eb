"""Metrics: GatewayStats exported field by field, the policy's state from PolicySource, the event
writer's real counters, and per-flow counting (prometheus_client's own registry; taddons/tflow
for the flows). Review 2026-12 finding F3: no private contract by addon name, no gauge that can
never appear, every addon's engine errors reach the metric the alert watches."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy.test import taddons, tflow, tutils
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from schoolgate.policy.model import Decision, Reason, Verdict
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.detect import Detect
from schoolgate.proxy_addons.enforce import Enforce
from schoolgate.proxy_addons.metrics import (
    WRITER_COUNTERS,
    WRITER_GAUGES,
    GatewayCollector,
    Metrics,
)
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.proxy_addons.stats import GatewayStats, Metric, counters
from schoolgate.store.event_writer import WriterStats
from tests.support.gateway import write_policy

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def collected(stats: GatewayStats, source: PolicySource | None = None) -> Samples:
    registry = CollectorRegistry()
    registry.register(GatewayCollector(stats, source or PolicySource(stats)))
    return scrape(registry)


COUNTER_FIELDS = [f for f in dataclasses.fields(GatewayStats) if "metric" in f.metadata]


def test_every_counter_has_a_metric_with_one_shape_per_name() -> None:
    shapes: dict[str, tuple[str, tuple[str, ...]]] = {}
    places: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for item in dataclasses.fields(GatewayStats):
        if item.name == "event_writer":
            continue
        metric = item.metadata.get("metric")
        assert isinstance(metric, Metric), f"GatewayStats.{item.name} has no metric"
        shape = (metric.help, tuple(metric.labels))
        assert shapes.setdefault(metric.name, shape) == shape, metric.name
        place = (metric.name, tuple(metric.labels.items()))
        assert place not in places, f"two counters export {place}"
        places.add(place)


def test_every_field_is_exported_with_its_own_value() -> None:
    stats = GatewayStats()
    for number, item in enumerate(COUNTER_FIELDS, start=1):
        setattr(stats, item.name, number)
    samples = collected(stats)
    for number, item in enumerate(COUNTER_FIELDS, start=1):
        metric = item.metadata["metric"]
        key = (f"{metric.name}_total", tuple(sorted(metric.labels.items())))
        assert samples.get(key) == number, item.name


@pytest.mark.parametrize(
    "addon",
    ["identify", "enforce", "shadow", "detect", "safesearch", "destinations", "record", "alerts"],
)
def test_each_addons_engine_errors_reach_the_alerted_metric(addon: str) -> None:
    stats = GatewayStats()
    setattr(stats, f"{addon}_errors", 2)
    samples = collected(stats)
    assert samples[("schoolgate_engine_errors_total", (("addon", addon),))] == 2
    # deploy/prometheus/schoolgate-rules.yml alerts on increase() of exactly this name
    assert (
        "schoolgate_engine_errors_total"
        in (
            Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "schoolgate-rules.yml"
        ).read_text()
    )


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[GatewayStats, PolicySource, Enforce, Detect]]:
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)
    stats = GatewayStats()
    source = PolicySource(stats)
    enforce, detect = Enforce(source, stats), Detect(stats)
    with taddons.context(source, enforce, detect) as tctx:
        tctx.configure(
            enforce, schoolgate_policy=str(policy), schoolgate_secret_file=str(tmp_path / "secret")
        )
        yield stats, source, enforce, detect


def test_a_failing_detect_shows_in_the_engine_error_metric(
    chain: tuple[GatewayStats, PolicySource, Enforce, Detect], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review found Detect's errors counted where no metric read them."""
    stats, _, enforce, detect = chain
    import schoolgate.proxy_addons.detect as detect_module

    def explode(*_args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(detect_module, "doh_evidence", explode)
    flow = tflow.tflow(
        req=tutils.treq(host="learning.test", port=443, scheme=b"https", authority=b"")
    )
    flow.request.headers["Host"] = "learning.test"
    flow.client_conn.sni = "learning.test"
    enforce.requestheaders(flow)
    detect.requestheaders(flow)
    assert flow.metadata[context.DECISION].reason is Reason.ENGINE_ERROR
    assert collected(stats)[("schoolgate_engine_errors_total", (("addon", "detect"),))] == 1


def test_the_policy_state_comes_from_the_policy_source(
    chain: tuple[GatewayStats, PolicySource, Enforce, Detect],
) -> None:
    stats, source, _, _ = chain
    samples = collected(stats, source)
    version = source.snapshot.version
    assert len(version) == 12
    assert samples[("schoolgate_policy_info", (("version", version),))] == 1
    assert samples[("schoolgate_policy_last_reload_success", ())] == 1


def test_writer_metrics_read_the_writers_own_fields() -> None:
    names = {f.name for f in dataclasses.fields(WriterStats)}
    assert {field for field, _, _ in WRITER_GAUGES + WRITER_COUNTERS} <= names
    stats = GatewayStats()
    assert collected(stats)[("schoolgate_event_writer_present", ())] == 0
    stats.event_writer = lambda: WriterStats(
        submitted=9,
        queued=3,
        written=5,
        spooled=4,
        replayed=2,
        dropped=0,
        spool_bytes=77,
        db_failures=1,
        bad_spool_lines=0,
        rejected=0,
    )
    samples = collected(stats)
    assert samples[("schoolgate_event_writer_present", ())] == 1
    assert samples[("schoolgate_events_queue_depth", ())] == 3
    assert samples[("schoolgate_events_spool_bytes", ())] == 77
    assert samples[("schoolgate_events_spooled_total", ())] == 4
    assert samples[("schoolgate_events_write_errors_total", ())] == 1
    # the gauge the review found could never appear is gone, not faked
    assert not any(name == "schoolgate_events_spool_events" for name, _ in samples)


def test_flows_are_counted_once_decided() -> None:
    stats = GatewayStats()
    metrics = Metrics(PolicySource(stats), stats)
    undecided = tflow.tflow(resp=True)
    metrics.response(undecided)  # a gateway page or a 407: no decision, not counted
    decided = tflow.tflow(resp=True)
    decided.metadata[context.DECISION] = Decision(
        Verdict.BLOCK, Reason.CIRCUMVENTION, category="x", technique="doh_content"
    )
    decided.metadata[context.IDENTITY] = context.Identity("pupil", context.IdentitySource.SUBNET)
    metrics.response(decided)
    samples = scrape(metrics.registry)
    request_samples = {k: v for k, v in samples.items() if k[0] == "schoolgate_requests_total"}
    assert request_samples == {
        (
            "schoolgate_requests_total",
            (
                ("category", "x"),
                ("reason", "circumvention"),
                ("role", "pupil"),
                ("stage", "request"),
                ("verdict", "block"),
            ),
        ): 1
    }
    assert (
        samples[("schoolgate_circumvention_attempts_total", (("technique", "doh_content"),))] == 1
    )
    assert samples[("schoolgate_identities_total", (("source", "subnet"),))] == 1


def test_counters_walks_fields_in_order() -> None:
    stats = GatewayStats(enforce_errors=4)
    found = [(m.name, dict(m.labels), v) for m, v in counters(stats) if v]
    assert found == [("schoolgate_engine_errors", {"addon": "enforce"}, 4.0)]


def _attempts(metrics: Metrics) -> float:
    samples = scrape(metrics.registry)
    return samples.get(("schoolgate_circumvention_attempts_total", (("technique", "doh"),)), 0.0)


def _doh_tunnel() -> tuple[Metrics, object]:
    stats = GatewayStats()
    metrics = Metrics(PolicySource(stats), stats)
    connect = tflow.tflow()
    connect.request.method = "CONNECT"
    connect.metadata[context.DECISION] = Decision(
        Verdict.BLOCK, Reason.CIRCUMVENTION, host="dns.google", technique="doh"
    )
    metrics.http_connect(connect)
    return metrics, connect


def test_an_https_attempt_is_counted_once_not_at_connect_and_request() -> None:
    """Review 2026-12-ops M10.1: one DoH request over HTTPS counted 2 (CONNECT and request)
    while the database held 1 row. A tunnel's attempt counts with its request."""
    metrics, connect = _doh_tunnel()
    request = tflow.tflow(resp=True)
    request.client_conn = connect.client_conn
    request.metadata[context.DECISION] = connect.metadata[context.DECISION]
    metrics.response(request)
    metrics.client_disconnected(connect.client_conn)
    assert _attempts(metrics) == 1


def test_a_tunnel_cut_before_any_request_is_one_attempt() -> None:
    """As recorded (record.py): a blocked tunnel the client leaves without a request (a
    handshake cut short, or relayed without decrypting) is one attempt, counted when it ends."""
    metrics, connect = _doh_tunnel()
    assert _attempts(metrics) == 0
    metrics.client_disconnected(connect.client_conn)
    metrics.client_disconnected(connect.client_conn)
    assert _attempts(metrics) == 1


def test_an_attempt_refused_at_the_connect_is_counted_there() -> None:
    stats = GatewayStats()
    metrics = Metrics(PolicySource(stats), stats)
    connect = tflow.tflow(resp=True)
    connect.request.method = "CONNECT"
    connect.metadata[context.DECISION] = Decision(
        Verdict.BLOCK, Reason.CIRCUMVENTION, host="dns.google", technique="doh"
    )
    metrics.http_connect(connect)
    metrics.client_disconnected(connect.client_conn)
    assert _attempts(metrics) == 1


def test_each_decision_is_counted_under_its_own_labels_every_time() -> None:
    stats = GatewayStats()
    metrics = Metrics(PolicySource(stats), stats)
    allowed = Decision(Verdict.ALLOW, Reason.DEFAULT_ALLOW)
    for role in ("pupil", "pupil", "staff", "pupil"):
        flow = tflow.tflow(resp=True)
        flow.metadata[context.DECISION] = allowed
        flow.metadata[context.IDENTITY] = context.Identity(role, context.IdentitySource.SUBNET)
        metrics.response(flow)
    counts = {
        dict(labels)["role"]: value
        for (name, labels), value in scrape(metrics.registry).items()
        if name == "schoolgate_requests_total"
    }
    assert counts == {"pupil": 3, "staff": 1}
