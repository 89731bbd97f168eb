"""The Business Manager's local block and allow lists: a host blocked or allowed for everyone,
with a note. Each change bumps the change counter (the gateway sees it within seconds) and is
in the audit log, in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from schoolgate.admin_api.errors import InvalidInput, NotFound, PolicyForbids
from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.services import audit
from schoolgate.admin_api.services.grants import (
    Grant,
    check_grant,
    is_rewriting_proxy,
    never_unblockable_for,
)
from schoolgate.admin_api.services.sites import refuse_public_suffix, site_name
from schoolgate.admin_api.words import roles_words
from schoolgate.policy.hostnames import is_subdomain_or_same
from schoolgate.policy.model import Policy, Scope, TargetKind, Verdict
from schoolgate.store.models import ExceptionRow, LocalListRow, bump_change_counter


def _as_json(row: LocalListRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "host": row.host,
        "verdict": row.verdict.value,
        "note": row.note,
        "added_by": row.added_by,
    }


def normalised(host: str, *, field: str = "host") -> str:
    """The canonical host name of what was typed or pasted (a URL is understood as its site),
    or InvalidInput saying what is wrong with it."""
    return site_name(host, field=field)


def check_allow(policy: Policy, name: str) -> None:
    """A local allow is a grant to everyone for one site, permanently: it goes through the
    same check as an approval, and is refused where it could never work (a site the policy
    never unblocks for some role, judged inside page-rewriting proxies too)."""
    if is_rewriting_proxy(name):
        raise PolicyForbids(
            {
                "host": f"{name} is a page-rewriting proxy: allowing it would "
                "open every website through it, including ones that can "
                "never be unblocked. Nothing has been changed."
            }
        )
    refused = never_unblockable_for(policy, name, set(policy.roles))
    if refused:
        raise PolicyForbids(
            {
                "host": f"{name} can never be unblocked for {roles_words(refused[0])}: the "
                "school's policy keeps it blocked, so an allow here "
                "would not work. Nothing has been changed."
            }
        )
    check_grant(
        policy,
        Grant(
            scope=Scope.EVERYONE,
            who=None,
            target_kind=TargetKind.HOST,
            target=name,
            starts=datetime.min.replace(tzinfo=UTC),
            ends=None,
        ),
        user_roles=frozenset(),
    )


def conflicts(session: Session, *, name: str, at: datetime) -> list[str]:
    """In words, the local allows and the exceptions in force that cover `name` (the site a
    local block is for): the block wins over each of them."""
    found = []
    for row in session.scalars(select(LocalListRow).where(LocalListRow.verdict == Verdict.ALLOW)):
        if is_subdomain_or_same(name, row.host):
            found.append(f"the local allow of {row.host}")
    rows = session.scalars(
        select(ExceptionRow)
        .where(or_(ExceptionRow.ends.is_(None), ExceptionRow.ends > at))
        .limit(1000)
    )
    for exc in rows:
        if exc.target_kind is TargetKind.HOST and is_subdomain_or_same(name, exc.target):
            found.append(
                f"the exception for {exc.target} "
                f"({exc.scope.value}{' ' + exc.who if exc.who else ''})"
            )
    return found


def blocked_by(session: Session, *, name: str) -> str | None:
    """The local block entry that covers `name` (the same site or a parent), if any."""
    for row in session.scalars(select(LocalListRow).where(LocalListRow.verdict == Verdict.BLOCK)):
        if is_subdomain_or_same(name, row.host):
            return row.host
    return None


def entries(session: Session) -> Sequence[LocalListRow]:
    return session.scalars(
        select(LocalListRow).order_by(LocalListRow.verdict, LocalListRow.host)
    ).all()


def add_entry(
    session: Session,
    *,
    actor: SignedInUser,
    host: str,
    verdict: Verdict,
    note: str,
    at: datetime,
    policy: Policy,
) -> LocalListRow:
    """Block or allow `host` (and its subdomains) for everyone; replaces an entry for it.
    Refused: a whole top-level domain or public suffix; an allow the policy would never honour
    or that a local block covers (the block wins: remove it first)."""
    name = normalised(host)
    refuse_public_suffix(name)
    if verdict is Verdict.ALLOW:
        check_allow(policy, name)
        blocking = blocked_by(session, name=name)
        if blocking is not None and blocking != name:
            raise InvalidInput(
                {
                    "host": f"{name} is covered by the local block of {blocking}, "
                    "and a local block always wins. Remove that block "
                    "first if you mean to allow this site."
                }
            )
    row = session.get(LocalListRow, name)
    before = _as_json(row)
    if row is None:
        row = LocalListRow(
            host=name, verdict=verdict, note=note, added_by=actor.username, added_at=at
        )
        session.add(row)
    else:
        row.verdict, row.note, row.added_by, row.added_at = verdict, note, actor.username, at
    bump_change_counter(session)
    audit.record(
        session,
        actor=actor,
        action=f"list.{verdict.value}",
        target=f"list:{name}",
        at=at,
        before=before,
        after=_as_json(row),
    )
    session.commit()
    return row


def remove_entry(
    session: Session, *, actor: SignedInUser, host: str, at: datetime, reason: str = ""
) -> None:
    name = normalised(host)
    row = session.get(LocalListRow, name)
    if row is None:
        raise NotFound(f"{name} is not on the local lists")
    before = _as_json(row)
    session.delete(row)
    bump_change_counter(session)
    audit.record(
        session,
        actor=actor,
        action="list.remove",
        target=f"list:{name}",
        at=at,
        before=before,
        after={"reason": reason} if reason else None,
    )
    session.commit()
