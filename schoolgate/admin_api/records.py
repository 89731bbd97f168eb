"""Records about people (the DSL and IT): a subject access export, everything schoolgate holds
about one person as a JSON file. Making one is in the audit log. It is a POST, so a link on
another site cannot make someone export."""

from __future__ import annotations

import json
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from schoolgate.admin_api.deps import Db, Now, require_role
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.forms import form_fields, validate
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.admin_api.schemas import SubjectAccessCreate
from schoolgate.admin_api.services import audit
from schoolgate.admin_api.services.records import subject_access

router = APIRouter(tags=["records"])
api = APIRouter(prefix="/api", tags=["records"])
RecordsReader = Annotated[SignedInUser, Depends(require_role(Role.DSL, Role.IT_TECHNICIAN))]
PagesDep = Annotated[Pages, Depends(get_pages)]
Form = Annotated[dict[str, str], Depends(form_fields)]


def _export(session: Db, user: SignedInUser, subject: str, now: Now) -> Response:
    held = subject_access(session, user=subject, at=now)
    counts = {key: len(value) for key, value in held.items() if isinstance(value, list)}
    audit.record(
        session,
        actor=user,
        action="sar.export",
        target=f"user:{subject[:200]}",
        at=now,
        after={"counts": counts},
    )
    session.commit()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", subject)[:80] or "person"
    return Response(
        json.dumps(held, indent=1, ensure_ascii=False, default=str),
        media_type="application/json; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="schoolgate-subject-access-{safe}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/records", include_in_schema=False)
def records_page(request: Request, pages: PagesDep, user: RecordsReader) -> Response:
    return pages.render(request, "records.html", user=user, errors={}, values={})


@router.post("/records/subject-access", include_in_schema=False)
def subject_access_page(
    request: Request, pages: PagesDep, user: RecordsReader, session: Db, now: Now, fields: Form
) -> Response:
    try:
        form = validate(SubjectAccessCreate, fields)
    except InvalidInput as error:
        return pages.render(
            request, "records.html", user=user, errors=error.problems, values=fields, status=422
        )
    return _export(session, user, form.user, now)


@api.post("/records/subject-access")
def subject_access_api(
    body: SubjectAccessCreate, user: RecordsReader, session: Db, now: Now
) -> Response:
    """Everything held about one person, as a JSON file (DSL and IT; audited)."""
    return _export(session, user, body.user, now)
