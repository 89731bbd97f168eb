"""`schoolgate explain` as a page and an API (staff): what would this role (or user) get at this
host at this time, and why, in the words of policy.explain. It decides as the gateway does:
with the current exceptions, sanctions and local lists, and a user's role from the directory
when no role is chosen."""

from __future__ import annotations

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
from admin_api.schemas import ExplainPublic
from policy.decide import decide
from policy.explain import explain_decision
from policy.model import Overrides, Policy, Subject
from policy.model import Request as PolicyRequest
from store.directory import DirectoryUnavailable
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


async def as_the_gateway(resources: Resources, *, role: str, who: str, host: str, at: str,
                         now: datetime) -> ExplainPublic:
    """explain() with what the gateway would know: the live overrides and, for a user with no
    role chosen, their groups and role from the directory (unknown: the default role)."""
    groups: frozenset[str] = frozenset()
    name = who.strip()
    if name and not role and resources.directory is not None and "\n" not in name:
        try:
            found = await resources.directory.lookup(name)
        except DirectoryUnavailable:
            found = None  # as at the gateway: someone it cannot look up gets the default role
        if found is not None:
            groups = found.groups
            role = resources.identity.role_for_groups(groups) or ""
    overrides = await run_in_threadpool(DatabaseOverridesSource(resources.engine).load_now)
    return explain(resources.policy, role=role, user=who, host=host, at=at, now=now,
                   overrides=overrides, groups=groups)


@router.get("/explain", include_in_schema=False)
async def explain_page(request: Request, pages: Annotated[Pages, Depends(get_pages)],
                       user: Staff, resources: Res, now: Now, role: Short = "", who: Short = "",
                       host: Short = "", at: Short = "") -> Response:
    answer, errors, status = None, {}, 200
    if host or at or who:
        try:
            answer = await as_the_gateway(resources, role=role, who=who, host=host, at=at,
                                          now=now)
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
    return await as_the_gateway(resources, role=role, who=who, host=host, at=at, now=now)
