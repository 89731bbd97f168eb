"""store/escalation.py: the gateway's alert and sanction worker, on a real SQLite database.
Jobs are written off the request path, retried while the database fails, and counted; a full
queue or a job that never succeeds is dropped and counted (never silently)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from schoolgate.policy.model import CircumventionSettings, Reason, Verdict
from schoolgate.store.alerts import Alert, parse_push_settings
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.escalation import AlertWorker, Job, attempt_alert_job, threshold_job
from schoolgate.store.events import AttemptEvidence, Event
from schoolgate.store.models import AlertRow

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@dataclass
class Counts:
    alerts_raised: int = 0
    alerts_pushed: int = 0
    alert_jobs_dropped: int = 0
    alerts_errors: int = 0
    alert_write_failures: int = 0
    alert_push_failures: int = 0


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'sg.db'}"
    upgrade(url)
    return make_engine(url)


def attempt(user: str | None = "pupil1") -> Event:
    return Event(
        at=AT,
        host="vpn.example",
        verdict=Verdict.BLOCK,
        reason=Reason.CIRCUMVENTION,
        user=user,
        client_ip="10.0.0.9",
        technique="web_proxy",
        attempt=AttemptEvidence({"path": "/browse.php"}),
    )


def alerts(engine: Engine) -> list[AlertRow]:
    with Session(engine) as session:
        return list(session.scalars(select(AlertRow)))


async def test_an_attempt_alert_is_written_in_the_background(engine: Engine) -> None:
    counts = Counts()
    worker = AlertWorker(engine, counts)
    worker.start()
    worker.submit(attempt_alert_job(attempt()))
    await worker.close()
    [row] = alerts(engine)
    assert row.user == "pupil1"
    assert "web_proxy" in row.summary
    assert "vpn.example" in row.summary
    assert row.details["path"] == "/browse.php"
    assert counts == Counts(alerts_raised=1)


async def test_the_threshold_acts_once_when_reached(engine: Engine) -> None:
    counts = Counts()
    worker = AlertWorker(engine, counts)
    worker.start()
    settings = CircumventionSettings()
    for _ in range(settings.threshold_attempts):
        worker.submit(threshold_job(attempt(), settings))
    await worker.close()
    assert counts.alerts_raised == 1  # only the act that reached the threshold raised one
    assert len(alerts(engine)) == 1


def test_only_a_signed_in_persons_attempts_count_towards_a_sanction() -> None:
    with pytest.raises(ValueError, match="signed-in"):
        threshold_job(attempt(user=None), CircumventionSettings())


async def test_a_failing_job_is_retried_then_given_up_and_counted(engine: Engine) -> None:
    counts = Counts()
    tries: list[int] = []

    def fail(_session: Session) -> Alert | None:
        tries.append(1)
        raise OSError("database down")

    worker = AlertWorker(engine, counts, retries=3, retry_seconds=0.01)
    worker.start()
    worker.submit(Job("alert", fail))
    await worker.close()
    assert len(tries) == 3
    # Review 2026-12-ops M10.3: failed writes have their own exported counter, not the
    # addon's engine errors (which mean a bug).
    assert counts == Counts(alert_write_failures=3, alert_jobs_dropped=1)


async def test_a_full_queue_drops_and_counts(engine: Engine) -> None:
    counts = Counts()
    worker = AlertWorker(engine, counts, queue_size=1)  # not started: nothing is taken off
    worker.submit(attempt_alert_job(attempt()))
    worker.submit(attempt_alert_job(attempt()))
    assert counts.alert_jobs_dropped == 1
    worker.start()
    await asyncio.wait_for(worker.close(), 10)
    assert counts.alerts_raised == 1


async def test_a_failed_push_is_counted_as_a_push_failure(engine: Engine) -> None:
    """Review 2026-12-ops M10.3: an email or webhook push that fails is counted where the
    metrics export it (schoolgate_gateway_alert_push_failures_total), the alert is kept."""
    counts = Counts()
    push = parse_push_settings(
        "min_severity: low\nwebhook:\n  url: http://127.0.0.1:9/hook\n  retries: 0\n",
        source="push.yaml",
    )
    worker = AlertWorker(engine, counts, push=push)
    worker.start()
    worker.submit(attempt_alert_job(attempt()))
    await worker.close(timeout=30)
    assert len(alerts(engine)) == 1
    assert counts == Counts(alerts_raised=1, alert_push_failures=1)
