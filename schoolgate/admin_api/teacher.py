"""The teacher's page (/teacher): the pupils of their class who may use the computers only with
a teacher, and a button to supervise one for a set time (a supervised session, in the audit
log). Which pupils are "their class" comes from the identity file's `classes:`
(services/classes.py); the DSL sees every sanctioned pupil."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from schoolgate.admin_api.deps import Db, Now, Res, Staff
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.forms import form_fields, validate
from schoolgate.admin_api.monitoring_schemas import SupervisedSessionCreate
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.roles import Role
from schoolgate.admin_api.services import sanctions as service
from schoolgate.admin_api.services.classes import check_may_supervise, class_names, class_pupils

router = APIRouter(tags=["teacher"])
PAGE = "/teacher"
CHOICES = (20, 40, 60, 90, 120)  # minutes offered: a lesson, a double lesson...


def _page(
    request: Request,
    pages: Pages,
    user: Staff,
    session: Db,
    now: Now,
    res: Res,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return pages.render(
        request,
        "teacher.html",
        user=user,
        status=status,
        errors=errors or {},
        choices=CHOICES,
        classes=class_names(res.identity, user),
        dsl=user.has(Role.DSL),
        pupils=class_pupils(
            session, identity=res.identity, directory=res.directory, actor=user, at=now
        ),
    )


@router.get(PAGE, include_in_schema=False)
def teacher_page(
    request: Request,
    pages: Annotated[Pages, Depends(get_pages)],
    user: Staff,
    session: Db,
    now: Now,
    res: Res,
) -> Response:
    return _page(request, pages, user, session, now, res)


@router.post(PAGE, include_in_schema=False)
def supervise(
    request: Request,
    pages: Annotated[Pages, Depends(get_pages)],
    user: Staff,
    session: Db,
    now: Now,
    res: Res,
    fields: Annotated[dict[str, str], Depends(form_fields)],
) -> Response:
    try:
        form = validate(SupervisedSessionCreate, fields)
        pupil = check_may_supervise(
            identity=res.identity, directory=res.directory, actor=user, user=form.user
        )
        service.open_session(
            session, actor=user, user=pupil, minutes=form.minutes, at=now, directory=res.directory
        )
    except InvalidInput as error:
        return _page(request, pages, user, session, now, res, errors=error.problems, status=422)
    return RedirectResponse(PAGE, status_code=303)
