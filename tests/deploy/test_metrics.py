"""The gateway's /metrics endpoint scraped during an end-to-end run through a real gateway:
every metric is there, moves as the traffic says it should, and no label carries a user name,
a host or an address."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schoolgate.policy.model import Reason, Verdict
from schoolgate.proxy_addons.stats import GatewayStats, counters
from schoolgate.store.db import upgrade
from tests.support.gateway import (
    ORIGIN_HOSTS,
    USERS,
    Gateway,
    free_port,
    running_gateway,
    wait_for,
    write_identity,
    write_policy,
)

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
SUPPORT = HERE.parent / "support"


def _stats_labels() -> dict[str, set[str]]:
    """The fixed label values of the gateway's own counters (proxy_addons/stats.py)."""
    found: dict[str, set[str]] = {}
    for metric, _ in counters(GatewayStats()):
        for name, value in metric.labels.items():
            found.setdefault(name, set()).add(value)
    return found


STATS_LABELS = _stats_labels()
# Every label the gateway may use, and the values it may take (None: checked separately).
LABELS: dict[str, set[str] | None] = {
    "stage": {"connect", "request"},
    "verdict": {v.value for v in Verdict},
    "reason": {r.value for r in Reason},
    "category": {"none", "x", "instagram", "facebook", "social", "web_proxy", "banking"},
    "role": {"pupil", "staff", "social_media_manager", "default"},
    "technique": None,  # code constants; checked against hosts and users below
    "source": {"directory", "local", "subnet", "default"},
    "handling": {"intercepted", "passed_through", "refused"},
    "outcome": STATS_LABELS["outcome"],  # the front door's
    "addon": STATS_LABELS["addon"],  # every addon's engine errors (review 2026-12, F3)
    "limit": STATS_LABELS["limit"],
    "result": {"ok", "refused", "error"},
    "version": None,  # 12 hex digits, checked below
    "le": None,  # histogram buckets
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Scraper:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def families(self) -> list[object]:
        text = httpx.get(f"{self.url}/metrics", timeout=10, trust_env=False).text
        return list(text_string_to_metric_families(text))

    def samples(self) -> Samples:
        out: Samples = {}
        for family in self.families():
            for s in family.samples:  # type: ignore[attr-defined]
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Scraper, Path]]:
    folder = tmp_path_factory.mktemp("metrics")
    policy = folder / "policy.yaml"
    write_policy(policy, in_break=False)
    port = free_port()
    database = f"sqlite:///{folder / 'schoolgate.db'}"
    upgrade(database)  # the event writer records into it
    with running_gateway(
        folder,
        policy=policy,
        identity=write_identity(folder / "id"),
        extra_scripts=[HERE / "metrics_script.py", SUPPORT / "faulty_decide.py"],
        extra_args=[
            "--set",
            f"schoolgate_metrics_port={port}",
            "--set",
            f"schoolgate_database_url={database}",
        ],
    ) as gw:
        scraper = Scraper(port)
        wait_for(lambda: _answers(scraper), what="the metrics endpoint")
        yield gw, scraper, policy


def _answers(scraper: Scraper) -> bool:
    try:
        return httpx.get(f"{scraper.url}/healthz", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def browse(gw: Gateway) -> None:
    """A morning's traffic in miniature: allowed, blocked, circumvention, passthrough, 407."""
    with gw.client("pupil1", trust="both") as c:
        assert c.get("http://learning.test/").status_code == 200
        assert c.get("http://x.com/").status_code == 403
        assert c.get("https://www.facebook.com/").status_code == 403
        assert c.get("https://proxysite.test/").status_code == 403
        # Host header naming another site than the tunnel: a circumvention signal.
        assert (
            c.get("https://www.tiktok.com/", headers={"Host": "learning.test"}).status_code == 403
        )
        # An HTTPS attempt decided at the CONNECT already (an IP literal), then its request.
        assert c.get("https://8.8.8.8/").status_code == 403
    with gw.client("staff1", trust="origin") as c:
        assert c.get("https://learning.test/").status_code == 200  # passed through
    with gw.client("staff1") as c:
        assert c.get("http://explode.test/").status_code == 403  # injected engine error
    with gw.client(None) as c:
        assert c.get("http://learning.test/").status_code == 407


def test_every_metric_is_present_and_moves(gateway: tuple[Gateway, Scraper, Path]) -> None:
    gw, scraper, policy = gateway
    before = scraper.samples()
    browse(gw)
    after = scraper.samples()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert (
        moved(
            "schoolgate_requests_total",
            stage="request",
            verdict="allow",
            role="pupil",
            reason="default_allow",
        )
        == 1
    )
    assert (
        moved(
            "schoolgate_requests_total",
            stage="request",
            verdict="block",
            category="x",
            role="pupil",
        )
        == 1
    )
    assert (
        moved("schoolgate_requests_total", stage="connect", category="facebook", role="pupil") == 1
    )
    assert moved("schoolgate_requests_total", stage="request", reason="engine_error") == 1
    assert moved("schoolgate_circumvention_attempts_total", technique="host_mismatch") >= 1
    assert moved("schoolgate_circumvention_attempts_total") >= 2
    # ops review M10.1: one HTTPS attempt is one, not one at the CONNECT and one at the request
    assert moved("schoolgate_circumvention_attempts_total", technique="ip_literal") == 1
    assert moved("schoolgate_decision_seconds_count", stage="request") >= 5
    assert moved("schoolgate_decision_seconds_count", stage="connect") >= 4
    assert moved("schoolgate_decision_seconds_sum", stage="request") > 0
    assert moved("schoolgate_identities_total", source="local") >= 5
    assert moved("schoolgate_connections_total", handling="intercepted") >= 2
    assert moved("schoolgate_connections_total", handling="passed_through") == 1
    assert moved("schoolgate_engine_errors_total", addon="enforce") == 1
    assert value(after, "schoolgate_engine_errors_total", addon="identify") == 0
    assert moved("schoolgate_identity_challenges_total") == 1
    assert value(after, "schoolgate_directory_lookups_total") >= 2  # pupil1, staff1
    assert value(after, "schoolgate_directory_errors_total") == 0
    assert moved("schoolgate_identity_cache_hits_total") >= 1
    version = hashlib.sha256(policy.read_bytes()).hexdigest()[:12]
    assert value(after, "schoolgate_policy_info", version=version) == 1
    assert value(after, "schoolgate_policy_last_reload_success") == 1
    assert value(after, "schoolgate_event_writer_present") == 1
    assert ("schoolgate_events_queue_depth", ()) in after
    assert ("schoolgate_events_spool_bytes", ()) in after
    wait_for(
        lambda: (
            value(scraper.samples(), "schoolgate_events_written_total")
            >= value(before, "schoolgate_events_written_total") + 5
        ),
        what="the browsing to be written as events",
    )
    assert value(scraper.samples(), "schoolgate_events_dropped_total") == 0


def test_no_label_carries_a_user_a_host_or_an_address(
    gateway: tuple[Gateway, Scraper, Path],
) -> None:
    gw, scraper, _ = gateway
    browse(gw)
    forbidden = {*USERS, *ORIGIN_HOSTS, "www.facebook.com", "127.0.0.1", "localhost"}
    for family in scraper.families():
        for s in family.samples:  # type: ignore[attr-defined]
            if not s.name.startswith("schoolgate_"):
                continue
            for label, val in s.labels.items():
                assert label in LABELS, (s.name, label)
                allowed = LABELS[label]
                if allowed is not None:
                    assert val in allowed, (s.name, label, val)
                assert val not in forbidden, (s.name, label, val)
                if label not in ("le", "version"):
                    assert not set(val) & set(".:@/"), (s.name, label, val)
            if "version" in s.labels:
                assert len(s.labels["version"]) == 12


def test_a_refused_policy_reload_is_reported(gateway: tuple[Gateway, Scraper, Path]) -> None:
    _, scraper, policy = gateway
    good = policy.read_text()
    try:
        policy.write_text(good + "\nrules: [this is not a rule]\n")
        wait_for(
            lambda: value(scraper.samples(), "schoolgate_policy_last_reload_success") == 0,
            what="the refused reload to show",
        )
        samples = scraper.samples()
        assert value(samples, "schoolgate_policy_reloads_total", result="refused") >= 1
        version = hashlib.sha256(good.encode()).hexdigest()[:12]
        assert value(samples, "schoolgate_policy_info", version=version) == 1  # the old one
    finally:
        write_policy(policy, in_break=False)
    wait_for(
        lambda: value(scraper.samples(), "schoolgate_policy_last_reload_success") == 1,
        what="the good reload to show",
    )
    new = hashlib.sha256(policy.read_bytes()).hexdigest()[:12]
    assert value(scraper.samples(), "schoolgate_policy_info", version=new) == 1


def test_healthz_answers(gateway: tuple[Gateway, Scraper, Path]) -> None:
    _, scraper, _ = gateway
    response = httpx.get(f"{scraper.url}/healthz", timeout=5, trust_env=False)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
