"""The policy as IT sees it on the Policy page: a check of a pasted or uploaded policy text
(every problem with its place; the lists it names are the ones schoolgate ships) and which
version runs. The routes are in admin_api/policy_view.py; saving and restoring versions are in
services/policy_versions.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from schoolgate.admin_api.errors import Conflict
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.schemas import PolicyCheckPublic
from schoolgate.admin_api.services.policy_versions import notice_lists
from schoolgate.admin_api.services.school_policy import PolicyPlace
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.parse import list_files_named, parse_policy
from schoolgate.policy.table import summary
from schoolgate.store import policy_versions as versions
from schoolgate.store.policy_files import shipped_lists_dir


def check_policy_text(text: str, *, source: str = "pasted policy") -> PolicyCheckPublic:
    """Parse `text` (lists it names are taken from the ones schoolgate ships)."""
    lists: dict[str, str] = {}
    for name in list_files_named(text):
        candidate = shipped_lists_dir() / name
        if "/" not in name and "\\" not in name and candidate.is_file():
            lists[name] = candidate.read_text(encoding="utf-8")
    try:
        policy = parse_policy(text, source=source, lists=lists)
    except PolicyError as error:
        return PolicyCheckPublic(
            ok=False, summary=f"{len(error.problems)} problem(s) found", problems=error.problems
        )
    except Exception as error:  # hostile text must get an answer, never a crash
        return PolicyCheckPublic(
            ok=False,
            summary="the text could not be read as a policy",
            problems=[f"{source}: {type(error).__name__}"],
        )
    return PolicyCheckPublic(ok=True, summary=summary(policy), problems=[])


def running_version(
    session: Session, resources: Resources, at: datetime, place: PolicyPlace | None = None
) -> dict[str, Any]:
    """Which policy version runs (noticing first a file edited outside the admin, and
    local-list changes), for the page and the API; of `place`'s file when given (a school's
    in a trust), else of the policy file."""
    place = place or PolicyPlace(resources.settings.policy_file, versions.POLICY)
    path = place.path
    if path is not None:
        versions.notice_file(session, path, at=at, kind=place.kind)
    notice_lists(session, at=at)
    row = versions.latest(session, place.kind) if path is not None else None
    lists_row = versions.latest(session, versions.LISTS)
    return {
        "editable": path is not None,
        "file": str(path) if path else "the seed policy",
        "id": row.id if row else None,
        "short": versions.short_id(row.sha256) if row else "seed",
        "author": row.author if row else "",
        "at": row.at if row else None,
        "reason": row.reason if row else "",
        "lists_id": lists_row.id if lists_row else None,
        "school": place.school,
        "query": place.query,
        "why_not": _why_not_editable(place),
    }


def _why_not_editable(place: PolicyPlace) -> str:
    """Why the place's policy cannot be changed here, in words ("" when it can)."""
    try:
        place.editable()
    except Conflict as error:
        return str(error)
    return ""
