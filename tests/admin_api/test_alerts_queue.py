"""The circumvention alerts queue and incident notes (admin_api/alerts.py, incidents.py and
their services) on SQLite and PostgreSQL: most urgent first, acknowledge, close with the action
taken and the outcome (an incident note), every change audited, only for the DSL."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from schoolgate.admin_api.resources import Resources
from schoolgate.store.admin_models import AuditEntryRow
from schoolgate.store.incident_models import IncidentNoteRow
from schoolgate.store.models import AlertRow, AlertSeverity, AlertState
from tests.admin_api.conftest import ROLES, client_for


def _alerts(resources: Resources, user: str) -> dict[AlertSeverity, str]:
    now = datetime.now(UTC)
    made = {}
    with resources.sessions() as session:
        for n, severity in enumerate((AlertSeverity.LOW, AlertSeverity.HIGH, AlertSeverity.MEDIUM)):
            made[severity] = str(uuid.uuid4())
            session.add(
                AlertRow(
                    id=made[severity],
                    at=now - timedelta(minutes=n),
                    severity=severity,
                    kind="circumvention_attempt",
                    user=user,
                    summary=f"{user} tried a web proxy ({severity})",
                    details={"host": "proxysite.test"},
                    state=AlertState.OPEN,
                )
            )
        session.commit()
    return made


def _audit(resources: Resources, action: str, target: str) -> AuditEntryRow:
    with resources.sessions() as session:
        row = session.scalars(
            select(AuditEntryRow).where(
                AuditEntryRow.action == action, AuditEntryRow.target == target
            )
        ).first()
    assert row is not None, f"no audit entry {action} {target}"
    return row


def test_the_queue_shows_open_alerts_most_urgent_first(app: FastAPI, resources: Resources) -> None:
    user = f"pupil-{uuid.uuid4().hex[:6]}"
    made = _alerts(resources, user)
    client, _ = client_for(app, "dsl")
    listed = [a["id"] for a in client.get("/api/monitoring/alerts").json() if a["user"] == user]
    assert listed == [made[AlertSeverity.HIGH], made[AlertSeverity.MEDIUM], made[AlertSeverity.LOW]]
    page = client.get("/monitoring/alerts").text
    positions = [
        page.index(f"/monitoring/alerts/{made[s]}")
        for s in (AlertSeverity.HIGH, AlertSeverity.MEDIUM, AlertSeverity.LOW)
    ]
    assert positions == sorted(positions)


def test_acknowledge_then_close_records_the_action_and_outcome(
    app: FastAPI, resources: Resources
) -> None:
    user = f"pupil-{uuid.uuid4().hex[:6]}"
    alert_id = _alerts(resources, user)[AlertSeverity.HIGH]
    client, csrf = client_for(app, "dsl")
    answer = client.post(f"/monitoring/alerts/{alert_id}/acknowledge", data={"csrf_token": csrf})
    assert answer.status_code == 303
    entry = _audit(resources, "alert.acknowledge", f"alert:{alert_id}")
    assert entry.actor == "dsl1"
    assert entry.before is not None
    assert entry.before["state"] == "open"
    assert entry.after is not None
    assert entry.after["state"] == "acknowledged"
    closed = client.post(
        f"/api/monitoring/alerts/{alert_id}/close",
        headers={"X-CSRF-Token": csrf},
        json={
            "action_taken": "Spoke to the pupil and their parents.",
            "outcome": "Supervised-only for a week.",
        },
    )
    assert closed.status_code == 200, closed.text
    note = closed.json()
    assert note["alert_id"] == alert_id
    assert note["user"] == user
    assert note["written_by"] == "dsl1"
    assert note["what_happened"] == f"{user} tried a web proxy (high)"
    with resources.sessions() as session:
        row = session.get_one(AlertRow, alert_id)
        assert row.state is AlertState.CLOSED
        assert row.outcome == "Supervised-only for a week."
        # retention counts from the closing (ops review L4; store/retention.py)
        assert row.closed_at is not None
        assert abs((row.closed_at - datetime.now(UTC)).total_seconds()) < 300
        assert session.get(IncidentNoteRow, note["id"]) is not None
    assert (
        _audit(resources, "alert.close", f"alert:{alert_id}").after["incident_note"] == note["id"]
    )  # type: ignore[index]
    _audit(resources, "incident.write", f"incident:{note['id']}")
    again = client.post(
        f"/api/monitoring/alerts/{alert_id}/close",
        headers={"X-CSRF-Token": csrf},
        json={"action_taken": "Again.", "outcome": "Again."},
    )
    assert again.status_code == 409
    page = client.get(f"/monitoring/alerts/{alert_id}").text
    assert "Spoke to the pupil and their parents." in page
    assert "Close the alert" not in page


def test_closing_without_the_outcome_says_what_is_missing(
    app: FastAPI, resources: Resources
) -> None:
    alert_id = _alerts(resources, f"pupil-{uuid.uuid4().hex[:6]}")[AlertSeverity.LOW]
    client, csrf = client_for(app, "dsl")
    answer = client.post(
        f"/monitoring/alerts/{alert_id}/close",
        data={"csrf_token": csrf, "action_taken": "<b>Spoke</b> to them"},
    )
    assert answer.status_code == 422
    assert "Please fill in the outcome" in answer.text
    assert "&lt;b&gt;Spoke&lt;/b&gt;" in answer.text  # kept, escaped
    with resources.sessions() as session:
        assert session.get_one(AlertRow, alert_id).state is AlertState.OPEN


def test_an_incident_note_is_written_escaped_and_listed_for_its_user(
    app: FastAPI, resources: Resources
) -> None:
    user = f"pupil-{uuid.uuid4().hex[:6]}"
    client, csrf = client_for(app, "dsl")
    answer = client.post(
        "/monitoring/incidents",
        data={
            "csrf_token": csrf,
            "user": user,
            "happened_at": "2030-01-06 10:15",
            "what_happened": "<script>alert(1)</script> typed into a search",
            "action_taken": "Talked with the class teacher.",
            "outcome": "No further concern.",
        },
    )
    assert answer.status_code == 303
    page = client.get(answer.headers["location"]).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    notes = client.get("/api/monitoring/incidents", params={"user": user}).json()
    assert len(notes) == 1
    # Typed in school time (January: GMT), stored in UTC.
    assert notes[0]["happened_at"].startswith("2030-01-06T10:15:00")


@pytest.mark.parametrize(
    "fields",
    [
        {"user": "", "what_happened": "abc", "action_taken": "abc", "outcome": "abc"},
        {"user": "a\nb", "what_happened": "abc", "action_taken": "abc", "outcome": "abc"},
        {"user": "x", "what_happened": "\x00\x01", "action_taken": "abc", "outcome": "abc"},
        {
            "user": "x",
            "what_happened": "abc",
            "action_taken": "abc",
            "outcome": "abc",
            "happened_at": "yesterday",
        },
        {
            "user": "x",
            "what_happened": "abc",
            "action_taken": "abc",
            "outcome": "abc",
            "alert_id": "'; DROP TABLE alerts; --",
        },
        {"user": "x" * 201, "what_happened": "abc", "action_taken": "abc", "outcome": "abc"},
    ],
)
def test_a_bad_note_gets_a_clear_message_and_nothing_is_saved(
    app: FastAPI, resources: Resources, fields: dict[str, str]
) -> None:
    client, csrf = client_for(app, "dsl")
    with resources.sessions() as session:
        before = len(session.scalars(select(IncidentNoteRow.id)).all())
    answer = client.post("/monitoring/incidents", data={"csrf_token": csrf, **fields})
    assert answer.status_code == 422
    assert "There is a problem" in answer.text
    api = client.post("/api/monitoring/incidents", headers={"X-CSRF-Token": csrf}, json=fields)
    assert api.status_code == 422
    with resources.sessions() as session:
        assert len(session.scalars(select(IncidentNoteRow.id)).all()) == before


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    "how",
    [
        "GET page",
        "POST acknowledge",
        "POST close",
        "GET api",
        "POST api acknowledge",
        "POST api close",
    ],
)
def test_only_the_dsl_may_open_or_act_on_an_alert(
    app: FastAPI, resources: Resources, role: str, how: str
) -> None:
    alert_id = _alerts(resources, "pupil1")[AlertSeverity.LOW]
    client, csrf = client_for(app, role)
    method, *rest = how.split(" ")
    api = rest[:1] == ["api"]
    action = rest[-1] if rest[-1] in ("acknowledge", "close") else ""
    path = (f"/api/monitoring/alerts/{alert_id}" if api else f"/monitoring/alerts/{alert_id}") + (
        f"/{action}" if action else ""
    )
    body = {"action_taken": "Spoke to them.", "outcome": "Understood."}
    if method == "GET":
        answer = client.get(path)
    elif api:
        answer = client.post(path, headers={"X-CSRF-Token": csrf}, json=body)
    else:
        answer = client.post(path, data={"csrf_token": csrf, **body})
    if role == "dsl":
        assert answer.status_code == (200 if method == "GET" or api else 303)
    elif role == "anonymous":
        assert answer.status_code == (401 if api else 303)
    else:
        assert answer.status_code == 403
        with resources.sessions() as session:
            assert session.get_one(AlertRow, alert_id).state is AlertState.OPEN


@pytest.mark.parametrize("alert_id", [str(uuid.uuid4()), "not-an-id", "x" * 36])
def test_an_unknown_alert_is_not_found(app: FastAPI, alert_id: str) -> None:
    client, csrf = client_for(app, "dsl")
    assert client.get(f"/monitoring/alerts/{alert_id}").status_code == 404
    answer = client.post(
        f"/api/monitoring/alerts/{alert_id}/acknowledge", headers={"X-CSRF-Token": csrf}
    )
    assert answer.status_code == 404
    assert re.search("no alert", answer.json()["message"])
