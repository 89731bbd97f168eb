"""Approved exceptions: the current and future ones, and revoking one (its end is brought
forward to now, so the record stays and the gateway stops honouring it within seconds)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from schoolgate.admin_api.errors import Conflict
from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.services import audit
from schoolgate.store.models import ExceptionRow, bump_change_counter


def _as_json(row: ExceptionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "scope": row.scope.value,
        "who": row.who,
        "target_kind": row.target_kind.value,
        "target": row.target,
        "starts": row.starts.isoformat(),
        "ends": row.ends.isoformat() if row.ends else None,
        "request_id": row.request_id,
    }


def current_and_future(session: Session, *, at: datetime) -> Sequence[ExceptionRow]:
    return session.scalars(
        select(ExceptionRow)
        .where(or_(ExceptionRow.ends.is_(None), ExceptionRow.ends > at))
        .order_by(ExceptionRow.starts)
        .limit(1000)
    ).all()


def revoke(
    session: Session, *, actor: SignedInUser, row: ExceptionRow, at: datetime, reason: str = ""
) -> ExceptionRow:
    """End `row` now (loaded by the route's ApprovedException dependency)."""
    if row.ends is not None and row.ends <= at:
        raise Conflict("this exception has already ended")
    before = _as_json(row)
    row.ends = max(at, row.starts)  # a future one ends before it starts: never active
    bump_change_counter(session)
    audit.record(
        session,
        actor=actor,
        action="exception.revoke",
        target=f"exception:{row.id}",
        at=at,
        before=before,
        after={**_as_json(row), "reason": reason},
    )
    session.commit()
    return row
