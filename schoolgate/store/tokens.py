"""Signed "ask for access" tokens: the block page makes one, the admin's request form reads it.

A token carries who was blocked from what, and when, signed with the school's secret so the
form can trust it (itsdangerous, HMAC-SHA1 by default, with a timestamp for the expiry check).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

# Salting the serializer keeps these tokens from being valid anywhere else the secret is used.
_SALT = "schoolgate.access-request.v1"
SECRET_BYTES = 32


class AccessTokenError(ValueError):
    """A token could not be trusted: forged, damaged, or too old (`expired` says which)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What the block page says was blocked, for whom and when (`at` is aware UTC)."""

    host: str
    role: str
    at: datetime
    user: str | None = None
    category: str | None = None
    reason: str | None = None
    school: str | None = None  # with a trust: the school the gateway decided for


def make_access_token(secret: bytes, claims: AccessClaims) -> str:
    """Sign `claims` into a URL-safe token."""
    if claims.at.tzinfo is None:
        raise ValueError("AccessClaims.at must be an aware datetime (for example in UTC)")
    payload = asdict(claims)
    payload["at"] = claims.at.astimezone(UTC).isoformat()
    return str(URLSafeTimedSerializer(secret, salt=_SALT).dumps(payload))


def read_access_token(secret: bytes, token: str, *, max_age_seconds: int) -> AccessClaims:
    """The claims of a genuine token no older than `max_age_seconds`; AccessTokenError if not."""
    serializer = URLSafeTimedSerializer(secret, salt=_SALT)
    try:
        payload: Any = serializer.loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise AccessTokenError(
            f"the access-request link is older than {max_age_seconds} seconds; open the "
            "blocked page again to get a fresh link",
            expired=True,
        ) from None
    except BadSignature:
        raise AccessTokenError(
            "the access-request link is not genuine (its signature does not match); open "
            "the blocked page again and use its 'Ask for access' link"
        ) from None
    try:
        return AccessClaims(
            host=str(payload["host"]),
            role=str(payload["role"]),
            at=datetime.fromisoformat(str(payload["at"])),
            user=_optional(payload.get("user")),
            category=_optional(payload.get("category")),
            reason=_optional(payload.get("reason")),
            school=_optional(payload.get("school")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AccessTokenError(
            f"the access-request link is signed but incomplete ({exc})"
        ) from None


def load_or_create_secret(path: Path) -> bytes:
    """The signing secret kept in `path`; a new random one is written (mode 0600) if missing."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = secrets.token_hex(SECRET_BYTES)
        # O_EXCL: if another process created it meanwhile, fall through and read theirs.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            text = path.read_text(encoding="ascii").strip()
        else:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(text + "\n")
    if len(text) < 32:
        raise ValueError(
            f"{path}: the secret is too short ({len(text)} characters); delete the "
            "file to have a new one generated, or put at least 32 random characters"
        )
    return text.encode("ascii")


def _optional(value: object) -> str | None:
    return None if value is None else str(value)
