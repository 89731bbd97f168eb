"""Server-rendered pages: one Jinja2 environment (autoescape always on, so nothing a person
typed is ever rendered as HTML), the navigation each role sees, and times shown in the school's
zone (they are stored in UTC).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from schoolgate.admin_api import words
from schoolgate.admin_api.deps import school_scope
from schoolgate.admin_api.notices import notice_for
from schoolgate.admin_api.notifications import waiting_for
from schoolgate.admin_api.roles import ADMIN_ROLES, EVERYONE, STAFF_SIDE, Role, SignedInUser
from schoolgate.admin_api.sessions import session_of

TEMPLATES = Path(__file__).resolve().with_name("templates")


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    roles: frozenset[Role]
    trust_roles_only: bool = False  # a trust's page: only for people who see every school


# The one place that says which pages each role sees; a new area adds its line here (the DSL's
# monitoring pages extend this list) and its router in app.py.
NAV: list[NavItem] = [
    NavItem("My requests", "/requests/mine", EVERYONE),
    NavItem("Ask for access", "/requests/new", EVERYONE),
    NavItem("Unblock requests", "/requests", frozenset({Role.BUSINESS_MANAGER})),
    NavItem("Local lists", "/lists", frozenset({Role.BUSINESS_MANAGER})),
    NavItem("Exceptions", "/exceptions", frozenset({Role.BUSINESS_MANAGER})),
    NavItem("Monitoring", "/monitoring", frozenset({Role.DSL})),
    NavItem("My class", "/teacher", frozenset({Role.STAFF})),
    NavItem("Explain", "/explain", STAFF_SIDE),
    NavItem("Policy", "/policy", frozenset({Role.IT_TECHNICIAN})),
    NavItem(
        "School calendar",
        "/calendar",
        frozenset({Role.IT_TECHNICIAN, Role.BUSINESS_MANAGER, Role.DSL}),
    ),
    NavItem("System", "/system", frozenset({Role.IT_TECHNICIAN})),
    NavItem("Audit log", "/audit", frozenset({Role.IT_TECHNICIAN, Role.DSL})),
    NavItem("Schools", "/schools", frozenset({Role.IT_TECHNICIAN}), trust_roles_only=True),
    NavItem("Schools this week", "/trust", ADMIN_ROLES, trust_roles_only=True),
    NavItem(
        "Annual review", "/review", frozenset({Role.DSL, Role.IT_TECHNICIAN, Role.BUSINESS_MANAGER})
    ),
]

ROLE_LABELS = {
    Role.PUPIL: "Pupil",
    Role.STAFF: "Staff",
    Role.BUSINESS_MANAGER: "Business Manager",
    Role.DSL: "Designated Safeguarding Lead",
    Role.IT_TECHNICIAN: "IT technician",
}


def nav_for(user: SignedInUser | None) -> list[NavItem]:
    if user is None:
        return []
    return [
        item
        for item in NAV
        if not item.roles.isdisjoint(user.roles)
        and (user.every_school or not item.trust_roles_only)
    ]


def role_label(user: SignedInUser) -> str:
    admin = sorted(user.roles & ADMIN_ROLES)
    return (
        ", ".join(ROLE_LABELS[r] for r in admin)
        or ROLE_LABELS[Role.STAFF if Role.STAFF in user.roles else Role.PUPIL]
    )


class Pages:
    """Renders templates with what every page needs (user, nav, CSRF token, school)."""

    def __init__(
        self, *, school_name: str, zone: Any, now: Callable[[], datetime] | None = None
    ) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,  # every template, whatever its name
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.zone = zone
        self.now = now or (lambda: datetime.now(UTC))
        self.env.filters["when"] = self.when
        self.env.filters["local"] = self.when  # the older name, kept for templates not yet moved
        self.env.filters["day"] = self.day
        self.env.globals["school_name"] = school_name
        self.env.filters["category"] = words.category_words
        self.env.filters["technique"] = words.technique_words
        self.env.filters["reason"] = words.reason_words
        self.env.filters["alert_kind"] = words.alert_kind_words
        self.env.filters["role"] = words.role_words
        self.env.filters["action"] = words.action_words
        self.env.filters["plain_times"] = self.plain_times
        self.env.filters["details"] = self.details
        self.env.filters["what"] = self.audit_what
        self.env.filters["grant"] = words.grant_words
        self.env.globals["kinds"] = list(words.CATEGORIES.items())
        self.env.globals["kinds_by_code"] = dict(words.CATEGORIES)
        self.env.globals["audit_actions"] = sorted(words.ACTIONS.items(), key=lambda kv: kv[1])

    def when(
        self, value: datetime | str | None, with_day: bool = True, seconds: bool = False
    ) -> str:
        """'Friday 18 December, 10:30' in the school's zone ('Friday 18 December 2027, 10:30'
        outside this year; '10:30' alone with `with_day=False`; '10:30:05' with `seconds`)."""
        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return str(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # stored times are UTC
        local = value.astimezone(self.zone)
        clock = local.strftime("%H:%M:%S" if seconds else "%H:%M")
        if not with_day:
            return clock
        return f"{self.day(local.date())}, {clock}"

    def plain_times(self, text: str) -> str:
        """Text with machine times in it ('until 2026-12-17 00:56 UTC') read as people say
        them ('until Thursday 17 December, 00:56', in the school's zone)."""

        def local(found: re.Match[str]) -> str:
            try:
                stamp = found.group(1).removesuffix(" UTC").removesuffix("Z")
                moment = datetime.fromisoformat(stamp.replace(" ", "T"))  # naive: UTC
            except ValueError:
                return found.group(0)
            return self.when(moment, seconds=False)

        return _MACHINE_TIME.sub(local, text)

    def details(self, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """An alert's details as (label, text) in words: ids left out (they stay in the API),
        seconds as minutes, times as `when`, techniques and categories by name."""
        shown: list[tuple[str, str]] = []
        reach = {"scope", "who", "target_kind", "target"}
        if reach <= values.keys():  # an exception: its reach in one sentence
            shown.append(("Access", words.grant_words(values)))
        for key, value in values.items():
            if key == "id" or key.endswith("_id") or key.endswith("_ids") or value in (None, ""):
                continue
            if key in reach and reach <= values.keys():
                continue
            if key == "grant" and isinstance(value, Mapping):
                ends = value.get("ends")
                until = f", until {self.when(ends)}" if ends else ", with no end"
                shown.append(("Access given", words.grant_words(value) + until))
                continue
            label = (
                _DETAIL_LABELS.get(key)
                or key.removesuffix("_seconds").replace("_", " ").capitalize()
            )
            if key.endswith("_seconds") and isinstance(value, int | float):
                text = f"{round(value / 60)} minutes" if value >= 60 else f"{value} seconds"
            elif key in ("technique", "techniques"):
                text = ", ".join(words.technique_words(str(v)) for v in _listed(value))
            elif key in ("category", "categories"):
                text = ", ".join(words.category_words(str(v)) for v in _listed(value))
            elif isinstance(value, str) and _ISO_TIME.fullmatch(value):
                text = self.when(value)
            elif isinstance(value, list | tuple):
                text = ", ".join(str(v) for v in value)
            else:
                text = str(value)
            shown.append((label, text))
        return shown

    def audit_what(self, row: Any) -> str:
        """What an audit entry (services.audit.AuditView) is about, in words."""
        return words.audit_what(
            row.action, row.target, row.before, row.after, hidden=row.details_hidden, day=self.day
        )

    def day(self, value: date | datetime | str | None) -> str:
        """'Friday 18 December' (with the year when it is not this year)."""
        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError:
                return str(value)
        if isinstance(value, datetime):
            value = value.astimezone(self.zone).date()
        this_year = self.now().astimezone(self.zone).year
        year = "" if value.year == this_year else f" {value.year}"
        return f"{value.strftime('%A')} {value.day} {value.strftime('%B')}{year}"

    def render(
        self,
        request: Request,
        template: str,
        *,
        user: SignedInUser | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        context.setdefault("notice", notice_for(request))  # what the last action did
        heading = trust_heading(request, user)
        if heading is not None:
            context.setdefault("school_name", heading)
        html = self.env.get_template(template).render(
            user=user,
            nav=nav_for(user),
            role_label=role_label(user) if user else "",
            waiting=waiting_for(request, user),
            csrf_token=session_of(request).csrf,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def trust_heading(request: Request, user: SignedInUser | None) -> str | None:
    """With a trust, the name a signed-in person's pages are headed with: their own school's,
    or the school a trust role narrowed the pages to, else the trust's. None without a trust
    (the admin's configured `school_name`)."""
    resources = getattr(request.app.state, "resources", None)
    trust = getattr(resources, "trust", None)
    if resources is None or trust is None or user is None:
        return None
    scope = school_scope(request, user, resources)
    school = trust.schools.get(scope.school) if scope.school is not None else None
    return school.name if school is not None else str(trust.name)


_MACHINE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
    r"(?:[+-]\d{2}:\d{2}| UTC|Z)?)"
)
_DETAIL_LABELS = {
    "window_seconds": "Within",
    "ip": "From the address",
    "host": "Website",
    "hosts": "Websites",
    "technique": "Way round the filter",
    "category": "Kind of website",
}
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}.*")


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def get_pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages
