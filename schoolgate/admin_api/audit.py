"""The audit log, read-only: a page with paging and filters, a CSV export and the API
(IT technicians and the DSL). Entries are written by the service functions. IT sees that a
safeguarding action happened (who, what, which record, when), not its details."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from schoolgate.admin_api.deps import AuditReader, Db
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.forms import check_single_line
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.schemas import AuditEntryPublic
from schoolgate.admin_api.services import audit as service

router = APIRouter(tags=["audit log"])
api = APIRouter(prefix="/api", tags=["audit log"])
Page = Annotated[int, Query(ge=1, le=100_000)]
Text = Annotated[str, Query(max_length=200)]


def _filters(action: str, actor: str) -> tuple[str | None, str | None]:
    """The filters as typed, checked: ordinary one-line text only."""
    problems = {}
    for field, value in (("action", action), ("actor", actor)):
        try:
            check_single_line(value)
        except ValueError as error:
            problems[field] = str(error)
    if problems:
        raise InvalidInput(problems)
    return action.strip() or None, actor.strip() or None


@router.get("/audit", include_in_schema=False)
def audit_page(
    request: Request,
    pages: Annotated[Pages, Depends(get_pages)],
    user: AuditReader,
    session: Db,
    page: Page = 1,
    action: Text = "",
    actor: Text = "",
) -> Response:
    wanted_action, wanted_actor = _filters(action, actor)
    found, total = service.list_entries(
        session, page=page, action=wanted_action, actor=wanted_actor
    )
    rows = service.for_reader(found, user)
    pages_count = max(1, -(-total // service.PAGE_SIZE))
    return pages.render(
        request,
        "audit.html",
        user=user,
        rows=rows,
        total=total,
        page=page,
        pages_count=pages_count,
        action=action,
        actor=actor,
    )


def _cell(value: str) -> str:
    # A cell starting with = + - @ (or their full-width forms, which spreadsheets also read
    # as formulas) would be run as a formula by a spreadsheet.
    return (
        "'" + value
        if value[:1] in ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
        else value
    )


@router.get("/audit.csv", include_in_schema=False)
def audit_csv(user: AuditReader, session: Db) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at_utc", "actor", "actor_roles", "action", "target", "before", "after"])
    for row in service.for_reader(service.export_entries(session), user):
        writer.writerow(
            [
                row.id,
                row.at.isoformat(),
                _cell(row.actor),
                row.actor_roles,
                row.action,
                _cell(row.target),
                _cell(json.dumps(row.before, sort_keys=True)) if row.before else "",
                _cell(json.dumps(row.after, sort_keys=True)) if row.after else "",
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="schoolgate-audit-log.csv"'},
    )


@api.get("/audit", response_model=list[AuditEntryPublic])
def audit_entries(
    user: AuditReader, session: Db, page: Page = 1, action: Text = "", actor: Text = ""
) -> list[AuditEntryPublic]:
    """One page (100) of entries, newest first."""
    wanted_action, wanted_actor = _filters(action, actor)
    rows, _ = service.list_entries(session, page=page, action=wanted_action, actor=wanted_actor)
    return [AuditEntryPublic.model_validate(row) for row in service.for_reader(rows, user)]
