"""The trust's schools (docs/trust.md): the Schools page where the trust's IT team adds a
school, downloads a school's export and removes a school that leaves (the same checks as
`schoolgate trust add-school|export-school|remove-school`), and the trust summary, each
school's week side by side. Every change is in the audit log."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from schoolgate.admin_api.deps import Db, Now, Res, TrustIt, TrustReader
from schoolgate.admin_api.errors import InvalidInput, NotFound
from schoolgate.admin_api.forms import form_fields, validate
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.resources import Resources, load_trust
from schoolgate.admin_api.roles import ADMIN_ROLES, SignedInUser
from schoolgate.admin_api.schemas import (
    SchoolCreate,
    SchoolRemoval,
    SchoolWeekPublic,
    TrustSummaryPublic,
)
from schoolgate.admin_api.services import audit
from schoolgate.admin_api.services.schools import TABLE_WORDS, TrustSummary, trust_summary
from schoolgate.policy.trust import School
from schoolgate.store.school_data import (
    ExportOutOfDate,
    SchoolExport,
    count_rows,
    delete_school_rows,
    export_trust_school,
    why_id_is_taken,
)
from schoolgate.store.school_scope import session_scope
from schoolgate.store.trust_edits import TrustNotChanged, add_school, checked_without, replace_text

router = APIRouter(tags=["schools"])
api = APIRouter(prefix="/api", tags=["schools"])
PagesDep = Annotated[Pages, Depends(get_pages)]
Form = Annotated[dict[str, str], Depends(form_fields)]
EXPORTS = "school-exports"  # in the data directory: the exports made before a removal


def _trust_path(resources: Resources) -> Path:
    path = resources.settings.trust_file
    assert path is not None  # TrustIt and TrustReader answer 404 without a trust file
    return Path(path)


def _school(resources: Resources, school_id: str) -> School:
    trust = resources.trust
    found = trust.schools.get(school_id) if trust is not None else None
    if found is None:
        raise NotFound(f"there is no school {school_id[:40]!r} in the trust")
    return found


def _schools_page(
    request: Request,
    pages: Pages,
    user: SignedInUser,
    resources: Resources,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
    notice: str = "",
) -> Response:
    trust = resources.trust
    assert trust is not None
    return pages.render(
        request,
        "schools.html",
        user=user,
        trust=trust,
        errors=errors or {},
        values=values or {},
        status=status,
        **({"notice": notice} if notice else {}),
    )


@router.get("/schools", include_in_schema=False)
def schools_page(request: Request, pages: PagesDep, user: TrustIt, resources: Res) -> Response:
    return _schools_page(request, pages, user, resources)


@router.post("/schools", include_in_schema=False)
def add_school_page(
    request: Request,
    pages: PagesDep,
    user: TrustIt,
    resources: Res,
    session: Db,
    now: Now,
    fields: Form,
) -> Response:
    try:
        form = validate(SchoolCreate, fields)
        taken = why_id_is_taken(resources.engine, form.school_id)
        if taken is not None:
            raise InvalidInput({"school_id": taken[:1].upper() + taken[1:]})
        added = add_school(
            _trust_path(resources),
            form.school_id,
            name=form.school_name,
            subnets=form.subnet_list(),
            policy=form.policy_file or None,
            listeners=form.listener_list(),
            directory={"group": form.directory_group} if form.directory_group else None,
        )
    except InvalidInput as error:
        return _schools_page(
            request, pages, user, resources, errors=error.problems, values=fields, status=422
        )
    except TrustNotChanged as error:
        problems = "; ".join(error.problems) or error.summary
        return _schools_page(
            request,
            pages,
            user,
            resources,
            errors={"form": f"The school was not added: {problems}"},
            values=fields,
            status=422,
        )
    resources.trust = load_trust(_trust_path(resources))  # one reference swap
    after = {
        "id": form.school_id,
        "name": form.school_name,
        "subnets": form.subnet_list(),
        "listeners": form.listener_list(),
        "directory_group": form.directory_group,
    }
    audit.record(
        session,
        actor=user,
        action="school.add",
        target=f"school:{form.school_id}",
        at=now,
        after=after | {"policy": form.policy_file or None, "made_policy": bool(added.made_policy)},
    )
    session.commit()
    return RedirectResponse("/schools?done=school-added", status_code=303)


def _export(resources: Resources, school: School, out: Path, at: datetime) -> SchoolExport:
    trust = resources.trust
    assert trust is not None
    folder = _trust_path(resources).parent
    try:
        return export_trust_school(
            resources.engine, out, trust=trust, folder=folder, school=school.id, at=at
        )
    except ValueError as exc:  # its policy file cannot be read: as the OSError it was
        raise OSError(str(exc)) from None


@router.post("/schools/{school_id}/export", include_in_schema=False)
def export_school_file(
    school_id: str, user: TrustIt, resources: Res, session: Db, now: Now
) -> Response:
    school = _school(resources, school_id)
    folder = resources.settings.data_dir / EXPORTS
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".zip", delete=False) as handle:
        out = Path(handle.name)
    made = _export(resources, school, out, now)
    audit.record(
        session,
        actor=user,
        action="school.export",
        target=f"school:{school.id}",
        at=now,
        after={"counts": made.counts},
    )
    session.commit()
    return FileResponse(
        out,
        media_type="application/zip",
        filename=f"schoolgate-school-{school.id}-{now:%Y%m%d}.zip",
        headers={"Cache-Control": "no-store"},
        background=BackgroundTask(out.unlink, missing_ok=True),
    )


def _counts(resources: Resources, school_id: str) -> dict[str, int]:
    with resources.engine.connect() as connection:
        return count_rows(connection, school_id)


def _remove_page(
    request: Request,
    pages: Pages,
    user: SignedInUser,
    resources: Resources,
    school: School,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return pages.render(
        request,
        "school_remove.html",
        user=user,
        school=school,
        counts=_counts(resources, school.id),
        table_words=TABLE_WORDS,
        errors=errors or {},
        values={},
        status=status,
    )


@router.get("/schools/{school_id}/remove", include_in_schema=False)
def remove_school_page(
    school_id: str, request: Request, pages: PagesDep, user: TrustIt, resources: Res
) -> Response:
    return _remove_page(request, pages, user, resources, _school(resources, school_id))


@router.post("/schools/{school_id}/remove", include_in_schema=False)
def remove_school(
    school_id: str,
    request: Request,
    pages: PagesDep,
    user: TrustIt,
    resources: Res,
    now: Now,
    fields: Form,
) -> Response:
    school = _school(resources, school_id)
    path = _trust_path(resources)
    try:
        form = validate(SchoolRemoval, fields)
        if form.school_id_again != school.id:
            raise InvalidInput(
                {"school_id_again": f"Please type {school.id} to remove {school.name}"}
            )
        new_text = checked_without(path, school.id)
        folder = resources.settings.data_dir / EXPORTS
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{school.id}-{now:%Y%m%dT%H%M%SZ}.zip"
        made = _export(resources, school, out, now)
        counts = delete_school_rows(
            resources.engine,
            school=school.id,
            actor=user.username,
            actor_roles=",".join(sorted(r.value for r in user.roles & ADMIN_ROLES)),
            at=now,
            exported=made.counts,
            export_file=str(out),
        )
    except InvalidInput as error:
        return _remove_page(
            request, pages, user, resources, school, errors=error.problems, status=422
        )
    except (TrustNotChanged, ExportOutOfDate, OSError) as error:
        words = "; ".join(error.problems) if isinstance(error, TrustNotChanged) else str(error)
        return _remove_page(
            request,
            pages,
            user,
            resources,
            school,
            errors={"form": f"{school.name} was not removed: {words}"},
            status=409,
        )
    total = sum(counts.values())
    deleted = (
        f"{total} records deleted: "
        + ", ".join(f"{TABLE_WORDS.get(table, table)} {n}" for table, n in counts.items() if n)
        if total
        else "it had no records to delete"
    )
    try:
        replace_text(path, new_text)
    except TrustNotChanged as error:
        return _schools_page(
            request,
            pages,
            user,
            resources,
            errors={
                "form": f"{school.name}'s records were exported to {out} ({deleted}), but "
                f"the trust file was not changed: {error.summary}. Take "
                f"{school.id} out of the trust file by hand."
            },
            status=500,
        )
    resources.trust = load_trust(path)  # one reference swap
    return _schools_page(
        request,
        pages,
        user,
        resources,
        notice=(
            f"{school.name} ({school.id}) was removed from the trust. Its records were "
            f"exported first to {out} on the admin server ({deleted}). The id {school.id} "
            "will never be given to another school."
        ),
    )


# --- the trust summary --------------------------------------------------------------------


def _summary(
    session: Session, user: SignedInUser, resources: Resources, now: datetime
) -> TrustSummary:
    trust = resources.trust
    assert trust is not None
    scope = session_scope(session)
    only = scope.school if scope is not None and not scope.every else None
    shown = {
        school.id: school.name
        for school in trust.schools.values()
        if (user.every_school and only in (None, school.id)) or school.id == user.school
    }
    return trust_summary(
        session,
        schools=shown,
        at=now,
        zone=resources.policy.calendar.timezone,
        every_school=user.every_school and only is None,
    )


@router.get("/trust", include_in_schema=False)
def summary_page(
    request: Request, pages: PagesDep, user: TrustReader, resources: Res, session: Db, now: Now
) -> Response:
    summary = _summary(session, user, resources, now)
    trust = resources.trust
    assert trust is not None
    return pages.render(request, "trust_summary.html", user=user, trust=trust, summary=summary)


@api.get("/trust/summary")
def summary_api(user: TrustReader, resources: Res, session: Db, now: Now) -> TrustSummaryPublic:
    """Each school's week side by side (the trust's roles: every school; a school's staff:
    their own)."""
    summary = _summary(session, user, resources, now)
    return TrustSummaryPublic(
        since=summary.since,
        schools=[SchoolWeekPublic.model_validate(row) for row in summary.rows],
    )
