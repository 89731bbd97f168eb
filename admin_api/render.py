"""Server-rendered pages: one Jinja2 environment (autoescape always on, so nothing a person
typed is ever rendered as HTML), the navigation each role sees, and times shown in the school's
zone (they are stored in UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from admin_api.roles import ADMIN_ROLES, EVERYONE, STAFF_SIDE, Role, SignedInUser
from admin_api.sessions import session_of

TEMPLATES = Path(__file__).resolve().with_name("templates")


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    roles: frozenset[Role]


# The one place that says which pages each role sees; a new area adds its line here (the DSL's
# monitoring pages extend this list) and its router in app.py.
NAV: list[NavItem] = [
    NavItem("My requests", "/requests/mine", EVERYONE),
    NavItem("Ask for access", "/requests/new", EVERYONE),
    NavItem("Unblock requests", "/requests", frozenset({Role.BUSINESS_MANAGER})),
    NavItem("Local lists", "/lists", frozenset({Role.BUSINESS_MANAGER})),
    NavItem("Exceptions", "/exceptions", frozenset({Role.BUSINESS_MANAGER})),
    NavItem("Monitoring", "/monitoring", frozenset({Role.DSL})),
    NavItem("Explain", "/explain", STAFF_SIDE),
    NavItem("Policy", "/policy", frozenset({Role.IT_TECHNICIAN})),
    NavItem("System", "/system", frozenset({Role.IT_TECHNICIAN})),
    NavItem("Audit log", "/audit", frozenset({Role.IT_TECHNICIAN, Role.DSL})),
]

ROLE_LABELS = {
    Role.PUPIL: "Pupil", Role.STAFF: "Staff", Role.BUSINESS_MANAGER: "Business Manager",
    Role.DSL: "Designated Safeguarding Lead", Role.IT_TECHNICIAN: "IT technician",
}


def nav_for(user: SignedInUser | None) -> list[NavItem]:
    if user is None:
        return []
    return [item for item in NAV if not item.roles.isdisjoint(user.roles)]


def role_label(user: SignedInUser) -> str:
    admin = sorted(user.roles & ADMIN_ROLES)
    return ", ".join(ROLE_LABELS[r] for r in admin) or ROLE_LABELS[
        Role.STAFF if Role.STAFF in user.roles else Role.PUPIL]


class Pages:
    """Renders templates with what every page needs (user, nav, CSRF token, school)."""

    def __init__(self, *, school_name: str, zone: Any) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,  # every template, whatever its name
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.zone = zone
        self.env.filters["local"] = self.local_time
        self.env.globals["school_name"] = school_name

    def local_time(self, value: datetime | str | None, with_day: bool = True) -> str:
        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return str(value)
        if value.tzinfo is None:
            return value.isoformat(sep=" ", timespec="minutes")
        local = value.astimezone(self.zone)
        if not with_day:
            return local.strftime("%H:%M")
        return f"{local.strftime('%a')} {local.day} {local.strftime('%b %Y, %H:%M')}"

    def render(self, request: Request, template: str, *, user: SignedInUser | None,
               status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            user=user, nav=nav_for(user), role_label=role_label(user) if user else "",
            csrf_token=session_of(request).csrf, path=request.url.path, **context)
        return HTMLResponse(html, status_code=status,
                            headers={"Cache-Control": "no-store"})


def get_pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages
