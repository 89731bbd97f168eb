"""The policy, for IT technicians: the running policy as a role x category x period table for a
day, and a check of a pasted or uploaded policy text that lists every problem with its place.
The admin never replaces the running policy: a checked file is installed by IT on the host."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from admin_api.deps import ItTechnician, Now, Res
from admin_api.errors import InvalidInput
from admin_api.forms import validate
from admin_api.render import Pages, get_pages
from admin_api.schemas import PolicyCheckCreate, PolicyCheckPublic
from policy.errors import PolicyError
from policy.parse import list_files_named, parse_policy
from policy.table import policy_table, summary
from store.policy_files import shipped_lists_dir

router = APIRouter(tags=["policy"])
api = APIRouter(prefix="/api", tags=["policy"])
PagesDep = Annotated[Pages, Depends(get_pages)]
MAX_POLICY_BYTES = 512_000
MAX_DAYS_AWAY = 3660


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
        return PolicyCheckPublic(ok=False, summary=f"{len(error.problems)} problem(s) found",
                                 problems=error.problems)
    except Exception as error:  # hostile text must get an answer, never a crash
        return PolicyCheckPublic(ok=False, summary="the text could not be read as a policy",
                                 problems=[f"{source}: {type(error).__name__}"])
    return PolicyCheckPublic(ok=True, summary=summary(policy), problems=[])


def _page(request: Request, pages: Pages, user: ItTechnician, resources: Res, day: date,
          *, result: PolicyCheckPublic | None = None, text: str = "",
          errors: dict[str, str] | None = None, status: int = 200) -> Response:
    policy = resources.policy
    if abs((day - datetime.now(policy.calendar.timezone).date()).days) > MAX_DAYS_AWAY:
        raise InvalidInput({"date": "choose a day within ten years of today"})
    header, rows, note = policy_table(policy, day)
    return pages.render(request, "policy.html", user=user, policy=policy,
                        policy_summary=summary(policy), header=header, rows=rows, note=note,
                        day=day, result=result, text=text, errors=errors or {}, status=status)


@router.get("/policy", include_in_schema=False)
def policy_page(request: Request, pages: PagesDep, user: ItTechnician, resources: Res,
                now: Now, day: Annotated[date | None, Query(alias="date")] = None) -> Response:
    today = now.astimezone(resources.policy.calendar.timezone).date()
    return _page(request, pages, user, resources, day or today)


@router.post("/policy/check", include_in_schema=False)
async def check_page(request: Request, pages: PagesDep, user: ItTechnician, resources: Res,
                     now: Now) -> Response:
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
        return _page(request, pages, user, resources, today, text=text[:MAX_POLICY_BYTES],
                     errors=error.problems, status=422)
    result = check_policy_text(body.text)
    return _page(request, pages, user, resources, today, result=result, text=body.text)


@api.post("/policy/check", response_model=PolicyCheckPublic)
def check_policy(body: PolicyCheckCreate, user: ItTechnician) -> PolicyCheckPublic:
    """Check a policy text; every problem is listed with its place. Nothing is installed."""
    return check_policy_text(body.text)


@api.get("/policy/table")
def policy_table_api(user: ItTechnician, resources: Res, now: Now,
                     day: Annotated[date | None, Query(alias="date")] = None,
                     ) -> dict[str, object]:
    """The running policy: role x category x part of the day, for one day."""
    the_day = day or now.astimezone(resources.policy.calendar.timezone).date()
    if abs((the_day - now.astimezone(resources.policy.calendar.timezone).date()).days) \
            > MAX_DAYS_AWAY:
        raise InvalidInput({"date": "choose a day within ten years of today"})
    header, rows, note = policy_table(resources.policy, the_day)
    return {"summary": summary(resources.policy), "note": note, "header": header, "rows": rows,
            "generated_at": datetime.now(resources.policy.calendar.timezone).isoformat()}
