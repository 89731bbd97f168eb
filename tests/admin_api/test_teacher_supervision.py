"""A teacher (any member of staff, not only the DSL) opens a supervised session for a
sanctioned pupil; it is in the audit log with the teacher's name, and the gateway's overrides
see it. The directories have no groups saying which teacher has which class, so "their class"
is not checked (docs/monitoring.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import select

from admin_api.resources import Resources
from store.admin_models import AuditEntryRow
from store.models import SupervisedSessionRow
from store.overrides_db import DatabaseOverridesSource
from store.sanctions import lift_sanction, place_sanction
from tests.admin_api.conftest import client_for


def test_a_teacher_opens_a_supervised_session_and_it_is_audited(app: FastAPI,
                                                                resources: Resources) -> None:
    user = "pupil2"  # a person the directory knows
    now = datetime.now(UTC)
    with resources.sessions() as session, session.begin():
        sanction_id = place_sanction(session=session, user=user, starts=now,
                                     ends=now + timedelta(days=14), reason="3 attempts",
                                     placed_by="dsl1")
    try:
        client, csrf = client_for(app, "staff")  # teacher1: role staff only
        answer = client.post("/api/monitoring/supervised-sessions",
                             headers={"X-CSRF-Token": csrf}, json={"user": user, "minutes": 40})
        assert answer.status_code == 201
        session_id = answer.json()["id"]
        page = client.post("/monitoring/supervised-sessions",
                           data={"csrf_token": csrf, "user": user, "minutes": "20"},
                           follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/?done=session-opened"  # not the DSL's page
        with resources.sessions() as session:
            row = session.get_one(SupervisedSessionRow, session_id)
            audit = session.scalars(select(AuditEntryRow).where(
                AuditEntryRow.target == f"supervised_session:{session_id}")).one()
        assert row.opened_by == "teacher1"
        assert row.ends - row.starts == timedelta(minutes=40)
        assert (audit.actor, audit.action) == ("teacher1", "supervised_session.open")
        supervised = DatabaseOverridesSource(resources.engine).load_now().supervised_sessions
        assert any(s.user == user for s in supervised)
    finally:
        with resources.sessions() as session, session.begin():
            lift_sanction(session=session, sanction_id=sanction_id, by="dsl1",
                          at=datetime.now(UTC))


def test_a_pupil_cannot_open_one(app: FastAPI) -> None:
    client, csrf = client_for(app, "pupil")
    answer = client.post("/api/monitoring/supervised-sessions",
                         headers={"X-CSRF-Token": csrf}, json={"user": "pupil1", "minutes": 40})
    assert answer.status_code == 403


def test_a_teacher_still_cannot_place_or_see_sanctions(app: FastAPI) -> None:
    client, csrf = client_for(app, "staff")
    assert client.get("/api/monitoring/sanctions").status_code == 403
    assert client.post("/api/monitoring/sanctions", headers={"X-CSRF-Token": csrf},
                       json={"user": "pupil2", "reason": "x"}).status_code == 403
