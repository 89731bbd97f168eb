"""The policy's vocabulary as frozen values: what `parse_policy` builds and `decide` reads.

Everything here is plain, immutable data. Times are aware datetimes; wall-clock times of the
school day are `datetime.time` values read in the calendar's own `ZoneInfo`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from schoolgate.policy.addresses import InternalSettings, PortSettings
from schoolgate.policy.inspection import InspectionSettings, SearchSettings

if TYPE_CHECKING:
    from schoolgate.policy.calendar import Calendar
    from schoolgate.policy.hostnames import DomainIndex


class Verdict(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"


class Reason(StrEnum):
    """Why a decision came out as it did. The strings are a contract (logs, API, metrics)."""

    LOCKED = "locked"  # a locked category: nothing can unblock it
    SUPERVISED_ONLY = "supervised_only"  # a supervised-only sanction, no session open
    EXCEPTION = "exception"  # an approved, unexpired exception (or a local allow entry)
    LOCAL_BLOCK = "local_block"  # the business manager's local block list
    RULE_ALLOW = "rule_allow"
    RULE_BLOCK = "rule_block"
    CIRCUMVENTION = "circumvention"  # a trick to get round the filter (see Decision.technique)
    DEFAULT_ALLOW = "default_allow"
    DEFAULT_BLOCK = "default_block"
    INVALID_HOST = "invalid_host"  # the host name could not be understood: fail closed
    INTERNAL_ADDRESS = "internal_address"  # loopback, private, link-local, metadata, a local
    #                                        name: not on the policy's internal allow list
    ENGINE_ERROR = "engine_error"  # deciding failed: fail closed (set by the enforcement point)
    NO_SCHOOL = "no_school"  # a trust's gateway: the request belongs to no school (no school's
    #                          listener, subnet or directory group: refused, set by the
    #                          enforcement point; docs/trust.md)


class PeriodKind(StrEnum):
    LESSON = "lesson"
    BREAK = "break"


class Scope(StrEnum):
    """Who an approved exception covers."""

    USER = "user"
    GROUP = "group"
    ROLE = "role"
    EVERYONE = "everyone"


class TargetKind(StrEnum):
    """What an approved exception opens: one host (and its subdomains) or a whole category."""

    HOST = "host"
    CATEGORY = "category"


class SanctionAction(StrEnum):
    """What reaching the circumvention threshold does (a per-school choice)."""

    SANCTION = "sanction"  # place the user on supervised-only at once
    RECOMMEND = "recommend"  # only recommend it to the DSL


# --- the school calendar -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """A named part of the school day; start inclusive, end exclusive, to the second."""

    name: str
    kind: PeriodKind
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class DateRange:
    """A term or a closure: both dates inclusive."""

    name: str
    start: date
    end: date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


# --- subjects, requests and overrides (plain data passed in to decide) ---------------------


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is asking. `user` is None for a device known only by its subnet or not at all."""

    role: str
    user: str | None = None
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Request:
    """What is asked for. `host` is as received; decide() normalises it."""

    host: str
    port: int | None = None


@dataclass(frozen=True, slots=True)
class ApprovedException:
    """An approved unblock: scope x target for [starts, ends); ends=None means no end."""

    id: str
    scope: Scope
    target_kind: TargetKind
    target: str  # a normalised host name, or a category name
    starts: datetime
    ends: datetime | None = None
    who: str | None = None  # user name, group name or role name; None for EVERYONE
    school: str | None = None  # with a trust: the school it was granted in; None: every school

    def active(self, at: datetime) -> bool:
        return self.starts <= at and (self.ends is None or at < self.ends)


@dataclass(frozen=True, slots=True)
class Sanction:
    """A supervised-only sanction on one user for [starts, ends)."""

    id: str
    user: str
    starts: datetime
    ends: datetime | None = None

    def active(self, at: datetime) -> bool:
        return self.starts <= at and (self.ends is None or at < self.ends)


@dataclass(frozen=True, slots=True)
class SupervisedSession:
    """A member of staff is supervising this user for [starts, ends)."""

    user: str
    starts: datetime
    ends: datetime

    def active(self, at: datetime) -> bool:
        return self.starts <= at < self.ends


@dataclass(frozen=True, slots=True)
class LocalListEntry:
    """The business manager's local lists: a host blocked or allowed for everyone of one
    school (`school`), or of the whole trust, or of the one school without a trust (None)."""

    host: str  # normalised
    verdict: Verdict
    note: str = ""
    school: str | None = None


@dataclass(frozen=True, slots=True)
class Overrides:
    """The state people change at run time, as one immutable snapshot."""

    exceptions: tuple[ApprovedException, ...] = ()
    sanctions: tuple[Sanction, ...] = ()
    supervised_sessions: tuple[SupervisedSession, ...] = ()
    local_list: tuple[LocalListEntry, ...] = ()

    def for_school(self, school: str | None) -> Overrides:
        """What applies to a client of `school` (None: no school's): without the exceptions
        granted and the local list entries made in another school. Sanctions and supervised
        sessions are about one person and stay (a sanction only ever closes more)."""
        schools = [e.school for e in self.exceptions] + [e.school for e in self.local_list]
        if all(s in (None, school) for s in schools):
            return self
        return replace(
            self,
            exceptions=tuple(e for e in self.exceptions if e.school in (None, school)),
            local_list=tuple(e for e in self.local_list if e.school in (None, school)),
        )


NO_OVERRIDES = Overrides()


# --- the policy ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Category:
    """A named domain list. `locked`: nothing can unblock it. `circumvention`: a block here is a
    circumvention attempt whose technique is the category's name. `sensitive`: never decrypted."""

    name: str
    description: str = ""
    locked: bool = False
    not_unblockable_for: frozenset[str] = frozenset()  # role names
    no_wide_grants_for: frozenset[str] = frozenset()  # roles: no category/everyone-wide grant
    circumvention: bool = False
    sensitive: bool = False
    lists: tuple[str, ...] = ()  # the list files it was built from (for people to read)
    domain_count: int = 0
    example_domain: str = ""  # one listed domain, for tables and examples


@dataclass(frozen=True, slots=True)
class When:
    """When a rule applies: any of the named windows. Empty means always.

    Window names: a period kind ('lesson', 'break'), a period's name ('lunch'), 'school_day'
    (school-day hours on a school day) or 'outside_school_day' (everything else)."""

    windows: tuple[str, ...] = ()

    @property
    def always(self) -> bool:
        return not self.windows


@dataclass(frozen=True, slots=True)
class Rule:
    """roles x categories x when -> verdict. Rules are tried in file order; first match wins."""

    name: str
    roles: frozenset[str]
    categories: frozenset[str]
    verdict: Verdict
    when: When = field(default_factory=When)
    description: str = ""
    index: int = 0  # position in the file's rules list


@dataclass(frozen=True, slots=True)
class CircumventionSettings:
    """How attempts to get round the filter are treated (thresholds are used by monitoring)."""

    block_ip_literals: bool = True
    block_rewriting_proxies: bool = True
    threshold_attempts: int = 3
    threshold_window_seconds: int = 600
    on_threshold: SanctionAction = SanctionAction.RECOMMEND
    sanction_days: int = 14
    supervised_allowlist: tuple[str, ...] = ()  # normalised hosts a sanctioned user may still use


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    source: str
    roles: Mapping[str, Role]
    default_role: str  # the most restrictive role: unknown users get it
    categories: Mapping[str, Category]
    domains: DomainIndex
    calendar: Calendar
    rules: tuple[Rule, ...]
    default: Verdict
    circumvention: CircumventionSettings = field(default_factory=CircumventionSettings)
    internal: InternalSettings = field(default_factory=InternalSettings)
    ports: PortSettings = field(default_factory=PortSettings)
    inspection: InspectionSettings = field(default_factory=InspectionSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    # Derived for speed, not part of the policy's value: the rules that name each role, in
    # order, and bounded memos of what decide() learnt: host spellings; each rule's calendar
    # window (open or shut, and until when).
    rules_by_role: Mapping[str, tuple[Rule, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    memo: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    window_memo: dict[str, tuple[float, float, bool]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not self.rules_by_role:
            by_role = {role: tuple(r for r in self.rules if role in r.roles) for role in self.roles}
            object.__setattr__(self, "rules_by_role", by_role)


# --- the decision --------------------------------------------------------------------------


class Decision(NamedTuple):
    """The answer: an immutable value. `rule` names what decided (a rule's name, an exception
    id, a category for locked ones); `opens_at` is when access next opens for a time-based
    block; `technique` names the circumvention technique when the block is one.

    A NamedTuple rather than a frozen dataclass: the gateway makes one per request, and a
    tuple is built several times faster; it is just as immutable."""

    verdict: Verdict
    reason: Reason
    rule: str | None = None
    category: str | None = None
    host: str | None = None  # the normalised host that was decided on
    opens_at: datetime | None = None
    technique: str | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW
