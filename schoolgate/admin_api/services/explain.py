"""Explain, as the gateway would decide: what this role (or person) gets at this site at this
time, and why, in the words of policy.explain; with the current exceptions, sanctions and local
lists (as much as the viewer may see), and a named person's groups and role from the directory.
The routes are in admin_api/explain.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from fastapi.concurrency import run_in_threadpool

from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.forms import check_single_line
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.admin_api.schemas import ExplainPublic
from schoolgate.admin_api.services.people import look_up
from schoolgate.admin_api.services.sites import site_of
from schoolgate.policy.decide import decide
from schoolgate.policy.explain import explain_plainly
from schoolgate.policy.model import Overrides, Policy, Scope, Subject
from schoolgate.policy.model import Request as PolicyRequest
from schoolgate.policy.names import user_key
from schoolgate.store.overrides_db import DatabaseOverridesSource

MAX_DISTANCE = timedelta(days=3660)


def explain(
    policy: Policy,
    *,
    role: str,
    user: str,
    host: str,
    at: str,
    now: datetime,
    overrides: Overrides | None = None,
    groups: frozenset[str] = frozenset(),
) -> ExplainPublic:
    problems: dict[str, str] = {}
    if role and role not in policy.roles:
        problems["role"] = f"choose one of the policy's roles ({', '.join(policy.roles)})"
    if not host.strip():
        problems["host"] = "type a site's name, for example www.tiktok.com"
    for field, value in (("user", user), ("host", host)):
        try:
            check_single_line(value)
        except ValueError as error:
            problems[field] = str(error)
    when = now
    if at.strip():
        try:
            when = datetime.fromisoformat(at.strip())
        except ValueError:
            problems["at"] = "give a date and time as YYYY-MM-DD HH:MM"
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=policy.calendar.timezone)
            if abs(when - now) > MAX_DISTANCE:
                problems["at"] = "give a time within ten years of today"
    if problems:
        raise InvalidInput(problems)
    subject = Subject(role=role or policy.default_role, user=user.strip() or None, groups=groups)
    decision = decide(policy, PolicyRequest(host.strip()), subject, overrides, when)
    return ExplainPublic(
        verdict=decision.verdict,
        reason=decision.reason.value,
        rule=decision.rule,
        category=decision.category,
        host=decision.host,
        opens_at=decision.opens_at,
        role=subject.role,
        user=subject.user,
        at=when,
        explanation=explain_plainly(policy, decision, subject, when, now=now),
    )


def visible_overrides(overrides: Overrides, viewer: SignedInUser) -> tuple[Overrides, str]:
    """What of the live overrides this viewer may see through Explain, and that in words: the
    DSL and IT see everything; other staff do not see other people's sanctions (nor which
    pupils are supervised), and only the Business Manager sees exceptions for named people."""
    if viewer.has(Role.DSL, Role.IT_TECHNICIAN):
        return overrides, (
            "the policy, the local lists, every exception in force, and supervised-only sanctions"
        )
    own = user_key(viewer.username)
    exceptions = tuple(
        exc
        for exc in overrides.exceptions
        if exc.scope is not Scope.USER
        or viewer.has(Role.BUSINESS_MANAGER)
        or user_key(exc.who or "") == own
    )
    sanctions = tuple(s for s in overrides.sanctions if user_key(s.user) == own)
    sessions = tuple(s for s in overrides.supervised_sessions if user_key(s.user) == own)
    named = (
        "every exception in force"
        if viewer.has(Role.BUSINESS_MANAGER)
        else "exceptions for classes, groups, roles and everyone (not those for other named people)"
    )
    return (
        replace(
            overrides, exceptions=exceptions, sanctions=sanctions, supervised_sessions=sessions
        ),
        f"the policy, the local lists and {named}; not sanctions (only the Designated "
        "Safeguarding Lead and IT see those)",
    )


async def as_the_gateway(
    resources: Resources,
    *,
    role: str,
    who: str,
    host: str,
    at: str,
    now: datetime,
    viewer: SignedInUser,
    school: str | None = None,
) -> ExplainPublic:
    """explain() with what the gateway would know: the live overrides (as much as the viewer
    may see; with a trust file, those a client of `school` gets: its own and the trust's) and,
    for a named person, their groups and their real role from the directory (someone the
    directory does not know gets the default role, as at the gateway, and the answer says
    so)."""
    groups: frozenset[str] = frozenset()
    name = who.strip()
    known: bool | None = None
    note = ""
    if name:
        person = await look_up(resources, name)
        known = person.known
        if person.known:
            groups = person.groups
            if role and role != person.role:
                note = (
                    f"{person.name} has the role {person.role} in the directory, so this "
                    f"answer is for {person.role}, not {role}. "
                )
            role = person.role
        elif person.unavailable:
            note = (
                f"The directory could not be asked about {name}; this answer is for the "
                f"role {role or resources.policy.default_role}. "
            )
        else:
            note = (
                f"Nobody called {name} is in the directory; the gateway would treat them "
                f"as someone it cannot identify (role {resources.policy.default_role}). "
            )
            role = resources.policy.default_role
    overrides = await run_in_threadpool(DatabaseOverridesSource(resources.engine).load_now)
    if resources.trust is not None:
        overrides = overrides.for_school(school)
    shown, includes = visible_overrides(overrides, viewer)
    answer = explain(
        resources.policy,
        role=role,
        user=user_key(name) if name else "",
        host=site_of(host),
        at=at,
        now=now,
        overrides=shown,
        groups=groups,
    )
    return answer.model_copy(
        update={"known_user": known, "includes": includes, "explanation": note + answer.explanation}
    )
