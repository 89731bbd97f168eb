"""Approved exceptions (Business Manager): the current and future ones, and revoking one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from schoolgate.admin_api.deps import ApprovedException, BusinessManager, Db, Now
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.forms import form_fields, validate
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.schemas import ExceptionPublic, RemovalCreate, RevocationCreate
from schoolgate.admin_api.services import exceptions as service
from schoolgate.store.models import ExceptionRow

router = APIRouter(tags=["exceptions"])
api = APIRouter(prefix="/api", tags=["exceptions"])
PagesDep = Annotated[Pages, Depends(get_pages)]
Form = Annotated[dict[str, str], Depends(form_fields)]


@router.get("/exceptions", include_in_schema=False)
def exceptions_page(
    request: Request,
    pages: Annotated[Pages, Depends(get_pages)],
    user: BusinessManager,
    session: Db,
    now: Now,
) -> Response:
    return pages.render(
        request,
        "exceptions.html",
        user=user,
        now=now,
        rows=service.current_and_future(session, at=now),
    )


def _confirm(
    request: Request,
    pages: Pages,
    user: BusinessManager,
    row: ExceptionRow,
    *,
    errors: dict[str, str],
    values: dict[str, str],
    status: int,
) -> Response:
    whom = f"{row.scope.value}{' ' + row.who if row.who else ''}"
    return pages.render(
        request,
        "confirm.html",
        user=user,
        title="Revoke this exception?",
        what=f"{row.target} will no longer be open for {whom}; the gateway "
        "stops it within a few seconds. The record stays.",
        action=f"/exceptions/{row.id}/revoke",
        hidden={},
        button="Yes, revoke it",
        back="/exceptions",
        errors=errors,
        values=values,
        status=status,
    )


@router.get("/exceptions/{exception_id}/revoke", include_in_schema=False)
def confirm_revoke_page(
    request: Request, pages: PagesDep, user: BusinessManager, row: ApprovedException
) -> Response:
    return _confirm(request, pages, user, row, errors={}, values={}, status=200)


@router.post("/exceptions/{exception_id}/revoke", include_in_schema=False)
def revoke_page(
    request: Request,
    pages: PagesDep,
    user: BusinessManager,
    session: Db,
    now: Now,
    row: ApprovedException,
    fields: Form,
) -> Response:
    try:
        form = validate(RemovalCreate, fields)
    except InvalidInput as error:
        return _confirm(request, pages, user, row, errors=error.problems, values=fields, status=422)
    service.revoke(session, actor=user, row=row, at=now, reason=form.reason)
    return RedirectResponse("/exceptions?done=revoked", status_code=303)


@api.get("/exceptions", response_model=list[ExceptionPublic])
def list_exceptions(user: BusinessManager, session: Db, now: Now) -> list[ExceptionPublic]:
    """Current and future exceptions, soonest first."""
    return [ExceptionPublic.model_validate(r) for r in service.current_and_future(session, at=now)]


@api.post("/exceptions/{exception_id}/revoke", response_model=ExceptionPublic)
def revoke(
    user: BusinessManager,
    session: Db,
    now: Now,
    row: ApprovedException,
    body: RevocationCreate | None = None,
) -> ExceptionPublic:
    """End an exception now (the record stays; the gateway stops honouring it in seconds);
    the optional `reason` is kept in the audit log."""
    return ExceptionPublic.model_validate(
        service.revoke(session, actor=user, row=row, at=now, reason=body.reason if body else "")
    )
