"""The local block and allow lists, as pages and an API (Business Manager). In the school's
words: "Inappropriate content accessed on the School's computers will be reported to the
Business Manager so that the site can be blocked." Changes reach the gateway within seconds.
With a trust file, a school's staff change their school's own lists and the trust's staff the
trust's (or a school's, narrowed with `?school=`): the list changed is the scope's school."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from schoolgate.admin_api.deps import BusinessManager, Db, ListEditor, Now, Res, Scope
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.forms import form_fields, validate
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.resources import get_resources
from schoolgate.admin_api.schemas import LocalListEntryCreate, LocalListEntryPublic, RemovalCreate
from schoolgate.admin_api.services import lists as service
from schoolgate.policy.model import Verdict

router = APIRouter(tags=["local lists"])
api = APIRouter(prefix="/api", tags=["local lists"])
PagesDep = Annotated[Pages, Depends(get_pages)]
Form = Annotated[dict[str, str], Depends(form_fields)]


def _narrowed(request: Request, user: BusinessManager) -> str:
    """The school a trust role narrowed the page to (`?school=`), else ""."""
    wanted = request.query_params.get("school", "")
    trust = get_resources(request).trust
    return wanted if user.every_school and trust is not None and wanted in trust.schools else ""


def _page(
    request: Request,
    pages: Pages,
    user: BusinessManager,
    session: Db,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
    notice: str = "",
) -> Response:
    resources = get_resources(request)
    policy = resources.policy
    never = [
        name
        for name, category in policy.categories.items()
        if category.locked or category.not_unblockable_for or category.no_wide_grants_for
    ]
    return pages.render(
        request,
        "lists.html",
        user=user,
        rows=service.entries(session),
        # a school's staff also see the trust's entries, which apply to their clients too
        trust_rows=service.the_trusts(session)
        if resources.trust is not None and not user.every_school
        else [],
        errors=errors or {},
        values=values or {},
        status=status,
        never=never,
        narrowed=_narrowed(request, user),
        **({"notice": notice} if notice else {}),
    )


@router.get("/lists", include_in_schema=False)
def lists_page(
    request: Request,
    pages: PagesDep,
    user: BusinessManager,
    session: Db,
    host: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    return _page(request, pages, user, session, values={"host": host})


@router.post("/lists", include_in_schema=False)
def add_page(
    request: Request,
    pages: PagesDep,
    user: ListEditor,
    session: Db,
    now: Now,
    resources: Res,
    scope: Scope,
    fields: Form,
) -> Response:
    try:
        form = validate(LocalListEntryCreate, fields)
        row = service.add_entry(
            session,
            actor=user,
            host=form.host,
            verdict=form.verdict,
            note=form.note,
            at=now,
            policy=resources.policy,
            school=scope.school,
        )
    except InvalidInput as error:
        return _page(
            request, pages, user, session, errors=error.problems, values=fields, status=422
        )
    if row.verdict is Verdict.BLOCK:
        overridden = service.conflicts(session, name=row.host, at=now, school=row.school)
        if overridden:
            return _page(
                request,
                pages,
                user,
                session,
                notice=(
                    f"Added to the block list. Warning: {row.host} was also open through "
                    f"{'; '.join(overridden)}. The block wins over these, so {row.host} is now "
                    "blocked for everyone. Remove the block if you meant them to keep it."
                ),
            )
    return RedirectResponse(f"/lists?done=list-{row.verdict.value}", status_code=303)


def _confirm_remove(
    request: Request,
    pages: Pages,
    user: BusinessManager,
    host: str,
    *,
    errors: dict[str, str],
    values: dict[str, str],
    status: int,
) -> Response:
    school = _narrowed(request, user)
    return pages.render(
        request,
        "confirm.html",
        user=user,
        title=f"Remove {host}?",
        what=f"{host} will no longer be on the local lists; the policy alone "
        "will decide it again, within a few seconds.",
        action="/lists/remove" + (f"?school={quote(school)}" if school else ""),
        hidden={"host": host},
        button=f"Yes, remove {host}",
        back="/lists",
        errors=errors,
        values=values,
        status=status,
    )


@router.get("/lists/remove", include_in_schema=False)
def confirm_remove_page(
    request: Request,
    pages: PagesDep,
    user: BusinessManager,
    host: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    return _confirm_remove(request, pages, user, host, errors={}, values={}, status=200)


@router.post("/lists/remove", include_in_schema=False)
def remove_page(
    request: Request,
    pages: PagesDep,
    user: ListEditor,
    session: Db,
    now: Now,
    scope: Scope,
    fields: Form,
) -> Response:
    host = fields.get("host", "")[:300]
    try:
        form = validate(RemovalCreate, fields)
        service.remove_entry(
            session, actor=user, host=host, at=now, reason=form.reason, school=scope.school
        )
    except InvalidInput as error:
        return _confirm_remove(
            request, pages, user, host, errors=error.problems, values=fields, status=422
        )
    return RedirectResponse("/lists?done=list-removed", status_code=303)


@api.get("/lists", response_model=list[LocalListEntryPublic])
def list_entries(user: BusinessManager, session: Db) -> list[LocalListEntryPublic]:
    return [LocalListEntryPublic.model_validate(row) for row in service.entries(session)]


@api.post("/lists", response_model=LocalListEntryPublic, status_code=201)
def add_entry(
    body: LocalListEntryCreate,
    user: ListEditor,
    session: Db,
    now: Now,
    resources: Res,
    scope: Scope,
) -> LocalListEntryPublic:
    """Block or allow a host (and its subdomains) for everyone, with a note. A pasted URL is
    understood as its site. Refused (422): a whole top-level domain or public suffix, an allow
    the policy would never honour or that a local block covers. A local block wins over any
    local allow or exception for the same site. With a trust file: on the person's school's
    list, or for the trust's staff on the trust's (`?school=<id>`: that school's)."""
    row = service.add_entry(
        session,
        actor=user,
        host=body.host,
        verdict=body.verdict,
        note=body.note,
        at=now,
        policy=resources.policy,
        school=scope.school,
    )
    return LocalListEntryPublic.model_validate(row)


@api.delete("/lists/{host}", status_code=204)
def remove_entry(
    host: str,
    user: ListEditor,
    session: Db,
    now: Now,
    scope: Scope,
    reason: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    """Remove a site from the local lists (`reason`, kept in the audit log): the person's
    school's list, or for the trust's staff the trust's (`?school=<id>`: that school's)."""
    service.remove_entry(
        session, actor=user, host=host[:300], at=now, reason=reason, school=scope.school
    )
    return Response(status_code=204)
