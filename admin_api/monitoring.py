"""The DSL's area: monitoring logs, circumvention alerts, sanctions, incident notes, reports.
A slot for now: the landing page; the monitoring pages add their routes to this router (and
their lines to render.NAV), each behind `require_role(Role.DSL)`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from admin_api.deps import Dsl
from admin_api.render import Pages, get_pages

router = APIRouter(tags=["monitoring"])


@router.get("/monitoring", include_in_schema=False)
def monitoring_page(request: Request, pages: Annotated[Pages, Depends(get_pages)],
                    user: Dsl) -> Response:
    return pages.render(request, "monitoring.html", user=user)
