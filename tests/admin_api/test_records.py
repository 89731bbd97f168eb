"""Records (issue 13; security review finding 16): retention covers the audit log, unblock
requests and incident notes, with documented defaults; a subject access export gives
everything held about one person as a file, for the DSL and IT only, and is audited. On SQLite
and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from schoolgate.admin_api.resources import Resources
from schoolgate.policy.model import Verdict
from schoolgate.store.admin_models import AuditEntryRow, RequestState, UnblockRequestRow
from schoolgate.store.incident_models import IncidentNoteRow
from schoolgate.store.models import EventRow
from schoolgate.store.retention import RetentionDays, purge
from tests.admin_api.conftest import ROLES, client_for

DAY = timedelta(days=1)


def test_the_defaults_follow_the_documented_guidance() -> None:
    days = RetentionDays()
    assert (days.audit_log, days.requests, days.incident_notes) == (3 * 365, 365, 25 * 365)
    with pytest.raises(ValueError, match="incident_notes"):
        RetentionDays(incident_notes=0)


def test_purge_covers_the_audit_log_requests_and_incident_notes(resources: Resources) -> None:
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    with resources.sessions() as session:
        for label, age in (("old", 400), ("new", 10)):
            at = now - age * DAY
            session.add(
                AuditEntryRow(
                    at=at,
                    actor="bursar1",
                    actor_roles="business_manager",
                    action=f"test.{tag}.{label}",
                    target="x",
                )
            )
            session.add(
                UnblockRequestRow(
                    id=str(uuid.uuid4()),
                    created_at=at,
                    requester=f"{label}-{tag}",
                    requester_name="P",
                    requester_role="pupil",
                    from_block_page=False,
                    host="www.example.org",
                    why="For my project work.",
                    state=RequestState.PENDING,
                )
            )
            session.add(
                IncidentNoteRow(
                    id=str(uuid.uuid4()),
                    at=at,
                    user=f"{label}-{tag}",
                    written_by="dsl1",
                    what_happened="w",
                    action_taken="a",
                    outcome="o",
                )
            )
        session.commit()
    keep = 100 * 365  # the other tables (shared with other tests) keep everything here
    counts = purge(
        resources.engine,
        now=now,
        days=RetentionDays(
            events=keep,
            attempts=keep,
            alerts=keep,
            sanctions=keep,
            audit_log=365,
            requests=365,
            incident_notes=365,
        ),
    )
    assert counts["audit_log"] >= 1
    assert counts["unblock_requests"] >= 1
    assert counts["incident_notes"] >= 1
    with resources.sessions() as session:
        actions = set(
            session.scalars(
                select(AuditEntryRow.action).where(AuditEntryRow.action.like(f"test.{tag}.%"))
            )
        )
        assert actions == {f"test.{tag}.new"}
        requesters = set(
            session.scalars(
                select(UnblockRequestRow.requester).where(
                    UnblockRequestRow.requester.like(f"%-{tag}")
                )
            )
        )
        assert requesters == {f"new-{tag}"}
        notes = set(
            session.scalars(
                select(IncidentNoteRow.user).where(IncidentNoteRow.user.like(f"%-{tag}"))
            )
        )
        assert notes == {f"new-{tag}"}


def test_a_subject_access_export_holds_everything_about_one_person(
    app: FastAPI, resources: Resources
) -> None:
    person = f"Pupil-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    with resources.sessions() as session:
        session.add(
            EventRow(
                id=str(uuid.uuid4()),
                replica="test",
                seq=1,
                at=now,
                user=person.lower(),
                host="www.tiktok.com",
                verdict=Verdict.BLOCK,
                reason="rule_block",
                role="pupil",
                intercepted=True,
            )
        )
        session.add(
            IncidentNoteRow(
                id=str(uuid.uuid4()),
                at=now,
                user=person,
                written_by="dsl1",
                what_happened="seen upset",
                action_taken="talked",
                outcome="fine",
            )
        )
        session.add(
            UnblockRequestRow(
                id=str(uuid.uuid4()),
                created_at=now,
                requester=person,
                requester_name=person,
                requester_role="pupil",
                from_block_page=False,
                host="www.example.org",
                why="For my project work.",
                state=RequestState.PENDING,
            )
        )
        session.add(
            UnblockRequestRow(  # someone else's request
                id=str(uuid.uuid4()),
                created_at=now,
                requester="pupil2",
                requester_name="P2",
                requester_role="pupil",
                from_block_page=False,
                host="www.example.org",
                why="For my project work.",
                state=RequestState.PENDING,
            )
        )
        session.commit()
    client, csrf = client_for(app, "dsl")
    assert "Download the file" in client.get("/records").text
    answer = client.post("/records/subject-access", data={"user": person, "csrf_token": csrf})
    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["content-disposition"]
    held = json.loads(answer.text)
    assert held["subject"] == person
    assert [row["host"] for row in held["browsing_events"]] == ["www.tiktok.com"]
    assert [row["what_happened"] for row in held["incident_notes"]] == ["seen upset"]
    assert [row["requester"] for row in held["unblock_requests"]] == [person]
    with resources.sessions() as session:
        entry = session.scalars(
            select(AuditEntryRow).where(
                AuditEntryRow.action == "sar.export", AuditEntryRow.target == f"user:{person}"
            )
        ).one()
        assert entry.after == {
            "counts": {key: len(value) for key, value in held.items() if isinstance(value, list)}
        }


@pytest.mark.parametrize("role", ROLES)
def test_only_the_dsl_and_it_may_export(app: FastAPI, role: str) -> None:
    client, csrf = client_for(app, role)
    answer = client.post(
        "/api/records/subject-access", json={"user": "pupil1"}, headers={"X-CSRF-Token": csrf}
    )
    expected = {"dsl": 200, "it_technician": 200, "anonymous": 401}.get(role, 403)
    assert answer.status_code == expected
