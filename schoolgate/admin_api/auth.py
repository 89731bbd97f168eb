"""Signing in and out: the form, the checks (break-glass administrator, the local admin accounts
file, then the school directory), sign-in throttling, and the session that follows: checked on
every request against the server's "valid after" stamp, with the person's roles read again from
the directory every `role_refresh_seconds`.

User names are compared in their canonical form (policy/names.py). LDAP filter escaping is the
directory's job (store.directory escapes the user name); the form only refuses what is not a
user name at all (too long, control characters).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from schoolgate.admin_api.deps import Now, Res, client_ip, optional_user
from schoolgate.admin_api.errors import InvalidInput, TooManyAttempts, Unavailable
from schoolgate.admin_api.forms import SingleLine, form_fields, validate
from schoolgate.admin_api.render import Pages, get_pages
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.roles import (
    ADMIN_ROLES,
    Role,
    SignedInUser,
    roles_for,
)
from schoolgate.admin_api.services import audit
from schoolgate.admin_api.services.people import placement
from schoolgate.admin_api.sessions import SessionData, end_sessions, start_session, valid_after
from schoolgate.policy.names import canonical_user
from schoolgate.store.directory import DirectoryUnavailable, DirectoryUser, verify_password

log = logging.getLogger(__name__)
router = APIRouter(tags=["sign-in"])


class SignIn(BaseModel):
    username: Annotated[SingleLine, Field(min_length=1, max_length=256)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    next: Annotated[str, Field(max_length=2048)] = "/"


def safe_next(target: str) -> str:
    """Only a path on this site: never an open redirect to another one."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def user_from_directory(
    resources: Resources,
    found: DirectoryUser,
    source: str,
) -> SignedInUser:
    policy = resources.policy
    policy_role = resources.identity.role_for_groups(found.groups) or policy.default_role
    admin_groups, school, every_school = found.groups, None, False
    placed = placement(resources, found.groups, found.dn)
    if placed is not None:  # roles come from groups named after a school or the trust
        admin_groups, school, every_school = placed.admin_groups, placed.school, placed.every_school
    roles = roles_for(
        groups=admin_groups,
        admin_groups=resources.settings.admin_groups,
        policy_role=policy_role,
        default_role=policy.default_role,
    )
    return SignedInUser(
        username=found.username,
        display_name=found.display_name,
        roles=roles,
        policy_role=policy_role,
        groups=found.groups,
        source=source,
        school=school,
        every_school=every_school,
    )


async def authenticate(
    resources: Resources,
    username: str,
    password: str,
) -> SignedInUser | None:
    """The person, or None for a wrong user name or password. Unavailable if the directory
    cannot answer (the break-glass administrator and admin accounts still work)."""
    settings = resources.settings
    if (
        settings.breakglass_username
        and settings.breakglass_password_hash
        and hmac.compare_digest(
            _canonical(username).encode(), _canonical(settings.breakglass_username).encode()
        )
    ):
        ok = await asyncio.to_thread(
            verify_password, password, settings.breakglass_password_hash.get_secret_value()
        )
        if not ok:
            return None
        roles = frozenset({Role.STAFF, *settings.breakglass_roles})
        return SignedInUser(
            username=settings.breakglass_username,
            display_name="Break-glass administrator",
            roles=roles,
            policy_role=resources.policy.default_role,
            source="break-glass",
            every_school=resources.trust is not None,  # the platform's: every school
        )
    if resources.admin_accounts is not None:
        found = await resources.admin_accounts.authenticate(username, password)
        if found is not None:
            return user_from_directory(resources, found, "admin accounts file")
    if resources.directory is None:
        return None
    try:
        found = await resources.directory.authenticate(username, password)
    except DirectoryUnavailable:
        raise Unavailable(
            "the school directory cannot be reached just now, so staff and "
            "pupils cannot sign in; try again in a minute (IT: see the admin's "
            "log)"
        ) from None
    return user_from_directory(resources, found, "directory") if found else None


def _canonical(username: str) -> str:
    try:
        return canonical_user(username)
    except ValueError:
        return username


async def refreshed_user(resources: Resources, user: SignedInUser) -> SignedInUser | None:
    """The person as the directory has them now: new roles, or None if they are gone.
    DirectoryUnavailable if it cannot say."""
    if user.source == "break-glass":
        name = resources.settings.breakglass_username
        return user if name and _canonical(name) == _canonical(user.username) else None
    directory = (
        resources.admin_accounts if user.source == "admin accounts file" else resources.directory
    )
    if directory is None:
        return None
    found = await directory.lookup(user.username)
    return user_from_directory(resources, found, user.source) if found else None


async def load_session(resources: Resources, request: Request) -> SessionData:
    """The request's session, ended if it was signed out on the server (finding 12), and with
    the roles read again from the directory when they are older than role_refresh_seconds."""
    session = resources.codec.read(request)
    user = session.user
    if user is None:
        return session
    stamp = await run_in_threadpool(_valid_after, resources, user.username)
    if stamp is not None and session.issued <= stamp.timestamp():
        return SessionData()  # signed out (or removed) since this cookie was issued
    now = time.time()
    if now - session.checked < resources.settings.role_refresh_seconds:
        return session
    try:
        fresh = await refreshed_user(resources, user)
    except DirectoryUnavailable:
        log.warning(
            "could not re-read %s's roles (the directory is unavailable); trying again "
            "at their next request",
            user.username,
        )
        return session
    if fresh is None:
        log.info("%s is no longer in the directory: their admin session has ended", user.username)
        return SessionData()
    session.user, session.checked, session.changed = fresh, now, True
    return session


def _valid_after(resources: Resources, username: str) -> datetime | None:
    with resources.sessions() as db:
        return valid_after(db, username=username)


@router.get("/signin", include_in_schema=False)
def signin_form(
    request: Request,
    pages: Annotated[Pages, Depends(get_pages)],
    user: Annotated[SignedInUser | None, Depends(optional_user)],
    next: str = "/",
) -> Response:
    return pages.render(
        request, "signin.html", user=user, next=safe_next(next[:2048]), errors={}, username=""
    )


@router.post("/signin", include_in_schema=False)
async def signin(
    request: Request,
    resources: Res,
    now: Now,
    pages: Annotated[Pages, Depends(get_pages)],
    fields: Annotated[dict[str, str], Depends(form_fields)],
) -> Response:
    next_page = safe_next(fields.get("next", "/")[:2048])
    typed = fields.get("username", "")[:256]

    def again(errors: dict[str, str], status: int) -> Response:
        return pages.render(
            request,
            "signin.html",
            user=None,
            next=next_page,
            errors=errors,
            username=typed,
            status=status,
        )

    try:
        form = validate(SignIn, fields)
    except InvalidInput as error:
        return again(error.problems, 422)
    try:
        username = canonical_user(form.username)
    except ValueError as error:
        return again({"username": str(error)}, 422)
    ip = client_ip(request)
    # Counted before the password is checked (released if it is right): a burst of guesses
    # cannot all pass the check before any of them is counted (finding 5).
    attempt = await run_in_threadpool(resources.throttle.reserve, username, ip)
    if not attempt.allowed:
        wait = attempt.retry_after
        minutes = max(1, round(wait / 60))
        raise TooManyAttempts(
            f"too many failed sign-ins; please wait about {minutes} minute"
            f"{'s' if minutes != 1 else ''} and try again",
            retry_after=wait,
        )
    user = await authenticate(resources, username, form.password)
    if user is None:
        return again(
            {"form": "That user name and password do not match. Check them and try again."}, 401
        )
    await run_in_threadpool(resources.throttle.succeeded, attempt)
    start_session(request, user)
    if user.roles & ADMIN_ROLES or user.source == "break-glass":
        await run_in_threadpool(_record_signin, resources, user, ip, now)
    return RedirectResponse(next_page, status_code=303)


def _record_signin(resources: Resources, user: SignedInUser, ip: str, now: datetime) -> None:
    with resources.sessions() as session:
        audit.record(
            session,
            actor=user,
            action="signin",
            target=f"session:{user.source}",
            at=now,
            after={"ip": ip, "roles": sorted(user.roles)},
        )
        session.commit()


@router.post("/signout", include_in_schema=False)
def signout(
    request: Request,
    resources: Res,
    now: Now,
    user: Annotated[SignedInUser | None, Depends(optional_user)],
) -> Response:
    """Ends this person's sessions on the server too: a copied cookie no longer works."""
    if user is not None:
        with resources.sessions() as db:
            end_sessions(db, username=user.username, at=now)
    start_session(request, None)
    return RedirectResponse("/signin", status_code=303)
