"""The Business Manager's local block and allow lists: a host blocked or allowed for everyone,
with a note. Each change bumps the change counter (the gateway sees it within seconds) and is
in the audit log, in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_api.errors import InvalidInput, NotFound
from admin_api.roles import SignedInUser
from admin_api.services import audit
from policy.hostnames import HostError, normalise_host
from policy.model import Verdict
from store.models import LocalListRow, bump_change_counter


def _as_json(row: LocalListRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"host": row.host, "verdict": row.verdict.value, "note": row.note,
            "added_by": row.added_by}


def normalised(host: str, *, field: str = "host") -> str:
    """The canonical host name, or InvalidInput saying what is wrong with it."""
    found = normalise_host(host)
    if isinstance(found, HostError):
        raise InvalidInput({field: f"{found.message}. Type just the site's name, for example "
                                   "www.example.org (no https://, no path)"})
    return found.name


def entries(session: Session) -> Sequence[LocalListRow]:
    return session.scalars(select(LocalListRow).order_by(LocalListRow.verdict,
                                                         LocalListRow.host)).all()


def add_entry(session: Session, *, actor: SignedInUser, host: str, verdict: Verdict, note: str,
              at: datetime) -> LocalListRow:
    """Block or allow `host` (and its subdomains) for everyone; replaces an entry for it."""
    name = normalised(host)
    row = session.get(LocalListRow, name)
    before = _as_json(row)
    if row is None:
        row = LocalListRow(host=name, verdict=verdict, note=note, added_by=actor.username,
                           added_at=at)
        session.add(row)
    else:
        row.verdict, row.note, row.added_by, row.added_at = verdict, note, actor.username, at
    bump_change_counter(session)
    audit.record(session, actor=actor, action=f"list.{verdict.value}", target=f"list:{name}",
                 at=at, before=before, after=_as_json(row))
    session.commit()
    return row


def remove_entry(session: Session, *, actor: SignedInUser, host: str, at: datetime) -> None:
    name = normalised(host)
    row = session.get(LocalListRow, name)
    if row is None:
        raise NotFound(f"{name} is not on the local lists")
    before = _as_json(row)
    session.delete(row)
    bump_change_counter(session)
    audit.record(session, actor=actor, action="list.remove", target=f"list:{name}", at=at,
                 before=before, after=None)
    session.commit()
