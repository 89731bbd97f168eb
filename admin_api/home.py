"""The start page (what this person can do, by role) and who is signed in (/api/me)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from admin_api.deps import CurrentUser
from admin_api.render import Pages, get_pages, nav_for
from admin_api.schemas import MePublic

router = APIRouter(tags=["home"])
api = APIRouter(prefix="/api", tags=["home"])


@router.get("/", include_in_schema=False)
def home(request: Request, pages: Annotated[Pages, Depends(get_pages)], user: CurrentUser,
         ) -> Response:
    return pages.render(request, "home.html", user=user, items=nav_for(user))


@api.get("/me", response_model=MePublic)
def me(user: CurrentUser) -> MePublic:
    """Who is signed in, and their roles."""
    return MePublic(username=user.username, display_name=user.display_name,
                    roles=sorted(user.roles), policy_role=user.policy_role)
