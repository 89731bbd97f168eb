"""The DSL's circumvention alerts queue, as pages and under /api/monitoring: open alerts by
severity, one alert with the user's attempts around it, acknowledge, and close with the action
taken and the outcome (kept as an incident note). Every change is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from schoolgate.admin_api.deps import Db, Dsl, Now, Res
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.forms import form_fields, validate
from schoolgate.admin_api.monitoring_deps import DslAlert, OpenAlert
from schoolgate.admin_api.monitoring_schemas import AlertClose, AlertPublic, IncidentNotePublic
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.services import alerts as service
from schoolgate.admin_api.services import incidents
from schoolgate.admin_api.services import monitoring as monitoring_service
from schoolgate.admin_api.services.people import display_names
from schoolgate.store.models import AlertRow, AlertState

router = APIRouter(tags=["circumvention alerts"])
api = APIRouter(tags=["circumvention alerts"])
PagesDep = Annotated[Pages, Depends(get_pages)]
Form = Annotated[dict[str, str], Depends(form_fields)]
AROUND_MINUTES = 30
SHOWN = {
    "open": (AlertState.OPEN, AlertState.ACKNOWLEDGED),
    "closed": (AlertState.CLOSED,),
    "all": tuple(AlertState),
}
Shown = Annotated[str, Query(pattern="^(open|closed|all)$")]


@router.get("/monitoring/alerts", include_in_schema=False)
def alerts_page(
    request: Request,
    pages: PagesDep,
    user: Dsl,
    session: Db,
    resources: Res,
    show: Shown = "open",
) -> Response:
    rows = service.list_alerts(session, states=SHOWN[show])
    names = display_names(resources, (row.user for row in rows))
    return pages.render(
        request, "monitoring_alerts.html", user=user, rows=rows, show=show, names=names
    )


def _detail(
    request: Request,
    pages: Pages,
    user: Dsl,
    session: Db,
    alert: AlertRow,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    around = None
    if alert.user:
        around = monitoring_service.timeline(
            session, user=alert.user, around=alert.at, minutes=AROUND_MINUTES
        )
    local = alert.at.astimezone(pages.zone).replace(tzinfo=None)
    return pages.render(
        request,
        "monitoring_alert.html",
        user=user,
        alert=alert,
        around=around,
        at_local=local.isoformat(timespec="seconds"),
        notes=incidents.list_notes(session, alert_id=alert.id),
        errors=errors or {},
        values=values or {},
        status=status,
        minutes=AROUND_MINUTES,
    )


@router.get("/monitoring/alerts/{alert_id}", include_in_schema=False)
def alert_page(
    request: Request, pages: PagesDep, user: Dsl, session: Db, alert: DslAlert
) -> Response:
    return _detail(request, pages, user, session, alert)


@router.post("/monitoring/alerts/{alert_id}/acknowledge", include_in_schema=False)
def acknowledge_page(user: Dsl, session: Db, now: Now, alert: OpenAlert) -> Response:
    service.acknowledge(session, actor=user, alert=alert, at=now)
    return RedirectResponse(
        f"/monitoring/alerts/{alert.id}?done=alert-acknowledged", status_code=303
    )


@router.post("/monitoring/alerts/{alert_id}/close", include_in_schema=False)
def close_page(
    request: Request,
    pages: PagesDep,
    user: Dsl,
    session: Db,
    now: Now,
    alert: OpenAlert,
    fields: Form,
) -> Response:
    try:
        form = validate(AlertClose, fields)
    except InvalidInput as error:
        return _detail(
            request, pages, user, session, alert, errors=error.problems, values=fields, status=422
        )
    service.close(
        session,
        actor=user,
        alert=alert,
        action_taken=form.action_taken,
        outcome=form.outcome,
        what_happened=form.what_happened,
        at=now,
    )
    return RedirectResponse(f"/monitoring/alerts/{alert.id}?done=alert-closed", status_code=303)


@api.get("/alerts", response_model=list[AlertPublic])
def list_alerts(user: Dsl, session: Db, show: Shown = "open") -> list[AlertPublic]:
    """Alerts, most urgent first: `open` (open or acknowledged), `closed` or `all`."""
    return [AlertPublic.model_validate(r) for r in service.list_alerts(session, states=SHOWN[show])]


@api.get("/alerts/{alert_id}", response_model=AlertPublic)
def get_alert(alert: DslAlert) -> AlertPublic:
    return AlertPublic.model_validate(alert)


@api.post("/alerts/{alert_id}/acknowledge", response_model=AlertPublic)
def acknowledge(user: Dsl, session: Db, now: Now, alert: OpenAlert) -> AlertPublic:
    """Mark the alert as seen and being dealt with."""
    return AlertPublic.model_validate(service.acknowledge(session, actor=user, alert=alert, at=now))


@api.post("/alerts/{alert_id}/close", response_model=IncidentNotePublic)
def close(
    body: AlertClose, user: Dsl, session: Db, now: Now, alert: OpenAlert
) -> IncidentNotePublic:
    """Close the alert with the action taken and the outcome; returns the incident note."""
    note = service.close(
        session,
        actor=user,
        alert=alert,
        action_taken=body.action_taken,
        outcome=body.outcome,
        what_happened=body.what_happened,
        at=now,
    )
    return IncidentNotePublic.model_validate(note)
