"""Unblock requests, as pages and as an API: anyone signed in writes a request (from the block
page's "Ask for access" link, whose signed token says what was blocked, or by typing the site)
and follows it under "My requests"; the Business Manager decides the queue. In the school's
words: "Requests may be made to access erroneously blocked content by submitting a written
request to the Business Manager."
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from schoolgate.admin_api.deps import (
    BusinessManager,
    CurrentUser,
    Db,
    Now,
    OptionalUser,
    Res,
    may_review,
    reviewable_unblock_request,
    visible_unblock_request,
)
from schoolgate.admin_api.errors import InvalidInput, NotSignedIn
from schoolgate.admin_api.forms import form_fields, validate
from schoolgate.admin_api.notices import NOTICES
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.schemas import (
    ApprovalCreate,
    DenialCreate,
    UnblockRequestCreate,
    UnblockRequestPublic,
)
from schoolgate.admin_api.services import requests as service
from schoolgate.admin_api.services.grants import period_choices, period_times
from schoolgate.admin_api.services.people import group_role, known_groups, unknown_group
from schoolgate.admin_api.services.requests import (
    LINK_SOURCE,
    approve,
    decision_context,
    link_person,
    live_overrides,
    read_claims,
)
from schoolgate.admin_api.services.school_policy import policy_of_school
from schoolgate.admin_api.sessions import CSRF_FIELD
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.tokens import AccessClaims, AccessTokenError

router = APIRouter(tags=["unblock requests"])
api = APIRouter(prefix="/api", tags=["unblock requests"])
PagesDep = Annotated[Pages, Depends(get_pages)]
Form = Annotated[dict[str, str], Depends(form_fields)]
Reviewable = Annotated[UnblockRequestRow, Depends(reviewable_unblock_request)]
Visible = Annotated[UnblockRequestRow, Depends(visible_unblock_request)]


# --- pages ---------------------------------------------------------------------------------


def _new_form(
    request: Request,
    pages: Pages,
    resources: Resources,
    user: CurrentUser,
    now: datetime,
    *,
    token: str | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    claims = None
    if token:
        try:
            claims = read_claims(resources, token)
        except AccessTokenError as error:
            return pages.render(
                request,
                "request_link_refused.html",
                user=None if user.source == LINK_SOURCE else user,
                message=str(error),
                status=400,
            )
    by_link = user.source == LINK_SOURCE
    return pages.render(
        request,
        "request_new.html",
        user=None if by_link else user,  # a link opens this form only: no header, no menu
        person=user,
        by_link=by_link,
        claims=claims,
        token=token,
        values=values,
        errors=errors,
        period_times=period_times(policy_of_school(resources, user.school), now=now),
        status=status,
    )


@router.get("/requests/new", include_in_schema=False)
def new_request_page(
    request: Request,
    pages: PagesDep,
    resources: Res,
    signed_in: OptionalUser,
    now: Now,
    token: Annotated[str | None, Query(max_length=4096)] = None,
    host: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    user = signed_in or _link_person(resources, token)
    return _new_form(
        request, pages, resources, user, now, token=token, values={"host": host}, errors={}
    )


def _link_person(resources: Resources, token: str | None) -> SignedInUser:
    """Nobody is signed in: the person a fresh block-page link was made for, if the school
    allows that (services/requests.py `link_person`); else the sign-in page first."""
    person = link_person(resources, token) if token else None
    if person is None:
        raise NotSignedIn("please sign in first")
    return person


@router.post("/requests/new", include_in_schema=False)
def submit_request_page(
    request: Request,
    pages: PagesDep,
    resources: Res,
    signed_in: OptionalUser,
    session: Db,
    now: Now,
    fields: Form,
) -> Response:
    token = fields.get("token")
    user = signed_in or _link_person(resources, token)
    by_link = signed_in is None
    if by_link:  # the link opens this one request for that site: nothing for a class
        fields = {k: v for k, v in fields.items() if k in ("token", "why", CSRF_FIELD)}
    try:
        form = validate(UnblockRequestCreate, fields)
        claims = read_claims(resources, form.token) if form.token else None
        row = _create(resources, session, user, form, claims, now)
    except AccessTokenError as error:
        return pages.render(
            request, "request_link_refused.html", user=user, message=str(error), status=400
        )
    except InvalidInput as error:
        return _new_form(
            request,
            pages,
            resources,
            user,
            now,
            token=token,
            values=fields,
            errors=error.problems,
            status=422,
        )
    if by_link:  # no session: say what happened here; following the request needs a sign-in
        return pages.render(
            request, "request_sent_by_link.html", user=None, row=row, notice=NOTICES["sent-by-link"]
        )
    return RedirectResponse(f"/requests/{row.id}?done=sent", status_code=303)


def _create(
    resources: Resources,
    session: Session,
    user: SignedInUser,
    form: UnblockRequestCreate,
    claims: AccessClaims | None,
    now: datetime,
) -> UnblockRequestRow:
    """Record the request, judged against what the gateway would do now (a site that is open
    for the person or the class at the time asked is refused: nothing to decide; so is a
    request for a class or group the directory does not know)."""
    if problem := unknown_group(resources, form.for_group):
        raise InvalidInput({"for_group": problem})
    return service.create_request(
        session,
        requester=user,
        form=form,
        claims=claims,
        policy=policy_of_school(resources, user.school),
        at=now,
        overrides=live_overrides(resources),
        group_role=group_role(resources, form.for_group),
    )


@router.get("/requests/mine", include_in_schema=False)
def my_requests_page(
    request: Request,
    pages: PagesDep,
    user: CurrentUser,
    session: Db,
) -> Response:
    rows = service.requests_of(session, username=user.username)
    return pages.render(request, "requests_mine.html", user=user, rows=rows)


@router.get("/requests", include_in_schema=False)
def queue_page(
    request: Request,
    pages: PagesDep,
    user: BusinessManager,
    session: Db,
) -> Response:
    return pages.render(
        request,
        "requests_queue.html",
        user=user,
        pending=service.queue(session),
        decided=service.queue(session, state=RequestState.APPROVED)[:50],
        denied=service.queue(session, state=RequestState.DENIED)[:50],
    )


def _detail(
    request: Request,
    pages: Pages,
    resources: Resources,
    user: CurrentUser,
    row: UnblockRequestRow,
    now: datetime,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    policy = policy_of_school(resources, row.school)
    return pages.render(
        request,
        "request_detail.html",
        user=user,
        row=row,
        context=decision_context(policy, row, now, group_role=group_role(resources, row.for_group)),
        can_review=may_review(user, row),
        periods=period_choices(policy, now=now),
        roles=list(policy.roles),
        groups=known_groups(resources, user),
        errors={k: v for k, v in (errors or {}).items() if k != "confirm_wide"},
        values=values or {},
        status=status,
        wide=(errors or {}).get("confirm_wide", ""),
    )


@router.get("/requests/{request_id}", include_in_schema=False)
def request_page(
    request: Request, pages: PagesDep, resources: Res, user: CurrentUser, row: Visible, now: Now
) -> Response:
    return _detail(request, pages, resources, user, row, now)


@router.post("/requests/{request_id}/approve", include_in_schema=False)
def approve_page(
    request: Request,
    pages: PagesDep,
    resources: Res,
    user: BusinessManager,
    row: Reviewable,
    session: Db,
    now: Now,
    fields: Form,
) -> Response:
    try:
        form = validate(ApprovalCreate, fields)
        approve(resources, session, row=row, reviewer=user, form=form, now=now)
    except InvalidInput as error:
        return _detail(
            request,
            pages,
            resources,
            user,
            row,
            now,
            errors=error.problems,
            values=fields,
            status=422,
        )
    return RedirectResponse(f"/requests/{row.id}?done=approved", status_code=303)


@router.post("/requests/{request_id}/deny", include_in_schema=False)
def deny_page(
    request: Request,
    pages: PagesDep,
    resources: Res,
    user: BusinessManager,
    row: Reviewable,
    session: Db,
    now: Now,
    fields: Form,
) -> Response:
    try:
        form = validate(DenialCreate, fields)
        if fields.get("confirm") != "yes":
            raise InvalidInput({"confirm": "tick the box to confirm you mean to deny it"})
    except InvalidInput as error:
        return _detail(
            request,
            pages,
            resources,
            user,
            row,
            now,
            errors=error.problems,
            values=fields,
            status=422,
        )
    service.deny_request(session, row=row, reviewer=user, reason=form.reason, at=now)
    return RedirectResponse(f"/requests/{row.id}?done=denied", status_code=303)


# --- the API -------------------------------------------------------------------------------


def _public(rows: Sequence[UnblockRequestRow]) -> list[UnblockRequestPublic]:
    return [UnblockRequestPublic.model_validate(row) for row in rows]


@api.get("/requests/mine", response_model=list[UnblockRequestPublic])
def my_requests(user: CurrentUser, session: Db) -> list[UnblockRequestPublic]:
    """The signed-in person's own requests, newest first."""
    return _public(service.requests_of(session, username=user.username))


@api.post("/requests", response_model=UnblockRequestPublic, status_code=201)
def submit_request(
    body: UnblockRequestCreate, user: CurrentUser, resources: Res, session: Db, now: Now
) -> UnblockRequestPublic:
    """Write a request to the Business Manager (with the block page's token, or a host)."""
    try:
        claims = read_claims(resources, body.token) if body.token else None
    except AccessTokenError as error:
        raise InvalidInput({"token": str(error)}) from None
    row = _create(resources, session, user, body, claims, now)
    return UnblockRequestPublic.model_validate(row)


@api.get("/requests", response_model=list[UnblockRequestPublic])
def request_queue(
    user: BusinessManager, session: Db, state: RequestState = RequestState.PENDING
) -> list[UnblockRequestPublic]:
    """The Business Manager's queue (pending by default, oldest first)."""
    return _public(service.queue(session, state=state))


@api.get("/requests/{request_id}", response_model=UnblockRequestPublic)
def get_request(row: Visible) -> UnblockRequestPublic:
    return UnblockRequestPublic.model_validate(row)


@api.post("/requests/{request_id}/approve", response_model=UnblockRequestPublic)
def approve_api(
    body: ApprovalCreate,
    user: BusinessManager,
    row: Reviewable,
    resources: Res,
    session: Db,
    now: Now,
) -> UnblockRequestPublic:
    """Approve with a scope, a target and a duration; refused if the policy forbids it. A grant
    wider than the request (a role, everyone, another group, a whole category, longer than a
    day, permanent) needs `confirm_wide: true`; without it the answer (422, problem
    `confirm_wide`) says its reach in words."""
    done = approve(resources, session, row=row, reviewer=user, form=body, now=now)
    return UnblockRequestPublic.model_validate(done)


@api.post("/requests/{request_id}/deny", response_model=UnblockRequestPublic)
def deny(
    body: DenialCreate, user: BusinessManager, row: Reviewable, session: Db, now: Now
) -> UnblockRequestPublic:
    done = service.deny_request(session, row=row, reviewer=user, reason=body.reason, at=now)
    return UnblockRequestPublic.model_validate(done)
