"""The admin's metrics: requests pending and alerts open counted in a real (migrated) SQLite
database, request latency by route template (never the raw path), served at /metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.orm import Session

from schoolgate.admin_metrics import install_admin_metrics
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import AlertRow, AlertSeverity, AlertState

CREATED = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }


def add_request(url: str, ident: str, state: str) -> None:
    with make_engine(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO unblock_requests (id, created_at, requester, requester_name, "
                "requester_role, from_block_page, host, why, state) VALUES (:id, :at, 'staff1', "
                "'A Teacher', 'staff', 0, 'example.org', 'for a lesson', :state)"
            ),
            # as SQLAlchemy stores a DateTime on SQLite (sqlite3's own adapter is deprecated)
            {"id": ident, "at": CREATED.replace(tzinfo=None).isoformat(sep=" "), "state": state},
        )


def add_alert(url: str, ident: int, severity: str, state: str) -> None:
    with Session(make_engine(url)) as session, session.begin():
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


def test_counts_and_latency(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgrade(url)
    app = FastAPI()

    @app.get("/requests/{request_id}")
    def show(request_id: str) -> dict[str, str]:
        return {"id": request_id}

    install_admin_metrics(app, url)
    client = TestClient(app)
    before = samples(client)
    assert before[("schoolgate_admin_unblock_requests_pending", ())] == 0
    assert before[("schoolgate_admin_alerts_open", (("severity", "high"),))] == 0

    add_request(url, "r1", "pending")
    add_request(url, "r2", "pending")
    add_request(url, "r3", "denied")
    add_alert(url, 1, "high", "open")
    add_alert(url, 2, "high", "closed")
    add_alert(url, 3, "low", "open")
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
    install_admin_metrics(app, f"sqlite:///{tmp_path / 'empty.db'}")  # no tables
    got = samples(TestClient(app))
    assert got[("schoolgate_admin_database_up", ())] == 0
    assert ("schoolgate_admin_unblock_requests_pending", ()) not in got
