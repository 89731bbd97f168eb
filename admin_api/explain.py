"""`schoolgate explain` as a page and an API (staff): what would this role (or user) get at this
host at this time, and why, in the words of policy.explain. It decides as the gateway does:
with the current exceptions, sanctions and local lists, and a user's role from the directory
for a named person; other staff than the DSL and IT do not see other people's sanctions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from admin_api.deps import Now, Res, Staff
from admin_api.errors import InvalidInput
from admin_api.forms import check_single_line
from admin_api.render import Pages, get_pages
from admin_api.resources import Resources
from admin_api.roles import Role, SignedInUser
from admin_api.schemas import ExplainPublic
from admin_api.services.people import look_up
from admin_api.services.sites import site_of
from policy.decide import decide
from policy.explain import explain_decision
from policy.model import Overrides, Policy, Scope, Subject
from policy.model import Request as PolicyRequest
from policy.names import user_key
from store.overrides_db import DatabaseOverridesSource

router = APIRouter(tags=["explain"])
api = APIRouter(prefix="/api", tags=["explain"])
Short = Annotated[str, Query(max_length=300)]
MAX_DISTANCE = timedelta(days=3660)


def explain(policy: Policy, *, role: str, user: str, host: str, at: str, now: datetime,
            overrides: Overrides | None = None, groups: frozenset[str] = frozenset(),
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
    return ExplainPublic(verdict=decision.verdict, reason=decision.reason.value,
                         rule=decision.rule, category=decision.category, host=decision.host,
                         opens_at=decision.opens_at, role=subject.role, user=subject.user,
                         at=when, explanation=explain_decision(policy, decision, subject, when))


def visible_overrides(overrides: Overrides, viewer: SignedInUser) -> tuple[Overrides, str]:
    """What of the live overrides this viewer may see through Explain, and that in words: the
    DSL and IT see everything; other staff do not see other people's sanctions (nor which
    pupils are supervised), and only the Business Manager sees exceptions for named people."""
    if viewer.has(Role.DSL, Role.IT_TECHNICIAN):
        return overrides, ("the policy, the local lists, every exception in force, and "
                           "supervised-only sanctions")
    own = user_key(viewer.username)
    exceptions = tuple(exc for exc in overrides.exceptions
                       if exc.scope is not Scope.USER or viewer.has(Role.BUSINESS_MANAGER)
                       or user_key(exc.who or "") == own)
    sanctions = tuple(s for s in overrides.sanctions if user_key(s.user) == own)
    sessions = tuple(s for s in overrides.supervised_sessions if user_key(s.user) == own)
    named = ("every exception in force" if viewer.has(Role.BUSINESS_MANAGER) else
             "exceptions for classes, groups, roles and everyone (not those for other named "
             "people)")
    return (replace(overrides, exceptions=exceptions, sanctions=sanctions,
                    supervised_sessions=sessions),
            f"the policy, the local lists and {named}; not sanctions (only the Designated "
            "Safeguarding Lead and IT see those)")


async def as_the_gateway(resources: Resources, *, role: str, who: str, host: str, at: str,
                         now: datetime, viewer: SignedInUser) -> ExplainPublic:
    """explain() with what the gateway would know: the live overrides (as much as the viewer
    may see) and, for a named person, their groups and their real role from the directory
    (someone the directory does not know gets the default role, as at the gateway, and the
    answer says so)."""
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
                note = (f"{person.name} has the role {person.role} in the directory, so this "
                        f"answer is for {person.role}, not {role}. ")
            role = person.role
        elif person.unavailable:
            note = (f"The directory could not be asked about {name}; this answer is for the "
                    f"role {role or resources.policy.default_role}. ")
        else:
            note = (f"Nobody called {name} is in the directory; the gateway would treat them "
                    f"as someone it cannot identify (role {resources.policy.default_role}). ")
            role = resources.policy.default_role
    overrides = await run_in_threadpool(DatabaseOverridesSource(resources.engine).load_now)
    shown, includes = visible_overrides(overrides, viewer)
    answer = explain(resources.policy, role=role, user=user_key(name) if name else "",
                     host=site_of(host), at=at,
                     now=now, overrides=shown, groups=groups)
    return answer.model_copy(update={"known_user": known, "includes": includes,
                                     "explanation": note + answer.explanation})


@router.get("/explain", include_in_schema=False)
async def explain_page(request: Request, pages: Annotated[Pages, Depends(get_pages)],
                       user: Staff, resources: Res, now: Now, role: Short = "", who: Short = "",
                       host: Short = "", at: Short = "") -> Response:
    answer, errors, status = None, {}, 200
    if host or at or who:
        try:
            answer = await as_the_gateway(resources, role=role, who=who, host=host, at=at,
                                          now=now, viewer=user)
        except InvalidInput as error:
            errors, status = error.problems, 422
    return pages.render(request, "explain.html", user=user, roles=list(resources.policy.roles),
                        values={"role": role, "who": who, "host": host, "at": at},
                        answer=answer, errors=errors, status=status)


@api.get("/explain", response_model=ExplainPublic)
async def explain_api(user: Staff, resources: Res, now: Now, host: Short, role: Short = "",
                      who: Short = "", at: Short = "") -> ExplainPublic:
    """The decision for role (or user) at host and time (ISO 8601; no offset: school time), as
    the gateway would make it: with the current exceptions, sanctions and local lists."""
    return await as_the_gateway(resources, role=role, who=who, host=host, at=at, now=now,
                                viewer=user)
