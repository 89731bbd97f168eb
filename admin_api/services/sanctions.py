"""The DSL's supervised-only sanctions ("a ban from using school computing equipment, other than
with close supervision"): list them, place, extend, lift, and open a supervised session. The
writes go through store/sanctions.py (which bumps the change counter, so every gateway applies
them within seconds) and are audited in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from admin_api.errors import InvalidInput
from admin_api.roles import SignedInUser
from admin_api.services import audit
from store import sanctions as store
from store.models import SanctionRow, SanctionState, SupervisedSessionRow

RECENT = timedelta(days=30)  # ended or lifted sanctions this recent are listed too


def as_json(row: SanctionRow) -> dict[str, Any]:
    return {"user": row.user, "state": row.state.value, "starts": row.starts.isoformat(),
            "ends": row.ends.isoformat() if row.ends else None, "reason": row.reason,
            "placed_by": row.placed_by, "lifted_by": row.lifted_by, "note": row.note}


@dataclass(frozen=True, slots=True)
class SanctionsView:
    in_force: Sequence[SanctionRow]  # placed and not yet ended (including future ones)
    recommended: Sequence[SanctionRow]
    recent: Sequence[SanctionRow]  # lifted or ended in the last RECENT
    sessions: Sequence[SupervisedSessionRow]  # supervised sessions open now or later


def sanctions_view(session: Session, *, at: datetime) -> SanctionsView:
    not_ended = or_(SanctionRow.ends.is_(None), SanctionRow.ends > at)
    in_force = session.scalars(select(SanctionRow).where(
        SanctionRow.state == SanctionState.PLACED, not_ended)
        .order_by(SanctionRow.starts.desc())).all()
    recommended = session.scalars(select(SanctionRow).where(
        SanctionRow.state == SanctionState.RECOMMENDED, not_ended)
        .order_by(SanctionRow.starts.desc())).all()
    recent = session.scalars(select(SanctionRow).where(or_(
        (SanctionRow.state == SanctionState.LIFTED) & (SanctionRow.lifted_at > at - RECENT),
        (SanctionRow.state != SanctionState.LIFTED) & (SanctionRow.ends <= at)
        & (SanctionRow.ends > at - RECENT)))
        .order_by(SanctionRow.starts.desc()).limit(200)).all()
    sessions = session.scalars(select(SupervisedSessionRow).where(
        SupervisedSessionRow.ends > at).order_by(SupervisedSessionRow.starts)).all()
    return SanctionsView(in_force, recommended, recent, sessions)


def _refused(error: ValueError, field: str) -> InvalidInput:
    return InvalidInput({field: str(error)})


def place(session: Session, *, actor: SignedInUser, user: str, ends: datetime | None,
          reason: str, at: datetime) -> SanctionRow:
    """Supervised-only for `user` from now until `ends` (None: until lifted)."""
    try:
        sanction_id = store.place_sanction(session=session, user=user, starts=at, ends=ends,
                                           reason=reason, placed_by=actor.username)
    except ValueError as error:
        session.rollback()
        raise _refused(error, "ends") from None
    row = session.get_one(SanctionRow, sanction_id)
    audit.record(session, actor=actor, action="sanction.place", target=f"sanction:{row.id}",
                 at=at, after=audit.without_notes(as_json(row)))
    session.commit()
    return row


def extend(session: Session, *, actor: SignedInUser, sanction: SanctionRow,
           ends: datetime | None, note: str, at: datetime) -> SanctionRow:
    """Move the end (None: until lifted). Extending a recommendation places it."""
    before = as_json(sanction)
    if ends is not None and ends <= at:
        raise InvalidInput({"ends": "the new end is in the past; choose a later date and time"})
    try:
        store.extend_sanction(session=session, sanction_id=sanction.id, ends=ends,
                              by=actor.username, note=note or None)
    except ValueError as error:
        session.rollback()
        raise _refused(error, "ends") from None
    action = "sanction.extend" if before["state"] == SanctionState.PLACED else "sanction.confirm"
    audit.record(session, actor=actor, action=action, target=f"sanction:{sanction.id}", at=at,
                 before=audit.without_notes(before),
                 after=audit.without_notes(as_json(sanction)))
    session.commit()
    return sanction


def lift(session: Session, *, actor: SignedInUser, sanction: SanctionRow, note: str,
         at: datetime) -> SanctionRow:
    """End it now (or dismiss a recommendation)."""
    before = as_json(sanction)
    store.lift_sanction(session=session, sanction_id=sanction.id, by=actor.username, at=at,
                        note=note or None)
    audit.record(session, actor=actor, action="sanction.lift", target=f"sanction:{sanction.id}",
                 at=at, before=audit.without_notes(before),
                 after=audit.without_notes(as_json(sanction)))
    session.commit()
    return sanction


def open_session(session: Session, *, actor: SignedInUser, user: str, minutes: int,
                 at: datetime) -> SupervisedSessionRow:
    """`actor` supervises `user` from now for `minutes`: the sanction does not block meanwhile."""
    try:
        session_id = store.open_supervised_session(
            session=session, user=user, starts=at, ends=at + timedelta(minutes=minutes),
            opened_by=actor.username)
    except ValueError as error:
        session.rollback()
        raise _refused(error, "minutes") from None
    row = session.get_one(SupervisedSessionRow, session_id)
    audit.record(session, actor=actor, action="supervised_session.open",
                 target=f"supervised_session:{row.id}", at=at,
                 after={"user": user, "starts": row.starts.isoformat(),
                        "ends": row.ends.isoformat(), "opened_by": row.opened_by})
    session.commit()
    return row
