"""What an approval grants, checked against the policy at approval time: who (scope), what
(a host or a category), and for how long (some hours, until a time, a named period of a school
day from the policy's calendar, or permanently). Locked categories and categories the policy
marks not unblockable for a role are refused here with a clear message (decide() refuses them
too, so a grant the policy forbids could never take effect anyway).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from schoolgate.admin_api.errors import InvalidInput, NotAllowed, PolicyForbids
from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.schemas import ApprovalCreate, Duration
from schoolgate.admin_api.words import category_words, role_words, roles_words
from schoolgate.policy.decide import unblockable
from schoolgate.policy.hostnames import HostError, normalise_host, unwrap_rewriting_proxy
from schoolgate.policy.model import Policy, Scope, TargetKind
from schoolgate.store.admin_models import UnblockRequestRow

MAX_AHEAD = timedelta(days=366)
_PERIOD = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2})-(\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class Grant:
    scope: Scope
    who: str | None  # user, group or role name; None for everyone
    target_kind: TargetKind
    target: str  # normalised host or category name
    starts: datetime
    ends: datetime | None
    label: str = ""  # the period's words, when a period was chosen

    @property
    def local_allow(self) -> bool:
        """Permanent, for everyone, one host: kept as a local allow-list entry."""
        return (
            self.ends is None
            and self.scope is Scope.EVERYONE
            and self.target_kind is TargetKind.HOST
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope.value,
            "who": self.who,
            "target_kind": self.target_kind.value,
            "target": self.target,
            "starts": self.starts.isoformat(),
            "ends": self.ends.isoformat() if self.ends else None,
            "label": self.label,
        }


@dataclass(frozen=True, slots=True)
class PeriodChoice:
    value: str  # "YYYY-MM-DD HH:MM-HH:MM"
    label: str
    day_label: str


def _hm(t: time) -> str:
    return t.strftime("%H:%M")


def period_words(name: str, start: time, end: time) -> str:
    part = "" if name != "lesson" else (" (morning)" if start < time(12) else " (afternoon)")
    return f"{name}{part}, {_hm(start)}–{_hm(end)}"


def period_choices(policy: Policy, *, now: datetime, days: int = 7) -> list[PeriodChoice]:
    """The periods of the next `days` days' school days that have not ended yet."""
    cal = policy.calendar
    today = now.astimezone(cal.timezone).date()
    choices = []
    for offset in range(days):
        day = today + timedelta(days=offset)
        for start, end, name, _ in cal.day_timeline(day):
            if datetime.combine(day, end, cal.timezone) <= now:
                continue
            day_label = (
                "Today" if offset == 0 else f"{day.strftime('%A')} {day.day} {day.strftime('%B')}"
            )
            choices.append(
                PeriodChoice(
                    f"{day.isoformat()} {_hm(start)}-{_hm(end)}",
                    period_words(name, start, end),
                    day_label,
                )
            )
    return choices


def period_times(policy: Policy, *, now: datetime) -> list[tuple[str, str]]:
    """("HH:MM-HH:MM", words) for each part of the school day, from the next school days."""
    seen: dict[str, str] = {}
    for choice in period_choices(policy, now=now.replace(hour=0, minute=0), days=14):
        times = choice.value.split(" ", 1)[1]
        seen.setdefault(times, choice.label)
    return sorted(seen.items())


def resolve_period(
    policy: Policy,
    value: str,
    *,
    now: datetime,
    field: str = "period",
) -> tuple[datetime, datetime, str]:
    """(starts, ends, words) for "YYYY-MM-DD HH:MM-HH:MM", which must be one of that school
    day's periods in the calendar and not over yet."""
    match = _PERIOD.match(value.strip())
    if match is None:
        raise InvalidInput({field: "choose a period from the list"})
    try:
        day = date.fromisoformat(match.group(1))
        start, end = time.fromisoformat(match.group(2)), time.fromisoformat(match.group(3))
    except ValueError:
        raise InvalidInput({field: "choose a period from the list"}) from None
    cal = policy.calendar
    if not timedelta(days=-1) <= day - now.astimezone(cal.timezone).date() <= MAX_AHEAD:
        raise InvalidInput({field: "choose a school day within the next year"})
    for seg_start, seg_end, name, _ in cal.day_timeline(day):
        if (seg_start, seg_end) == (start, end):
            starts = datetime.combine(day, start, cal.timezone)
            ends = datetime.combine(day, end, cal.timezone)
            if ends <= now:
                raise InvalidInput({field: "that period is over; choose one still to come"})
            return (
                starts,
                ends,
                f"{day.strftime('%A')} {day.day} {day.strftime('%B')}: "
                + period_words(name, start, end),
            )
    noon = datetime.combine(day, time(12), cal.timezone)
    if not cal.day_timeline(day):
        raise InvalidInput({field: f"{day.isoformat()} is not a school day ({cal.describe(noon)})"})
    raise InvalidInput(
        {
            field: f"there is no period {_hm(start)}-{_hm(end)} on "
            f"{day.isoformat()} in the school's calendar"
        }
    )


def resolve_times(
    policy: Policy,
    *,
    duration: Duration,
    now: datetime,
    hours: int,
    until: datetime | None,
    period: str | None,
) -> tuple[datetime, datetime | None, str]:
    """(starts, ends, words) for the chosen duration; `until` without a zone is school time."""
    if duration is Duration.HOURS:
        return now, now + timedelta(hours=hours), f"for {hours} hour{'s' if hours != 1 else ''}"
    if duration is Duration.UNTIL:
        if until is None:
            raise InvalidInput({"until": "give the date and time the access should end"})
        if until.tzinfo is None:
            until = until.replace(tzinfo=policy.calendar.timezone)
        if until <= now:
            raise InvalidInput({"until": "that time has passed; give a time still to come"})
        if until - now > MAX_AHEAD:
            raise InvalidInput(
                {
                    "until": "that is more than a year ahead; choose "
                    "'permanently' instead, or an earlier time"
                }
            )
        return now, until, ""
    if duration is Duration.PERIOD:
        if not period:
            raise InvalidInput({"period": "choose a period from the list"})
        return resolve_period(policy, period, now=now)
    return now, None, "permanently"


def _covered(policy: Policy, grant: Grant, user_roles: frozenset[str]) -> tuple[set[str], str]:
    """The policy roles a grant may cover, and whom it names in words."""
    if grant.scope is Scope.USER:
        covered = set(user_roles) or {policy.default_role}
        return covered, f"{grant.who} (role {', '.join(sorted(covered))})"
    if grant.scope is Scope.ROLE:
        return {grant.who or ""}, f"the role {grant.who}"
    # a group, or everyone, may include any role
    return set(policy.roles), (
        f"the group {grant.who}" if grant.scope is Scope.GROUP else "everyone"
    )


def judged_hosts(name: str) -> tuple[str, ...]:
    """The host, and the site a page-rewriting proxy host stands for
    ("www-instagram-com.translate.goog" is www.instagram.com too)."""
    inner = unwrap_rewriting_proxy(name)
    return (name, inner) if inner else (name,)


def is_rewriting_proxy(name: str) -> bool:
    """Whether `name` is a page-rewriting proxy itself (translate.goog, cdn.ampproject.org):
    opening it opens every site through it."""
    return unwrap_rewriting_proxy(f"www-example-org.{name}") is not None


def never_unblockable_for(policy: Policy, name: str, roles: set[str]) -> list[str]:
    """Those of `roles` for whom the site can never be unblocked (judged through
    page-rewriting proxies too); every role for a page-rewriting proxy itself."""
    if is_rewriting_proxy(name):
        return sorted(roles)
    return sorted(
        role
        for role in roles
        if not all(unblockable(policy, host, role) for host in judged_hosts(name))
    )


def _categories(policy: Policy, grant: Grant) -> tuple[str, ...]:
    if grant.target_kind is TargetKind.CATEGORY:
        if grant.target not in policy.categories:
            raise InvalidInput(
                {
                    "target_kind": "this site is in no category of the policy; "
                    "approve it for the site instead"
                }
            )
        return (grant.target,)
    host = normalise_host(grant.target)
    if isinstance(host, HostError):
        raise InvalidInput({"target": host.message})
    found: dict[str, None] = {}
    for name in judged_hosts(host.name):
        found.update(dict.fromkeys(policy.domains.categories(name)))
    return tuple(found)


def check_grant(policy: Policy, grant: Grant, *, user_roles: frozenset[str]) -> None:
    """PolicyForbids if the policy does not let this grant open what it targets for whom it
    covers (`user_roles`: the roles of the one person a user grant names), or if it is a
    category-wide or everyone-wide opening that the category forbids for a role it covers
    (`no_wide_grants_for`); InvalidInput for an unknown category, role or a bad host."""
    categories = _categories(policy, grant)
    if grant.scope is Scope.ROLE and grant.who not in policy.roles:
        raise InvalidInput({"who": f"choose a role of the policy ({', '.join(policy.roles)})"})
    covered, whom = _covered(policy, grant, user_roles)
    wide = grant.target_kind is TargetKind.CATEGORY or grant.scope in (Scope.EVERYONE, Scope.ROLE)
    for name in categories:
        category = policy.categories[name]
        if category.locked:
            raise PolicyForbids(
                {
                    "target": f"{grant.target} is in the locked category "
                    f"'{name}': nothing can unblock it, not even an "
                    "approved exception"
                }
            )
        refused = sorted(covered & category.not_unblockable_for)
        if refused:
            raise PolicyForbids(
                {
                    "scope": f"the policy says the category '{name}' cannot be "
                    f"unblocked for {', '.join(refused)}; a grant to "
                    f"{whom} would cover them, so it is refused"
                }
            )
        narrow_only = sorted(covered & category.no_wide_grants_for)
        if wide and narrow_only:
            raise PolicyForbids(
                {
                    "scope": f"the school's policy does not allow opening "
                    f"'{name}' for all {', '.join(narrow_only)}s or for "
                    "a whole category at once: approve this one site "
                    "for the person or the class that asked"
                }
            )
    if grant.target_kind is TargetKind.HOST:
        if is_rewriting_proxy(grant.target):
            raise PolicyForbids(
                {
                    "target": f"{grant.target} is a page-rewriting proxy: opening "
                    "it would open every website through it, "
                    "including ones that can never be unblocked"
                }
            )
        refused = never_unblockable_for(policy, grant.target, covered & set(policy.roles))
        if refused:
            raise PolicyForbids(
                {
                    "scope": f"{grant.target} can never be unblocked for "
                    f"{roles_words(refused[0])} (the school's policy keeps it "
                    f"blocked); a grant to {whom} would cover them, so "
                    "it is refused"
                }
            )


def widenings(grant: Grant, *, asked_for_group: str | None) -> list[str]:
    """How this grant is wider than the request it answers (empty: as narrow as asked):
    a role, everyone, another group, a whole category, longer than a day, or permanently."""
    wider = []
    if grant.scope is Scope.ROLE:
        wider.append(f"everyone with the role {role_words(grant.who)}")
    elif grant.scope is Scope.EVERYONE:
        wider.append("everyone")
    elif (
        grant.scope is Scope.GROUP
        and (grant.who or "").casefold() != (asked_for_group or "").casefold()
    ):
        wider.append(f"the whole group {grant.who}")
    if grant.target_kind is TargetKind.CATEGORY:
        wider.append(f"every site in {category_words(grant.target)}")
    if grant.ends is None:
        wider.append("permanently")
    elif grant.ends - grant.starts > timedelta(days=1):
        wider.append("for longer than a day")
    return wider


def reach_words(policy: Policy, grant: Grant, *, people: int | None) -> str:
    """The grant's reach in a sentence: "This lets all 312 pupils use 47 sites in the category
    'social' until Friday 18 December, 14:00." (`people`: how many it covers, if known)."""
    count = f"{people} " if people is not None else ""
    persons = "person" if people == 1 else "people"
    every = "the" if people == 1 else "all"
    match grant.scope:
        case Scope.USER:
            whom = str(grant.who)
        case Scope.GROUP:
            whom = f"{every} {count}{persons} in {grant.who}"
        case Scope.ROLE:
            role = str(grant.who)
            pupils = "pupil" if people == 1 else "pupils"
            whom = (
                f"{every} {count}"
                f"{pupils if role == 'pupil' else persons + ' with the role ' + role_words(role)}"
            )
        case _:
            whom = f"all {count}{persons} at school (everyone)"
    if grant.target_kind is TargetKind.CATEGORY:
        category = policy.categories.get(grant.target)
        sites = category.domain_count if category else 0
        what = f"{sites} site{'' if sites == 1 else 's'} in {category_words(grant.target)}"
    else:
        what = f"{grant.target} (and its subdomains)"
    if grant.ends is None:
        until = "permanently, until someone removes it"
    else:
        end = grant.ends.astimezone(policy.calendar.timezone)
        until = f"until {end.strftime('%A')} {end.day} {end.strftime('%B')}, {_hm(end.time())}"
    return f"This lets {whom} use {what} {until}."


def _role_named(policy: Policy, typed: str | None) -> str | None:
    """The policy's role for a role typed as people say it ('Social media manager' is
    social_media_manager); anything else as typed (the policy check then refuses it)."""
    if not typed:
        return None
    wanted = typed.strip().casefold().replace(" ", "_")
    return next((role for role in policy.roles if role.casefold() == wanted), typed)


def build_grant(
    policy: Policy,
    row: UnblockRequestRow,
    form: ApprovalCreate,
    now: datetime,
    reviewer: SignedInUser,
) -> Grant:
    """The grant the form asks for. Nobody decides their own request, in any field: a grant
    for one person is for the person who was blocked or who asked, and a role or group grant
    must not include the reviewer."""
    who: str | None
    match form.scope:
        case Scope.USER:
            who = form.who or row.blocked_user or row.requester
            allowed = {name.casefold() for name in (row.blocked_user, row.requester) if name}
            if who.casefold() not in allowed:
                raise InvalidInput(
                    {
                        "who": "a grant for one person can only be for the person "
                        "who was blocked or who asked ("
                        f"{' or '.join(sorted(allowed))}); to open it for "
                        "others, choose a class or group"
                    }
                )
            if reviewer.same_person(who):
                raise NotAllowed(
                    "this would give you access yourself: another Business Manager must decide it"
                )
        case Scope.GROUP:
            who = form.who or row.for_group
            if not who:
                raise InvalidInput({"who": "name the group or class (as in the directory)"})
            if who.casefold() in {group.casefold() for group in reviewer.groups}:
                raise NotAllowed(
                    f"you are in the group {who}, so this would give you access "
                    "too: another Business Manager must decide it"
                )
        case Scope.ROLE:
            who = _role_named(policy, form.who) or row.blocked_role or row.requester_role
            if who == reviewer.policy_role:
                raise NotAllowed(
                    f"you have the role {who}, so this would give you access "
                    "too: another Business Manager must decide it"
                )
        case _:
            who = None
    if form.target_kind is TargetKind.CATEGORY and not row.category:
        raise InvalidInput(
            {
                "target_kind": "this site is in no category of the policy; "
                "approve it for the site instead"
            }
        )
    target = row.category if form.target_kind is TargetKind.CATEGORY else row.host
    if form.until is not None and form.duration is not Duration.UNTIL:
        raise InvalidInput(
            {
                "until": "you typed an end time but chose another “For how long”: "
                "choose “Until” to use that time, or clear it"
            }
        )
    starts, ends, label = resolve_times(
        policy,
        duration=form.duration,
        now=now,
        hours=form.hours,
        until=form.until,
        period=form.period,
    )
    return Grant(
        scope=form.scope,
        who=who,
        target_kind=form.target_kind,
        target=target or "",
        starts=starts,
        ends=ends,
        label=label,
    )
