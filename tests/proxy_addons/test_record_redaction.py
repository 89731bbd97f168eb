"""Secrets in URLs never reach the events store or an export (review finding 22): credential
parameters, tokens in paths (/reset/<token>), JWTs and e-mail addresses, in a table; and
through make_event, what is stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schoolgate.policy.model import Decision, Reason, Verdict
from schoolgate.proxy_addons.recording import make_event, redact_path, redact_query

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwdXBpbDEifQ.c2lnbmF0dXJlLXNpZw"


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("q=volcanoes&page=2", "q=volcanoes&page=2"),
        ("user=a&password=hunter2", "user=a&password=[redacted]"),
        ("api_key=abc&x=1", "api_key=[redacted]&x=1"),
        (
            "sig=abc&Signature=zz&X-Amz-Credential=c",
            "sig=[redacted]&Signature=[redacted]&X-Amz-Credential=[redacted]",
        ),
        ("code=123&state=s", "code=[redacted]&state=s"),
        ("otp=123456&ticket=ST-1", "otp=[redacted]&ticket=[redacted]"),
        ("email=jo.bloggs@school.sch.uk&x=1", "email=[email]&x=1"),
        ("to=jo.bloggs%40school.sch.uk", "to=[email]"),
        (f"t={JWT}&next=/home", "t=[redacted]&next=/home"),
        ("flag", "flag"),
    ],
)
def test_redact_query(query: str, kept: str) -> None:
    assert redact_query(query) == kept


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/wiki/Volcano", "/wiki/Volcano"),
        (
            "/news/2026-12-03-volcano-erupts-in-iceland",
            "/news/2026-12-03-volcano-erupts-in-iceland",
        ),
        ("/reset/3f9a8c7d2b", "/reset/[redacted]"),
        (
            "/account/password-reset/Zm9vYmFyYmF6/confirm",
            "/account/password-reset/[redacted]/confirm",
        ),
        ("/invite/abcdef12", "/invite/[redacted]"),
        ("/d/a9F3kLm2Qx7Rt8Vw1Yz4Bc6N/view", "/d/[redacted]/view"),
        ("/files/0123456789abcdef0123456789abcdef.pdf", "/files/[redacted].pdf"),
        (f"/auth/callback/{JWT}", "/auth/callback/[redacted]"),
        ("/users/jo.bloggs@school.sch.uk/profile", "/users/[email]/profile"),
        ("/reset/", "/reset/"),
    ],
)
def test_redact_path(path: str, kept: str) -> None:
    assert redact_path(path) == kept


def test_what_make_event_keeps_has_no_secret() -> None:
    event = make_event(
        decision=Decision(Verdict.ALLOW, Reason.RULE_ALLOW),
        at=datetime(2026, 12, 3, tzinfo=UTC),
        host="www.google.com",
        identity=None,
        role="pupil",
        ip="10.0.0.5",
        device=None,
        method="GET",
        scheme="https",
        port=443,
        target="/reset/Qm9ndXNUb2tlbjEyMzQ1Njc4OTA?q=jo@school.sch.uk&token=abc",
        intercepted=True,
        technique=None,
        evidence=None,
    )
    stored = f"{event.path}?{event.query} {event.search_terms}"
    for secret in ("Qm9ndXNUb2tlbjEyMzQ1Njc4OTA", "jo@school.sch.uk", "abc"):
        assert secret not in stored
    assert event.path == "/reset/[redacted]"
