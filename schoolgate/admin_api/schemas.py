"""Each entity's schema family: XCreate (what a form or JSON body may send, every field checked
with a clear message) and XPublic (what the API returns); the tables are in store/."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schoolgate.admin_api.forms import FreeText, SingleLine
from schoolgate.policy.model import Scope, TargetKind, Verdict
from schoolgate.store.admin_models import RequestState

GroupName = Annotated[SingleLine, Field(max_length=200, pattern=r"^[\w][\w .'&()-]*$")]
PeriodText = Annotated[str, Field(pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")]


class In(BaseModel):
    """The base of every XCreate (and query) schema, here and in monitoring_schemas."""

    model_config = ConfigDict(extra="ignore", str_max_length=100_000)


class Out(BaseModel):
    """The base of every XPublic schema: built from a table row's attributes."""

    model_config = ConfigDict(from_attributes=True)


class Duration(StrEnum):
    """How long an approval lasts (services/grants.py turns it into a start and an end)."""

    HOURS = "hours"  # from now, for a number of hours
    UNTIL = "until"  # from now until a date and time
    PERIOD = "period"  # a named period of a school day (e.g. this afternoon's lesson)
    PERMANENT = "permanent"  # no end (everyone x host: a local allow-list entry)


class UnblockRequestCreate(In):
    """A written request. From the block page, `token` (its signed link) says what was
    blocked; otherwise `host` does. A teacher may ask for a class or group in advance
    (`for_group`, `wanted_on`, `wanted_period`)."""

    host: Annotated[SingleLine, Field(max_length=300)] = ""
    why: Annotated[FreeText, Field(min_length=10, max_length=2000)]
    token: Annotated[str, Field(max_length=4096)] | None = None
    for_group: GroupName | None = None
    wanted_on: date | None = None
    wanted_period: PeriodText | None = None

    @model_validator(mode="after")
    def _what(self) -> UnblockRequestCreate:
        if not self.host and not self.token:
            raise ValueError("say which website you need (for example www.example.org)")
        if (self.wanted_on is None) != (self.wanted_period is None):
            raise ValueError("for a lesson in advance, give both the day and the period")
        return self


class UnblockRequestPublic(Out):
    id: str
    created_at: datetime
    requester: str
    requester_role: str
    blocked_user: str | None
    blocked_at: datetime | None
    from_block_page: bool
    host: str
    category: str | None
    why: str
    for_group: str | None
    wanted_on: date | None
    wanted_period: str | None
    state: RequestState
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None
    grant: dict[str, Any] | None
    school: str | None = None  # the school's id, with a trust file (docs/trust.md)


class ApprovalCreate(In):
    """The Business Manager's approval: scope (who), target (what) and duration (how long)."""

    scope: Scope = Scope.USER
    who: Annotated[SingleLine, Field(max_length=200)] | None = None
    target_kind: TargetKind = TargetKind.HOST
    duration: Duration = Duration.HOURS
    hours: Annotated[int, Field(ge=1, le=24)] = 1
    until: datetime | None = None  # without a zone: the school's time
    period: Annotated[str, Field(max_length=40)] | None = None
    note: Annotated[FreeText, Field(max_length=500)] = ""
    confirm_wide: bool = False  # the reviewer read the reach of a wider-than-asked grant


class DenialCreate(In):
    reason: Annotated[FreeText, Field(min_length=5, max_length=1000)]


class RemovalCreate(In):
    """A destructive action from a page (remove, revoke): the reason, and the confirmation
    that the person meant it (the confirmation page's button)."""

    reason: Annotated[FreeText, Field(min_length=5, max_length=500)]
    confirm: Literal["yes"]


class RevocationCreate(In):
    reason: Annotated[FreeText, Field(max_length=500)] = ""


class LocalListEntryCreate(In):
    host: Annotated[SingleLine, Field(min_length=1, max_length=300)]
    verdict: Verdict
    note: Annotated[FreeText, Field(max_length=500)] = ""


def _relative_file(path: str) -> str:
    if path.startswith(("/", "\\")) or ".." in path.replace("\\", "/").split("/"):
        raise ValueError("must be a file inside the trust's folder, like ash/policy.yaml")
    return path


class SchoolCreate(In):
    """A school to add to the trust (the trust file checks the rest, with every problem)."""

    school_id: Annotated[
        SingleLine, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$")
    ]
    school_name: Annotated[SingleLine, Field(min_length=1, max_length=200)]
    subnets: Annotated[FreeText, Field(max_length=5000)] = ""
    policy_file: Annotated[SingleLine, Field(max_length=300), AfterValidator(_relative_file)] = ""

    def subnet_list(self) -> list[str]:
        """The ranges typed, one per line or separated by commas or spaces."""
        return self.subnets.replace(",", " ").split()


class SchoolRemoval(In):
    """Removing a school: its id typed again, so nobody removes the wrong one by a slip."""

    school_id_again: Annotated[SingleLine, Field(min_length=1, max_length=40)]


class SchoolWeekPublic(Out):
    school: str | None
    name: str
    events: int
    blocked: int
    attempts: int
    open_alerts: int
    pending_requests: int
    active_sanctions: int


class TrustSummaryPublic(Out):
    since: datetime
    schools: list[SchoolWeekPublic]


class LocalListEntryPublic(Out):
    host: str
    verdict: Verdict
    note: str
    added_by: str
    added_at: datetime
    school: str | None = None  # the school's own list; None: the trust's (docs/trust.md)


class ExceptionPublic(Out):
    id: str
    scope: Scope
    who: str | None
    target_kind: TargetKind
    target: str
    starts: datetime
    ends: datetime | None
    created_by: str
    created_at: datetime
    request_id: str | None
    note: str
    school: str | None = None  # the school's id, with a trust file (docs/trust.md)


class AuditEntryPublic(Out):
    id: int
    at: datetime
    actor: str
    actor_roles: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    details_hidden: bool = False  # a safeguarding action's details: for the DSL only
    school: str | None = None  # the school's id, with a trust file (docs/trust.md)


class ExplainPublic(Out):
    verdict: Verdict
    reason: str
    rule: str | None
    category: str | None
    host: str | None
    opens_at: datetime | None
    role: str
    user: str | None
    at: datetime
    explanation: str
    known_user: bool | None = None  # for a named person: whether the directory knows them
    includes: str = ""  # what the answer took into account, in words


class SubjectAccessCreate(In):
    user: Annotated[SingleLine, Field(min_length=1, max_length=200)]


class PolicyCheckCreate(In):
    text: Annotated[str, Field(min_length=1, max_length=512_000)]


class PolicyCheckPublic(Out):
    ok: bool
    summary: str
    problems: list[str]


class MePublic(Out):
    username: str
    display_name: str
    roles: list[str]
    policy_role: str
