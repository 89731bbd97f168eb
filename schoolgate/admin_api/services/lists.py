"""The Business Manager's local block and allow lists: a host blocked or allowed for everyone,
with a note. Each change bumps the change counter (the gateway sees it within seconds) and is
in the audit log, in the same transaction.

With a trust file each school has its own lists (`school`) beside the trust's (`school` None),
and a school's clients get both; between the two a block always wins (docs/trust.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, or_, select
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
        "school": row.school,
    }


def _on_list(school: str | None) -> ColumnElement[bool]:
    """The entries of `school`'s own list (None: the trust's, or the one school's)."""
    column = LocalListRow.school
    return column.is_(None) if school is None else column == school


def in_force(
    session: Session, *, school: str | None, verdict: Verdict
) -> list[tuple[str, str | None]]:
    """(host, list's school) of the `verdict` entries a client of `school` gets: its own list's
    and the trust's. Read past the session's school scope (the trust's entries apply to the
    school's clients too, so its staff are told of them), and never more than these two."""
    table = LocalListRow.__table__
    lists: ColumnElement[bool] = table.c.school.is_(None)
    if school is not None:
        lists = or_(lists, table.c.school == school)
    query = select(table.c.host, table.c.school).where(table.c.verdict == verdict, lists)
    return [(host, owner) for host, owner in session.connection().execute(query)]


def the_trusts(session: Session) -> Sequence[Row[Any, Any, Any, Any, Any]]:
    """The trust's own entries, for a school's staff to see (they apply in every school)."""
    table = LocalListRow.__table__
    query = (
        select(table.c.host, table.c.verdict, table.c.note, table.c.added_by, table.c.added_at)
        .where(table.c.school.is_(None))
        .order_by(table.c.verdict, table.c.host)
    )
    return session.connection().execute(query).all()


def find_entry(session: Session, name: str, school: str | None) -> LocalListRow | None:
    """The entry for `name` on `school`'s list (None: the trust's, or the one school's)."""
    return session.scalars(
        select(LocalListRow).where(LocalListRow.host == name, _on_list(school))
    ).first()


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


def conflicts(session: Session, *, name: str, at: datetime, school: str | None = None) -> list[str]:
    """In words, the local allows and the exceptions in force that cover `name` (the site a
    local block on `school`'s list is for): the block wins over each of them."""
    found = []
    for host, owner in in_force(session, school=school, verdict=Verdict.ALLOW):
        if is_subdomain_or_same(name, host):
            whose = "trust's" if owner is None and school else "local"
            found.append(f"the {whose} allow of {host}")
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


def blocked_by(session: Session, *, name: str, school: str | None = None) -> str | None:
    """The local block that covers `name` (the same site or a parent) for a client of
    `school`, on its own list or the trust's, if any."""
    return next(
        (host for host, _ in blocks_covering(session, name=name, school=school)),
        None,
    )


def blocks_covering(
    session: Session, *, name: str, school: str | None
) -> list[tuple[str, str | None]]:
    """(host, list's school) of the local blocks covering `name` for a client of `school`."""
    return [
        (host, owner)
        for host, owner in in_force(session, school=school, verdict=Verdict.BLOCK)
        if is_subdomain_or_same(name, host)
    ]


def entries(session: Session) -> Sequence[LocalListRow]:
    """The entries the session's school scope reaches: a school's own list, or every list."""
    return session.scalars(
        select(LocalListRow).order_by(
            LocalListRow.verdict, LocalListRow.host, LocalListRow.school.nulls_first()
        )
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
    school: str | None = None,
) -> LocalListRow:
    """Block or allow `host` (and its subdomains) for everyone of `school` (None: the trust's
    list, or the one school's); replaces its entry on that list. Refused: a whole top-level
    domain or public suffix; an allow the policy would never honour or that a local block
    covers (the block wins: remove it first; the trust's block cannot be removed by a school)."""
    name = normalised(host)
    refuse_public_suffix(name)
    if verdict is Verdict.ALLOW:
        check_allow(policy, name)
        for blocking, owner in blocks_covering(session, name=name, school=school):
            if owner != school:
                raise InvalidInput(
                    {
                        "host": f"{name} is covered by the trust's local block of {blocking}, "
                        "and the trust's block wins in every school. Nothing has been "
                        "changed; ask the trust's staff if it should be open."
                    }
                )
            if blocking != name:
                raise InvalidInput(
                    {
                        "host": f"{name} is covered by the local block of {blocking}, "
                        "and a local block always wins. Remove that block "
                        "first if you mean to allow this site."
                    }
                )
    row = find_entry(session, name, school)
    before = _as_json(row)
    if row is None:
        row = LocalListRow(
            host=name,
            verdict=verdict,
            note=note,
            added_by=actor.username,
            added_at=at,
            school=school,
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
    session: Session,
    *,
    actor: SignedInUser,
    host: str,
    at: datetime,
    reason: str = "",
    school: str | None = None,
) -> None:
    """Take `host` off `school`'s list (None: the trust's, or the one school's)."""
    name = normalised(host)
    row = find_entry(session, name, school)
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
