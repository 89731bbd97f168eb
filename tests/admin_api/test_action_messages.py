"""Every destructive action asks for a reason and confirms, and every action ends on a page
that says what happened (issue 13; UX review finding 7): lifting or dismissing a sanction opens
a confirmation page with a reason, and placing, extending, lifting, opening a supervised
session, acknowledging or closing an alert and writing an incident note each end with a
sentence saying what was done."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from schoolgate.admin_api.resources import Resources
from schoolgate.store.admin_models import AuditEntryRow
from schoolgate.store.models import (
    AlertRow,
    AlertSeverity,
    AlertState,
    SanctionRow,
    SanctionState,
    SupervisedSessionRow,
)
from schoolgate.store.sanctions import place_sanction
from tests.admin_api.conftest import client_for

NOTICE = re.compile(r'<div class="ok-summary" role="status"><p>([^<]+)</p>')


def _sanction(resources: Resources, *, state: SanctionState = SanctionState.PLACED) -> str:
    now = datetime.now(UTC)
    with resources.sessions() as session, session.begin():
        return place_sanction(
            session=session,
            user=f"pupil-{uuid.uuid4().hex[:6]}",
            starts=now,
            ends=now + timedelta(days=3),
            reason="3 attempts",
            placed_by="dsl1",
            state=state,
        )


def _alert(resources: Resources) -> str:
    alert_id = str(uuid.uuid4())
    with resources.sessions() as session, session.begin():
        session.add(
            AlertRow(
                id=alert_id,
                at=datetime.now(UTC),
                severity=AlertSeverity.HIGH,
                kind="circumvention_attempt",
                user="pupil2",
                summary="pupil2 tried a web proxy",
                details={"host": "proxysite.test"},
                state=AlertState.OPEN,
            )
        )
    return alert_id


def _state(resources: Resources, sanction_id: str) -> SanctionState:
    with resources.sessions() as session:
        return session.get_one(SanctionRow, sanction_id).state


def _told(client: TestClient, answer_location: str) -> str:
    page = client.get(answer_location)
    assert page.status_code == 200
    found = NOTICE.search(page.text)
    assert found is not None, f"no message on {answer_location}"
    return found.group(1)


@pytest.mark.parametrize(
    ("state", "title", "done"),
    [
        (SanctionState.PLACED, "Lift the sanction for", "Lifted."),
        (SanctionState.RECOMMENDED, "Dismiss the recommendation for", "Dismissed."),
    ],
)
def test_lifting_a_sanction_asks_why_and_confirms(
    app: FastAPI, resources: Resources, state: SanctionState, title: str, done: str
) -> None:
    sanction_id = _sanction(resources, state=state)
    client, csrf = client_for(app, "dsl")
    listing = client.get("/monitoring/sanctions").text
    # No one-click lift: the page links to the confirmation page instead.
    assert f'<form method="post" action="/monitoring/sanctions/{sanction_id}/lift"' not in listing
    assert f'href="/monitoring/sanctions/{sanction_id}/lift"' in listing
    confirm = client.get(f"/monitoring/sanctions/{sanction_id}/lift")
    assert confirm.status_code == 200
    assert title in confirm.text
    assert 'name="reason"' in confirm.text
    for fields in (
        {},
        {"note": "Apologised."},
        {"reason": "ok", "confirm": "yes"},
        {"reason": "Apologised to the class."},
    ):
        refused = client.post(
            f"/monitoring/sanctions/{sanction_id}/lift", data={"csrf_token": csrf, **fields}
        )
        assert refused.status_code == 422, fields
        assert _state(resources, sanction_id) is state
    lifted = client.post(
        f"/monitoring/sanctions/{sanction_id}/lift",
        data={"csrf_token": csrf, "reason": "Apologised to the class.", "confirm": "yes"},
    )
    assert lifted.status_code == 303
    assert _state(resources, sanction_id) is SanctionState.LIFTED
    assert _told(client, lifted.headers["location"]).startswith(done)
    with resources.sessions() as session:
        note = session.get_one(SanctionRow, sanction_id).note
    assert "Apologised to the class." in (note or "")


def test_a_lift_of_an_unknown_or_ended_sanction_is_refused(
    app: FastAPI, resources: Resources
) -> None:
    client, _ = client_for(app, "dsl")
    assert client.get(f"/monitoring/sanctions/{uuid.uuid4()}/lift").status_code == 404
    sanction_id = _sanction(resources)
    with resources.sessions() as session, session.begin():
        session.get_one(SanctionRow, sanction_id).state = SanctionState.LIFTED
    assert client.get(f"/monitoring/sanctions/{sanction_id}/lift").status_code == 409


def test_every_sanction_action_ends_with_a_message(app: FastAPI, resources: Resources) -> None:
    client, csrf = client_for(app, "dsl")
    placed = client.post(
        "/monitoring/sanctions",
        data={"csrf_token": csrf, "user": "pupil2", "days": "2", "reason": "Tried a VPN again."},
    )
    assert placed.status_code == 303
    assert _told(client, placed.headers["location"]).startswith("Sanction placed.")
    with resources.sessions() as session:
        sanction_id = session.scalars(
            select(SanctionRow.id).where(
                SanctionRow.user == "pupil2", SanctionRow.state == SanctionState.PLACED
            )
        ).first()
    assert sanction_id is not None
    extended = client.post(
        f"/monitoring/sanctions/{sanction_id}/extend", data={"csrf_token": csrf, "days": "5"}
    )
    assert _told(client, extended.headers["location"]).startswith("Extended.")
    recommended = _sanction(resources, state=SanctionState.RECOMMENDED)
    confirmed = client.post(
        f"/monitoring/sanctions/{recommended}/extend", data={"csrf_token": csrf, "days": "5"}
    )
    assert _told(client, confirmed.headers["location"]).startswith("Sanction placed.")
    opened = client.post(
        "/monitoring/supervised-sessions",
        data={"csrf_token": csrf, "user": "pupil2", "minutes": "30"},
    )
    assert _told(client, opened.headers["location"]).startswith("Supervised session open")
    for row_id in (sanction_id, recommended):
        client.post(
            f"/monitoring/sanctions/{row_id}/lift",
            data={"csrf_token": csrf, "reason": "End of the test.", "confirm": "yes"},
        )


def test_a_teachers_supervised_session_ends_with_a_message(
    app: FastAPI, resources: Resources
) -> None:
    client, csrf = client_for(app, "staff")  # teacher1, who teaches Year5: pupil1's class
    try:
        opened = client.post(
            "/monitoring/supervised-sessions",
            data={"csrf_token": csrf, "user": "pupil1", "minutes": "30"},
        )
        assert opened.status_code == 303
        assert _told(client, opened.headers["location"]).startswith("Supervised session open")
    finally:  # an open session would lift pupil1's sanction in the tests that follow
        with resources.sessions() as session, session.begin():
            session.execute(
                delete(SupervisedSessionRow).where(SupervisedSessionRow.user == "pupil1")
            )


def test_alert_and_note_actions_end_with_a_message(app: FastAPI, resources: Resources) -> None:
    alert_id = _alert(resources)
    client, csrf = client_for(app, "dsl")
    acknowledged = client.post(
        f"/monitoring/alerts/{alert_id}/acknowledge", data={"csrf_token": csrf}
    )
    assert _told(client, acknowledged.headers["location"]).startswith("Acknowledged.")
    closed = client.post(
        f"/monitoring/alerts/{alert_id}/close",
        data={
            "csrf_token": csrf,
            "action_taken": "Spoke to the pupil and their parents.",
            "outcome": "Supervised-only for a week.",
        },
    )
    assert closed.status_code == 303
    assert _told(client, closed.headers["location"]).startswith("Closed.")
    written = client.post(
        "/monitoring/incidents",
        data={
            "csrf_token": csrf,
            "user": "pupil2",
            "what_happened": "Tried a proxy in ICT.",
            "action_taken": "Talked it through.",
            "outcome": "Understood the rule.",
        },
    )
    assert written.status_code == 303
    assert _told(client, written.headers["location"]).startswith("Note written.")
    with resources.sessions() as session:
        actions = set(
            session.scalars(
                select(AuditEntryRow.action).where(AuditEntryRow.target == f"alert:{alert_id}")
            )
        )
    assert {"alert.acknowledge", "alert.close"} <= actions
