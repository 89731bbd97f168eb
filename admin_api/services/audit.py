"""Writing and reading the audit log: every admin action with who, what, when, and the thing
before and after (as JSON). Writers add the entry to the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin_api.roles import ADMIN_ROLES, SignedInUser
from store.admin_models import AuditEntryRow

PAGE_SIZE = 100
EXPORT_LIMIT = 100_000


def record(session: Session, *, actor: SignedInUser, action: str, target: str, at: datetime,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Add an audit entry to the session's open transaction (the caller commits)."""
    session.add(AuditEntryRow(
        at=at, actor=actor.username[:200],
        actor_roles=",".join(sorted(r.value for r in actor.roles & ADMIN_ROLES)) or "-",
        action=action, target=target[:400], before=before, after=after))


def list_entries(session: Session, *, page: int = 1, action: str | None = None,
                 actor: str | None = None) -> tuple[Sequence[AuditEntryRow], int]:
    """One page of entries, newest first, and the number of entries that match."""
    query = select(AuditEntryRow)
    if action:
        query = query.where(AuditEntryRow.action == action)
    if actor:
        query = query.where(func.lower(AuditEntryRow.actor) == actor.casefold())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEntryRow.id.desc())
                           .offset((max(page, 1) - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    return rows, total


def export_entries(session: Session) -> Sequence[AuditEntryRow]:
    return session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.id)
                           .limit(EXPORT_LIMIT)).all()
