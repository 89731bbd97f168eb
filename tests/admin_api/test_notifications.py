"""Nobody left waiting (admin_api/notifications.py): the counts beside the menu and on the start
page, and the scheduled e-mails (new requests, each or as a daily digest, to the Business
Manager; the outcome to the requester; new alerts and the weekly summary to the DSL), sent
once each, through the real SMTP sink over STARTTLS. A requester's address comes from the
directory (the demo users file here; LDAP's `mail` in tests/store/test_directory.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from schoolgate.admin_api.notifications import (
    DirectoryAddresses,
    NotificationSettings,
    parse_notification_settings,
    run_for_schools,
    run_notifications,
)
from schoolgate.admin_api.resources import Resources
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.alerts import EmailSettings
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.directory import DirectoryUnavailable, DirectoryUser, LocalDirectory
from schoolgate.store.models import AlertRow, AlertSeverity, AlertState
from tests.admin_api.conftest import World, client_for
from tests.admin_api.mail_tls import MailTls, make_mail_tls
from tests.support.smtp_sink import Received, SmtpSink, smtp_sink

DEMO_USERS = (
    Path(__file__).resolve().parents[2] / "schoolgate" / "store" / "data" / "demo-users.yaml"
)
LONDON = ZoneInfo("Europe/London")
# Friday 18 December 2026, 10:00 in London (GMT).
NOW = datetime(2026, 12, 18, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> MailTls:
    return make_mail_tls(tmp_path_factory.mktemp("mail-tls"))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'notices.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def sink(tls: MailTls) -> Iterator[SmtpSink]:
    with smtp_sink(tls.server) as found:
        yield found


def settings_for(sink: SmtpSink, tls: MailTls, extra: str = "") -> NotificationSettings:
    return parse_notification_settings(
        f"email: {{host: 127.0.0.1, port: {sink.port}, from: gate@school.test, "
        f"to: [unused@school.test], ca_file: '{tls.cert}'}}\n"
        "admin_url: https://admin.school.test\n"
        "business_manager: {to: [bursar@school.test]}\n"
        "dsl: {to: [dsl@school.test]}\n" + extra,
        source="notifications.yaml",
    )


def add_request(
    session: Session,
    *,
    host: str,
    at: datetime,
    requester: str = "pupil1",
    state: RequestState = RequestState.PENDING,
    reviewed_at: datetime | None = None,
    note: str | None = None,
    ends: datetime | None = None,
    school: str | None = None,
) -> str:
    row_id = str(uuid.uuid4())
    session.add(
        UnblockRequestRow(
            id=row_id,
            created_at=at,
            requester=requester,
            requester_name=requester.title(),
            requester_role="pupil",
            blocked_user=requester,
            blocked_role="pupil",
            blocked_at=at,
            block_reason="rule_block",
            from_block_page=True,
            host=host,
            category="social",
            why="For my Viking project homework.",
            state=state,
            reviewed_by="bursar1" if reviewed_at else None,
            reviewed_at=reviewed_at,
            review_note=note,
            grant={"ends": ends.isoformat()} if ends else None,
            school=school,
        )
    )
    session.commit()
    return row_id


def text_of(mail: Received) -> str:
    payload = mail.message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode().replace("\r\n", "\n")


def run(
    db: sessionmaker[Session], settings: NotificationSettings, now: datetime, state: Path
) -> list[str]:
    addresses = DirectoryAddresses(LocalDirectory(DEMO_USERS))
    with db() as session:
        sent = run_notifications(
            session, settings, now=now, zone=LONDON, state_file=state, address_of=addresses
        )
    addresses.close()
    assert sent.failed == []
    return [subject for _to, subject in sent.mails]


def test_new_requests_reach_the_business_manager_once(
    db: sessionmaker[Session], sink: SmtpSink, tls: MailTls, tmp_path: Path
) -> None:
    with db() as session:
        first = add_request(session, host="www.tiktok.com", at=NOW - timedelta(minutes=20))
        add_request(session, host="www.reddit.com", at=NOW - timedelta(minutes=5))
    settings = settings_for(sink, tls)
    state = tmp_path / "state.json"
    assert run(db, settings, NOW, state) == ["2 new unblock requests waiting for you"]
    (mail,) = sink.messages
    assert mail.encrypted
    assert mail.recipients == ["bursar@school.test"]
    body = text_of(mail)
    assert (
        "www.tiktok.com (social media), asked by Pupil1 (pupil1) on Friday 18 December, "
        "09:40" in body
    )
    assert f"https://admin.school.test/requests/{first}" in body
    assert run(db, settings, NOW + timedelta(minutes=5), state) == []  # nothing new
    with db() as session:
        add_request(session, host="www.discord.com", at=NOW + timedelta(minutes=6))
    assert run(db, settings, NOW + timedelta(minutes=10), state) == [
        "1 new unblock request waiting for you"
    ]


def test_a_daily_digest_comes_once_a_day_at_its_time(
    db: sessionmaker[Session], sink: SmtpSink, tls: MailTls, tmp_path: Path
) -> None:
    with db() as session:
        add_request(session, host="www.tiktok.com", at=NOW - timedelta(hours=1))
    settings = settings_for(sink, tls).model_copy(
        update={
            "business_manager": parse_notification_settings(
                "email: {host: h, from: a@b.c, to: [d@e.f]}\n"
                "business_manager: {to: [bursar@school.test], mode: daily, daily_at: '15:30'}",
                source="t",
            ).business_manager
        }
    )
    state = tmp_path / "state.json"
    assert run(db, settings, NOW, state) == []  # 10:00: not yet
    at_four = datetime(2026, 12, 18, 16, 0, tzinfo=UTC)
    assert run(db, settings, at_four, state) == ["Daily digest: 1 unblock request waiting"]
    assert run(db, settings, at_four + timedelta(hours=2), state) == []  # once a day


def test_the_requester_hears_the_outcome_where_an_address_is_known(
    db: sessionmaker[Session], sink: SmtpSink, tls: MailTls, tmp_path: Path
) -> None:
    with db() as session:
        add_request(
            session,
            host="www.bbc.co.uk",
            at=NOW - timedelta(hours=2),
            requester="teacher1",
            state=RequestState.APPROVED,
            reviewed_at=NOW - timedelta(minutes=30),
            ends=datetime(2026, 12, 18, 14, 0, tzinfo=UTC),
        )
        add_request(
            session,
            host="www.reddit.com",
            at=NOW - timedelta(hours=2),
            requester="teacher1",
            state=RequestState.DENIED,
            reviewed_at=NOW - timedelta(minutes=20),
            note="Please use the library.",
        )
        add_request(
            session,
            host="www.tiktok.com",
            at=NOW - timedelta(hours=2),
            requester="pupil7",
            state=RequestState.DENIED,
            reviewed_at=NOW - timedelta(minutes=10),
            note="No.",
        )
    settings = settings_for(sink, tls, "").model_copy(
        update={"business_manager": None, "dsl": None}
    )
    state = tmp_path / "state.json"
    assert run(db, settings, NOW, state) == [
        "Yes: you can use www.bbc.co.uk until Friday 18 December, 14:00",
        "Not this time: www.reddit.com",
    ]  # pupil7 is unknown: their page tells them
    assert [m.recipients for m in sink.messages] == [["teacher1@demo.school.example"]] * 2
    denied = text_of(sink.messages[1])
    assert "The reason: Please use the library." in denied
    assert run(db, settings, NOW + timedelta(minutes=5), state) == []


def test_the_dsl_gets_new_alerts_and_the_weekly_summary(
    db: sessionmaker[Session], sink: SmtpSink, tls: MailTls, tmp_path: Path
) -> None:
    with db() as session:
        for severity in (AlertSeverity.LOW, AlertSeverity.HIGH):
            session.add(
                AlertRow(
                    id=str(uuid.uuid4()),
                    at=NOW - timedelta(minutes=3),
                    severity=severity,
                    kind="circumvention_attempt",
                    user="pupil1",
                    summary=f"pupil1: a {severity} attempt",
                    details={},
                    state=AlertState.OPEN,
                )
            )
        session.commit()
    settings = settings_for(sink, tls).model_copy(update={"business_manager": None})
    state = tmp_path / "state.json"
    assert run(db, settings, NOW, state) == ["1 new safeguarding alert"]  # low is left out
    body = text_of(sink.messages[0])
    assert "HIGH: pupil1: a high attempt" in body
    monday_nine = datetime(2026, 12, 21, 9, 0, tzinfo=UTC)
    assert run(db, settings, monday_nine, state) == ["Weekly summary: week of 14 December"]
    assert run(db, settings, monday_nine + timedelta(hours=1), state) == []


def test_a_failed_email_is_tried_again_at_the_next_run(
    db: sessionmaker[Session], tmp_path: Path
) -> None:
    with db() as session:
        add_request(session, host="www.tiktok.com", at=NOW - timedelta(minutes=5))
    settings = parse_notification_settings(
        "email: {host: 127.0.0.1, port: 9, from: a@b.c, to: [d@e.f], timeout_seconds: 2}\n"
        "business_manager: {to: [bursar@school.test]}\nrequesters: false\n",
        source="t",
    )
    state = tmp_path / "state.json"
    calls: list[str] = []

    def broken(_settings: EmailSettings, subject: str, _text: str, _to: tuple[str, ...]) -> None:
        calls.append(subject)
        raise ConnectionRefusedError("the mail server is down")

    with db() as session:
        sent = run_notifications(
            session, settings, now=NOW, zone=LONDON, state_file=state, mailer=broken
        )
        assert sent.failed
        again = run_notifications(
            session, settings, now=NOW, zone=LONDON, state_file=state, mailer=broken
        )
    assert again.failed
    assert calls == ["1 new unblock request waiting for you"] * 2


def test_the_business_manager_sees_the_count_on_every_page(
    app: FastAPI, world: World, resources: Resources
) -> None:
    with resources.sessions() as session:
        waiting = session.scalar(
            select(func.count())
            .select_from(UnblockRequestRow)
            .where(UnblockRequestRow.state == RequestState.PENDING)
        )
    client, _ = client_for(app, "business_manager")
    home = client.get("/").text
    assert f"<strong>{waiting}</strong> unblock request" in home
    lists = client.get("/lists").text
    assert f'<span class="count">{waiting}<span class="visually-hidden"> waiting' in lists
    pupil, _ = client_for(app, "pupil")
    assert 'class="count"' not in pupil.get("/").text


def test_an_address_map_in_the_file_is_refused_in_words() -> None:
    with pytest.raises(ValueError, match="comes from the directory"):
        parse_notification_settings(
            "email: {host: h, from: a@b.c, to: [d@e.f]}\naddresses: {teacher1: t@school.test}\n",
            source="n.yaml",
        )


class _Down:
    """A directory that cannot answer (the DC is down)."""

    async def lookup(self, username: str) -> DirectoryUser | None:
        raise DirectoryUnavailable("the directory did not answer")


def test_a_directory_outage_keeps_the_answer_for_the_next_run(
    db: sessionmaker[Session], sink: SmtpSink, tls: MailTls, tmp_path: Path
) -> None:
    with db() as session:
        add_request(
            session,
            host="www.bbc.co.uk",
            at=NOW - timedelta(hours=2),
            requester="teacher1",
            state=RequestState.DENIED,
            reviewed_at=NOW - timedelta(minutes=30),
            note="Use the library copy.",
        )
    settings = settings_for(sink, tls).model_copy(update={"business_manager": None, "dsl": None})
    state = tmp_path / "state.json"
    down = DirectoryAddresses(_Down())  # type: ignore[arg-type]
    with db() as session:
        sent = run_notifications(
            session, settings, now=NOW, zone=LONDON, state_file=state, address_of=down
        )
    down.close()
    assert sent.mails == []
    assert sent.failed == ["address of teacher1: the directory did not answer"]
    assert run(db, settings, NOW + timedelta(minutes=5), state) == ["Not this time: www.bbc.co.uk"]


def test_with_a_trust_each_schools_people_get_their_own_schools_requests_only(
    db: sessionmaker[Session], sink: SmtpSink, tls: MailTls, tmp_path: Path
) -> None:
    """docs/trust.md: a school's Business Manager is mailed their own school's requests (a
    pupil's name and reason), never another school's; the trust's address gets every school's."""
    with db() as session:
        add_request(session, host="oak-site.example", at=NOW - timedelta(minutes=9), school="oak")
        add_request(session, host="elm-site.example", at=NOW - timedelta(minutes=8), school="elm")
    settings = settings_for(
        sink,
        tls,
        "schools:\n"
        "  oak: {business_manager: {to: [oak-bursar@school.test]}}\n"
        "  elm: {business_manager: {to: [elm-bursar@school.test]}, dsl: {to: [elm-dsl@school.test]}}\n",
    )
    sent = run_for_schools(db, settings, now=NOW, zone=LONDON, state_file=tmp_path / "state.json")
    assert sent.failed == []
    bodies = {tuple(mail.recipients): text_of(mail) for mail in sink.messages}
    assert set(bodies) == {
        ("bursar@school.test",),
        ("oak-bursar@school.test",),
        ("elm-bursar@school.test",),
    }
    trusts = bodies[("bursar@school.test",)]
    assert "oak-site.example" in trusts
    assert "elm-site.example" in trusts
    oaks, elms = bodies[("oak-bursar@school.test",)], bodies[("elm-bursar@school.test",)]
    assert "oak-site.example" in oaks
    assert "elm-site.example" not in oaks
    assert "elm-site.example" in elms
    assert "oak-site.example" not in elms
    again = run_for_schools(
        db,
        settings,
        now=NOW + timedelta(minutes=5),
        zone=LONDON,
        state_file=tmp_path / "state.json",
    )
    assert again.mails == []  # each school's run remembers what it sent


def test_a_schools_section_without_a_trust_is_refused_in_words(tmp_path: Path) -> None:
    settings = tmp_path / "notifications.yaml"
    settings.write_text(
        "email: {host: 127.0.0.1, port: 25, from: gate@school.test, to: [a@school.test]}\n"
        "schools: {oak: {business_manager: {to: [oak@school.test]}}}\n"
    )
    found = subprocess.run(
        [sys.executable, "-m", "schoolgate.admin_api.notifications", "--settings", str(settings)],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "SCHOOLGATE_DATA_DIR": str(tmp_path / "data"),
            "SCHOOLGATE_ENVIRONMENT": "development",
        },
        timeout=120,
    )
    assert found.returncode == 2, found.stderr
    assert "schools: oak: a school's section needs a trust" in found.stderr


def test_incomplete_admin_settings_are_said_in_words(tmp_path: Path) -> None:
    """The notifications command reads the admin's settings: one it cannot read (no session
    secret outside development) is a sentence saying what to set, not a traceback."""
    settings = tmp_path / "notifications.yaml"
    settings.write_text(
        "email: {host: 127.0.0.1, port: 25, from: gate@school.test, to: [a@school.test]}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
    found = subprocess.run(
        [str(Path(sys.executable).with_name("schoolgate")), "notify", "--settings", str(settings)],
        capture_output=True,
        text=True,
        env={**env, "SCHOOLGATE_DATA_DIR": str(tmp_path / "data")},
        timeout=120,
    )
    assert found.returncode == 2, found.stderr
    assert "Traceback" not in found.stderr
    assert "schoolgate notifications: " in found.stderr
    assert "set SCHOOLGATE_SESSION_SECRET" in found.stderr
