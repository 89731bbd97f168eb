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

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from admin_api.errors import Conflict, InvalidInput, NotAllowed
from admin_api.roles import SignedInUser
from admin_api.schemas import UnblockRequestCreate
from admin_api.services import audit
from admin_api.services.grants import Grant, check_grant, resolve_period
from policy.hostnames import HostError, normalise_host
from policy.model import Policy, Verdict
from store.admin_models import RequestState, UnblockRequestRow
from store.models import ExceptionRow, LocalListRow, bump_change_counter
from store.tokens import AccessClaims

QUEUE_LIMIT = 500


def snapshot(row: UnblockRequestRow) -> dict[str, Any]:
    """The request as JSON for the audit log's before/after."""
    return {"id": row.id, "state": row.state.value, "host": row.host, "category": row.category,
            "requester": row.requester, "blocked_user": row.blocked_user,
            "for_group": row.for_group, "reviewed_by": row.reviewed_by,
            "review_note": row.review_note, "grant": row.grant}


def create_request(session: Session, *, requester: SignedInUser, form: UnblockRequestCreate,
                   claims: AccessClaims | None, policy: Policy, at: datetime,
                   ) -> UnblockRequestRow:
    """Record a written request. `claims` come from a genuine block-page link (checked by the
    caller); without them the host is the one typed."""
    raw_host = claims.host if claims is not None else form.host
    host = normalise_host(raw_host)
    if isinstance(host, HostError):
        raise InvalidInput({"host": f"{host.message}; type just the site's name, for example "
                                    "www.example.org"})
    category = claims.category if claims is not None else None
    if category is None:
        category = next(iter(policy.domains.categories(host.name)), None)
    if form.for_group is not None and not requester.is_staff:
        raise NotAllowed("only staff can ask for access for a class or group")
    if form.wanted_on is not None and form.wanted_period is not None:
        resolve_period(policy, f"{form.wanted_on.isoformat()} {form.wanted_period}", now=at,
                       field="wanted_period")
    row = UnblockRequestRow(
        id=str(uuid.uuid4()), created_at=at, requester=requester.username,
        requester_name=requester.display_name[:200], requester_role=requester.policy_role,
        blocked_user=claims.user if claims else None,
        blocked_role=claims.role if claims else None,
        blocked_at=claims.at if claims else None,
        block_reason=claims.reason if claims else None,
        from_block_page=claims is not None, host=host.name, category=category, why=form.why,
        for_group=form.for_group, wanted_on=form.wanted_on, wanted_period=form.wanted_period,
        state=RequestState.PENDING)
    session.add(row)
    audit.record(session, actor=requester, action="request.create", target=f"request:{row.id}",
                 at=at, after=snapshot(row))
    session.commit()
    return row


def _decide(session: Session, *, row: UnblockRequestRow, reviewer: SignedInUser,
            state: RequestState, at: datetime, **values: Any) -> None:
    """Mark the request decided, only if it is still pending (two reviewers at once: one wins)."""
    result = session.execute(
        update(UnblockRequestRow)
        .where(UnblockRequestRow.id == row.id, UnblockRequestRow.state == RequestState.PENDING)
        .values(state=state, reviewed_by=reviewer.username, reviewed_at=at, **values)
        .execution_options(synchronize_session=False))
    if getattr(result, "rowcount", 1) != 1:
        session.rollback()
        raise Conflict("someone else decided this request a moment ago; reload the queue")


def approve_request(session: Session, *, row: UnblockRequestRow, reviewer: SignedInUser,
                    grant: Grant, note: str, policy: Policy, at: datetime) -> UnblockRequestRow:
    """Grant access as `grant` says, after checking it against the policy."""
    check_grant(policy, grant, user_role=row.blocked_role or row.requester_role)
    before = snapshot(row)
    exception_id: str | None = None
    local_host: str | None = None
    if grant.local_allow:
        existing = session.get(LocalListRow, grant.target)
        previous = ({"host": existing.host, "verdict": existing.verdict.value,
                     "note": existing.note} if existing else None)
        if existing is None:
            session.add(LocalListRow(host=grant.target, verdict=Verdict.ALLOW,
                                     note=f"unblock request {row.id}: {note}"[:500],
                                     added_by=reviewer.username, added_at=at))
        else:
            existing.verdict, existing.note = Verdict.ALLOW, f"unblock request {row.id}"
            existing.added_by, existing.added_at = reviewer.username, at
        local_host = grant.target
        audit.record(session, actor=reviewer, action="list.add", target=f"list:{grant.target}",
                     at=at, before=previous, after={"host": grant.target, "verdict": "allow"})
    else:
        exception_id = str(uuid.uuid4())
        session.add(ExceptionRow(
            id=exception_id, scope=grant.scope, who=grant.who, target_kind=grant.target_kind,
            target=grant.target, starts=grant.starts, ends=grant.ends,
            created_by=reviewer.username, created_at=at, request_id=row.id, note=note))
    bump_change_counter(session)
    _decide(session, row=row, reviewer=reviewer, state=RequestState.APPROVED, at=at,
            review_note=note or None, grant=grant.as_json(), exception_id=exception_id,
            local_list_host=local_host)
    session.flush()
    session.refresh(row)
    audit.record(session, actor=reviewer, action="request.approve", target=f"request:{row.id}",
                 at=at, before=before, after=snapshot(row))
    session.commit()
    return row


def deny_request(session: Session, *, row: UnblockRequestRow, reviewer: SignedInUser,
                 reason: str, at: datetime) -> UnblockRequestRow:
    before = snapshot(row)
    _decide(session, row=row, reviewer=reviewer, state=RequestState.DENIED, at=at,
            review_note=reason)
    session.flush()
    session.refresh(row)
    audit.record(session, actor=reviewer, action="request.deny", target=f"request:{row.id}",
                 at=at, before=before, after=snapshot(row))
    session.commit()
    return row


def requests_of(session: Session, *, username: str) -> Sequence[UnblockRequestRow]:
    return session.scalars(select(UnblockRequestRow)
                           .where(func.lower(UnblockRequestRow.requester) == username.casefold())
                           .order_by(UnblockRequestRow.created_at.desc()).limit(200)).all()


def queue(session: Session, *, state: RequestState = RequestState.PENDING,
          ) -> Sequence[UnblockRequestRow]:
    order = (UnblockRequestRow.created_at.asc() if state is RequestState.PENDING
             else UnblockRequestRow.reviewed_at.desc())
    return session.scalars(select(UnblockRequestRow).where(UnblockRequestRow.state == state)
                           .order_by(order).limit(QUEUE_LIMIT)).all()
