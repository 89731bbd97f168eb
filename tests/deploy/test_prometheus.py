"""deploy/prometheus and deploy/grafana: promtool accepts the scrape config and the rules, the
rules' own unit tests pass (each alert fires on what should raise it), and every metric the
rules and dashboards query is one that schoolgate really exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from schoolgate.admin_metrics import install_admin_metrics
from schoolgate.proxy_addons.metrics import Metrics
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.proxy_addons.stats import GatewayStats
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.event_writer import WriterStats
from tests.support.needs import need_program

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
NAME = re.compile(r"\bschoolgate_[a-z_]+\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = need_program("promtool", "prometheus")
    return subprocess.run(
        [tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "schoolgate-rules.yml"),
        ("test", "rules", "schoolgate-rules.test.yml"),
    ],
)
def test_promtool_accepts(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_the_issue_asks_for_is_there() -> None:
    rules = (PROMETHEUS / "schoolgate-rules.yml").read_text()
    for alert in (
        "SchoolgateGatewayDown",
        "SchoolgateEngineErrors",
        "SchoolgateEventsDropped",
        "SchoolgateSpoolGrowing",
        "SchoolgateDirectoryUnreachable",
        # ops review M10.3: the alert and sanction worker's losses and failed pushes
        "SchoolgateAlertsLost",
        "SchoolgateAlertPushFailing",
    ):
        assert f"alert: {alert}" in rules


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name the gateway and the admin export when all their parts are present."""
    stats = GatewayStats()
    source = PolicySource(stats)
    metrics = Metrics(source, stats)
    for stage in ("connect", "request"):
        metrics.requests.labels(stage, "block", "rule_block", "x", "pupil").inc()
        metrics.latency.labels(stage).observe(0.001)
    metrics.attempts.labels("doh").inc()
    metrics.identities.labels("directory").inc()
    # The real writer's counters (not a stand-in whose names could drift from it).
    stats.event_writer = lambda: WriterStats(
        submitted=6,
        queued=1,
        written=5,
        spooled=1,
        replayed=0,
        dropped=0,
        spool_bytes=10,
        db_failures=0,
        bad_spool_lines=0,
        rejected=0,
    )
    text = generate_latest(metrics.registry).decode()
    folder = tmp_path_factory.mktemp("admin-db")
    url = f"sqlite:///{folder / 'schoolgate.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        admin = install_admin_metrics(FastAPI(), engine)
        admin_histogram = admin._names_to_collectors["schoolgate_admin_request_seconds"]
        admin_histogram.labels("GET", "/", "2xx").observe(0.01)  # type: ignore[attr-defined]
        text += generate_latest(admin).decode()
    finally:
        engine.dispose()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def queried(text: str) -> set[str]:
    return set(NAME.findall(text))


def test_the_rules_query_only_exported_metrics(exported: set[str]) -> None:
    names = queried((PROMETHEUS / "schoolgate-rules.yml").read_text())
    assert names
    assert names - exported == set()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_dashboards_query_only_exported_metrics(path: Path, exported: set[str]) -> None:
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    assert queried("\n".join(exprs)) - exported == set()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_there_is_a_dashboard_for_it_and_one_for_the_dsl() -> None:
    titles = {json.loads(p.read_text())["uid"]: p for p in DASHBOARDS}
    assert set(titles) == {"schoolgate-it", "schoolgate-dsl"}
    dsl = titles["schoolgate-dsl"].read_text()
    for metric in (
        "schoolgate_circumvention_attempts_total",
        "schoolgate_admin_unblock_requests_pending",
        "schoolgate_admin_alerts_open",
    ):
        assert metric in dsl


# Gauges the admin reads from the database: every admin replica reports the same value.
DATABASE_GAUGES = (
    "schoolgate_admin_unblock_requests_pending",
    "schoolgate_admin_alerts_open",
    "schoolgate_admin_unblock_request_oldest_pending_timestamp_seconds",
)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_database_gauges_are_not_added_up_over_admin_replicas(path: Path) -> None:
    """Ops review M10: with two admin replicas, sum() doubled the requests waiting and the
    open alerts. A value read from the one database is taken once per label set (max),
    whatever the number of replicas; only then may series be added up."""
    exprs = [t["expr"] for p in json.loads(path.read_text())["panels"] for t in p["targets"]]
    exprs += re.findall(r"expr: (.*)", (PROMETHEUS / "schoolgate-rules.yml").read_text())
    for expr in exprs:
        plain = re.sub(r"\s+(by|without)\s*\([^()]*\)", "", expr)  # sum by (x) (...) -> sum (...)
        for gauge in DATABASE_GAUGES:
            assert not re.search(rf"\b(sum|count)\s*\(\s*{gauge}\b", plain), expr


def test_the_gauge_check_sees_a_sum() -> None:
    for bad in (
        "sum(schoolgate_admin_alerts_open)",
        "sum by (severity) (schoolgate_admin_alerts_open)",
    ):
        plain = re.sub(r"\s+(by|without)\s*\([^()]*\)", "", bad)
        assert re.search(r"\b(sum|count)\s*\(\s*schoolgate_admin_alerts_open\b", plain)
