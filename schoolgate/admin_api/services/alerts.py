"""The DSL's circumvention alerts queue: list by severity, acknowledge, and close with the
action taken and the outcome (which is also written as an incident note about the user).
Every change is in the audit log, in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.services import audit, incidents
from schoolgate.store.incident_models import IncidentNoteRow
from schoolgate.store.models import AlertRow, AlertSeverity, AlertState

LIST_LIMIT = 300
_MOST_URGENT_FIRST = case(
    (AlertRow.severity == AlertSeverity.HIGH, 0),
    (AlertRow.severity == AlertSeverity.MEDIUM, 1),
    else_=2,
)


def as_json(row: AlertRow) -> dict[str, Any]:
    return {
        "state": row.state.value,
        "severity": row.severity.value,
        "user": row.user,
        "acknowledged_by": row.acknowledged_by,
        "action_taken": row.action_taken,
        "outcome": row.outcome,
    }


def list_alerts(
    session: Session, *, states: Sequence[AlertState], limit: int = LIST_LIMIT
) -> Sequence[AlertRow]:
    """Alerts in `states`, most urgent first, then newest first."""
    return session.scalars(
        select(AlertRow)
        .where(AlertRow.state.in_(states))
        .order_by(_MOST_URGENT_FIRST, AlertRow.at.desc(), AlertRow.id)
        .limit(limit)
    ).all()


def count_open(session: Session) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(AlertRow).where(AlertRow.state != AlertState.CLOSED)
        )
        or 0
    )


def acknowledge(
    session: Session, *, actor: SignedInUser, alert: AlertRow, at: datetime
) -> AlertRow:
    """ "I have seen it and I am on it": the alert leaves the unread state."""
    before = as_json(alert)
    alert.state = AlertState.ACKNOWLEDGED
    alert.acknowledged_by = actor.username
    audit.record(
        session,
        actor=actor,
        action="alert.acknowledge",
        target=f"alert:{alert.id}",
        at=at,
        before=audit.without_notes(before),
        after=audit.without_notes(as_json(alert)),
    )
    session.commit()
    return alert


def close(
    session: Session,
    *,
    actor: SignedInUser,
    alert: AlertRow,
    action_taken: str,
    outcome: str,
    what_happened: str,
    at: datetime,
) -> IncidentNoteRow:
    """Close the alert with the action taken and the outcome, recorded as an incident note
    about the alert's user (or "unknown" when the gateway could not tell who it was)."""
    before = as_json(alert)
    alert.state = AlertState.CLOSED
    alert.closed_at = at
    alert.acknowledged_by = alert.acknowledged_by or actor.username
    alert.action_taken, alert.outcome = action_taken, outcome
    note = incidents.add_note(
        session,
        actor=actor,
        user=alert.user or "unknown",
        what_happened=what_happened or alert.summary,
        action_taken=action_taken,
        outcome=outcome,
        at=at,
        happened_at=alert.at,
        alert_id=alert.id,
        school=alert.school,  # the alert's school, whoever closes it
    )
    audit.record(
        session,
        actor=actor,
        action="alert.close",
        target=f"alert:{alert.id}",
        at=at,
        before=audit.without_notes(before),
        after=audit.without_notes({**as_json(alert), "incident_note": note.id}),
    )
    session.commit()
    return note
