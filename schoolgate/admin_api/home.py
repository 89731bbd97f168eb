"""The start page (what is waiting for this person, the answers to their requests, and what
they can do, by role) and who is signed in (/api/me)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from schoolgate.admin_api.deps import CurrentUser, Db, Now
from schoolgate.admin_api.notifications import recent_outcomes, waiting_counts
from schoolgate.admin_api.render import Pages, get_pages, nav_for
from schoolgate.admin_api.roles import ADMIN_ROLES, Role
from schoolgate.admin_api.schemas import MePublic

router = APIRouter(tags=["home"])
api = APIRouter(prefix="/api", tags=["home"])
OUTCOMES_SHOWN_FOR = timedelta(days=7)


@router.get("/", include_in_schema=False)
def home(
    request: Request,
    pages: Annotated[Pages, Depends(get_pages)],
    user: CurrentUser,
    session: Db,
    now: Now,
) -> Response:
    return pages.render(
        request,
        "home.html",
        user=user,
        items=nav_for(user),
        todo=waiting_counts(session, user),
        outcomes=recent_outcomes(session, username=user.username, since=now - OUTCOMES_SHOWN_FOR),
        is_admin=not user.roles.isdisjoint(ADMIN_ROLES),
        is_pupil=Role.PUPIL in user.roles,
    )


@api.get("/me", response_model=MePublic)
def me(user: CurrentUser) -> MePublic:
    """Who is signed in, and their roles."""
    return MePublic(
        username=user.username,
        display_name=user.display_name,
        roles=sorted(user.roles),
        policy_role=user.policy_role,
    )
