"""Alerts for the DSL: `raise_alert` records one with a severity (low: a single attempt; medium:
repeated attempts; high: a sanction placed or recommended, a hidden destination or a tunnel),
and `push_alert` sends the urgent ones at once by email (SMTP) and/or a webhook. Pushing is off
until a push settings file says where to.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import update
from sqlalchemy.orm import Session

from schoolgate.policy.techniques import HIGH_SEVERITY, Technique
from schoolgate.store.models import AlertRow, AlertSeverity, AlertState

_RANK = {AlertSeverity.LOW: 0, AlertSeverity.MEDIUM: 1, AlertSeverity.HIGH: 2}


class AlertKind:
    """The `kind` strings of alerts (a contract with the admin's views)."""

    ATTEMPT = "circumvention_attempt"
    SANCTION_PLACED = "sanction_placed"
    SANCTION_RECOMMENDED = "sanction_recommended"


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    at: datetime  # aware
    severity: AlertSeverity
    kind: str
    summary: str
    user: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "severity": str(self.severity),
            "kind": self.kind,
            "user": self.user,
            "summary": self.summary,
            "details": dict(self.details),
        }


def attempt_severity(technique: str) -> AlertSeverity:
    """How urgent one attempt with this technique is."""
    if technique in HIGH_SEVERITY:
        return AlertSeverity.HIGH
    if technique == Technique.REPEATED_ATTEMPTS:
        return AlertSeverity.MEDIUM
    return AlertSeverity.LOW


def raise_alert(
    *,
    session: Session,
    severity: AlertSeverity,
    kind: str,
    summary: str,
    at: datetime,
    user: str | None = None,
    details: Mapping[str, Any] | None = None,
    school: str | None = None,
) -> Alert:
    """Record an open alert in the caller's transaction; returns it (for pushing). `school`:
    whose alert it is with a trust file (None: a single school)."""
    alert = Alert(str(uuid.uuid4()), at, severity, kind, summary, user, dict(details or {}))
    session.add(
        AlertRow(
            id=alert.id,
            at=at,
            severity=severity,
            kind=kind,
            user=user,
            summary=summary,
            details=dict(alert.details),
            state=AlertState.OPEN,
            school=school,
        )
    )
    return alert


def mark_pushed(*, session: Session, alert_id: str, at: datetime) -> None:
    session.execute(update(AlertRow).where(AlertRow.id == alert_id).values(pushed_at=at))


# --- push settings (a YAML file, validated strictly) ------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailSecurity(StrEnum):
    """How the connection to the mail server is protected."""

    STARTTLS = "starttls"  # upgrade a plain connection (port 587); the default
    TLS = "tls"  # TLS from the first byte (port 465)
    NONE = "none"  # clear text: only when turned off on purpose, and never with a login


_DEFAULT_PORT = {EmailSecurity.STARTTLS: 587, EmailSecurity.TLS: 465, EmailSecurity.NONE: 25}


class EmailSettings(_Strict):
    """Where e-mail goes. The connection is encrypted (STARTTLS, or TLS with `security: tls`)
    unless `security: none` turns that off explicitly; a login is refused without it."""

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)  # None: the security's usual port
    security: EmailSecurity = EmailSecurity.STARTTLS
    starttls: bool | None = None  # the older switch: true is `security: starttls`
    sender: str = Field(alias="from", min_length=3)
    to: tuple[str, ...] = Field(min_length=1)
    username: str | None = None
    password_file: Path | None = None  # the password is read from here, never written inline
    ca_file: Path | None = None  # a school's own CA for the mail server; else the system's
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _encrypted_unless_turned_off(self) -> EmailSettings:
        if self.starttls is False:
            raise ValueError(
                "starttls: false would send e-mail (pupils' names, alerts) in "
                "clear text; remove it to use STARTTLS, or write `security: none` "
                "if the mail server really has no TLS"
            )
        if self.starttls and self.security is not EmailSecurity.STARTTLS:
            raise ValueError("give either `security` or the older `starttls`, not both")
        if self.security is EmailSecurity.NONE and self.username:
            raise ValueError(
                "a login (username) would send the password in clear text with "
                "`security: none`; use `security: starttls` or `tls`"
            )
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or _DEFAULT_PORT[self.security]


class WebhookSettings(_Strict):
    url: str
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=5)  # more tries after the first

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class PushSettings(_Strict):
    """Where urgent alerts go at once. Neither channel set: nothing is pushed."""

    min_severity: AlertSeverity = AlertSeverity.HIGH
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None

    def wants(self, alert: Alert) -> bool:
        return (self.email is not None or self.webhook is not None) and _RANK[
            alert.severity
        ] >= _RANK[self.min_severity]


NO_PUSH = PushSettings()


def parse_push_settings(text: str, *, source: str) -> PushSettings:
    """Parse the YAML push settings; ValueError lists every problem with its place."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    try:
        return PushSettings.model_validate(raw)
    except ValidationError as exc:
        found = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        ]
        raise ValueError("\n  ".join([f"{source}: {len(found)} problem(s)", *found])) from None


def load_push_settings(path: Path) -> PushSettings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the alert push settings: {exc.strerror}") from None
    return parse_push_settings(text, source=str(path))


# --- pushing -----------------------------------------------------------------------------------


def send_email(settings: EmailSettings, alert: Alert) -> None:
    """Send one alert by SMTP (blocking: call it in a thread). Raises on failure."""
    send_message(
        settings,
        subject=f"[schoolgate {alert.severity} alert] {alert.summary}",
        text=_email_text(alert),
    )


def send_message(
    settings: EmailSettings, *, subject: str, text: str, to: tuple[str, ...] | None = None
) -> None:
    """Send one plain-text e-mail by SMTP, encrypted as `settings.security` says (blocking:
    call it in a thread); `to` overrides the settings' recipients. The server's certificate
    is checked (against `ca_file` if given). Raises on failure: a server that offers no
    STARTTLS is refused, never used in clear text."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = ", ".join(to or settings.to)
    message.set_content(text)
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    smtp: smtplib.SMTP
    if settings.security is EmailSecurity.TLS:
        smtp = smtplib.SMTP_SSL(
            settings.host, settings.smtp_port, timeout=settings.timeout_seconds, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.smtp_port, timeout=settings.timeout_seconds)
    with smtp:
        if settings.security is EmailSecurity.STARTTLS:
            smtp.starttls(context=context)  # SMTPNotSupportedError if the server cannot
        if settings.username:
            if settings.password_file is None:
                raise ValueError("email.username is set but email.password_file is not")
            password = settings.password_file.read_text(encoding="utf-8").strip()
            smtp.login(settings.username, password)
        smtp.send_message(message)


def _email_text(alert: Alert) -> str:
    lines = [
        alert.summary,
        "",
        f"Severity: {alert.severity}",
        f"When (UTC): {alert.at.isoformat(timespec='seconds')}",
        f"User: {alert.user or 'unknown'}",
    ]
    lines += [f"{name}: {value}" for name, value in alert.details.items()]
    lines += ["", "Review it in the schoolgate admin (Alerts)."]
    return "\n".join(lines) + "\n"


def post_webhook(settings: WebhookSettings, alert: Alert) -> None:
    """POST the alert as JSON (blocking: call it in a thread); retried a bounded number of
    times on a connection error or a 5xx answer. Raises after the last try."""
    body = json.dumps(alert.as_json()).encode()
    last: Exception | None = None
    with httpx.Client(timeout=settings.timeout_seconds, trust_env=False) as client:
        for attempt in range(settings.retries + 1):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
            try:
                response = client.post(
                    settings.url, content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                last = exc
                continue
            if response.status_code < 500:
                response.raise_for_status()
                return
            last = RuntimeError(f"{settings.url} answered {response.status_code}")
    raise RuntimeError(
        f"posting the alert to the webhook failed after {settings.retries + 1} tries: {last}"
    )


async def push_alert(settings: PushSettings, alert: Alert) -> dict[str, str | None]:
    """Push one alert on every configured channel, in worker threads; per channel None if it
    went, else what went wrong. Does nothing for an alert below `min_severity`."""
    if not settings.wants(alert):
        return {}
    jobs: dict[str, Any] = {}
    if settings.email is not None:
        jobs["email"] = asyncio.to_thread(send_email, settings.email, alert)
    if settings.webhook is not None:
        jobs["webhook"] = asyncio.to_thread(post_webhook, settings.webhook, alert)
    results = await asyncio.gather(*jobs.values(), return_exceptions=True)
    return {
        name: (
            None if not isinstance(result, BaseException) else f"{type(result).__name__}: {result}"
        )
        for name, result in zip(jobs, results, strict=True)
    }
