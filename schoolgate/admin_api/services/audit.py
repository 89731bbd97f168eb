"""Writing and reading the audit log: every admin action with who, what, when, and the thing
before and after (as JSON). Writers add the entry to the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schoolgate.admin_api.roles import ADMIN_ROLES, Role, SignedInUser
from schoolgate.store.admin_models import AuditEntryRow

PAGE_SIZE = 100
EXPORT_LIMIT = 100_000
# The DSL's actions: everyone who reads the log sees that they happened (who, what, which
# record, when); only the DSL sees their details (security finding 8).
SAFEGUARDING = ("incident.", "alert.", "sanction.", "supervised_session.", "events.", "sar.")
NOTES = frozenset({"what_happened", "action_taken", "outcome", "reason", "note"})
HIDDEN = "(kept in the safeguarding record)"


def without_notes(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """A safeguarding record for the audit log without its free text (the incident account,
    actions, outcomes, sanction reasons), which stays in its own table under its own
    retention: the log says who did what to which record, and when."""
    if payload is None:
        return None
    return {key: (HIDDEN if key in NOTES and value else value) for key, value in payload.items()}


def is_safeguarding(action: str) -> bool:
    return action.startswith(SAFEGUARDING)


@dataclass(frozen=True, slots=True)
class AuditView:
    """An entry as one reader may see it: the details of a safeguarding action only for the
    DSL."""

    id: int
    at: datetime
    actor: str
    actor_roles: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    details_hidden: bool
    school: str | None = None  # with a trust file: whose entry it is


def for_reader(rows: Sequence[AuditEntryRow], reader: SignedInUser) -> list[AuditView]:
    dsl = reader.has(Role.DSL)
    views = []
    for row in rows:
        hide = not dsl and is_safeguarding(row.action)
        views.append(
            AuditView(
                id=row.id,
                at=row.at,
                actor=row.actor,
                actor_roles=row.actor_roles,
                action=row.action,
                target=row.target,
                before=None if hide else row.before,
                after=None if hide else row.after,
                details_hidden=hide,
                school=row.school,
            )
        )
    return views


def record(
    session: Session,
    *,
    actor: SignedInUser,
    action: str,
    target: str,
    at: datetime,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to the session's open transaction (the caller commits)."""
    session.add(
        AuditEntryRow(
            at=at,
            actor=actor.username[:200],
            actor_roles=",".join(sorted(r.value for r in actor.roles & ADMIN_ROLES)) or "-",
            action=action,
            target=target[:400],
            before=before,
            after=after,
        )
    )


def list_entries(
    session: Session, *, page: int = 1, action: str | None = None, actor: str | None = None
) -> tuple[Sequence[AuditEntryRow], int]:
    """One page of entries, newest first, and the number of entries that match."""
    query = select(AuditEntryRow)
    if action:
        query = query.where(AuditEntryRow.action == action)
    if actor:
        query = query.where(func.lower(AuditEntryRow.actor) == actor.casefold())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEntryRow.id.desc())
        .offset((max(page, 1) - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return rows, total


def export_entries(session: Session) -> Sequence[AuditEntryRow]:
    return session.scalars(
        select(AuditEntryRow).order_by(AuditEntryRow.id).limit(EXPORT_LIMIT)
    ).all()
