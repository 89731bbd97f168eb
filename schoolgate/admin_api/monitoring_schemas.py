"""The schema families of the DSL's side: the explorer's filters (checked, with clear messages),
incident notes, alert reviews, sanctions and supervised sessions (XCreate in, XPublic out), and
the reports' JSON. The tables are in store/."""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from schoolgate.admin_api.forms import FreeText, SingleLine
from schoolgate.admin_api.schemas import In, Out
from schoolgate.policy.model import Verdict
from schoolgate.store.models import AlertSeverity, AlertState, SanctionState

UserName = Annotated[SingleLine, Field(min_length=1, max_length=200)]
Note = Annotated[FreeText, Field(min_length=3, max_length=4000)]


class EventQuery(In):
    """The explorer's filters as typed (every one optional). Dates are school days (the
    school's zone), `to` included."""

    user: Annotated[SingleLine, Field(max_length=200)] = ""
    ip: Annotated[SingleLine, Field(max_length=64)] = ""
    host: Annotated[SingleLine, Field(max_length=300)] = ""
    category: Annotated[SingleLine, Field(max_length=100)] = ""
    verdict: Verdict | None = None
    technique: Annotated[SingleLine, Field(max_length=64)] = ""
    from_day: date | None = Field(default=None, alias="from")
    to_day: date | None = Field(default=None, alias="to")

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        if not value:
            return value
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("is not an IP address (for example 10.0.3.17)") from None

    @model_validator(mode="after")
    def _range(self) -> EventQuery:
        if self.from_day and self.to_day and self.to_day < self.from_day:
            raise ValueError("the 'to' day is before the 'from' day")
        return self


class EventPublic(Out):
    id: str
    at: datetime
    user: str | None
    role: str | None
    client_ip: str | None
    device: str | None
    method: str | None
    scheme: str | None
    host: str
    port: int | None
    path: str | None
    query: str | None
    search_terms: str | None
    category: str | None
    verdict: Verdict
    reason: str
    rule: str | None
    technique: str | None
    intercepted: bool
    school: str | None = None  # the school's id, with a trust file (docs/trust.md)


class EventPagePublic(Out):
    """One page, newest first; pass `older` (or `newer`) back as the cursor for the next."""

    events: list[EventPublic]
    older: str | None
    newer: str | None


class AttemptPublic(Out):
    id: str
    event_id: str | None
    at: datetime
    user: str | None
    client_ip: str | None
    host: str
    technique: str
    evidence: dict[str, Any]
    counted: bool
    school: str | None = None  # the school's id, with a trust file (docs/trust.md)


class IncidentNoteCreate(In):
    """What happened, the action taken and the outcome (DfE: "a documented process for
    recording incidents that includes what action was taken and the outcomes")."""

    user: UserName
    what_happened: Note
    action_taken: Note
    outcome: Note
    happened_at: datetime | None = None  # without a zone: the school's time
    alert_id: Annotated[str, Field(max_length=36, pattern=r"^[0-9a-fA-F-]{1,36}$")] | None = None
    event_id: Annotated[str, Field(max_length=36, pattern=r"^[0-9a-fA-F-]{1,36}$")] | None = None


class IncidentNotePublic(Out):
    id: str
    at: datetime
    user: str
    written_by: str
    happened_at: datetime | None
    what_happened: str
    action_taken: str
    outcome: str
    alert_id: str | None
    event_id: str | None
    school: str | None = None  # the school's id, with a trust file (docs/trust.md)


class TimelinePublic(Out):
    user: str
    start: datetime
    end: datetime
    events: list[EventPublic]
    attempts: list[AttemptPublic]
    notes: list[IncidentNotePublic]
    truncated: bool


class AlertPublic(Out):
    id: str
    at: datetime
    severity: AlertSeverity
    kind: str
    user: str | None
    summary: str
    details: dict[str, Any]
    state: AlertState
    acknowledged_by: str | None
    action_taken: str | None
    outcome: str | None
    school: str | None = None  # the school's id, with a trust file (docs/trust.md)


class AlertClose(In):
    """Closing an alert: the action taken and the outcome (and, if more than the alert's own
    summary, what happened). Kept as an incident note about the alert's user."""

    action_taken: Note
    outcome: Note
    what_happened: Annotated[FreeText, Field(max_length=4000)] = ""


class SanctionPublic(Out):
    id: str
    user: str
    starts: datetime
    ends: datetime | None
    reason: str
    placed_by: str
    state: SanctionState
    lifted_by: str | None
    lifted_at: datetime | None
    note: str
    school: str | None = None  # the school's id, with a trust file (docs/trust.md)


class SanctionCreate(In):
    """Supervised-only from now, for `days` days (1 to 365), or until lifted when `days` is
    left out."""

    user: UserName
    reason: Note
    days: Annotated[int, Field(ge=1, le=365)] | None = None


class SanctionExtend(In):
    """A new end: `days` from now, or until lifted when left out."""

    days: Annotated[int, Field(ge=1, le=365)] | None = None
    note: Annotated[FreeText, Field(max_length=2000)] = ""


class SanctionLift(In):
    note: Annotated[FreeText, Field(max_length=2000)] = ""


class SupervisedSessionCreate(In):
    """A member of staff supervises `user` from now for `minutes` (5 to 480)."""

    user: UserName
    minutes: Annotated[int, Field(ge=5, le=480)] = 60


class SupervisedSessionPublic(Out):
    id: str
    user: str
    starts: datetime
    ends: datetime
    opened_by: str
    school: str | None = None  # the school's id, with a trust file (docs/trust.md)


class DailySeriesPublic(Out):
    days: list[date]
    series: dict[str, list[int]]


class ChartsPublic(Out):
    first: date
    last: date
    blocked_per_day: DailySeriesPublic
    attempts_per_day: DailySeriesPublic
    top_users_by_attempts: list[tuple[str, int]]


class WeeklySummaryPublic(Out):
    first: date
    last: date
    events: int
    blocked: int
    blocked_by_category: list[tuple[str, int]]
    attempts: int
    attempts_by_technique: list[tuple[str, int]]
    top_users: list[tuple[str, int]]
    alerts_by_severity: list[tuple[str, int]]
    alerts_still_open: int
    sanctions_by_state: list[tuple[str, int]]
    incident_notes: int
    blocked_per_day: DailySeriesPublic
    attempts_per_day: DailySeriesPublic
