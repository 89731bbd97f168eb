"""Incident notes, as pages and under /api/monitoring: the DSL records what happened, the
action taken and the outcome about a user (from a timeline, an event or an alert, or typed)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from schoolgate.admin_api.deps import Db, Dsl, Now
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.forms import form_fields, validate
from schoolgate.admin_api.monitoring_deps import Zone, school_time
from schoolgate.admin_api.monitoring_schemas import IncidentNoteCreate, IncidentNotePublic
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.services import incidents as service

router = APIRouter(tags=["incident notes"])
api = APIRouter(tags=["incident notes"])
PagesDep = Annotated[Pages, Depends(get_pages)]
Form = Annotated[dict[str, str], Depends(form_fields)]
Text = Annotated[str, Query(max_length=200)]


def _page(
    request: Request,
    pages: Pages,
    user: Dsl,
    session: Db,
    *,
    about: str,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    rows = service.list_notes(session, user=about or None)
    return pages.render(
        request,
        "monitoring_incidents.html",
        user=user,
        rows=rows,
        about=about,
        errors=errors or {},
        values=values or {},
        status=status,
    )


@router.get("/monitoring/incidents", include_in_schema=False)
def incidents_page(
    request: Request,
    pages: PagesDep,
    user: Dsl,
    session: Db,
    who: Annotated[str, Query(alias="user", max_length=200)] = "",
    event: Text = "",
    alert: Text = "",
    happened_at: Text = "",
) -> Response:
    """The notes (about one user, if given) and the form, pre-filled from a timeline link."""
    values = {"user": who, "event_id": event, "alert_id": alert, "happened_at": happened_at}
    return _page(request, pages, user, session, about=who.strip(), values=values)


def _write(
    session: Db, user: Dsl, now: Now, zone: Zone, form: IncidentNoteCreate
) -> IncidentNotePublic:
    happened = (
        school_time(form.happened_at, zone, field="happened_at") if form.happened_at else None
    )
    row = service.write_note(
        session,
        actor=user,
        user=form.user,
        what_happened=form.what_happened,
        action_taken=form.action_taken,
        outcome=form.outcome,
        at=now,
        happened_at=happened,
        alert_id=form.alert_id,
        event_id=form.event_id,
    )
    return IncidentNotePublic.model_validate(row)


@router.post("/monitoring/incidents", include_in_schema=False)
def write_page(
    request: Request, pages: PagesDep, user: Dsl, session: Db, now: Now, zone: Zone, fields: Form
) -> Response:
    try:
        note = _write(session, user, now, zone, validate(IncidentNoteCreate, fields))
    except InvalidInput as error:
        return _page(
            request,
            pages,
            user,
            session,
            about="",
            errors=error.problems,
            values=fields,
            status=422,
        )
    return RedirectResponse(
        f"/monitoring/incidents?user={quote(note.user, safe='')}&done=note-written#n-{note.id}",
        status_code=303,
    )


@api.get("/incidents", response_model=list[IncidentNotePublic])
def list_incidents(
    user: Dsl,
    session: Db,
    who: Annotated[str, Query(alias="user", max_length=200)] = "",
) -> list[IncidentNotePublic]:
    """The newest notes first (200 at most), about one user if `user` is given."""
    return [
        IncidentNotePublic.model_validate(r)
        for r in service.list_notes(session, user=who.strip() or None)
    ]


@api.post("/incidents", response_model=IncidentNotePublic, status_code=201)
def write_incident(
    body: IncidentNoteCreate, user: Dsl, session: Db, now: Now, zone: Zone
) -> IncidentNotePublic:
    """Record what happened, the action taken and the outcome."""
    return _write(session, user, now, zone, body)
