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

import anyio.from_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from admin_api.deps import (
    BusinessManager,
    CurrentUser,
    Db,
    Now,
    Res,
    may_review,
    reviewable_unblock_request,
    visible_unblock_request,
)
from admin_api.errors import InvalidInput, NotAllowed
from admin_api.forms import form_fields, validate
from admin_api.render import Pages, get_pages
from admin_api.resources import Resources
from admin_api.roles import SignedInUser
from admin_api.schemas import (
    ApprovalCreate,
    DenialCreate,
    UnblockRequestCreate,
    UnblockRequestPublic,
)
from admin_api.services import requests as service
from admin_api.services.grants import Duration, Grant, period_choices, period_times, resolve_times
from admin_api.services.people import count_covered, group_role, look_up
from policy.decide import decide
from policy.explain import explain_decision
from policy.model import Policy, Scope, Subject, TargetKind
from policy.model import Request as PolicyRequest
from store.admin_models import RequestState, UnblockRequestRow
from store.tokens import AccessClaims, AccessTokenError, read_access_token

router = APIRouter(tags=["unblock requests"])
api = APIRouter(prefix="/api", tags=["unblock requests"])
PagesDep = Annotated[Pages, Depends(get_pages)]
Form = Annotated[dict[str, str], Depends(form_fields)]
Reviewable = Annotated[UnblockRequestRow, Depends(reviewable_unblock_request)]
Visible = Annotated[UnblockRequestRow, Depends(visible_unblock_request)]


def read_claims(resources: Resources, token: str) -> AccessClaims:
    return read_access_token(resources.access_token_secret, token[:4096],
                             max_age_seconds=resources.settings.access_link_max_age_seconds)


def decision_context(policy: Policy, row: UnblockRequestRow, at: datetime, *,
                     group_role: str | None = None) -> str:
    """Why the site is blocked for the people the request is about, in the policy's words
    (the decision, not anyone's browsing): for a class or group, its members (`group_role`,
    their role in the directory), not the teacher who asked."""
    if row.for_group:
        subject = Subject(role=group_role or policy.default_role, user=None,
                          groups=frozenset({row.for_group}))
    else:
        subject = Subject(role=row.blocked_role or row.requester_role,
                          user=row.blocked_user or row.requester)
    if subject.role not in policy.roles:
        subject = Subject(role=policy.default_role, user=subject.user, groups=subject.groups)
    when = row.blocked_at or at
    decision = decide(policy, PolicyRequest(row.host), subject, None, when)
    words = explain_decision(policy, decision, subject, when)
    if row.for_group:
        words = f"For the class or group {row.for_group} ({subject.role}s):\n{words}"
    return words


def build_grant(policy: Policy, row: UnblockRequestRow, form: ApprovalCreate, now: datetime,
                reviewer: SignedInUser) -> Grant:
    """The grant the form asks for. Nobody decides their own request, in any field: a grant
    for one person is for the person who was blocked or who asked, and a role or group grant
    must not include the reviewer."""
    who: str | None
    match form.scope:
        case Scope.USER:
            who = form.who or row.blocked_user or row.requester
            allowed = {name.casefold() for name in (row.blocked_user, row.requester) if name}
            if who.casefold() not in allowed:
                raise InvalidInput({"who": "a grant for one person can only be for the person "
                                           "who was blocked or who asked ("
                                           f"{' or '.join(sorted(allowed))}); to open it for "
                                           "others, choose a class or group"})
            if reviewer.same_person(who):
                raise NotAllowed("this would give you access yourself: another Business "
                                 "Manager must decide it")
        case Scope.GROUP:
            who = form.who or row.for_group
            if not who:
                raise InvalidInput({"who": "name the group or class (as in the directory)"})
            if who.casefold() in {group.casefold() for group in reviewer.groups}:
                raise NotAllowed(f"you are in the group {who}, so this would give you access "
                                 "too: another Business Manager must decide it")
        case Scope.ROLE:
            who = form.who or row.blocked_role or row.requester_role
            if who == reviewer.policy_role:
                raise NotAllowed(f"you have the role {who}, so this would give you access "
                                 "too: another Business Manager must decide it")
        case _:
            who = None
    if form.target_kind is TargetKind.CATEGORY and not row.category:
        raise InvalidInput({"target_kind": "this site is in no category of the policy; "
                                           "approve it for the site instead"})
    target = row.category if form.target_kind is TargetKind.CATEGORY else row.host
    if form.until is not None and form.duration is not Duration.UNTIL:
        raise InvalidInput({"until": "you typed an end time but chose another “For how long”: "
                                     "choose “Until” to use that time, or clear it"})
    starts, ends, label = resolve_times(policy, duration=form.duration, now=now,
                                        hours=form.hours, until=form.until, period=form.period)
    return Grant(scope=form.scope, who=who, target_kind=form.target_kind, target=target or "",
                 starts=starts, ends=ends, label=label)


def beneficiary_roles(resources: Resources, row: UnblockRequestRow, grant: Grant,
                      ) -> frozenset[str]:
    """For a grant to one person, the roles to check it with: the role recorded for them (the
    block page's or their session's) and their role in the directory now (unknown: the default
    role). Never the reviewer's. Called from a worker thread (a sync route)."""
    if grant.scope is not Scope.USER or grant.who is None:
        return frozenset()
    recorded = (row.blocked_role if row.blocked_user and grant.who.casefold()
                == row.blocked_user.casefold() else row.requester_role)
    person = anyio.from_thread.run(look_up, resources, grant.who)
    return frozenset(role for role in (recorded, person.role) if role)


def approve(resources: Resources, session: Session, *, row: UnblockRequestRow,
            reviewer: SignedInUser, form: ApprovalCreate, now: datetime) -> UnblockRequestRow:
    grant = build_grant(resources.policy, row, form, now, reviewer)
    return service.approve_request(
        session, row=row, reviewer=reviewer, grant=grant, note=form.note,
        policy=resources.policy, at=now, user_roles=beneficiary_roles(resources, row, grant),
        confirmed=form.confirm_wide,
        people=count_covered(resources, scope=grant.scope, who=grant.who))


# --- pages ---------------------------------------------------------------------------------


def _new_form(request: Request, pages: Pages, resources: Resources, user: CurrentUser,
              now: datetime, *, token: str | None, values: dict[str, str],
              errors: dict[str, str], status: int = 200) -> Response:
    claims = None
    if token:
        try:
            claims = read_claims(resources, token)
        except AccessTokenError as error:
            return pages.render(request, "request_link_refused.html", user=user,
                                message=str(error), status=400)
    return pages.render(request, "request_new.html", user=user, claims=claims, token=token,
                        values=values, errors=errors,
                        period_times=period_times(resources.policy, now=now), status=status)


@router.get("/requests/new", include_in_schema=False)
def new_request_page(request: Request, pages: PagesDep, resources: Res, user: CurrentUser,
                     now: Now, token: Annotated[str | None, Query(max_length=4096)] = None,
                     host: Annotated[str, Query(max_length=300)] = "") -> Response:
    return _new_form(request, pages, resources, user, now, token=token, values={"host": host},
                     errors={})


@router.post("/requests/new", include_in_schema=False)
def submit_request_page(request: Request, pages: PagesDep, resources: Res, user: CurrentUser,
                        session: Db, now: Now, fields: Form) -> Response:
    token = fields.get("token")
    try:
        form = validate(UnblockRequestCreate, fields)
        claims = read_claims(resources, form.token) if form.token else None
        row = service.create_request(session, requester=user, form=form, claims=claims,
                                     policy=resources.policy, at=now)
    except AccessTokenError as error:
        return pages.render(request, "request_link_refused.html", user=user,
                            message=str(error), status=400)
    except InvalidInput as error:
        return _new_form(request, pages, resources, user, now, token=token, values=fields,
                         errors=error.problems, status=422)
    return RedirectResponse(f"/requests/{row.id}?done=sent", status_code=303)


@router.get("/requests/mine", include_in_schema=False)
def my_requests_page(request: Request, pages: PagesDep, user: CurrentUser, session: Db,
                     ) -> Response:
    rows = service.requests_of(session, username=user.username)
    return pages.render(request, "requests_mine.html", user=user, rows=rows)


@router.get("/requests", include_in_schema=False)
def queue_page(request: Request, pages: PagesDep, user: BusinessManager, session: Db,
               ) -> Response:
    return pages.render(request, "requests_queue.html", user=user,
                        pending=service.queue(session),
                        decided=service.queue(session, state=RequestState.APPROVED)[:50],
                        denied=service.queue(session, state=RequestState.DENIED)[:50])


def _detail(request: Request, pages: Pages, resources: Resources, user: CurrentUser,
            row: UnblockRequestRow, now: datetime, *, errors: dict[str, str] | None = None,
            values: dict[str, Any] | None = None, status: int = 200) -> Response:
    policy = resources.policy
    return pages.render(
        request, "request_detail.html", user=user, row=row,
        context=decision_context(policy, row, now, group_role=group_role(resources,
                                                                         row.for_group)),
        can_review=may_review(user, row),
        periods=period_choices(policy, now=now), roles=list(policy.roles),
        errors={k: v for k, v in (errors or {}).items() if k != "confirm_wide"},
        values=values or {}, status=status,
        wide=(errors or {}).get("confirm_wide", ""))


@router.get("/requests/{request_id}", include_in_schema=False)
def request_page(request: Request, pages: PagesDep, resources: Res, user: CurrentUser,
                 row: Visible, now: Now) -> Response:
    return _detail(request, pages, resources, user, row, now)


@router.post("/requests/{request_id}/approve", include_in_schema=False)
def approve_page(request: Request, pages: PagesDep, resources: Res, user: BusinessManager,
                 row: Reviewable, session: Db, now: Now, fields: Form) -> Response:
    try:
        form = validate(ApprovalCreate, fields)
        approve(resources, session, row=row, reviewer=user, form=form, now=now)
    except InvalidInput as error:
        return _detail(request, pages, resources, user, row, now, errors=error.problems,
                       values=fields, status=422)
    return RedirectResponse(f"/requests/{row.id}?done=approved", status_code=303)


@router.post("/requests/{request_id}/deny", include_in_schema=False)
def deny_page(request: Request, pages: PagesDep, resources: Res, user: BusinessManager,
              row: Reviewable, session: Db, now: Now, fields: Form) -> Response:
    try:
        form = validate(DenialCreate, fields)
        if fields.get("confirm") != "yes":
            raise InvalidInput({"confirm": "tick the box to confirm you mean to deny it"})
    except InvalidInput as error:
        return _detail(request, pages, resources, user, row, now, errors=error.problems,
                       values=fields, status=422)
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
def submit_request(body: UnblockRequestCreate, user: CurrentUser, resources: Res, session: Db,
                   now: Now) -> UnblockRequestPublic:
    """Write a request to the Business Manager (with the block page's token, or a host)."""
    try:
        claims = read_claims(resources, body.token) if body.token else None
    except AccessTokenError as error:
        raise InvalidInput({"token": str(error)}) from None
    row = service.create_request(session, requester=user, form=body, claims=claims,
                                 policy=resources.policy, at=now)
    return UnblockRequestPublic.model_validate(row)


@api.get("/requests", response_model=list[UnblockRequestPublic])
def request_queue(user: BusinessManager, session: Db,
                  state: RequestState = RequestState.PENDING) -> list[UnblockRequestPublic]:
    """The Business Manager's queue (pending by default, oldest first)."""
    return _public(service.queue(session, state=state))


@api.get("/requests/{request_id}", response_model=UnblockRequestPublic)
def get_request(row: Visible) -> UnblockRequestPublic:
    return UnblockRequestPublic.model_validate(row)


@api.post("/requests/{request_id}/approve", response_model=UnblockRequestPublic)
def approve_api(body: ApprovalCreate, user: BusinessManager, row: Reviewable, resources: Res,
                session: Db, now: Now) -> UnblockRequestPublic:
    """Approve with a scope, a target and a duration; refused if the policy forbids it. A grant
    wider than the request (a role, everyone, another group, a whole category, longer than a
    day, permanent) needs `confirm_wide: true`; without it the answer (422, problem
    `confirm_wide`) says its reach in words."""
    done = approve(resources, session, row=row, reviewer=user, form=body, now=now)
    return UnblockRequestPublic.model_validate(done)


@api.post("/requests/{request_id}/deny", response_model=UnblockRequestPublic)
def deny(body: DenialCreate, user: BusinessManager, row: Reviewable, session: Db,
         now: Now) -> UnblockRequestPublic:
    done = service.deny_request(session, row=row, reviewer=user, reason=body.reason, at=now)
    return UnblockRequestPublic.model_validate(done)
