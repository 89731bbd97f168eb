"""Supervised-only sanctions: the circumvention threshold (`count_act`, a sliding window per
user kept in the database so that every gateway worker and replica counts towards the same
threshold; the gateway calls it off the request path, once per counted act, never per request)
and the service functions that place, recommend, extend and lift
sanctions and open supervised sessions, for the gateway and the admin alike.

Service functions work in the caller's transaction (`with Session(engine) as s, s.begin():`);
every write to sanctions or sessions bumps the change counter, so every gateway picks it up.
User names are stored and compared in their canonical form (policy/names.py): a sanction typed
`Pupil1` applies to `pupil1`.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, or_, select, update
from sqlalchemy.orm import Session

from schoolgate.policy.model import CircumventionSettings, SanctionAction
from schoolgate.policy.names import canonical_user
from schoolgate.store.alerts import Alert, AlertKind, raise_alert
from schoolgate.store.db import upsert_insert
from schoolgate.store.models import (
    AlertSeverity,
    AttemptCountRow,
    SanctionRow,
    SanctionState,
    SupervisedSessionRow,
    bump_change_counter,
)

AUTOMATIC = "schoolgate"  # `placed_by` of sanctions the threshold placed


class SanctionNotFound(LookupError):
    """No sanction has the id given."""


# --- the threshold ----------------------------------------------------------------------------


class AttemptWindow:
    """Counted attempts per user within the policy's window. `add` says when a user reaches the
    threshold, and then starts that user's count again. Bounded in users."""

    def __init__(self, *, max_users: int = 50_000) -> None:
        self.max_users = max_users
        self._seen: dict[str, deque[datetime]] = {}

    def add(
        self, user: str, at: datetime, settings: CircumventionSettings
    ) -> tuple[datetime, ...] | None:
        """Count one attempt at `at`; the attempts in the window if this one reached
        `threshold_attempts` within `threshold_window_seconds`, else None."""
        window = timedelta(seconds=settings.threshold_window_seconds)
        times = self._seen.get(user)
        if times is None:
            if len(self._seen) >= self.max_users:
                self._forget_idle(at, window)
            times = self._seen[user] = deque()
        times.append(at)
        while times and times[0] <= at - window:
            times.popleft()
        if len(times) >= settings.threshold_attempts:
            del self._seen[user]
            return tuple(times)
        return None

    def count(self, user: str) -> int:
        return len(self._seen.get(user, ()))

    def _forget_idle(self, at: datetime, window: timedelta) -> None:
        for user in [u for u, t in self._seen.items() if not t or t[-1] <= at - window]:
            del self._seen[user]
        if len(self._seen) >= self.max_users:
            self._seen.clear()


def count_act(
    *,
    session: Session,
    user: str,
    at: datetime,
    settings: CircumventionSettings,
    act: str | None = None,
    act_seconds: float = 0.0,
    school: str | None = None,
) -> tuple[datetime, ...] | None:
    """Count one act of `user` at `at` in the shared window (the database): the acts in the
    window if this one reached `threshold_attempts` within `threshold_window_seconds` (the
    count then starts again), else None. The user's row is written first and locked, so
    simultaneous acts from two gateways are counted one after the other, never both missed.

    `act` names the act ("site|technique"): one that began less than `act_seconds` before `at`
    (on any worker) is the same act, and is not counted again. The row carries the school of
    the person's latest counted act (`school`: docs/trust.md)."""
    user = canonical_user(user)
    table: Table = AttemptCountRow.__table__  # type: ignore[assignment]
    conn = session.connection()
    insert = upsert_insert(conn.dialect.name)
    # The first statement writes: SQLite takes its write lock here, PostgreSQL the row lock next.
    conn.execute(
        insert(table)
        .values(user=user, times=[], updated=at, school=school)
        .on_conflict_do_nothing(index_elements=["user"])
    )
    row = conn.execute(
        select(table.c.times, table.c.acts).where(table.c.user == user).with_for_update()
    ).one()
    acts = _acts_in_progress(row.acts, at, act_seconds)
    if act is not None and act_seconds > 0:
        began = acts.get(act)
        if began is not None and timedelta(0) <= at - began < timedelta(seconds=act_seconds):
            return None  # a follow-up of an act already counted (by this worker or another)
        acts[act] = at
    window = timedelta(seconds=settings.threshold_window_seconds)
    times = sorted([*(datetime.fromisoformat(t) for t in row.times or ()), at])
    times = [t for t in times if t > at - window]
    reached = len(times) >= settings.threshold_attempts
    kept = [] if reached else [t.isoformat() for t in times]
    conn.execute(
        update(table)
        .where(table.c.user == user)
        .values(
            times=kept,
            updated=at,
            acts={k: v.isoformat() for k, v in acts.items()} or None,
            school=school,
        )
    )
    return tuple(times) if reached else None


def _acts_in_progress(stored: Any, at: datetime, act_seconds: float) -> dict[str, datetime]:
    """The stored acts that may still have follow-ups at `at` (bounded: at most 100)."""
    if not isinstance(stored, dict) or act_seconds <= 0:
        return {}
    acts: dict[str, datetime] = {}
    for key, when in stored.items():
        try:
            began = datetime.fromisoformat(str(when))
        except ValueError:
            continue
        if at - began < timedelta(seconds=act_seconds):
            acts[str(key)] = began
    return dict(sorted(acts.items(), key=lambda item: item[1])[-100:])


@dataclass(frozen=True, slots=True)
class ThresholdOutcome:
    """What reaching the threshold did: the sanction row made (None if one was already in
    force) and the alert raised."""

    sanction_id: str | None
    state: SanctionState | None
    alert: Alert


def on_threshold(
    *,
    session: Session,
    user: str,
    attempts: Sequence[datetime],
    settings: CircumventionSettings,
    at: datetime,
    details: Mapping[str, Any] | None = None,
    school: str | None = None,
) -> ThresholdOutcome:
    """A user reached the policy's threshold: place a supervised-only sanction (or only
    recommend one, as the policy says) and raise a high-severity alert. A user already under a
    sanction in force gets the alert only."""
    window = settings.threshold_window_seconds
    said = f"{len(attempts)} attempts to get round the filter within {_duration(window)}"
    info = {
        **(details or {}),
        "attempts": len(attempts),
        "first_attempt": min(attempts).isoformat(),
        "window_seconds": window,
    }
    if active_sanction(session=session, user=user, at=at) is not None:
        alert = raise_alert(
            session=session,
            severity=AlertSeverity.HIGH,
            kind=AlertKind.ATTEMPT,
            user=user,
            at=at,
            details=info,
            summary=f"{user}: {said}, while already supervised-only",
            school=school,
        )
        return ThresholdOutcome(None, None, alert)
    ends = at + timedelta(days=settings.sanction_days)
    if settings.on_threshold is SanctionAction.SANCTION:
        state, kind = SanctionState.PLACED, AlertKind.SANCTION_PLACED
        summary = f"{user} is now supervised-only until {ends:%Y-%m-%d %H:%M} UTC: {said}"
    else:
        state, kind = SanctionState.RECOMMENDED, AlertKind.SANCTION_RECOMMENDED
        summary = (
            f"{user}: {said}; a supervised-only sanction of "
            f"{settings.sanction_days} days is recommended"
        )
    sanction_id = place_sanction(
        session=session,
        user=user,
        starts=at,
        ends=ends,
        reason=said,
        placed_by=AUTOMATIC,
        state=state,
        school=school,
    )
    alert = raise_alert(
        session=session,
        severity=AlertSeverity.HIGH,
        kind=kind,
        user=user,
        at=at,
        summary=summary,
        details={**info, "sanction_id": sanction_id},
        school=school,
    )
    return ThresholdOutcome(sanction_id, state, alert)


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour(s)"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


# --- service functions ------------------------------------------------------------------------


def place_sanction(
    *,
    session: Session,
    user: str,
    starts: datetime,
    ends: datetime | None,
    reason: str,
    placed_by: str,
    note: str = "",
    state: SanctionState = SanctionState.PLACED,
    school: str | None = None,
) -> str:
    """A supervised-only sanction on `user` for [starts, ends) (ends None: until lifted), or
    with state RECOMMENDED a recommendation the DSL decides on. Returns its id."""
    user = canonical_user(user)  # ValueError says what is wrong with the name
    if ends is not None and ends <= starts:
        raise ValueError(
            f"a sanction must end after it starts ({starts.isoformat()} -> {ends.isoformat()})"
        )
    if state is SanctionState.LIFTED:
        raise ValueError("a new sanction cannot start lifted; use lift_sanction")
    sanction_id = str(uuid.uuid4())
    session.add(
        SanctionRow(
            id=sanction_id,
            user=user,
            starts=starts,
            ends=ends,
            reason=reason,
            placed_by=placed_by,
            state=state,
            note=note,
            school=school,
        )
    )
    session.flush()
    bump_change_counter(session)
    return sanction_id


def extend_sanction(
    *, session: Session, sanction_id: str, ends: datetime | None, by: str, note: str | None = None
) -> None:
    """Move a sanction's end (None: until lifted). A recommendation extended is placed."""
    row = _get(session, sanction_id)
    if row.state is SanctionState.LIFTED:
        raise ValueError(
            f"sanction {sanction_id} was lifted by {row.lifted_by}; place a new one instead"
        )
    if ends is not None and ends <= row.starts:
        raise ValueError(
            f"sanction {sanction_id} starts {row.starts.isoformat()}; the new "
            f"end {ends.isoformat()} is not after it"
        )
    row.ends = ends
    row.state = SanctionState.PLACED
    row.note = _add_note(row.note, f"extended by {by}" + (f": {note}" if note else ""))
    bump_change_counter(session)


def lift_sanction(
    *, session: Session, sanction_id: str, by: str, at: datetime, note: str | None = None
) -> None:
    """End a sanction (or dismiss a recommendation) now."""
    row = _get(session, sanction_id)
    if row.state is SanctionState.LIFTED:
        return  # lifting twice changes nothing
    row.state = SanctionState.LIFTED
    row.lifted_by, row.lifted_at = by, at
    if note:
        row.note = _add_note(row.note, f"lifted by {by}: {note}")
    bump_change_counter(session)


def open_supervised_session(
    *, session: Session, user: str, starts: datetime, ends: datetime, opened_by: str
) -> str:
    """A member of staff supervises `user` for [starts, ends): the sanction does not block."""
    user = canonical_user(user)
    if ends <= starts:
        raise ValueError("a supervised session must end after it starts")
    session_id = str(uuid.uuid4())
    session.add(
        SupervisedSessionRow(
            id=session_id, user=user, starts=starts, ends=ends, opened_by=opened_by
        )
    )
    session.flush()
    bump_change_counter(session)
    return session_id


def active_sanction(*, session: Session, user: str, at: datetime) -> SanctionRow | None:
    """The placed sanction in force on `user` at `at`, if any."""
    try:
        user = canonical_user(user)
    except ValueError:
        return None
    return session.scalars(
        select(SanctionRow)
        .where(
            SanctionRow.user == user,
            SanctionRow.state == SanctionState.PLACED,
            SanctionRow.starts <= at,
            or_(SanctionRow.ends.is_(None), SanctionRow.ends > at),
        )
        .order_by(SanctionRow.starts)
        .limit(1)
    ).first()


def _get(session: Session, sanction_id: str) -> SanctionRow:
    row = session.get(SanctionRow, sanction_id)
    if row is None:
        raise SanctionNotFound(f"no sanction has the id {sanction_id!r}")
    return row


def _add_note(old: str, line: str) -> str:
    return f"{old}\n{line}" if old else line
