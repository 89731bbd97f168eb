"""Versions of the policy file and of the local lists, kept in the database: record a version
(only when the text changed), read the history, notice a policy file edited outside the admin,
write a policy file atomically, and read recorded decisions back for a preview.

A version's id is its sequence number; its short id is the first 12 hex digits of the SHA-256
of the file's bytes, the same label the gateway gives in `schoolgate_policy_info{version}`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from schoolgate.store.models import EventRow, LocalListRow, PolicyVersionRow

POLICY = "policy"
LISTS = "lists"
KIND_LENGTH = 16  # policy_versions.kind is String(16)
OUTSIDE = "edited outside the admin"
FIRST_SEEN = "the policy in force when the admin first looked (no earlier version recorded)"
CHANGED_OUTSIDE = "the policy file on the server changed without the admin"
MAX_DIFF_CHARS = 200_000
# Shadow mode, beside the policy file: the proposed policy and the roles it runs for (written by
# the admin, read by the gateway's Shadow addon).
SHADOW_POLICY = "shadow.yaml"
SHADOW_ROLES = "shadow-roles.txt"


def content_hash(text: str) -> str:
    """The SHA-256 (hex) of the text as the file holds it (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def short_id(sha256: str) -> str:
    return sha256[:12]


def unified_diff(old: str, new: str, *, old_name: str, new_name: str) -> str:
    """A unified diff, cut short (with a note) when it is very long."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=old_name,
        tofile=new_name,
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    if len(text) > MAX_DIFF_CHARS:
        return text[:MAX_DIFF_CHARS] + "\n... (diff cut short: compare the two versions)\n"
    return text


def school_kind(school: str) -> str:
    """The kind of a school's policy versions in a trust (docs/trust.md): `policy:<school>`,
    or for an id too long for the column `policy:#` and 8 hex digits of its SHA-256."""
    kind = f"{POLICY}:{school}"
    if len(kind) <= KIND_LENGTH:
        return kind
    return f"{POLICY}:#{hashlib.sha256(school.encode('utf-8')).hexdigest()[:8]}"


def latest(session: Session, kind: str) -> PolicyVersionRow | None:
    return session.scalars(
        select(PolicyVersionRow)
        .where(PolicyVersionRow.kind == kind)
        .order_by(PolicyVersionRow.id.desc())
        .limit(1)
    ).first()


def history(session: Session, kind: str, *, limit: int = 200) -> Sequence[PolicyVersionRow]:
    """The newest `limit` versions of one kind, newest first."""
    return session.scalars(
        select(PolicyVersionRow)
        .where(PolicyVersionRow.kind == kind)
        .order_by(PolicyVersionRow.id.desc())
        .limit(limit)
    ).all()


def get(session: Session, version_id: int) -> PolicyVersionRow | None:
    return session.get(PolicyVersionRow, version_id)


def record(
    session: Session, *, kind: str, text: str, author: str, reason: str, at: datetime
) -> PolicyVersionRow | None:
    """Add a version to the caller's transaction (the caller commits), or None when the text
    is the same as the newest version of that kind."""
    sha = content_hash(text)
    before = latest(session, kind)
    if before is not None and before.sha256 == sha:
        return None
    old_text = before.text if before is not None else ""
    old_name = f"version {before.id}" if before is not None else "(nothing recorded)"
    row = PolicyVersionRow(
        kind=kind,
        sha256=sha,
        at=at,
        author=author[:200],
        reason=reason,
        text=text,
        diff=unified_diff(old_text, text, old_name=old_name, new_name="this version"),
    )
    session.add(row)
    session.flush()  # gives the row its sequence number
    return row


def read_policy_text(path: Path) -> str:
    """The policy file's text exactly as stored (no newline translation, so the hash is the
    file's). Raises OSError or UnicodeDecodeError."""
    return path.read_bytes().decode("utf-8")


def notice_file(
    session: Session, path: Path, *, at: datetime, kind: str = POLICY
) -> PolicyVersionRow | None:
    """Record the policy file as a version of `kind` if it differs from the newest one (the
    file was edited outside the admin, or this is the first look). Commits. None when
    unchanged or unreadable (the admin keeps showing the newest recorded version)."""
    try:
        text = read_policy_text(path)
    except (OSError, UnicodeDecodeError):
        return None
    first = latest(session, kind) is None
    row = record(
        session,
        kind=kind,
        text=text,
        author=OUTSIDE,
        reason=FIRST_SEEN if first else CHANGED_OUTSIDE,
        at=at,
    )
    if row is not None:
        session.commit()
    return row


def lists_text(session: Session) -> str:
    """The local lists as text, one line a host, sorted: what a lists version stores. With a
    trust file, every list: a school's entry ends with ` @<school>`. Read past a session's
    school scope, so the version is the same whoever looks."""
    table = LocalListRow.__table__
    rows = session.connection().execute(
        select(table.c.verdict, table.c.host, table.c.school, table.c.note).order_by(
            table.c.verdict, table.c.host, table.c.school.nulls_first()
        )
    )
    return "".join(
        f"{verdict.value} {host}{' @' + school if school else ''}"
        f"{'  # ' + ' '.join(note.split()) if note else ''}\n"
        for verdict, host, school, note in rows
    )


def parse_lists_text(text: str) -> list[tuple[str, str, str, str | None]]:
    """(verdict, host, note, school) for each line of a lists version (the inverse of
    lists_text)."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        head, _, note = line.partition("  # ")
        verdict, _, where = head.strip().partition(" ")
        host, _, school = where.strip().partition(" @")
        entries.append((verdict, host.strip(), note.strip(), school.strip() or None))
    return entries


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (a temporary file beside it, flushed, then
    renamed), so the gateway reads either the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


HistoryEvent = tuple[str | None, str | None, str, datetime]  # user, role, host, at


def recorded_decisions(
    session: Session, *, since: datetime, until: datetime, batch: int = 20_000
) -> Iterator[HistoryEvent]:
    """Every recorded decision in [since, until), as (user, role, host, at), streamed."""
    query = (
        select(EventRow.user, EventRow.role, EventRow.host, EventRow.at)
        .where(EventRow.at >= since, EventRow.at < until)
        .execution_options(yield_per=batch)
    )
    yield from ((user, role, host, at) for user, role, host, at in session.execute(query))
