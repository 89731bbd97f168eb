"""Incident notes: the DSL writes what happened, the action taken and the outcome, about one
user (optionally citing an alert or an event). Written once, audited, never edited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.services import audit
from schoolgate.store.incident_models import IncidentNoteRow

LIST_LIMIT = 200


def as_json(row: IncidentNoteRow) -> dict[str, Any]:
    return {
        "user": row.user,
        "happened_at": row.happened_at.isoformat() if row.happened_at else None,
        "what_happened": row.what_happened,
        "action_taken": row.action_taken,
        "outcome": row.outcome,
        "alert_id": row.alert_id,
        "event_id": row.event_id,
    }


def add_note(
    session: Session,
    *,
    actor: SignedInUser,
    user: str,
    what_happened: str,
    action_taken: str,
    outcome: str,
    at: datetime,
    happened_at: datetime | None = None,
    alert_id: str | None = None,
    event_id: str | None = None,
    school: str | None = None,
) -> IncidentNoteRow:
    """Record a note in the caller's transaction, with its audit entry (the caller commits).
    `school` None: the signed-in person's (store/school_scope.py)."""
    row = IncidentNoteRow(
        id=str(uuid.uuid4()),
        at=at,
        user=user,
        written_by=actor.username,
        happened_at=happened_at,
        what_happened=what_happened,
        action_taken=action_taken,
        outcome=outcome,
        alert_id=alert_id,
        event_id=event_id,
        school=school,
    )
    session.add(row)
    audit.record(
        session,
        actor=actor,
        action="incident.write",
        target=f"incident:{row.id}",
        at=at,
        after=audit.without_notes(as_json(row)),
    )
    return row


def write_note(
    session: Session,
    *,
    actor: SignedInUser,
    user: str,
    what_happened: str,
    action_taken: str,
    outcome: str,
    at: datetime,
    happened_at: datetime | None = None,
    alert_id: str | None = None,
    event_id: str | None = None,
) -> IncidentNoteRow:
    row = add_note(
        session,
        actor=actor,
        user=user,
        what_happened=what_happened,
        action_taken=action_taken,
        outcome=outcome,
        at=at,
        happened_at=happened_at,
        alert_id=alert_id,
        event_id=event_id,
    )
    session.commit()
    return row


def list_notes(
    session: Session,
    *,
    user: str | None = None,
    alert_id: str | None = None,
    limit: int = LIST_LIMIT,
) -> Sequence[IncidentNoteRow]:
    """The newest notes first, about one user or one alert if given."""
    query = select(IncidentNoteRow)
    if user is not None:
        query = query.where(IncidentNoteRow.user == user)
    if alert_id is not None:
        query = query.where(IncidentNoteRow.alert_id == alert_id)
    return session.scalars(
        query.order_by(IncidentNoteRow.at.desc(), IncidentNoteRow.id).limit(limit)
    ).all()
