"""`schoolgate explain` as a page and an API (staff): what would this role (or user) get at this
host at this time, and why, in the words of policy.explain. It decides as the gateway does:
with the current exceptions, sanctions and local lists, and a user's role from the directory
for a named person; other staff than the DSL and IT do not see other people's sanctions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from schoolgate.admin_api.deps import Now, Res, Scope, Staff
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.schemas import ExplainPublic
from schoolgate.admin_api.services.explain import as_the_gateway

router = APIRouter(tags=["explain"])
api = APIRouter(prefix="/api", tags=["explain"])
Short = Annotated[str, Query(max_length=300)]


@router.get("/explain", include_in_schema=False)
async def explain_page(
    request: Request,
    pages: Annotated[Pages, Depends(get_pages)],
    user: Staff,
    resources: Res,
    now: Now,
    scope: Scope,
    role: Short = "",
    who: Short = "",
    host: Short = "",
    at: Short = "",
) -> Response:
    answer, errors, status = None, {}, 200
    if host or at or who:
        try:
            answer = await as_the_gateway(
                resources,
                role=role,
                who=who,
                host=host,
                at=at,
                now=now,
                viewer=user,
                school=scope.school,
            )
        except InvalidInput as error:
            errors, status = error.problems, 422
    return pages.render(
        request,
        "explain.html",
        user=user,
        roles=list(resources.policy.roles),
        values={"role": role, "who": who, "host": host, "at": at},
        answer=answer,
        errors=errors,
        status=status,
    )


@api.get("/explain", response_model=ExplainPublic)
async def explain_api(
    user: Staff,
    resources: Res,
    now: Now,
    scope: Scope,
    host: Short,
    role: Short = "",
    who: Short = "",
    at: Short = "",
) -> ExplainPublic:
    """The decision for role (or user) at host and time (ISO 8601; no offset: school time), as
    the gateway would make it: with the current exceptions, sanctions and local lists (with a
    trust file, the viewer's school's and the trust's; `?school=<id>` for the trust's staff)."""
    return await as_the_gateway(
        resources, role=role, who=who, host=host, at=at, now=now, viewer=user, school=scope.school
    )
