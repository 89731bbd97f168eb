"""The policy, for IT technicians: the running policy as a role x category x period table for a
day, which version runs, a check of a pasted or uploaded policy text that lists every problem
with its place, editing it (a reason required, previewed against the recorded history, saved as
a new version and written to the policy file, which the gateway reloads), and its versions,
each viewable and restorable."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from schoolgate.admin_api.deps import (
    Db,
    ItTechnician,
    Now,
    Place,
    PolicyEditor,
    Res,
    ShadowEditor,
    shadow_editor,
)
from schoolgate.admin_api.errors import Conflict, InvalidInput, NotFound
from schoolgate.admin_api.forms import validate
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.schemas import PolicyCheckCreate, PolicyCheckPublic
from schoolgate.admin_api.services import policy_versions as service
from schoolgate.admin_api.services.policy_view import check_policy_text, running_version
from schoolgate.admin_api.services.school_policy import (
    PolicyPlace,
    after_save,
    check_place_text,
    place_policy,
    save_place,
    schools_to_choose,
    trust_problems,
)
from schoolgate.policy.diff import replay, table_diff
from schoolgate.policy.table import policy_table, summary
from schoolgate.store import policy_versions as versions
from schoolgate.store.models import PolicyVersionRow
from schoolgate.store.policy_files import load_policy as load_policy_file

router = APIRouter(tags=["policy"])
api = APIRouter(prefix="/api", tags=["policy"])
PagesDep = Annotated[Pages, Depends(get_pages)]
MAX_POLICY_BYTES = 512_000
MAX_DAYS_AWAY = 3660
MAX_PREVIEW_DAYS = 31
VersionId = Annotated[int, Path(ge=1, le=2**31 - 1)]
SHADOW_IS_TRUST_WIDE = (
    "shadow mode tries a policy for the whole trust, so it is for the trust's base policy "
    "only; save this school's change instead, or ask the trust's IT team"
)


def _page(
    request: Request,
    pages: Pages,
    user: ItTechnician,
    resources: Res,
    day: date,
    *,
    place: PolicyPlace,
    session: Db,
    now: datetime,
    result: PolicyCheckPublic | None = None,
    text: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
    edit_text: str | None = None,
    reason: str = "",
    preview: dict[str, Any] | None = None,
    saved: str = "",
) -> Response:
    try:
        policy = place_policy(resources, place)
    except Conflict as error:  # a school's file broken on the server: the editor still shows
        if place.school is None:
            raise
        policy, broken = None, error.message
    zone = (policy or resources.policy).calendar.timezone
    if abs((day - now.astimezone(zone).date()).days) > MAX_DAYS_AWAY:
        raise InvalidInput({"date": "choose a day within ten years of today"})
    header, rows, note = policy_table(policy, day) if policy else ([], [], broken)
    version = running_version(session, resources, now, place)
    if edit_text is None:
        latest = versions.latest(session, place.kind)
        edit_text = latest.text if latest is not None and version["editable"] else ""
    return pages.render(
        request,
        "policy.html",
        user=user,
        policy=policy,
        policy_summary=summary(policy) if policy else "",
        header=header,
        rows=rows,
        note=note,
        day=day,
        result=result,
        text=text,
        errors=errors or {},
        status=status,
        version=version,
        edit_text=edit_text,
        reason=reason,
        preview=preview,
        saved=saved,
        schools=schools_to_choose(resources, user),
    )


@router.get("/policy", include_in_schema=False)
def policy_page(
    request: Request,
    pages: PagesDep,
    user: ItTechnician,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
    day: Annotated[date | None, Query(alias="date")] = None,
    saved: Annotated[str, Query(max_length=40, pattern=r"^[0-9a-z-]*$")] = "",
) -> Response:
    today = now.astimezone(resources.policy.calendar.timezone).date()
    return _page(
        request,
        pages,
        user,
        resources,
        day or today,
        place=place,
        session=session,
        now=now,
        saved=saved,
    )


@router.post("/policy/check", include_in_schema=False)
async def check_page(
    request: Request,
    pages: PagesDep,
    user: ItTechnician,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
) -> Response:
    today = now.astimezone(resources.policy.calendar.timezone).date()
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=MAX_POLICY_BYTES)
    except Exception:
        form = None
    text = ""
    if form is not None:
        upload = form.get("file")
        if upload is not None and not isinstance(upload, str) and upload.filename:
            raw = await upload.read(MAX_POLICY_BYTES + 1)
            text = raw.decode("utf-8", errors="replace")
        else:
            value = form.get("text")
            text = value if isinstance(value, str) else ""
    try:
        body = validate(PolicyCheckCreate, {"text": text})
    except InvalidInput as error:
        return _page(
            request,
            pages,
            user,
            resources,
            today,
            place=place,
            session=session,
            now=now,
            text=text[:MAX_POLICY_BYTES],
            errors=error.problems,
            status=422,
        )
    result = _check(place, body.text)
    return _page(
        request,
        pages,
        user,
        resources,
        today,
        place=place,
        session=session,
        now=now,
        result=result,
        text=body.text,
    )


def _check(place: PolicyPlace, text: str) -> PolicyCheckPublic:
    """A pasted policy checked: on a school's page, as the school's own file with the whole
    trust (what a save would say); else as a whole policy file."""
    if place.school is None or place.path is None:
        return check_policy_text(text)
    policy, problems = trust_problems(place, text)
    if policy is None:
        return PolicyCheckPublic(
            ok=False, summary=f"{len(problems)} problem(s) found", problems=problems
        )
    return PolicyCheckPublic(ok=True, summary=summary(policy), problems=[])


def preview_against_history(
    session: Db,
    resources: Resources,
    new_text: str,
    *,
    place: PolicyPlace,
    days: int,
    now: datetime,
) -> dict[str, Any]:
    """What the new text would have changed over the last `days` days of recorded decisions
    (the session's: a school's own), and the governors' tables of both policies for today."""
    new = check_place_text(place, new_text).policy
    old = place_policy(resources, place)
    found = replay(
        old, new, versions.recorded_decisions(session, since=now - timedelta(days=days), until=now)
    )
    today = now.astimezone(old.calendar.timezone).date()
    return {"days": days, "result": found, "tables": table_diff(old, new, today)}


async def _edit_form(request: Request) -> dict[str, str]:
    try:
        form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_POLICY_BYTES)
    except Exception:
        raise InvalidInput(
            {"text": "the form could not be read; reload the page and try again"}
        ) from None
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _days(raw: str) -> int:
    try:
        days = int(raw or "7")
    except ValueError:
        raise InvalidInput({"days": "give a whole number of days, 1 to 31"}) from None
    if not 1 <= days <= MAX_PREVIEW_DAYS:
        raise InvalidInput({"days": f"choose between 1 and {MAX_PREVIEW_DAYS} days"})
    return days


@router.post("/policy/edit", include_in_schema=False)
async def edit_page(
    request: Request,
    pages: PagesDep,
    user: PolicyEditor,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
) -> Response:
    """'What would change?' (action=preview) or 'Save' (action=save) for the edited text."""
    today = now.astimezone(resources.policy.calendar.timezone).date()
    form = await _edit_form(request)
    text, reason = form.get("text", ""), form.get("reason", "")
    path = place.editable()
    try:
        if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
            raise InvalidInput({"text": f"the policy is longer than {MAX_POLICY_BYTES:,} bytes"})
        if form.get("action") == "shadow":
            shadow_editor(user, resources)
            if place.school is not None:
                raise InvalidInput({"shadow_roles": SHADOW_IS_TRUST_WIDE})
            service.start_shadow(
                session,
                actor=user,
                path=path,
                text=text,
                roles=form.get("shadow_roles", ""),
                running=resources.policy,
                at=now,
            )
            return RedirectResponse("/policy/shadow", status_code=303)
        if form.get("action") == "save":
            row, policy = save_place(session, place, actor=user, text=text, reason=reason, at=now)
            if place.school is None:
                resources.policy = policy  # the admin's own view; the gateway reloads the file
            done = f"version-{row.id}" if row is not None else "unchanged"
            return RedirectResponse(after_save("/policy", place, done), status_code=303)
        found = preview_against_history(
            session, resources, text, place=place, days=_days(form.get("days", "")), now=now
        )
    except InvalidInput as error:
        session.rollback()
        return _page(
            request,
            pages,
            user,
            resources,
            today,
            place=place,
            session=session,
            now=now,
            errors=error.problems,
            edit_text=text,
            reason=reason,
            status=422,
        )
    return _page(
        request,
        pages,
        user,
        resources,
        today,
        place=place,
        session=session,
        now=now,
        edit_text=text,
        reason=reason,
        preview=found,
    )


@router.get("/policy/versions", include_in_schema=False)
def versions_page(
    request: Request,
    pages: PagesDep,
    user: ItTechnician,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
    saved: Annotated[str, Query(max_length=40, pattern=r"^[0-9a-z-]*$")] = "",
) -> Response:
    running = running_version(session, resources, now, place)
    return pages.render(
        request,
        "policy_versions.html",
        user=user,
        version=running,
        saved=saved,
        policy_rows=versions.history(session, place.kind),
        # The local lists are the trust's: their versions are on the trust's pages.
        list_rows=versions.history(session, versions.LISTS) if place.school is None else [],
        short=versions.short_id,
    )


def _version_of(session: Db, place: PolicyPlace, version_id: int) -> PolicyVersionRow:
    """A version this place's pages may show: its own policy's, or (not a school's) the
    lists'. Another school's is not found, as for an id that does not exist."""
    row = versions.get(session, version_id)
    kinds = {place.kind} if place.school is not None else {place.kind, versions.LISTS}
    if row is None or row.kind not in kinds:
        raise NotFound(f"There is no version {version_id}.")
    return row


@router.get("/policy/versions/{version_id}", include_in_schema=False)
def version_page(
    request: Request,
    pages: PagesDep,
    user: ItTechnician,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
    version_id: VersionId,
) -> Response:
    running = running_version(session, resources, now, place)
    row = _version_of(session, place, version_id)
    return pages.render(
        request,
        "policy_version.html",
        user=user,
        version=running,
        row=row,
        short=versions.short_id,
        errors={},
    )


@router.post("/policy/versions/{version_id}/restore", include_in_schema=False)
async def restore_page(
    request: Request,
    pages: PagesDep,
    user: PolicyEditor,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
    version_id: VersionId,
) -> Response:
    form = await _edit_form(request)
    old = _version_of(session, place, version_id)
    if old.kind == versions.LISTS:
        try:
            restored = service.restore_lists(
                session,
                actor=user,
                version_id=version_id,
                reason=form.get("reason", ""),
                policy=resources.policy,
                at=now,
            )
        except InvalidInput as error:
            session.rollback()
            return pages.render(
                request,
                "policy_version.html",
                user=user,
                version=running_version(session, resources, now, place),
                row=old,
                short=versions.short_id,
                errors=error.problems,
                status=422,
            )
        done = f"lists-version-{restored.id}" if restored is not None else "unchanged"
        return RedirectResponse(f"/policy/versions?saved={done}", status_code=303)
    try:
        row, policy = save_place(
            session,
            place,
            actor=user,
            text="",
            reason=form.get("reason", ""),
            at=now,
            restoring=version_id,
        )
    except InvalidInput as error:
        session.rollback()
        return pages.render(
            request,
            "policy_version.html",
            user=user,
            version=running_version(session, resources, now, place),
            row=_version_of(session, place, version_id),
            short=versions.short_id,
            errors=error.problems,
            status=422,
        )
    if place.school is None:
        resources.policy = policy
    done = f"version-{row.id}" if row is not None else "unchanged"
    return RedirectResponse(after_save("/policy", place, done), status_code=303)


@router.get("/policy/shadow", include_in_schema=False)
def shadow_page(
    request: Request, pages: PagesDep, user: ShadowEditor, resources: Res, now: Now, session: Db
) -> Response:
    """What the policy running in shadow would have done differently, so far."""
    path = service.editable_path(resources.settings.policy_file)
    state = service.shadow_state(path)
    rows = service.shadow_report(session, sha256=state.sha256) if state is not None else []
    return pages.render(
        request,
        "policy_shadow.html",
        user=user,
        state=state,
        rows=rows,
        short=versions.short_id,
        errors={},
        version=running_version(session, resources, now),
    )


@router.post("/policy/shadow/{outcome}", include_in_schema=False)
async def shadow_end_page(
    request: Request,
    pages: PagesDep,
    user: ShadowEditor,
    resources: Res,
    now: Now,
    session: Db,
    outcome: Annotated[str, Path(pattern="^(promote|discard)$")],
) -> Response:
    form = await _edit_form(request)
    path = service.editable_path(resources.settings.policy_file)
    try:
        row = service.end_shadow(
            session,
            actor=user,
            path=path,
            promote=outcome == "promote",
            reason=form.get("reason", ""),
            at=now,
        )
    except InvalidInput as error:
        session.rollback()
        state = service.shadow_state(path)
        rows = service.shadow_report(session, sha256=state.sha256) if state else []
        return pages.render(
            request,
            "policy_shadow.html",
            user=user,
            state=state,
            rows=rows,
            short=versions.short_id,
            errors=error.problems,
            status=422,
            version=running_version(session, resources, now),
        )
    if row is not None:
        resources.policy = load_policy_file(path)
        return RedirectResponse(f"/policy?saved=version-{row.id}", status_code=303)
    return RedirectResponse("/policy?saved=shadow-" + outcome + "ed", status_code=303)


@api.get("/policy/versions")
def versions_api(
    user: ItTechnician,
    resources: Res,
    now: Now,
    session: Db,
    place: Place,
) -> dict[str, object]:
    """The running version and the policy's versions, newest first (no texts): with a trust,
    the person's school's (a trust role: the base's, or `?school=`'s)."""
    running = {k: v for k, v in running_version(session, resources, now, place).items()}
    running["school"] = place.school.id if place.school is not None else None
    return {
        "running": {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in running.items()
        },
        "versions": [
            {
                "id": r.id,
                "sha256": r.sha256,
                "at": r.at.isoformat(),
                "author": r.author,
                "reason": r.reason,
            }
            for r in versions.history(session, place.kind)
        ],
    }


@api.post("/policy/check", response_model=PolicyCheckPublic)
def check_policy(body: PolicyCheckCreate, user: ItTechnician) -> PolicyCheckPublic:
    """Check a policy text; every problem is listed with its place. Nothing is installed."""
    return check_policy_text(body.text)


@api.get("/policy/table")
def policy_table_api(
    user: ItTechnician,
    resources: Res,
    now: Now,
    place: Place,
    day: Annotated[date | None, Query(alias="date")] = None,
) -> dict[str, object]:
    """The running policy: role x category x part of the day, for one day (with a trust, the
    person's school's: the trust's base with the school's own policy)."""
    policy = place_policy(resources, place)
    today = now.astimezone(policy.calendar.timezone).date()
    the_day = day or today
    if abs((the_day - today).days) > MAX_DAYS_AWAY:
        raise InvalidInput({"date": "choose a day within ten years of today"})
    header, rows, note = policy_table(policy, the_day)
    return {
        "summary": summary(policy),
        "note": note,
        "header": header,
        "rows": rows,
        "generated_at": now.astimezone(policy.calendar.timezone).isoformat(),
    }
