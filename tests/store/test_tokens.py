"""Signed access-request tokens: round trip, forgery, expiry, and the secret file."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer

from schoolgate.store.tokens import (
    AccessClaims,
    AccessTokenError,
    load_or_create_secret,
    make_access_token,
    read_access_token,
)

SECRET = b"0123456789abcdef0123456789abcdef"
CLAIMS = AccessClaims(
    host="www.facebook.com",
    role="staff",
    user="staff1",
    category="facebook",
    reason="rule_block",
    at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
)


def test_round_trip() -> None:
    token = make_access_token(SECRET, CLAIMS)
    assert read_access_token(SECRET, token, max_age_seconds=10**9) == CLAIMS


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # damaged signature
        lambda t: make_access_token(b"another secret of enough length!!", CLAIMS),  # wrong key
        lambda t: URLSafeTimedSerializer(SECRET, salt="other").dumps({"host": "x"}),  # other salt
    ],
)
def test_forged_tokens_are_refused(tamper: object) -> None:
    token = tamper(make_access_token(SECRET, CLAIMS))  # type: ignore[operator]
    with pytest.raises(AccessTokenError, match="not genuine") as caught:
        read_access_token(SECRET, token, max_age_seconds=3600)
    assert caught.value.expired is False


def test_expired_tokens_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_access_token(SECRET, CLAIMS)
    import itsdangerous.timed

    later = datetime.now(UTC) + timedelta(hours=2)
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later.timestamp())
    with pytest.raises(AccessTokenError, match="older than 3600 seconds") as caught:
        read_access_token(SECRET, token, max_age_seconds=3600)
    assert caught.value.expired is True


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        make_access_token(SECRET, AccessClaims(host="x", role="pupil", at=datetime(2026, 1, 1)))


def test_secret_file_is_made_private_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "secret"
    first = load_or_create_secret(path)
    assert load_or_create_secret(path) == first
    assert len(first) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_short_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("short")
    with pytest.raises(ValueError, match="too short"):
        load_or_create_secret(path)
