"""Sessions in signed cookies (itsdangerous): who is signed in, since when, when their roles were
last read from the directory, and the session's anti-forgery (CSRF) token that every form and
every unsafe API call must carry back.

The cookie is HttpOnly, SameSite=Lax and Secure (configurable for the http:// demo); it expires
after `session_max_age_seconds`. Signing out also ends it on the server: a per-person "valid
after" stamp in the database (`end_sessions`), checked on every request (admin_api/auth.py
`load_session`), refuses every cookie issued before it, copies included.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.policy.names import canonical_user
from schoolgate.store.models import SessionStampRow

COOKIE = "sg_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SALT = "schoolgate.admin-session.v1"


@dataclass
class SessionData:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    user: SignedInUser | None = None
    changed: bool = True  # new or modified: the response sets the cookie
    issued: float = field(default_factory=time.time)  # Unix time the session began
    checked: float = field(default_factory=time.time)  # when the roles were last read


class SessionCodec:
    """Reads and writes the session cookie."""

    def __init__(self, secret: bytes, *, max_age_seconds: int, secure: bool) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age_seconds = max_age_seconds
        self.secure = secure

    def read(self, request: Request) -> SessionData:
        raw = request.cookies.get(COOKIE)
        if not raw or len(raw) > 8192:
            return SessionData()
        try:
            payload: Any = self._serializer.loads(raw, max_age=self.max_age_seconds)
            return SessionData(
                csrf=str(payload["csrf"]),
                user=_user(payload.get("user")),
                changed=False,
                issued=float(payload.get("t", 0)),
                checked=float(payload.get("c", 0)),
            )
        except (BadSignature, KeyError, TypeError, ValueError):
            return SessionData()  # expired, forged or from an older version: start again

    def write(self, response: Response, session: SessionData) -> None:
        payload: dict[str, Any] = {
            "csrf": session.csrf,
            "user": None,
            "t": session.issued,
            "c": session.checked,
        }
        if session.user is not None:
            u = session.user
            payload["user"] = {
                "u": u.username,
                "n": u.display_name,
                "r": sorted(u.roles),
                "p": u.policy_role,
                "g": sorted(u.groups),
                "s": u.source,
                "sc": u.school,
                "e": u.every_school,
            }
        response.set_cookie(
            COOKIE,
            self._serializer.dumps(payload),
            max_age=self.max_age_seconds,
            httponly=True,
            samesite="lax",
            secure=self.secure,
            path="/",
        )


def _user(data: Any) -> SignedInUser | None:
    if data is None:
        return None
    return SignedInUser(
        username=str(data["u"]),
        display_name=str(data["n"]),
        roles=frozenset(Role(r) for r in data["r"]),
        policy_role=str(data["p"]),
        groups=frozenset(str(g) for g in data["g"]),
        source=str(data["s"]),
        school=str(data["sc"]) if data.get("sc") is not None else None,
        every_school=data.get("e") is True,
    )


def session_of(request: Request) -> SessionData:
    """The session the middleware loaded for this request."""
    session: SessionData = request.state.session
    return session


def start_session(request: Request, user: SignedInUser | None) -> SessionData:
    """A new session (new CSRF token) for a sign-in or sign-out: never reuse the old one."""
    session = SessionData(user=user)
    request.state.session = session
    return session


def csrf_matches(session: SessionData, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf.encode(), str(token).encode())


# --- the server's side: "valid after" stamps ------------------------------------------------


def _stamp_key(username: str) -> str:
    try:
        return canonical_user(username)
    except ValueError:
        return username


def end_sessions(db: Session, *, username: str, at: datetime) -> None:
    """Every session of `username` issued up to `at` ends (signing out, or removing someone);
    commits."""
    key = _stamp_key(username)
    for _ in range(2):  # a second try if another sign-out made the row meanwhile
        row = db.get(SessionStampRow, key)
        if row is None:
            db.add(SessionStampRow(user=key, valid_after=at))
        elif row.valid_after < at:
            row.valid_after = at
        try:
            db.commit()
            return
        except IntegrityError:
            db.rollback()


def valid_after(db: Session, *, username: str) -> datetime | None:
    """Sessions of `username` issued before this instant have ended (None: no stamp)."""
    return db.scalars(
        select(SessionStampRow.valid_after).where(SessionStampRow.user == _stamp_key(username))
    ).first()
