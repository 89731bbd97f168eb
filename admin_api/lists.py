"""The local block and allow lists, as pages and an API (Business Manager). In the school's
words: "Inappropriate content accessed on the School's computers will be reported to the
Business Manager so that the site can be blocked." Changes reach the gateway within seconds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from admin_api.deps import BusinessManager, Db, Now
from admin_api.errors import InvalidInput
from admin_api.forms import form_fields, validate
from admin_api.render import Pages, get_pages
from admin_api.schemas import LocalListEntryCreate, LocalListEntryPublic
from admin_api.services import lists as service

router = APIRouter(tags=["local lists"])
api = APIRouter(prefix="/api", tags=["local lists"])
PagesDep = Annotated[Pages, Depends(get_pages)]
Form = Annotated[dict[str, str], Depends(form_fields)]


def _page(request: Request, pages: Pages, user: BusinessManager, session: Db, *,
          errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
          status: int = 200) -> Response:
    return pages.render(request, "lists.html", user=user, rows=service.entries(session),
                        errors=errors or {}, values=values or {}, status=status)


@router.get("/lists", include_in_schema=False)
def lists_page(request: Request, pages: PagesDep, user: BusinessManager, session: Db,
               host: Annotated[str, Query(max_length=300)] = "") -> Response:
    return _page(request, pages, user, session, values={"host": host})


@router.post("/lists", include_in_schema=False)
def add_page(request: Request, pages: PagesDep, user: BusinessManager, session: Db, now: Now,
             fields: Form) -> Response:
    try:
        form = validate(LocalListEntryCreate, fields)
        service.add_entry(session, actor=user, host=form.host, verdict=form.verdict,
                          note=form.note, at=now)
    except InvalidInput as error:
        return _page(request, pages, user, session, errors=error.problems, values=fields,
                     status=422)
    return RedirectResponse("/lists", status_code=303)


@router.post("/lists/remove", include_in_schema=False)
def remove_page(request: Request, pages: PagesDep, user: BusinessManager, session: Db,
                now: Now, fields: Form) -> Response:
    try:
        service.remove_entry(session, actor=user, host=fields.get("host", "")[:300], at=now)
    except InvalidInput as error:
        return _page(request, pages, user, session, errors=error.problems, status=422)
    return RedirectResponse("/lists", status_code=303)


@api.get("/lists", response_model=list[LocalListEntryPublic])
def list_entries(user: BusinessManager, session: Db) -> list[LocalListEntryPublic]:
    return [LocalListEntryPublic.model_validate(row) for row in service.entries(session)]


@api.post("/lists", response_model=LocalListEntryPublic, status_code=201)
def add_entry(body: LocalListEntryCreate, user: BusinessManager, session: Db,
              now: Now) -> LocalListEntryPublic:
    """Block or allow a host (and its subdomains) for everyone, with a note."""
    row = service.add_entry(session, actor=user, host=body.host, verdict=body.verdict,
                            note=body.note, at=now)
    return LocalListEntryPublic.model_validate(row)


@api.delete("/lists/{host}", status_code=204)
def remove_entry(host: str, user: BusinessManager, session: Db, now: Now) -> Response:
    service.remove_entry(session, actor=user, host=host[:300], at=now)
    return Response(status_code=204)
