"""Approved exceptions (Business Manager): the current and future ones, and revoking one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from admin_api.deps import BusinessManager, Db, Now
from admin_api.render import Pages, get_pages
from admin_api.schemas import ExceptionPublic
from admin_api.services import exceptions as service

router = APIRouter(tags=["exceptions"])
api = APIRouter(prefix="/api", tags=["exceptions"])


@router.get("/exceptions", include_in_schema=False)
def exceptions_page(request: Request, pages: Annotated[Pages, Depends(get_pages)],
                    user: BusinessManager, session: Db, now: Now) -> Response:
    return pages.render(request, "exceptions.html", user=user, now=now,
                        rows=service.current_and_future(session, at=now))


@router.post("/exceptions/{exception_id}/revoke", include_in_schema=False)
def revoke_page(exception_id: str, user: BusinessManager, session: Db, now: Now) -> Response:
    service.revoke(session, actor=user, exception_id=exception_id, at=now)
    return RedirectResponse("/exceptions", status_code=303)


@api.get("/exceptions", response_model=list[ExceptionPublic])
def list_exceptions(user: BusinessManager, session: Db, now: Now) -> list[ExceptionPublic]:
    """Current and future exceptions, soonest first."""
    return [ExceptionPublic.model_validate(r)
            for r in service.current_and_future(session, at=now)]


@api.post("/exceptions/{exception_id}/revoke", response_model=ExceptionPublic)
def revoke(exception_id: str, user: BusinessManager, session: Db, now: Now) -> ExceptionPublic:
    """End an exception now (the record stays; the gateway stops honouring it in seconds)."""
    return ExceptionPublic.model_validate(
        service.revoke(session, actor=user, exception_id=exception_id, at=now))
