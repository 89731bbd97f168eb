"""Changing the policy from the admin: check a new text exactly as the gateway will load it,
save it as a new version (author, reason, diff, audit entry) and write the policy file
atomically so the gateway reloads it; restore an old version the same way; notice files edited
outside the admin and local-list changes, and record them as versions too; run a proposed text
in shadow (the gateway decides with it too and records differences), then promote or
discard it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schoolgate.admin_api.errors import Conflict, InvalidInput, NotAllowed, NotFound, Unavailable
from schoolgate.admin_api.roles import SignedInUser
from schoolgate.admin_api.services import audit
from schoolgate.admin_api.services.lists import check_allow
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.model import Policy, Verdict
from schoolgate.store import policy_versions as versions
from schoolgate.store.models import (
    LocalListRow,
    PolicyVersionRow,
    ShadowDifferenceRow,
    bump_change_counter,
)
from schoolgate.store.policy_files import load_policy
from schoolgate.store.school_scope import session_scope

MAX_REASON = 1000
SHADOW_POLICY, SHADOW_ROLES = versions.SHADOW_POLICY, versions.SHADOW_ROLES
LISTS_AUTHOR = "the local lists page (see the audit log for each change)"
LISTS_REASON = "the local lists changed"


@dataclass(frozen=True, slots=True)
class Checked:
    """A policy text that loads exactly as the gateway would load it from `path`."""

    text: str
    policy: Policy


def editable_path(policy_file: Path | None) -> Path:
    """The policy file the admin may change, or Conflict saying how to give it one."""
    if policy_file is None:
        raise Conflict(
            "The gateway runs the seed policy shipped with schoolgate, which cannot "
            "be changed here. Copy it to a file, set SCHOOLGATE_POLICY_FILE (and the "
            "gateway's schoolgate_policy option) to that file, and restart."
        )
    return policy_file


def check_text(text: str, *, path: Path) -> Checked:
    """Load `text` as if it were the file at `path` (its lists are found beside that file,
    then among the shipped ones), or InvalidInput listing every problem with its place."""
    fd, tmp = tempfile.mkstemp(prefix=".policy-check-", suffix=".yaml", dir=path.parent)
    tmp_path = Path(tmp)
    try:
        with open(fd, "wb") as out:
            out.write(text.encode("utf-8"))
        try:
            policy = load_policy(tmp_path)
        except PolicyError as error:
            problems = [p.replace(str(tmp_path), path.name) for p in error.problems]
            raise InvalidInput({"text": "; ".join(problems)}) from None
    finally:
        tmp_path.unlink(missing_ok=True)
    return Checked(text=text, policy=policy)


def _reason(reason: str) -> str:
    cleaned = " ".join(reason.split())
    if not cleaned:
        raise InvalidInput({"reason": "say why the policy is changing (for the governors' record)"})
    if len(cleaned) > MAX_REASON:
        raise InvalidInput({"reason": f"keep the reason under {MAX_REASON} characters"})
    if not cleaned.isprintable():  # a NUL cannot even be stored in PostgreSQL
        raise InvalidInput({"reason": "has a hidden or control character: type it again"})
    return cleaned


def save(
    session: Session,
    *,
    actor: SignedInUser,
    path: Path,
    text: str,
    reason: str,
    at: datetime,
    kind: str = versions.POLICY,
    check: Callable[[str], Checked] | None = None,
) -> tuple[PolicyVersionRow | None, Policy]:
    """Check `text` (by `check`, else as the policy file at `path`), record it as a new
    version of `kind` with an audit entry, write the file atomically and commit. Returns (the
    new version or None when nothing changed, the parsed policy)."""
    why = _reason(reason)
    checked = check(text) if check is not None else check_text(text, path=path)
    versions.notice_file(session, path, at=at, kind=kind)  # an outside edit: its own version
    before = versions.latest(session, kind)
    row = versions.record(
        session, kind=kind, text=checked.text, author=actor.username, reason=why, at=at
    )
    if row is None:
        return None, checked.policy
    audit.record(
        session,
        actor=actor,
        action="policy.change",
        target=f"policy version {row.id} ({versions.short_id(row.sha256)})",
        at=at,
        before=_summary(before),
        after={**(_summary(row) or {}), "diff": row.diff},
    )
    try:
        versions.write_atomically(path, checked.text)
    except OSError as error:
        session.rollback()
        raise Unavailable(
            f"The policy file {path} could not be written "
            f"({error.strerror or error}): the admin needs to be allowed to "
            "write to its folder. Nothing was changed."
        ) from None
    session.commit()
    if check is not None:
        return row, checked.policy
    try:  # the same text, now named after the real file (its summary names the file)
        return row, load_policy(path)
    except PolicyError:
        return row, checked.policy


def restore(
    session: Session,
    *,
    actor: SignedInUser,
    path: Path,
    version_id: int,
    reason: str,
    at: datetime,
    kind: str = versions.POLICY,
    check: Callable[[str], Checked] | None = None,
) -> tuple[PolicyVersionRow | None, Policy]:
    """Make an old policy version of `kind` the running one again (as a new version)."""
    old = versions.get(session, version_id)
    if old is None or old.kind != kind:
        raise NotFound(f"There is no policy version {version_id}.")
    why = _reason(reason)
    return save(
        session,
        actor=actor,
        path=path,
        text=old.text,
        reason=f"restored version {old.id}: {why}",
        at=at,
        kind=kind,
        check=check,
    )


def restore_lists(
    session: Session,
    *,
    actor: SignedInUser,
    version_id: int,
    reason: str,
    policy: Policy,
    at: datetime,
) -> PolicyVersionRow | None:
    """Make the local lists what they were in an old lists version (as a new version). Each
    allow is checked again against the policy in force, as when it was first added; if any is
    refused, nothing changes."""
    old = versions.get(session, version_id)
    if old is None or old.kind != versions.LISTS:
        raise NotFound(f"There is no lists version {version_id}.")
    why = _reason(reason)
    scope = session_scope(session)
    if scope is not None and not scope.every:
        # a version holds every school's lists: restoring it is for the whole trust
        raise NotAllowed(
            "a lists version holds the lists of every school of the trust; restore it without "
            "narrowing the page to one school"
        )
    notice_lists(session, at=at)  # changes since the last look get their own version first
    wanted = versions.parse_lists_text(old.text)
    for verdict, host, _, _ in wanted:
        if verdict == Verdict.ALLOW.value:
            check_allow(policy, host)
    before = versions.lists_text(session)
    for entry in session.scalars(select(LocalListRow)).all():
        session.delete(entry)
    session.flush()
    for verdict, host, note, school in wanted:
        session.add(
            LocalListRow(
                host=host,
                verdict=Verdict(verdict),
                note=note,
                added_by=actor.username,
                added_at=at,
                school=school,
            )
        )
    session.flush()
    bump_change_counter(session)
    row = versions.record(
        session,
        kind=versions.LISTS,
        text=versions.lists_text(session),
        author=actor.username,
        reason=f"restored version {old.id}: {why}",
        at=at,
    )
    audit.record(
        session,
        actor=actor,
        action="list.restore",
        target=f"lists version {row.id if row else old.id}",
        at=at,
        before={"lists": before},
        after={"restored": old.id, "reason": why, "diff": row.diff if row else ""},
    )
    session.commit()
    return row


def notice_lists(session: Session, *, at: datetime) -> PolicyVersionRow | None:
    """Record the local lists as a version when they changed since the last one (each change
    is also in the audit log with who made it). Commits."""
    text = versions.lists_text(session)
    if not text and versions.latest(session, versions.LISTS) is None:
        return None  # no lists yet: nothing to record
    row = versions.record(
        session, kind=versions.LISTS, text=text, author=LISTS_AUTHOR, reason=LISTS_REASON, at=at
    )
    if row is not None:
        session.commit()
    return row


def _summary(row: PolicyVersionRow | None) -> dict[str, object] | None:
    if row is None:
        return None
    return {
        "version": row.id,
        "sha256": versions.short_id(row.sha256),
        "author": row.author,
        "reason": row.reason,
    }


# --- shadow mode ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShadowState:
    text: str
    sha256: str
    roles: tuple[str, ...]  # empty: every role


def shadow_files(path: Path) -> tuple[Path, Path]:
    return path.parent / SHADOW_POLICY, path.parent / SHADOW_ROLES


def shadow_state(path: Path) -> ShadowState | None:
    """The proposed policy running in shadow beside `path`, if any."""
    policy_file, roles_file = shadow_files(path)
    try:
        text = versions.read_policy_text(policy_file)
    except (OSError, UnicodeDecodeError):
        return None
    try:
        roles = roles_file.read_text(encoding="utf-8")
    except OSError:
        roles = ""
    return ShadowState(
        text, versions.content_hash(text), tuple(r.strip() for r in roles.splitlines() if r.strip())
    )


def start_shadow(
    session: Session,
    *,
    actor: SignedInUser,
    path: Path,
    text: str,
    roles: str,
    running: Policy,
    at: datetime,
) -> ShadowState:
    """Check `text` and run it in shadow for `roles` (comma-separated; empty: every role)."""
    checked = check_text(text, path=path)
    wanted = tuple(dict.fromkeys(r.strip() for r in roles.split(",") if r.strip()))
    unknown = [r for r in wanted if r not in running.roles]
    if unknown:
        raise InvalidInput(
            {
                "shadow_roles": f"unknown role {unknown[0]!r} (the roles are: "
                f"{', '.join(running.roles)})"
            }
        )
    policy_file, roles_file = shadow_files(path)
    versions.write_atomically(roles_file, "".join(f"{r}\n" for r in wanted))
    versions.write_atomically(policy_file, checked.text)
    state = ShadowState(checked.text, versions.content_hash(checked.text), wanted)
    audit.record(
        session,
        actor=actor,
        action="policy.shadow.start",
        target=f"shadow {versions.short_id(state.sha256)}",
        at=at,
        after={
            "roles": list(wanted) or "every role",
            "diff": versions.unified_diff(
                versions.read_policy_text(path),
                checked.text,
                old_name="running policy",
                new_name="shadow",
            ),
        },
    )
    session.commit()
    return state


def shadow_report(
    session: Session,
    *,
    sha256: str,
    limit: int = 500,
) -> list[tuple[str, str, str, str, str, int]]:
    """(role, host, live, shadow, rule, requests) for one shadow text, most requests first."""
    total = func.sum(ShadowDifferenceRow.requests)
    query = (
        select(
            ShadowDifferenceRow.role,
            ShadowDifferenceRow.host,
            ShadowDifferenceRow.live,
            ShadowDifferenceRow.shadow,
            ShadowDifferenceRow.rule,
            total,
        )
        .where(ShadowDifferenceRow.shadow_sha256 == sha256)
        .group_by(
            ShadowDifferenceRow.role,
            ShadowDifferenceRow.host,
            ShadowDifferenceRow.live,
            ShadowDifferenceRow.shadow,
            ShadowDifferenceRow.rule,
        )
        .order_by(total.desc())
        .limit(limit)
    )
    return [(r, h, live, s, rule, int(n or 0)) for r, h, live, s, rule, n in session.execute(query)]


def end_shadow(
    session: Session, *, actor: SignedInUser, path: Path, promote: bool, reason: str, at: datetime
) -> PolicyVersionRow | None:
    """Promote the shadow policy (saved as a new version) or discard it; either way the shadow
    files are removed, so the gateway stops deciding twice."""
    state = shadow_state(path)
    if state is None:
        raise NotFound("No policy is running in shadow.")
    row = None
    if promote:
        row, _ = save(
            session,
            actor=actor,
            path=path,
            text=state.text,
            reason=f"promoted from shadow: {_reason(reason)}",
            at=at,
        )
    for file in shadow_files(path):
        file.unlink(missing_ok=True)
    audit.record(
        session,
        actor=actor,
        action="policy.shadow." + ("promote" if promote else "discard"),
        target=f"shadow {versions.short_id(state.sha256)}",
        at=at,
        after={"version": row.id if row else None, "reason": reason.strip()},
    )
    session.commit()
    return row
