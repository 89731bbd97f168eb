"""Chained loaders for the DSL's routes (permissions as dependencies, as in deps.py): an alert
or a sanction is fetched only for the DSL, and only if the action still makes sense for it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Path

from schoolgate.admin_api.deps import Db, Dsl, Res, looks_like_id
from schoolgate.admin_api.errors import Conflict, InvalidInput, NotFound
from schoolgate.store.models import AlertRow, AlertState, SanctionRow, SanctionState

IdPath = Annotated[str, Path(max_length=36)]


def dsl_alert(alert_id: IdPath, user: Dsl, session: Db) -> AlertRow:
    """The alert, for the DSL."""
    row = session.get(AlertRow, alert_id) if looks_like_id(alert_id) else None
    if row is None:
        raise NotFound(f"there is no alert {alert_id[:36]!r}")
    return row


def open_alert(row: Annotated[AlertRow, Depends(dsl_alert)]) -> AlertRow:
    """The alert, if it is not closed yet (closing records the outcome once)."""
    if row.state is AlertState.CLOSED:
        raise Conflict(
            f"this alert was already closed by {row.acknowledged_by}; write an "
            "incident note to add to it"
        )
    return row


def dsl_sanction(sanction_id: IdPath, user: Dsl, session: Db) -> SanctionRow:
    row = session.get(SanctionRow, sanction_id) if looks_like_id(sanction_id) else None
    if row is None:
        raise NotFound(f"there is no sanction {sanction_id[:36]!r}")
    return row


def changeable_sanction(row: Annotated[SanctionRow, Depends(dsl_sanction)]) -> SanctionRow:
    """The sanction, if it has not been lifted (a lifted one stays as a record)."""
    if row.state is SanctionState.LIFTED:
        raise Conflict(f"this sanction was lifted by {row.lifted_by}; place a new one instead")
    return row


DslAlert = Annotated[AlertRow, Depends(dsl_alert)]
OpenAlert = Annotated[AlertRow, Depends(open_alert)]
ChangeableSanction = Annotated[SanctionRow, Depends(changeable_sanction)]


def school_zone(resources: Res) -> ZoneInfo:
    """The school's time zone (times are shown and typed in it; stored in UTC)."""
    return resources.settings.zone


Zone = Annotated[ZoneInfo, Depends(school_zone)]


def school_time(value: datetime, zone: ZoneInfo, *, field: str = "at") -> datetime:
    """An aware instant: a time without a zone is the school's local time."""
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    if value.utcoffset() is None:
        raise InvalidInput({field: "has a time zone that cannot be used"})
    return value
