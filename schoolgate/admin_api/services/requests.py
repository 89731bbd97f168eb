"""Unblock requests: a written request to the Business Manager, and the decision on it.

Approving writes an `exceptions` row (or a local allow-list entry), bumps the change counter
so the gateway picks it up within seconds, records who decided and why, and writes the audit
entry: all in one transaction. The exception ends by itself; nothing has to remove it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import anyio.from_thread
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from schoolgate.admin_api.errors import Conflict, InvalidInput, NotAllowed
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.roles import SignedInUser, roles_for
from schoolgate.admin_api.schemas import ApprovalCreate, UnblockRequestCreate
from schoolgate.admin_api.services import audit
from schoolgate.admin_api.services.grants import (
    Grant,
    build_grant,
    check_grant,
    never_unblockable_for,
    reach_words,
    resolve_period,
    widenings,
)
from schoolgate.admin_api.services.lists import blocked_by, blocks_covering, find_entry
from schoolgate.admin_api.services.people import (
    count_covered,
    look_up,
    placement,
    unknown_group,
)
from schoolgate.admin_api.services.school_policy import policy_of_school
from schoolgate.admin_api.services.sites import refuse_public_suffix, site_of
from schoolgate.admin_api.words import roles_words
from schoolgate.policy.decide import decide
from schoolgate.policy.explain import Reader, explain_plainly
from schoolgate.policy.hostnames import HostError, normalise_host
from schoolgate.policy.model import Overrides, Policy, Scope, Subject, TargetKind, Verdict
from schoolgate.policy.model import Request as PolicyRequest
from schoolgate.policy.names import user_key
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.models import ExceptionRow, LocalListRow, bump_change_counter
from schoolgate.store.overrides_db import DatabaseOverridesSource
from schoolgate.store.tokens import AccessClaims, AccessTokenError, read_access_token

QUEUE_LIMIT = 500


def snapshot(row: UnblockRequestRow) -> dict[str, Any]:
    """The request as JSON for the audit log's before/after."""
    return {
        "id": row.id,
        "state": row.state.value,
        "host": row.host,
        "category": row.category,
        "requester": row.requester,
        "blocked_user": row.blocked_user,
        "for_group": row.for_group,
        "reviewed_by": row.reviewed_by,
        "review_note": row.review_note,
        "grant": row.grant,
    }


def create_request(
    session: Session,
    *,
    requester: SignedInUser,
    form: UnblockRequestCreate,
    claims: AccessClaims | None,
    policy: Policy,
    at: datetime,
    overrides: Overrides | None = None,
    group_role: str | None = None,
) -> UnblockRequestRow:
    """Record a written request. `claims` come from a genuine block-page link (checked by the
    caller); without them the host is the one typed. With `overrides` (the live exceptions,
    sanctions and local lists), a request for a site that is open for the person (or the
    class, whose members have `group_role`) at the time asked is refused: nothing to decide."""
    if claims is not None and claims.user and not requester.same_person(claims.user):
        raise InvalidInput(
            {
                "token": "this link was made for someone else's block page. "
                "Use the link on your own block page, or type the "
                "website's name instead"
            }
        )
    raw_host = claims.host if claims is not None else site_of(form.host)
    host = normalise_host(raw_host)
    if isinstance(host, HostError):
        raise InvalidInput(
            {
                "host": "we could not read that as a website. Type or paste its "
                "address, for example www.example.org"
            }
        )
    refuse_public_suffix(host.name)
    if claims is not None:
        used = session.scalar(
            select(UnblockRequestRow.id)
            .where(
                UnblockRequestRow.from_block_page.is_(True),
                UnblockRequestRow.host == host.name,
                UnblockRequestRow.blocked_at == claims.at,
                func.lower(UnblockRequestRow.requester) == requester.username.casefold(),
            )
            .limit(1)
        )
        if used is not None:
            raise InvalidInput(
                {
                    "token": "you have already sent a request from this link; "
                    "see “My requests” for the answer"
                }
            )
    category = claims.category if claims is not None else None
    if category is None:
        category = next(iter(policy.domains.categories(host.name)), None)
    if form.for_group is not None and not requester.is_staff:
        raise NotAllowed("only staff can ask for access for a class or group")
    roles = (
        set(policy.roles)
        if form.for_group
        else {claims.role if claims is not None and claims.role else requester.policy_role}
    )
    judged = (roles & set(policy.roles)) or {policy.default_role}
    refused = never_unblockable_for(policy, host.name, judged)
    if refused:
        raise InvalidInput(
            {
                "host": f"This site, {host.name}, can never be unblocked at school, even "
                "if you ask: the school's policy keeps it blocked for "
                f"{roles_words(refused[0])}. Nothing has been sent."
            }
        )
    wanted: tuple[datetime, datetime, str] | None = None
    if form.wanted_on is not None and form.wanted_period is not None:
        wanted = resolve_period(
            policy,
            f"{form.wanted_on.isoformat()} {form.wanted_period}",
            now=at,
            field="wanted_period",
        )
    if overrides is not None:
        refuse_if_open(
            policy,
            overrides,
            host=host.name,
            subject=_beneficiary(policy, requester, claims, form.for_group, group_role),
            at=at,
            wanted=wanted,
            group=form.for_group,
        )
    row = UnblockRequestRow(
        id=str(uuid.uuid4()),
        created_at=at,
        requester=requester.username,
        requester_name=requester.display_name[:200],
        requester_role=requester.policy_role,
        blocked_user=claims.user if claims else None,
        blocked_role=claims.role if claims else None,
        blocked_at=claims.at if claims else None,
        block_reason=claims.reason if claims else None,
        from_block_page=claims is not None,
        host=host.name,
        category=category,
        why=form.why,
        for_group=form.for_group,
        wanted_on=form.wanted_on,
        wanted_period=form.wanted_period,
        state=RequestState.PENDING,
        school=requester.school,  # None: the signed-in person's scope gives it
    )
    session.add(row)
    audit.record(
        session,
        actor=requester,
        action="request.create",
        target=f"request:{row.id}",
        at=at,
        after=snapshot(row),
    )
    session.commit()
    return row


def _beneficiary(
    policy: Policy,
    requester: SignedInUser,
    claims: AccessClaims | None,
    group: str | None,
    group_role: str | None,
) -> Subject:
    """Who a request is for, as the gateway sees them: the class or group (its members' role),
    the person the block page was shown to, or the requester."""
    if group:
        return Subject(role=group_role or policy.default_role, groups=frozenset({group}))
    if claims is not None:
        role = claims.role or policy.default_role
        return Subject(
            role=role if role in policy.roles else policy.default_role,
            user=user_key(claims.user) if claims.user else None,
            groups=requester.groups if claims.user else frozenset(),
        )
    role = requester.policy_role
    return Subject(
        role=role if role in policy.roles else policy.default_role,
        user=user_key(requester.username),
        groups=requester.groups,
    )


def refuse_if_open(
    policy: Policy,
    overrides: Overrides,
    *,
    host: str,
    subject: Subject,
    at: datetime,
    wanted: tuple[datetime, datetime, str] | None,
    group: str | None,
) -> None:
    """Refuse (in plain words) a request for a site the gateway would let `subject` use at
    the time asked (the lesson's start, or now): it would wait in the queue for nothing."""
    when = max(wanted[0], at) if wanted else at
    if decide(policy, PolicyRequest(host), subject, overrides, when).verdict is not Verdict.ALLOW:
        return
    who, they = (f"the class or group {group}", "they") if group else ("you", "you")
    then = (
        f" on {wanted[2].replace(': ', ', ', 1)}: {they} can use it then"
        if wanted
        else f": {they} can use it now"
    )
    raise InvalidInput(
        {"host": f"This site, {host}, is not blocked for {who}{then}. Nothing has been sent."}
    )


def _decide(
    session: Session,
    *,
    row: UnblockRequestRow,
    reviewer: SignedInUser,
    state: RequestState,
    at: datetime,
    **values: Any,
) -> None:
    """Mark the request decided, only if it is still pending (two reviewers at once: one wins)."""
    result = session.execute(
        update(UnblockRequestRow)
        .where(UnblockRequestRow.id == row.id, UnblockRequestRow.state == RequestState.PENDING)
        .values(state=state, reviewed_by=reviewer.username, reviewed_at=at, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 1) != 1:
        session.rollback()
        raise Conflict("someone else decided this request a moment ago; reload the queue")


def approve_request(
    session: Session,
    *,
    row: UnblockRequestRow,
    reviewer: SignedInUser,
    grant: Grant,
    note: str,
    policy: Policy,
    at: datetime,
    user_roles: frozenset[str] = frozenset(),
    confirmed: bool = False,
    people: int | None = None,
) -> UnblockRequestRow:
    """Grant access as `grant` says, after checking it against the policy (a grant to one
    person with `user_roles`, that person's roles), and only with `confirmed` if it is wider
    than the request. With a trust, the grant opens the site in the request's school only
    (its exception, or its local allow, carries that school: docs/trust.md)."""
    check_grant(
        policy, grant, user_roles=user_roles or frozenset({row.blocked_role or row.requester_role})
    )
    trusts = [
        h
        for h, owner in blocks_covering(session, name=row.host, school=row.school)
        if owner != row.school
    ]
    if trusts and grant.target_kind is TargetKind.HOST:
        raise InvalidInput(
            {
                "target": f"{row.host} is covered by the trust's local block of {trusts[0]}, "
                "and the trust's block wins in every school, so this would open nothing. "
                "Deny the request, or ask the trust's staff to remove their block"
            }
        )
    wider = widenings(grant, asked_for_group=row.for_group)
    blocking = blocked_by(session, name=row.host, school=row.school)
    if blocking is not None:
        wider.append(
            f"past the local block of {blocking}"
            + (
                " (the block still wins for a whole category)"
                if grant.target_kind is TargetKind.CATEGORY
                else ""
            )
        )
    if wider and not confirmed:
        raise InvalidInput(
            {
                "confirm_wide": f"{reach_words(policy, grant, people=people)} "
                f"That is wider than the request ({', '.join(wider)})"
                ". Check it, then confirm to go ahead."
            }
        )
    before = snapshot(row)
    exception_id: str | None = None
    local_host: str | None = None
    if grant.local_allow:
        refuse_public_suffix(grant.target, field="target")
        existing = find_entry(session, grant.target, row.school)
        previous = (
            {"host": existing.host, "verdict": existing.verdict.value, "note": existing.note}
            if existing
            else None
        )
        if existing is None:
            session.add(
                LocalListRow(
                    host=grant.target,
                    verdict=Verdict.ALLOW,
                    note=f"unblock request {row.id}: {note}"[:500],
                    added_by=reviewer.username,
                    added_at=at,
                    school=row.school,  # the request's school's own list
                )
            )
        else:
            existing.verdict, existing.note = Verdict.ALLOW, f"unblock request {row.id}"
            existing.added_by, existing.added_at = reviewer.username, at
        local_host = grant.target
        audit.record(
            session,
            actor=reviewer,
            action="list.add",
            target=f"list:{grant.target}",
            at=at,
            before=previous,
            after={"host": grant.target, "verdict": "allow"},
        )
    else:
        exception_id = str(uuid.uuid4())
        session.add(
            ExceptionRow(
                id=exception_id,
                scope=grant.scope,
                who=grant.who,
                target_kind=grant.target_kind,
                target=grant.target,
                starts=grant.starts,
                ends=grant.ends,
                created_by=reviewer.username,
                created_at=at,
                request_id=row.id,
                note=note,
                school=row.school,  # the request's school, whoever approves it
            )
        )
    bump_change_counter(session)
    _decide(
        session,
        row=row,
        reviewer=reviewer,
        state=RequestState.APPROVED,
        at=at,
        review_note=note or None,
        grant=grant.as_json(),
        exception_id=exception_id,
        local_list_host=local_host,
    )
    session.flush()
    session.refresh(row)
    audit.record(
        session,
        actor=reviewer,
        action="request.approve",
        target=f"request:{row.id}",
        at=at,
        before=before,
        after=snapshot(row),
    )
    session.commit()
    return row


def deny_request(
    session: Session, *, row: UnblockRequestRow, reviewer: SignedInUser, reason: str, at: datetime
) -> UnblockRequestRow:
    before = snapshot(row)
    _decide(
        session, row=row, reviewer=reviewer, state=RequestState.DENIED, at=at, review_note=reason
    )
    session.flush()
    session.refresh(row)
    audit.record(
        session,
        actor=reviewer,
        action="request.deny",
        target=f"request:{row.id}",
        at=at,
        before=before,
        after=snapshot(row),
    )
    session.commit()
    return row


def requests_of(session: Session, *, username: str) -> Sequence[UnblockRequestRow]:
    return session.scalars(
        select(UnblockRequestRow)
        .where(func.lower(UnblockRequestRow.requester) == username.casefold())
        .order_by(UnblockRequestRow.created_at.desc())
        .limit(200)
    ).all()


def queue(
    session: Session,
    *,
    state: RequestState = RequestState.PENDING,
) -> Sequence[UnblockRequestRow]:
    order = (
        UnblockRequestRow.created_at.asc()
        if state is RequestState.PENDING
        else UnblockRequestRow.reviewed_at.desc()
    )
    return session.scalars(
        select(UnblockRequestRow)
        .where(UnblockRequestRow.state == state)
        .order_by(order)
        .limit(QUEUE_LIMIT)
    ).all()


# --- reading links, explaining and approving (called by the routes) -----------------------


def live_overrides(resources: Resources) -> Overrides | None:
    """The exceptions, sanctions and local lists in force, as the gateway reads them; None if
    the database could not be read (then a request is not judged open, and is queued)."""
    source = DatabaseOverridesSource(resources.engine)
    overrides = source.load_now()
    return None if source.last_problem else overrides


def read_claims(resources: Resources, token: str) -> AccessClaims:
    return read_access_token(
        resources.access_token_secret,
        token[:4096],
        max_age_seconds=resources.settings.access_link_max_age_seconds,
    )


LINK_SOURCE = "block-page link"


def link_person(resources: Resources, token: str) -> SignedInUser | None:
    """Who may send the one request a block-page link is for without signing in again, or None
    (then they sign in as usual). Only where the school allows it (`block_link_sign_in`), only
    for a genuine link shown at most `block_link_sign_in_seconds` ago to a person the gateway
    identified by their own proxy sign-in (a device known by its subnet names nobody), and only
    while the directory still knows them. The person gets the pupil or staff role and never an
    admin role, and no session: the request form for that site is all the link opens.
    Called from a worker thread (a sync route)."""
    settings = resources.settings
    if not settings.block_link_sign_in:
        return None
    try:
        claims = read_access_token(
            resources.access_token_secret,
            token[:4096],
            max_age_seconds=settings.block_link_sign_in_seconds,
        )
    except AccessTokenError:
        return None
    if not claims.user:
        return None
    person = anyio.from_thread.run(look_up, resources, claims.user)
    if not person.known:
        return None
    default = resources.policy.default_role
    school = None
    if resources.trust is not None and claims.school in resources.trust.schools:
        school = claims.school  # the school whose policy blocked it, as the gateway found it
    elif (placed := placement(resources, person.groups, person.dn)) is not None:
        school = placed.school  # the request is their school's (docs/trust.md)
    return SignedInUser(
        username=person.name,
        display_name=person.display_name or person.name,
        roles=roles_for(
            groups=frozenset(), admin_groups={}, policy_role=person.role, default_role=default
        ),
        policy_role=person.role,
        source=LINK_SOURCE,
        school=school,
    )


def decision_context(
    policy: Policy, row: UnblockRequestRow, at: datetime, *, group_role: str | None = None
) -> str:
    """Why the site is blocked for the people the request is about, in the policy's words
    (the decision, not anyone's browsing): for a class or group, its members (`group_role`,
    their role in the directory), not the teacher who asked."""
    if row.for_group:
        subject = Subject(
            role=group_role or policy.default_role, user=None, groups=frozenset({row.for_group})
        )
    else:
        subject = Subject(
            role=row.blocked_role or row.requester_role, user=row.blocked_user or row.requester
        )
    if subject.role not in policy.roles:
        subject = Subject(role=policy.default_role, user=subject.user, groups=subject.groups)
    when = row.blocked_at or at
    decision = decide(policy, PolicyRequest(row.host), subject, None, when)
    # Read by the Business Manager, who decides: not "ask the Business Manager".
    words = explain_plainly(policy, decision, subject, when, now=at, reader=Reader.DECIDER)
    if row.for_group:
        words = f"For the class or group {row.for_group} ({roles_words(subject.role)}):\n{words}"
    return words


def beneficiary_roles(
    resources: Resources,
    row: UnblockRequestRow,
    grant: Grant,
) -> frozenset[str]:
    """For a grant to one person, the roles to check it with: the role recorded for them (the
    block page's or their session's) and their role in the directory now (unknown: the default
    role). Never the reviewer's. Called from a worker thread (a sync route)."""
    if grant.scope is not Scope.USER or grant.who is None:
        return frozenset()
    recorded = (
        row.blocked_role
        if row.blocked_user and grant.who.casefold() == row.blocked_user.casefold()
        else row.requester_role
    )
    person = anyio.from_thread.run(look_up, resources, grant.who)
    return frozenset(role for role in (recorded, person.role) if role)


def approve(
    resources: Resources,
    session: Session,
    *,
    row: UnblockRequestRow,
    reviewer: SignedInUser,
    form: ApprovalCreate,
    now: datetime,
) -> UnblockRequestRow:
    policy = policy_of_school(resources, row.school)  # the policy the grant opens a site in
    grant = build_grant(policy, row, form, now, reviewer)
    if grant.scope is Scope.GROUP and (problem := unknown_group(resources, grant.who)):
        raise InvalidInput({"who": problem})
    return approve_request(
        session,
        row=row,
        reviewer=reviewer,
        grant=grant,
        note=form.note,
        policy=policy,
        at=now,
        user_roles=beneficiary_roles(resources, row, grant),
        confirmed=form.confirm_wide,
        people=count_covered(resources, scope=grant.scope, who=grant.who),
    )
