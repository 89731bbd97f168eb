"""Supervised-only sanctions, as pages and under /api/monitoring: the DSL sees those in force
and those recommended by the threshold, places, extends (or confirms) and lifts them. Any member
of staff opens a supervised session for a pupil of their class (the identity file's `classes:`
say which directory groups teach which; the DSL may for anyone; services/classes.py); every
session is in the audit log with who opened it. Effective at every gateway within
seconds (the change counter)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from schoolgate.admin_api.deps import Db, Dsl, Now, Res, Staff
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.forms import form_fields, validate
from schoolgate.admin_api.monitoring_deps import ChangeableSanction
from schoolgate.admin_api.monitoring_schemas import (
    SanctionCreate,
    SanctionExtend,
    SanctionLift,
    SanctionPublic,
    SupervisedSessionCreate,
    SupervisedSessionPublic,
)
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.roles import Role
from schoolgate.admin_api.schemas import RemovalCreate
from schoolgate.admin_api.services import sanctions as service
from schoolgate.admin_api.services.classes import check_may_supervise
from schoolgate.store.models import SanctionRow, SanctionState

router = APIRouter(tags=["sanctions"])
api = APIRouter(tags=["sanctions"])
PagesDep = Annotated[Pages, Depends(get_pages)]
Form = Annotated[dict[str, str], Depends(form_fields)]
BACK = "/monitoring/sanctions"


def _ends(days: int | None, now: datetime) -> datetime | None:
    return now + timedelta(days=days) if days is not None else None


def _page(
    request: Request,
    pages: Pages,
    user: Dsl,
    session: Db,
    now: datetime,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return pages.render(
        request,
        "monitoring_sanctions.html",
        user=user,
        view=service.sanctions_view(session, at=now),
        errors=errors or {},
        values=values or {},
        status=status,
    )


@router.get(BACK, include_in_schema=False)
def sanctions_page(request: Request, pages: PagesDep, user: Dsl, session: Db, now: Now) -> Response:
    return _page(request, pages, user, session, now)


@router.post(BACK, include_in_schema=False)
def place_page(
    request: Request, pages: PagesDep, user: Dsl, session: Db, now: Now, fields: Form, res: Res
) -> Response:
    try:
        form = validate(SanctionCreate, fields)
        service.place(
            session,
            actor=user,
            user=form.user,
            ends=_ends(form.days, now),
            reason=form.reason,
            at=now,
            directory=res.directory,
        )
    except InvalidInput as error:
        return _page(
            request, pages, user, session, now, errors=error.problems, values=fields, status=422
        )
    return RedirectResponse(BACK + "?done=sanction-placed", status_code=303)


@router.post(BACK + "/{sanction_id}/extend", include_in_schema=False)
def extend_page(
    request: Request,
    pages: PagesDep,
    user: Dsl,
    session: Db,
    now: Now,
    sanction: ChangeableSanction,
    fields: Form,
) -> Response:
    try:
        form = validate(SanctionExtend, fields)
        recommended = sanction.state is SanctionState.RECOMMENDED
        service.extend(
            session,
            actor=user,
            sanction=sanction,
            ends=_ends(form.days, now),
            note=form.note,
            at=now,
        )
    except InvalidInput as error:
        return _page(request, pages, user, session, now, errors=error.problems, status=422)
    done = "sanction-confirmed" if recommended else "sanction-extended"
    return RedirectResponse(f"{BACK}?done={done}", status_code=303)


def _confirm_lift(
    request: Request,
    pages: Pages,
    user: Dsl,
    sanction: SanctionRow,
    *,
    errors: dict[str, str],
    values: dict[str, str],
    status: int,
) -> Response:
    if sanction.state is SanctionState.RECOMMENDED:
        title = f"Dismiss the recommendation for {sanction.user}?"
        what = (
            f"No sanction will be placed on {sanction.user} for this. The record stays, "
            "with your reason."
        )
        button = "Yes, dismiss it"
    else:
        title = f"Lift the sanction for {sanction.user}?"
        what = (
            f"{sanction.user} will be able to use the computer without supervision again "
            "within a few seconds. The record stays, with your reason."
        )
        button = "Yes, lift it"
    return pages.render(
        request,
        "confirm.html",
        user=user,
        title=title,
        what=what,
        action=f"{BACK}/{sanction.id}/lift",
        hidden={},
        button=button,
        back=BACK,
        errors=errors,
        values=values,
        status=status,
    )


@router.get(BACK + "/{sanction_id}/lift", include_in_schema=False)
def confirm_lift_page(
    request: Request, pages: PagesDep, user: Dsl, sanction: ChangeableSanction
) -> Response:
    return _confirm_lift(request, pages, user, sanction, errors={}, values={}, status=200)


@router.post(BACK + "/{sanction_id}/lift", include_in_schema=False)
def lift_page(
    request: Request,
    pages: PagesDep,
    user: Dsl,
    session: Db,
    now: Now,
    sanction: ChangeableSanction,
    fields: Form,
) -> Response:
    """Lift (or dismiss) from the confirmation page: a reason and the confirmation."""
    try:
        form = validate(RemovalCreate, fields)
    except InvalidInput as error:
        return _confirm_lift(
            request, pages, user, sanction, errors=error.problems, values=fields, status=422
        )
    recommended = sanction.state is SanctionState.RECOMMENDED
    service.lift(session, actor=user, sanction=sanction, note=form.reason, at=now)
    done = "sanction-dismissed" if recommended else "sanction-lifted"
    return RedirectResponse(f"{BACK}?done={done}", status_code=303)


@router.post("/monitoring/supervised-sessions", include_in_schema=False)
def open_session_page(
    request: Request, pages: PagesDep, user: Staff, session: Db, now: Now, fields: Form, res: Res
) -> Response:
    dsl = user.has(Role.DSL)
    try:
        form = validate(SupervisedSessionCreate, fields)
        pupil = check_may_supervise(
            identity=res.identity, directory=res.directory, actor=user, user=form.user
        )
        service.open_session(
            session, actor=user, user=pupil, minutes=form.minutes, at=now, directory=res.directory
        )
    except InvalidInput as error:
        if not dsl:  # the sanctions page is the DSL's: a teacher is told in plain words
            raise
        return _page(
            request, pages, user, session, now, errors=error.problems, values=fields, status=422
        )
    return RedirectResponse((BACK if dsl else "/") + "?done=session-opened", status_code=303)


@api.get("/sanctions", response_model=list[SanctionPublic])
def list_sanctions(user: Dsl, session: Db, now: Now) -> list[SanctionPublic]:
    """Sanctions in force, then recommendations, then those lifted or ended in 30 days."""
    view = service.sanctions_view(session, at=now)
    return [
        SanctionPublic.model_validate(r) for r in (*view.in_force, *view.recommended, *view.recent)
    ]


@api.post("/sanctions", response_model=SanctionPublic, status_code=201)
def place(body: SanctionCreate, user: Dsl, session: Db, now: Now, res: Res) -> SanctionPublic:
    """Supervised-only from now for `days` days (or until lifted)."""
    return SanctionPublic.model_validate(
        service.place(
            session,
            actor=user,
            user=body.user,
            ends=_ends(body.days, now),
            reason=body.reason,
            at=now,
            directory=res.directory,
        )
    )


@api.post("/sanctions/{sanction_id}/extend", response_model=SanctionPublic)
def extend(
    body: SanctionExtend, user: Dsl, session: Db, now: Now, sanction: ChangeableSanction
) -> SanctionPublic:
    """A new end, `days` from now (or until lifted); a recommendation extended is placed."""
    return SanctionPublic.model_validate(
        service.extend(
            session,
            actor=user,
            sanction=sanction,
            ends=_ends(body.days, now),
            note=body.note,
            at=now,
        )
    )


@api.post("/sanctions/{sanction_id}/lift", response_model=SanctionPublic)
def lift(
    body: SanctionLift, user: Dsl, session: Db, now: Now, sanction: ChangeableSanction
) -> SanctionPublic:
    """End the sanction now (or dismiss a recommendation)."""
    return SanctionPublic.model_validate(
        service.lift(session, actor=user, sanction=sanction, note=body.note, at=now)
    )


@api.post("/supervised-sessions", response_model=SupervisedSessionPublic, status_code=201)
def open_session(
    body: SupervisedSessionCreate, user: Staff, session: Db, now: Now, res: Res
) -> SupervisedSessionPublic:
    """The signed-in member of staff supervises `user` (a pupil of their class; anyone, for
    the DSL) from now for `minutes`."""
    pupil = check_may_supervise(
        identity=res.identity, directory=res.directory, actor=user, user=body.user
    )
    return SupervisedSessionPublic.model_validate(
        service.open_session(
            session, actor=user, user=pupil, minutes=body.minutes, at=now, directory=res.directory
        )
    )
