"""One act is one act whichever gateway worker or replica saw it (docs/monitoring.md, "What
counts as one attempt"): the shared decisions about a circumvention attempt, made in the
database in one transaction off the request path (store/escalation.py `act_job`).

`claim` is the one primitive: the first event under a key within a window owns it, and every
later event within the window is told whose it is. Two kinds of keys use it:

* an act in progress, `act|<who>|<site>|<technique>`: a follow-up (the favicon, a reload through
  another worker) is recorded with `counted = false` and `same_act_as = <the first event>`;
* the DSL's attempt alert, `alert|<who>|<technique>`: one alert per person (or device address)
  and technique per threshold window.

`<who>` is the canonical user name, or `ip:<address>` for a device known only by its address.
Rows are written first and locked (SQLite's write lock, PostgreSQL's row lock), so two workers
deciding on one key at once decide one after the other.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from schoolgate.policy.names import canonical_user
from schoolgate.store.db import upsert_insert
from schoolgate.store.events import Event, attempt_record, attempt_row, event_row
from schoolgate.store.models import ActMarkRow, CircumventionAttemptRow

KEEP = timedelta(days=1)  # marks older than this are deleted (no window is longer)


def who(event: Event) -> str:
    """Whose act an event is: the canonical user, else the device's address."""
    if event.user:
        return canonical_user(event.user)
    return f"ip:{event.client_ip or 'unknown'}"


def claim(
    *,
    session: Session,
    key: str,
    at: datetime,
    seconds: float,
    event_id: str,
    school: str | None = None,
) -> str | None:
    """Claim `key` for `event_id` at `at`: None if it is now this event's (no other event
    claimed it less than `seconds` before or after `at`), else the event id that holds it.
    The mark carries the school of the event holding it (`school`: docs/trust.md)."""
    table: Table = ActMarkRow.__table__  # type: ignore[assignment]
    conn = session.connection()
    insert = upsert_insert(conn.dialect.name)
    key = key[:400]
    # The first statement writes: SQLite takes its write lock here, PostgreSQL the row lock next.
    conn.execute(
        insert(table)
        .values(key=key, at=at, event_id=event_id, school=school)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    row = conn.execute(
        select(table.c.at, table.c.event_id).where(table.c.key == key).with_for_update()
    ).one()
    if row.event_id == event_id:
        return None
    if abs(at - row.at) < timedelta(seconds=seconds):
        return str(row.event_id)
    conn.execute(
        update(table).where(table.c.key == key).values(at=at, event_id=event_id, school=school)
    )
    return None


def forget_old(*, session: Session, at: datetime) -> None:
    """Delete the marks no window can still need (cheap: by the index on `at`)."""
    session.execute(delete(ActMarkRow).where(ActMarkRow.at < at - KEEP))


def mark_follow_up(*, session: Session, event: Event, first: str) -> None:
    """Record `event`'s attempt row as a follow-up of the act `first` began (written whether or
    not the event writer has inserted the row yet: its insert never overwrites one)."""
    record = attempt_record(event)
    if record is None:
        return
    record = {
        "evidence": {**record["evidence"], "same_act_as": first},
        "counted": False,
    }
    values: dict[str, Any] = attempt_row(event_row("", 0, event), record)
    table: Table = CircumventionAttemptRow.__table__  # type: ignore[assignment]
    insert = upsert_insert(session.connection().dialect.name)
    statement = insert(table).values(values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["id"],
            set_={"evidence": statement.excluded.evidence, "counted": False},
        )
    )
