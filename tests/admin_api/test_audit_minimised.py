"""The audit log minimised by role (issue 13; security review finding 8, and the CSV item of
finding 22): IT sees that a safeguarding action happened (who, what, which record, when) but
not its notes, on the page, in the CSV and through the API; the safeguarding text is not
copied into the audit log at all; a full-width formula sign is neutralised in the CSV. On
SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.services import audit
from schoolgate.store.admin_models import AuditEntryRow
from tests.admin_api.conftest import USERS, client_for

SECRET_TEXT = "Disclosed a worry about home at break"


def _incident(app: FastAPI, user: str) -> None:
    client, csrf = client_for(app, "dsl")
    answer = client.post(
        "/api/monitoring/incidents",
        json={
            "user": user,
            "what_happened": SECRET_TEXT,
            "action_taken": "Spoke to parents",
            "outcome": "Referred to early help",
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code in (200, 201), answer.text
    app.dependency_overrides.clear()


def test_incident_text_is_not_copied_into_the_audit_log(app: FastAPI, resources: Resources) -> None:
    _incident(app, "pupil2")
    with resources.sessions() as session:
        entry = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.action == "incident.write")
            .order_by(AuditEntryRow.id.desc())
        ).first()
        assert entry is not None
        assert entry.after is not None
        assert SECRET_TEXT not in str(entry.after)
        assert entry.after["what_happened"] == audit.HIDDEN
        assert entry.after["user"] == "pupil2"


@pytest.mark.parametrize(("role", "sees"), [("it_technician", False), ("dsl", True)])
def test_it_sees_that_a_safeguarding_action_happened_not_its_details(
    app: FastAPI, resources: Resources, role: str, sees: bool
) -> None:
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    with resources.sessions() as session:  # an entry as older versions wrote it, in full
        audit.record(
            session,
            actor=USERS["dsl"] or SignedInUser("dsl1", "", frozenset(), ""),
            action="sanction.place",
            target=f"sanction:{tag}",
            at=now,
            after={"user": "pupil2", "reason": f"{SECRET_TEXT} {tag}"},
        )
        session.commit()
    client, _ = client_for(app, role)
    api = client.get("/api/audit", params={"action": "sanction.place"}).json()
    mine = [entry for entry in api if entry["target"] == f"sanction:{tag}"]
    assert len(mine) == 1
    assert mine[0]["details_hidden"] is (not sees)
    assert (tag in str(mine[0]["after"])) is sees
    page = client.get("/audit", params={"action": "sanction.place"}).text
    assert "a supervised-only sanction" in page  # which record, in words; its id in the API
    assert ("a supervised-only sanction on pupil2" in page) is sees
    assert (f"{SECRET_TEXT} {tag}" in page) is sees
    if not sees:
        assert "only the Designated Safeguarding Lead sees them" in page
    csv_text = client.get("/audit.csv").text
    assert f"sanction:{tag}" in csv_text
    assert (tag in csv_text.split(f"sanction:{tag}", 1)[1].splitlines()[0]) is sees


def test_a_full_width_formula_sign_is_neutralised_in_the_csv(
    app: FastAPI, resources: Resources
) -> None:
    tag = uuid.uuid4().hex[:8]
    with resources.sessions() as session:
        audit.record(
            session,
            actor=SignedInUser("＝HYPERLINK(1)", "", frozenset(), ""),
            action=f"test.{tag}",
            target=f"＝cmd|{tag}",
            at=datetime.now(UTC),
        )
        session.commit()
    client, _ = client_for(app, "it_technician")
    text = client.get("/audit.csv").text
    assert f"'＝cmd|{tag}" in text
    assert "'＝HYPERLINK(1)" in text
