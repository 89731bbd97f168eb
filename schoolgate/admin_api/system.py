"""Health and configuration: /healthz (the process is up), /readyz (the database answers at the
current schema and a policy is loaded), and the IT technician's system page (the same checks,
each domain list's age and entry count, the empty categories and how to fill them, and the
settings in force, secrets left out)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from schoolgate.admin_api.deps import ItTechnician, Now, Res
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.resources import Resources
from schoolgate.store.db import SchemaOutOfDate, display_url, require_current_schema
from schoolgate.store.list_status import ListsReport, ListStatusReader
from schoolgate.store.models import EventRow

router = APIRouter(tags=["health"])
_lists = ListStatusReader()  # remembers each list file's count until the file changes


def readiness(resources: Resources) -> dict[str, Any]:
    checks: dict[str, Any] = {"policy": {"ok": True, "name": resources.policy.name}}
    try:
        require_current_schema(resources.engine)
        checks["database"] = {"ok": True}
    except SchemaOutOfDate as error:
        checks["database"] = {"ok": False, "problem": str(error)}
    except (SQLAlchemyError, OSError) as error:
        checks["database"] = {
            "ok": False,
            "problem": f"cannot reach the database ({type(error).__name__})",
        }
    return {"ready": all(check["ok"] for check in checks.values()), "checks": checks}


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The admin process is up (no dependencies checked)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(resources: Res) -> Response:
    """Ready to serve: the database answers at the current schema and a policy is loaded.
    Without sign-in (for probes), so it says only ready or not; the checks are on /system."""
    ready = bool(readiness(resources)["ready"])
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


def configuration(resources: Resources) -> list[tuple[str, str]]:
    s = resources.settings
    directory = resources.identity.directory
    return [
        ("Environment", s.environment.value),
        ("Database", display_url(s.effective_database_url)),
        ("Data directory", str(s.data_dir)),
        ("Identity file", str(s.identity_file or "(none)")),
        ("Directory", getattr(directory, "kind", "none")),
        ("Admin accounts file", str(s.admin_accounts_file or "(none)")),
        ("Break-glass administrator", s.breakglass_username or "(none)"),
        ("Policy", f"{resources.policy.name} ({resources.policy.source})"),
        ("Gateway", s.gateway_url),
        ("School time zone", str(s.zone)),
        ("Session lifetime", f"{s.session_max_age_seconds // 60} minutes"),
        ("Secure cookies", "yes" if s.cookie_secure else "no (http demo)"),
        (
            "Sign-in throttling",
            f"{s.signin_max_failures_per_user} failures per user name, "
            f"{s.signin_max_failures_per_ip} per address, in "
            f"{s.signin_window_seconds // 60} minutes (in memory)",
        ),
        ("Admin groups", ", ".join(f"{g} → {r.value}" for g, r in s.admin_groups.items())),
    ]


def gateway_report(resources: Resources, *, now: datetime) -> dict[str, Any]:
    """What the admin knows of the gateway: no heartbeat, only the last visit the gateway
    recorded in the shared database (a quiet night records none, so this is a hint, not a
    check; the gateway's own /healthz and /metrics say whether it runs)."""
    try:
        with resources.sessions() as session:
            last = session.execute(
                select(EventRow.at, EventRow.replica).order_by(EventRow.at.desc()).limit(1)
            ).first()
    except (SQLAlchemyError, OSError) as error:
        return {"known": False, "problem": f"It cannot reach the database ({type(error).__name__})"}
    if last is None:
        return {"known": False, "problem": "The gateway has recorded no visits yet"}
    at = last.at if last.at.tzinfo is not None else last.at.replace(tzinfo=UTC)
    return {
        "known": True,
        "at": at,
        "age": age_text((now - at).total_seconds()),
        "replica": last.replica,
    }


def lists_report(resources: Resources, *, now: datetime) -> ListsReport:
    return _lists.read(resources.settings.policy_file, now=now)


def age_text(seconds: float | None) -> str:
    """'3 hours', '12 days': how old a list is, for a busy reader."""
    if seconds is None:
        return "unknown"
    if seconds < 2 * 3600:
        return f"{max(0, round(seconds / 60))} minutes"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)} hours"
    return f"{round(seconds / 86400)} days"


@router.get("/system", include_in_schema=False)
def system_page(
    request: Request,
    pages: Annotated[Pages, Depends(get_pages)],
    user: ItTechnician,
    resources: Res,
    now: Now,
) -> Response:
    return pages.render(
        request,
        "system.html",
        user=user,
        health=readiness(resources),
        gateway=gateway_report(resources, now=now),
        config=configuration(resources),
        lists=lists_report(resources, now=now),
        age_text=age_text,
    )
