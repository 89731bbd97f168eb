"""The admin's metrics: requests pending and alerts open counted in a real (migrated) SQLite
database, request latency by route template (never the raw path), served at /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from schoolgate.admin_metrics import install_admin_metrics
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import AlertRow, AlertSeverity, AlertState
from tests.support.leaks import UNCLOSED_SQLITE, closed_what_it_opened

__all__ = ["closed_what_it_opened"]
pytestmark = list(UNCLOSED_SQLITE)  # the metrics' engine was never disposed

CREATED = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }


def add_request(engine: Engine, ident: str, state: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO unblock_requests (id, created_at, requester, requester_name, "
                "requester_role, from_block_page, host, why, state) VALUES (:id, :at, 'staff1', "
                "'A Teacher', 'staff', 0, 'example.org', 'for a lesson', :state)"
            ),
            # as SQLAlchemy stores a DateTime on SQLite (sqlite3's own adapter is deprecated)
            {"id": ident, "at": CREATED.replace(tzinfo=None).isoformat(sep=" "), "state": state},
        )


def add_alert(engine: Engine, ident: int, severity: str, state: str) -> None:
    with Session(engine) as session, session.begin():
        session.add(
            AlertRow(
                id=f"a{ident}",
                at=CREATED,
                severity=AlertSeverity(severity),
                kind="circumvention",
                user=None,
                summary="an attempt",
                details={},
                state=AlertState(state),
            )
        )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgrade(url)
    made = make_engine(url)
    yield made
    made.dispose()


def test_counts_and_latency(engine: Engine) -> None:
    app = FastAPI()

    @app.get("/requests/{request_id}")
    def show(request_id: str) -> dict[str, str]:
        return {"id": request_id}

    install_admin_metrics(app, engine)
    client = TestClient(app)
    before = samples(client)
    assert before[("schoolgate_admin_unblock_requests_pending", ())] == 0
    assert before[("schoolgate_admin_alerts_open", (("severity", "high"),))] == 0

    add_request(engine, "r1", "pending")
    add_request(engine, "r2", "pending")
    add_request(engine, "r3", "denied")
    add_alert(engine, 1, "high", "open")
    add_alert(engine, 2, "high", "closed")
    add_alert(engine, 3, "low", "open")
    for ident in ("pupil1-secret-id", "another"):
        assert client.get(f"/requests/{ident}").status_code == 200
    assert client.get("/no/such/page").status_code == 404

    after = samples(client)
    assert after[("schoolgate_admin_database_up", ())] == 1
    assert after[("schoolgate_admin_unblock_requests_pending", ())] == 2
    assert (
        after[("schoolgate_admin_unblock_request_oldest_pending_timestamp_seconds", ())]
        == CREATED.timestamp()
    )
    assert after[("schoolgate_admin_alerts_open", (("severity", "high"),))] == 1
    assert after[("schoolgate_admin_alerts_open", (("severity", "low"),))] == 1
    by_route = (("method", "GET"), ("route", "/requests/{request_id}"), ("status", "2xx"))
    assert after[("schoolgate_admin_request_seconds_count", by_route)] == 2
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "4xx"))
    assert after[("schoolgate_admin_request_seconds_count", unmatched)] == 1
    routes = {dict(labels).get("route") for (_, labels) in after}
    assert not any("pupil1" in (r or "") for r in routes)


def test_a_database_that_is_not_there_is_reported_not_raised(tmp_path: Path) -> None:
    app = FastAPI()
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables
    try:
        install_admin_metrics(app, empty)
        got = samples(TestClient(app))
    finally:
        empty.dispose()
    assert got[("schoolgate_admin_database_up", ())] == 0
    assert ("schoolgate_admin_unblock_requests_pending", ()) not in got
