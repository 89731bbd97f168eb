"""Alerts: recorded in a real SQLite database; pushed to a real local SMTP server and webhook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from schoolgate.policy.techniques import Technique
from schoolgate.store.alerts import (
    Alert,
    AlertKind,
    PushSettings,
    attempt_severity,
    load_push_settings,
    mark_pushed,
    parse_push_settings,
    push_alert,
    raise_alert,
)
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import AlertRow, AlertSeverity, AlertState
from tests.admin_api.mail_tls import make_mail_tls
from tests.support.smtp_sink import smtp_sink
from tests.support.webhook_sink import webhook_sink

AT = datetime(2025, 3, 4, 10, 15, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'sg.db'}"
    upgrade(url)
    return make_engine(url)


def an_alert(severity: AlertSeverity = AlertSeverity.HIGH) -> Alert:
    return Alert(
        "a1",
        AT,
        severity,
        AlertKind.SANCTION_PLACED,
        "pupil1 is now supervised-only",
        "pupil1",
        {"attempts": 3},
    )


@pytest.mark.parametrize(
    ("technique", "severity"),
    [
        (Technique.WEB_PROXY, AlertSeverity.LOW),
        (Technique.ARCHIVE_VIEWER, AlertSeverity.LOW),
        (Technique.REPEATED_ATTEMPTS, AlertSeverity.MEDIUM),
        (Technique.ECH, AlertSeverity.HIGH),
        (Technique.VPN, AlertSeverity.HIGH),
        (Technique.TUNNEL_PROTOCOL, AlertSeverity.HIGH),
    ],
)
def test_attempt_severity(technique: Technique, severity: AlertSeverity) -> None:
    assert attempt_severity(technique) is severity


def test_raise_alert_records_an_open_alert(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        alert = raise_alert(
            session=session,
            severity=AlertSeverity.LOW,
            kind=AlertKind.ATTEMPT,
            summary="pupil1 tried a web proxy",
            at=AT,
            user="pupil1",
            details={"host": "proxysite.test"},
        )
    with Session(engine) as session, session.begin():
        row = session.get(AlertRow, alert.id)
        assert row is not None
        assert (row.severity, row.state, row.user, row.at) == (
            AlertSeverity.LOW,
            AlertState.OPEN,
            "pupil1",
            AT,
        )
        assert row.details == {"host": "proxysite.test"}
        assert row.pushed_at is None
        mark_pushed(session=session, alert_id=alert.id, at=AT)
    with Session(engine) as session:
        assert session.scalars(select(AlertRow.pushed_at)).one() == AT


def test_push_settings_parse_and_report_every_problem(tmp_path: Path) -> None:
    settings = parse_push_settings(
        "email: {host: 127.0.0.1, port: 2525, from: gate@school.test, to: [dsl@school.test]}\n"
        "webhook: {url: 'http://127.0.0.1:9/hook', retries: 1}\n",
        source="push.yaml",
    )
    assert settings.email is not None
    assert settings.email.to == ("dsl@school.test",)
    assert settings.webhook is not None
    assert settings.min_severity is AlertSeverity.HIGH
    with pytest.raises(ValueError, match=r"push\.yaml: 3 problem") as info:
        parse_push_settings(
            "email: {host: h, to: []}\nwebhook: {url: ftp://x}\n", source="push.yaml"
        )
    text = str(info.value)
    assert "email.from" in text
    assert "email.to" in text
    assert "not an http:// or https:// URL" in text
    with pytest.raises(ValueError, match="cannot read"):
        load_push_settings(tmp_path / "missing.yaml")


def test_nothing_is_pushed_unless_configured_and_urgent() -> None:
    assert not PushSettings().wants(an_alert())
    with webhook_sink() as hook:
        settings = parse_push_settings(f"webhook: {{url: '{hook.url}'}}", source="t")
        assert asyncio.run(push_alert(settings, an_alert(AlertSeverity.MEDIUM))) == {}
        assert hook.tries == 0


def test_high_alert_is_emailed_and_posted(tmp_path: Path) -> None:
    password = tmp_path / "smtp-password"
    password.write_text("s3cret\n")
    tls = make_mail_tls(tmp_path)  # e-mail goes over STARTTLS by default
    with smtp_sink(tls.server) as smtp, webhook_sink(fail_first=1) as hook:
        settings = parse_push_settings(
            f"email: {{host: 127.0.0.1, port: {smtp.port}, from: gate@school.test, "
            f"to: [dsl@school.test, deputy@school.test], username: gate, "
            f"password_file: '{password}', ca_file: '{tls.cert}'}}\n"
            f"webhook: {{url: '{hook.url}', retries: 2, timeout_seconds: 2}}\n",
            source="t",
        )
        result = asyncio.run(push_alert(settings, an_alert()))
        assert result == {"email": None, "webhook": None}
        (mail,) = smtp.messages
        assert mail.recipients == ["dsl@school.test", "deputy@school.test"]
        assert mail.login == "gate"
        assert mail.encrypted
        assert "[schoolgate high alert]" in mail.message["Subject"]
        assert "pupil1" in mail.message.get_payload()
        assert hook.tries == 2  # the first try got a 503 and was retried
        assert hook.posts == [an_alert().as_json()]


def test_a_failing_channel_is_reported_not_raised() -> None:
    with webhook_sink(fail_first=10) as hook:
        settings = parse_push_settings(f"webhook: {{url: '{hook.url}', retries: 1}}", source="t")
        result = asyncio.run(push_alert(settings, an_alert()))
    assert result["webhook"] is not None
    assert "after 2 tries" in result["webhook"]
    assert hook.tries == 2  # bounded
