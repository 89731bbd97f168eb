"""The DSL's supervised-only sanctions ("a ban from using school computing equipment, other than
with close supervision"): list them, place, extend, lift, and open a supervised session. The
writes go through store/sanctions.py (which bumps the change counter, so every gateway applies
them within seconds) and are audited in the same transaction.

The user name is checked against the school's directory and stored in its canonical form
(policy/names.py), so a sanction typed `Pupil1` applies to `pupil1`, and a misspelt name is
refused rather than recorded as a sanction that applies to nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.from_thread
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from schoolgate.admin_api.errors import InvalidInput, Unavailable
from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.services import audit
from schoolgate.policy.names import canonical_user
from schoolgate.store import sanctions as store
from schoolgate.store.directory import Directory, DirectoryUnavailable, DirectoryUser
from schoolgate.store.models import SanctionRow, SanctionState, SupervisedSessionRow

RECENT = timedelta(days=30)  # ended or lifted sanctions this recent are listed too


def as_json(row: SanctionRow) -> dict[str, Any]:
    return {
        "user": row.user,
        "state": row.state.value,
        "starts": row.starts.isoformat(),
        "ends": row.ends.isoformat() if row.ends else None,
        "reason": row.reason,
        "placed_by": row.placed_by,
        "lifted_by": row.lifted_by,
        "note": row.note,
    }


@dataclass(frozen=True, slots=True)
class SanctionsView:
    in_force: Sequence[SanctionRow]  # placed and not yet ended (including future ones)
    recommended: Sequence[SanctionRow]
    recent: Sequence[SanctionRow]  # lifted or ended in the last RECENT
    sessions: Sequence[SupervisedSessionRow]  # supervised sessions open now or later


def sanctions_view(session: Session, *, at: datetime) -> SanctionsView:
    not_ended = or_(SanctionRow.ends.is_(None), SanctionRow.ends > at)
    in_force = session.scalars(
        select(SanctionRow)
        .where(SanctionRow.state == SanctionState.PLACED, not_ended)
        .order_by(SanctionRow.starts.desc())
    ).all()
    recommended = session.scalars(
        select(SanctionRow)
        .where(SanctionRow.state == SanctionState.RECOMMENDED, not_ended)
        .order_by(SanctionRow.starts.desc())
    ).all()
    recent = session.scalars(
        select(SanctionRow)
        .where(
            or_(
                (SanctionRow.state == SanctionState.LIFTED) & (SanctionRow.lifted_at > at - RECENT),
                (SanctionRow.state != SanctionState.LIFTED)
                & (SanctionRow.ends <= at)
                & (SanctionRow.ends > at - RECENT),
            )
        )
        .order_by(SanctionRow.starts.desc())
        .limit(200)
    ).all()
    sessions = session.scalars(
        select(SupervisedSessionRow)
        .where(SupervisedSessionRow.ends > at)
        .order_by(SupervisedSessionRow.starts)
    ).all()
    return SanctionsView(in_force, recommended, recent, sessions)


def _refused(error: ValueError, field: str) -> InvalidInput:
    return InvalidInput({field: str(error)})


def directory_name(directory: Directory | None, typed: str) -> str:
    """The canonical name of the person `typed` names. InvalidInput if it is not a user name or
    the directory does not know it; Unavailable if the directory cannot be asked."""
    try:
        name = canonical_user(typed)
    except ValueError as error:
        raise _refused(error, "user") from None
    if directory is None:
        return name
    try:
        found = lookup_user(directory, name)
    except DirectoryUnavailable:
        raise Unavailable(
            "the school directory cannot be reached just now, so that name "
            "cannot be checked; try again in a minute"
        ) from None
    if found is None:
        raise InvalidInput(
            {
                "user": f"We could not find anyone called {typed.strip()!r} in the "
                "school's directory: check the spelling"
            }
        )
    return canonical_user(found.username)


def lookup_user(directory: Directory, name: str) -> DirectoryUser | None:
    """Ask the directory from a route's worker thread, on the application's event loop."""
    try:
        return anyio.from_thread.run(directory.lookup, name)
    except RuntimeError:  # not in a worker thread of the app (a script, a test)
        return asyncio.run(directory.lookup(name))


def place(
    session: Session,
    *,
    actor: SignedInUser,
    user: str,
    ends: datetime | None,
    reason: str,
    at: datetime,
    directory: Directory | None = None,
) -> SanctionRow:
    """Supervised-only for `user` from now until `ends` (None: until lifted). With a directory,
    only a person it knows."""
    user = directory_name(directory, user)
    try:
        sanction_id = store.place_sanction(
            session=session,
            user=user,
            starts=at,
            ends=ends,
            reason=reason,
            placed_by=actor.username,
        )
    except ValueError as error:
        session.rollback()
        raise _refused(error, "ends") from None
    row = session.get_one(SanctionRow, sanction_id)
    audit.record(
        session,
        actor=actor,
        action="sanction.place",
        target=f"sanction:{row.id}",
        at=at,
        after=audit.without_notes(as_json(row)),
    )
    session.commit()
    return row


def extend(
    session: Session,
    *,
    actor: SignedInUser,
    sanction: SanctionRow,
    ends: datetime | None,
    note: str,
    at: datetime,
) -> SanctionRow:
    """Move the end (None: until lifted). Extending a recommendation places it."""
    before = as_json(sanction)
    if ends is not None and ends <= at:
        raise InvalidInput({"ends": "the new end is in the past; choose a later date and time"})
    try:
        store.extend_sanction(
            session=session,
            sanction_id=sanction.id,
            ends=ends,
            by=actor.username,
            note=note or None,
        )
    except ValueError as error:
        session.rollback()
        raise _refused(error, "ends") from None
    action = "sanction.extend" if before["state"] == SanctionState.PLACED else "sanction.confirm"
    audit.record(
        session,
        actor=actor,
        action=action,
        target=f"sanction:{sanction.id}",
        at=at,
        before=audit.without_notes(before),
        after=audit.without_notes(as_json(sanction)),
    )
    session.commit()
    return sanction


def lift(
    session: Session, *, actor: SignedInUser, sanction: SanctionRow, note: str, at: datetime
) -> SanctionRow:
    """End it now (or dismiss a recommendation)."""
    before = as_json(sanction)
    store.lift_sanction(
        session=session, sanction_id=sanction.id, by=actor.username, at=at, note=note or None
    )
    audit.record(
        session,
        actor=actor,
        action="sanction.lift",
        target=f"sanction:{sanction.id}",
        at=at,
        before=audit.without_notes(before),
        after=audit.without_notes(as_json(sanction)),
    )
    session.commit()
    return sanction


def open_session(
    session: Session,
    *,
    actor: SignedInUser,
    user: str,
    minutes: int,
    at: datetime,
    directory: Directory | None = None,
) -> SupervisedSessionRow:
    """`actor` supervises `user` from now for `minutes`: the sanction does not block meanwhile."""
    user = directory_name(directory, user)
    try:
        session_id = store.open_supervised_session(
            session=session,
            user=user,
            starts=at,
            ends=at + timedelta(minutes=minutes),
            opened_by=actor.username,
        )
    except ValueError as error:
        session.rollback()
        raise _refused(error, "minutes") from None
    row = session.get_one(SupervisedSessionRow, session_id)
    audit.record(
        session,
        actor=actor,
        action="supervised_session.open",
        target=f"supervised_session:{row.id}",
        at=at,
        after={
            "user": user,
            "starts": row.starts.isoformat(),
            "ends": row.ends.isoformat(),
            "opened_by": row.opened_by,
        },
    )
    session.commit()
    return row
