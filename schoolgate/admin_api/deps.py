"""Permissions as FastAPI dependencies: who is signed in, which roles a route needs, and chained
loaders that fetch a thing only if this person may act on it. Routes never check roles inline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from schoolgate.admin_api.errors import Conflict, CsrfFailed, NotAllowed, NotFound, NotSignedIn
from schoolgate.admin_api.resources import Resources, db_session, get_resources
from schoolgate.admin_api.roles import TRUST_PREFIX, Role, SignedInUser
from schoolgate.admin_api.services.school_policy import PolicyPlace, place_for
from schoolgate.admin_api.sessions import CSRF_FIELD, CSRF_HEADER, csrf_matches, session_of
from schoolgate.admin_api.throttle import client_address
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.models import ExceptionRow
from schoolgate.store.school_scope import EVERY_SCHOOL, SchoolScope, scope_session

ROLE_WORDS = {
    Role.PUPIL: "pupils",
    Role.STAFF: "staff",
    Role.BUSINESS_MANAGER: "the Business Manager",
    Role.DSL: "the Designated Safeguarding Lead",
    Role.IT_TECHNICIAN: "IT technicians",
}
_ID = re.compile(r"[0-9a-fA-F-]{1,36}")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Res = Annotated[Resources, Depends(get_resources)]


def optional_user(request: Request) -> SignedInUser | None:
    return session_of(request).user


def current_user(request: Request) -> SignedInUser:
    user = session_of(request).user
    if user is None:
        raise NotSignedIn("please sign in first")
    return user


CurrentUser = Annotated[SignedInUser, Depends(current_user)]
OptionalUser = Annotated[SignedInUser | None, Depends(optional_user)]


def school_scope(request: Request, user: OptionalUser, resources: Res) -> SchoolScope:
    """Whose rows this request may see and change: everything without a trust file; with one,
    the person's own school's, or with a trust role every school's (narrowed to one by
    `?school=<id>`); nobody's for a person the trust places in no school."""
    trust = resources.trust
    if trust is None:
        return EVERY_SCHOOL
    if user is None:
        return SchoolScope()
    if user.every_school:
        wanted = request.query_params.get("school")
        return SchoolScope(wanted) if wanted in trust.schools else EVERY_SCHOOL
    return SchoolScope(user.school)


Scope = Annotated[SchoolScope, Depends(school_scope)]


def scoped_db(session: Annotated[Session, Depends(db_session)], scope: Scope) -> Session:
    """The request's database session, limited to `school_scope`'s rows: every query, count
    and look-up by id (a guessed id of another school's row is not found: 404, never 403)."""
    return scope_session(session, scope)


Db = Annotated[Session, Depends(scoped_db)]


def require_role(*roles: Role) -> Callable[[SignedInUser], SignedInUser]:
    """A dependency that passes the signed-in user on if they hold any of `roles`."""
    allowed = frozenset(roles)
    words = " or ".join(ROLE_WORDS[r] for r in roles)

    def check(user: CurrentUser) -> SignedInUser:
        if user.roles.isdisjoint(allowed):
            raise NotAllowed(
                f"only {words} may open this page; you are signed in as {user.username}"
            )
        return user

    check.__name__ = "require_" + "_or_".join(roles)
    return check


BusinessManager = Annotated[SignedInUser, Depends(require_role(Role.BUSINESS_MANAGER))]
ItTechnician = Annotated[SignedInUser, Depends(require_role(Role.IT_TECHNICIAN))]
AuditReader = Annotated[SignedInUser, Depends(require_role(Role.IT_TECHNICIAN, Role.DSL))]
Dsl = Annotated[SignedInUser, Depends(require_role(Role.DSL))]
Staff = Annotated[
    SignedInUser,
    Depends(require_role(Role.STAFF, Role.BUSINESS_MANAGER, Role.DSL, Role.IT_TECHNICIAN)),
]


def _trust_wide(user: SignedInUser, resources: Resources, what: str) -> SignedInUser:
    """`user`, if they may change something every school of a trust shares (docs/trust.md):
    anyone without a trust file, only a trust role with one."""
    if resources.trust is not None and not user.every_school:
        raise NotAllowed(
            f"{what} apply in every school of the trust, so only the trust's staff may "
            "change them; ask the trust's IT team"
        )
    return user


def list_editor(request: Request, user: BusinessManager, resources: Res) -> SignedInUser:
    """A Business Manager who may change the local lists: with a trust file, a school's own
    (docs/trust.md) or, for the trust's staff, the trust's or the school of `?school=` (one
    the trust does not have is refused, never taken as the trust's); never a person the trust
    places in no school (their entry would apply in every school)."""
    trust = resources.trust
    if trust is None:
        return user
    wanted = request.query_params.get("school")
    if user.every_school and wanted is not None and wanted not in trust.schools:
        raise NotFound(
            f"the trust has no school {wanted[:40]!r}: give one of "
            f"{', '.join(sorted(trust.schools))}, or no school for the trust's own lists"
        )
    if user.school is None and not user.every_school:
        raise NotAllowed(
            "you belong to no school of the trust (or to more than one), so you have no local "
            "lists to change; ask the trust's IT team to put you in your school's groups"
        )
    return user


def shadow_editor(user: ItTechnician, resources: Res) -> SignedInUser:
    """An IT technician who may see and run the shadow policy: one for a whole trust."""
    return _trust_wide(user, resources, "shadow mode and its report")


def policy_place(
    user: CurrentUser,
    resources: Res,
    school: Annotated[str | None, Query(max_length=40)] = None,
) -> PolicyPlace:
    """The policy this person's policy and calendar pages show and change: their school's in
    a trust (another school's is never reached: `?school=` is for the trust's roles only)."""
    return place_for(resources, user, school)


def trust_it(user: CurrentUser, resources: Res) -> SignedInUser:
    """The trust's IT team (`trust-<IT group>`, or the break-glass account), who add, export
    and remove schools; with no trust file there are no schools to manage (404)."""
    if resources.trust is None:
        raise NotFound("there is no trust file: this schoolgate serves one school")
    it_groups = {
        f"{TRUST_PREFIX}-{group}".casefold()
        for group, role in resources.settings.admin_groups.items()
        if role is Role.IT_TECHNICIAN
    }
    held = {group.casefold() for group in user.groups}
    trust_wide = user.source == "break-glass" or bool(held & it_groups)
    if not (user.every_school and user.has(Role.IT_TECHNICIAN) and trust_wide):
        raise NotAllowed("only the trust's IT team may add, export or remove schools; ask them")
    return user


def trust_reader(
    user: Annotated[
        SignedInUser,
        Depends(require_role(Role.BUSINESS_MANAGER, Role.DSL, Role.IT_TECHNICIAN)),
    ],
    resources: Res,
) -> SignedInUser:
    """Anyone with an admin role, when there is a trust (404 without one): the trust's roles
    see every school, a school's staff their own."""
    if resources.trust is None:
        raise NotFound("there is no trust file: this schoolgate serves one school")
    return user


ListEditor = Annotated[SignedInUser, Depends(list_editor)]
TrustIt = Annotated[SignedInUser, Depends(trust_it)]
TrustReader = Annotated[SignedInUser, Depends(trust_reader)]
# An IT technician may change the policy file (its rules and calendar): with a trust, which
# file is their Place's (their own school's, or for a trust role the base or `?school=`'s).
PolicyEditor = ItTechnician
ShadowEditor = Annotated[SignedInUser, Depends(shadow_editor)]
Place = Annotated[PolicyPlace, Depends(policy_place)]


def looks_like_id(value: str) -> bool:
    """Ids are UUIDs: anything else cannot name a row (and is never sent to the database)."""
    return _ID.fullmatch(value) is not None


def approved_exception(
    exception_id: Annotated[str, Path(max_length=36)], user: BusinessManager, session: Db
) -> ExceptionRow:
    """An approved exception, for the Business Manager (who lists and revokes them)."""
    row = session.get(ExceptionRow, exception_id) if looks_like_id(exception_id) else None
    if row is None:
        raise NotFound(f"there is no exception {exception_id[:36]!r}")
    return row


ApprovedException = Annotated[ExceptionRow, Depends(approved_exception)]


def _load_request(session: Session, request_id: str) -> UnblockRequestRow:
    row = session.get(UnblockRequestRow, request_id) if looks_like_id(request_id) else None
    if row is None:
        raise NotFound(f"there is no unblock request {request_id[:36]!r}")
    return row


def visible_unblock_request(
    request_id: Annotated[str, Path(max_length=36)], user: CurrentUser, session: Db
) -> UnblockRequestRow:
    """The request, if it is the signed-in person's own or they are the Business Manager."""
    row = _load_request(session, request_id)
    if not (user.has(Role.BUSINESS_MANAGER) or user.same_person(row.requester)):
        raise NotAllowed("you can see your own requests only")
    return row


def reviewable_unblock_request(
    request_id: Annotated[str, Path(max_length=36)], user: BusinessManager, session: Db
) -> UnblockRequestRow:
    """The request, if it exists, is still pending, and is not the reviewer's own (nobody
    approves their own request)."""
    row = _load_request(session, request_id)
    refusal = _why_not_review(user, row)
    if refusal is not None:
        raise refusal
    return row


def _why_not_review(user: SignedInUser, row: UnblockRequestRow) -> Conflict | NotAllowed | None:
    """Why this Business Manager may not decide this request now, or None."""
    if row.state is not RequestState.PENDING:
        return Conflict(f"this request was already {row.state.value} by {row.reviewed_by}")
    if user.same_person(row.requester) or user.same_person(row.blocked_user):
        return NotAllowed("this is your own request: another Business Manager must decide it")
    return None


async def check_csrf(request: Request) -> None:
    """Every unsafe request must carry this session's anti-forgery token (form field
    csrf_token or header X-CSRF-Token): a page on another site cannot know it."""
    if request.method in _SAFE_METHODS:
        return
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        try:
            form = await request.form(max_files=1, max_fields=200)
        except Exception:  # a malformed body: treat as no token (the answer is the same)
            form = None
        value = form.get(CSRF_FIELD) if form is not None else None
        token = value if isinstance(value, str) else None
    if not csrf_matches(session_of(request), token):
        raise CsrfFailed(
            "this form has expired or did not come from this site; go back, "
            "reload the page and try again"
        )


def client_ip(request: Request) -> str:
    """The client's address; behind a configured reverse proxy, the one it forwards."""
    return client_address(request, get_resources(request).settings.trusted_proxies)


def get_now() -> datetime:
    """The current instant, aware UTC (a dependency, so tests can fix it)."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(get_now)]


def may_review(user: SignedInUser, row: UnblockRequestRow) -> bool:
    """Whether to offer the decision forms: the same rule reviewable_unblock_request applies."""
    return user.has(Role.BUSINESS_MANAGER) and _why_not_review(user, row) is None
