"""The annual review's evidence pack as a printable page (/review) and a PDF (/review.pdf), for
the DSL, the IT technician and the Business Manager to take to the governors. What is in it is
built by admin_api/services/evidence.py; the live test goes to the gateway named by
SCHOOLGATE_REVIEW_PROXY, as the test accounts in SCHOOLGATE_REVIEW_ACCOUNTS_FILE."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import yaml
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from schoolgate.admin_api.deps import Db, Now, Res, require_role
from schoolgate.admin_api.errors import InvalidInput
from schoolgate.admin_api.pdf import pack_pdf
from schoolgate.admin_api.render import Pages, get_pages, trust_heading
from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.admin_api.services import audit
from schoolgate.admin_api.services.evidence import Account, EvidencePack, LiveGateway, build_pack
from schoolgate.admin_api.services.school_policy import policy_of_session
from schoolgate.store.policy_files import seed_policy_path, shipped_lists_dir

router = APIRouter(tags=["review"])
PagesDep = Annotated[Pages, Depends(get_pages)]
Reviewer = Annotated[
    SignedInUser, Depends(require_role(Role.DSL, Role.IT_TECHNICIAN, Role.BUSINESS_MANAGER))
]
DayText = Annotated[str, Query(alias="date", max_length=30)]


class ReviewSettings(BaseSettings):
    """Where the live test goes: the gateway as a proxy, and a YAML file of test accounts
    (`pupil: {username: test-pupil, password_file: /etc/schoolgate/test-pupil}`)."""

    model_config = SettingsConfigDict(env_prefix="SCHOOLGATE_REVIEW_", extra="ignore")
    proxy: str | None = None
    accounts_file: Path | None = None


class _AccountEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1)
    password_file: Path


def load_gateway(settings: ReviewSettings) -> LiveGateway | None:
    """The live test's gateway, or None if none is set; ValueError for a bad accounts file."""
    if not settings.proxy:
        return None
    accounts: dict[str, Account] = {}
    if settings.accounts_file is not None:
        try:
            raw = yaml.safe_load(settings.accounts_file.read_text(encoding="utf-8")) or {}
            for role, entry in dict(raw).items():
                found = _AccountEntry.model_validate(entry)
                accounts[str(role)] = Account(
                    found.username, found.password_file.read_text(encoding="utf-8").strip()
                )
        except (OSError, ValueError, ValidationError, yaml.YAMLError) as exc:
            raise ValueError(
                f"{settings.accounts_file}: the review's test accounts cannot be read: {exc}"
            ) from None
    return LiveGateway(settings.proxy, accounts)


@lru_cache(maxsize=1)
def _gateway_from_environment() -> LiveGateway | None:
    return load_gateway(ReviewSettings())


def review_gateway() -> LiveGateway | None:
    """The live test's gateway (a dependency, so tests can point it at theirs)."""
    return _gateway_from_environment()


Gateway = Annotated[LiveGateway | None, Depends(review_gateway)]


def _day(text: str, now: datetime, zone: object) -> date:
    if not text.strip():
        return now.astimezone(zone).date()  # type: ignore[arg-type]
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            {"date": "Please give the day as a date, for example 2026-12-18"}
        ) from None


def _pack(
    resources: Res,
    session: Db,
    now: datetime,
    day: date,
    gateway: LiveGateway | None,
    user: SignedInUser,
) -> EvidencePack:
    folders: list[Path] = []
    if resources.settings.policy_file is not None:
        folders += [
            resources.settings.policy_file.parent / "lists",
            resources.settings.policy_file.parent,
        ]
    folders.append(shipped_lists_dir())
    policy_file = resources.settings.policy_file or seed_policy_path()
    try:
        policy_text = policy_file.read_text(encoding="utf-8")
    except OSError:
        policy_text = ""  # then only the list files name sites to test
    pack = build_pack(
        session,
        policy=policy_of_session(resources, session),
        day=day,
        now=now,
        list_folders=folders,
        gateway=gateway,
        policy_text=policy_text,
    )
    audit.record(
        session,
        actor=user,
        action="review.evidence_pack",
        target=day.isoformat(),
        at=now,
        after={"passed": pack.passed, "failed": pack.failed},
    )
    session.commit()
    return pack


@router.get("/review", include_in_schema=False)
def review_page(
    request: Request,
    pages: PagesDep,
    user: Reviewer,
    resources: Res,
    session: Db,
    now: Now,
    gateway: Gateway,
    day_text: DayText = "",
) -> Response:
    zone = resources.policy.calendar.timezone
    if not day_text:
        return pages.render(
            request,
            "evidence.html",
            user=user,
            pack=None,
            day=now.astimezone(zone).date(),
            errors={},
        )
    try:
        day = _day(day_text, now, zone)
    except InvalidInput as error:
        return pages.render(
            request,
            "evidence.html",
            user=user,
            pack=None,
            day=now.astimezone(zone).date(),
            errors=error.problems,
            status=422,
        )
    pack = _pack(resources, session, now, day, gateway, user)
    return pages.render(request, "evidence.html", user=user, pack=pack, day=day, errors={})


@router.get("/review.pdf", include_in_schema=False)
def review_pdf(
    request: Request,
    user: Reviewer,
    resources: Res,
    session: Db,
    now: Now,
    gateway: Gateway,
    day_text: DayText = "",
) -> Response:
    zone = resources.policy.calendar.timezone
    day = _day(day_text, now, zone)
    pack = _pack(resources, session, now, day, gateway, user)
    school = trust_heading(request, user) or resources.settings.school_name
    pdf = pack_pdf(pack, school=school, zone=zone)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="schoolgate-review-{day.isoformat()}.pdf"',
            "Cache-Control": "no-store",
        },
    )
