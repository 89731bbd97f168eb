"""E-mail is encrypted unless turned off on purpose (security review finding 19): the
settings in store/alerts.py default to STARTTLS, refuse a login in clear text, and a server
that offers no STARTTLS gets nothing; tried against the real SMTP sink."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schoolgate.store.alerts import (
    Alert,
    EmailSecurity,
    parse_push_settings,
    push_alert,
    send_message,
)
from schoolgate.store.models import AlertSeverity
from tests.admin_api.mail_tls import MailTls, make_mail_tls
from tests.support.smtp_sink import smtp_sink

ALERT = Alert(
    "a1",
    datetime(2026, 12, 18, 10, 30, tzinfo=UTC),
    AlertSeverity.HIGH,
    "circumvention_attempt",
    "pupil1 tried a VPN",
    "pupil1",
)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> MailTls:
    return make_mail_tls(tmp_path_factory.mktemp("mail-tls"))


def email_yaml(port: int, extra: str = "") -> str:
    return (
        f"email: {{host: 127.0.0.1, port: {port}, from: gate@school.test, "
        f"to: [dsl@school.test]{extra}}}\n"
    )


def test_starttls_is_the_default() -> None:
    settings = parse_push_settings(email_yaml(2525), source="push.yaml")
    assert settings.email is not None
    assert settings.email.security is EmailSecurity.STARTTLS
    no_port = parse_push_settings("email: {host: h, from: a@b.c, to: [d@e.f]}", source="t")
    assert no_port.email is not None
    assert no_port.email.smtp_port == 587


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (", starttls: false", "security: none"),
        (", security: none, username: gate", "clear text"),
        (", security: tls, starttls: true", "not both"),
    ],
)
def test_clear_text_needs_an_explicit_choice_and_never_carries_a_login(
    extra: str, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        parse_push_settings(email_yaml(2525, extra), source="push.yaml")


def test_a_server_without_starttls_gets_nothing() -> None:
    with smtp_sink() as smtp:  # offers no STARTTLS
        settings = parse_push_settings(email_yaml(smtp.port), source="t")
        assert settings.email is not None
        with pytest.raises(smtplib.SMTPNotSupportedError):
            send_message(settings.email, subject="s", text="pupil1")
        assert smtp.messages == []


def test_alerts_and_the_login_go_encrypted(tls: MailTls, tmp_path: Path) -> None:
    password = tmp_path / "smtp-password"
    password.write_text("s3cret\n")
    with smtp_sink(tls.server) as smtp:
        settings = parse_push_settings(
            email_yaml(
                smtp.port, f", username: gate, password_file: '{password}', ca_file: '{tls.cert}'"
            ),
            source="t",
        )
        assert asyncio.run(push_alert(settings, ALERT)) == {"email": None}
        (mail,) = smtp.messages
        assert mail.encrypted
        assert mail.login == "gate"
        assert "pupil1 tried a VPN" in mail.message["Subject"]


def test_a_certificate_the_school_does_not_trust_is_refused(tls: MailTls) -> None:
    with smtp_sink(tls.server) as smtp:
        settings = parse_push_settings(email_yaml(smtp.port), source="t")  # system CAs only
        assert settings.email is not None
        with pytest.raises(ssl.SSLCertVerificationError):
            send_message(settings.email, subject="s", text="t")
        assert smtp.messages == []


def test_clear_text_when_turned_off_on_purpose() -> None:
    with smtp_sink() as smtp:
        settings = parse_push_settings(email_yaml(smtp.port, ", security: none"), source="t")
        assert settings.email is not None
        send_message(settings.email, subject="Weekly summary", text="3 blocks")
        (mail,) = smtp.messages
        assert not mail.encrypted
