"""`schoolgate notify` (schoolgate/commands/notify.py): the command the timers run sends what
is waiting once, over STARTTLS to a real SMTP sink, reading the admin's settings from the
environment; a broken notifications file is refused in words, with nothing sent."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.db import make_engine, upgrade
from tests.admin_api.mail_tls import make_mail_tls
from tests.support.smtp_sink import smtp_sink

SCHOOLGATE = Path(sys.executable).with_name("schoolgate")
DEMO_IDENTITY = (
    Path(__file__).resolve().parents[2] / "schoolgate" / "store" / "data" / "demo-identity.yaml"
)


def notify(data_dir: Path, settings: Path, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SCHOOLGATE_DATA_DIR": str(data_dir),
        "SCHOOLGATE_SESSION_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
        **env_extra,
    }
    env.pop("SCHOOLGATE_DATABASE_URL", None)
    return subprocess.run(
        [str(SCHOOLGATE), "notify", "--settings", str(settings)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def data_with_request(tmp_path: Path, **row: object) -> Path:
    """A data directory whose SQLite database holds one unblock request (`row` overrides)."""
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'schoolgate.db'}"
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "created_at": now,
        "requester": "pupil1",
        "requester_name": "Pupil One",
        "requester_role": "pupil",
        "blocked_user": "pupil1",
        "blocked_role": "pupil",
        "blocked_at": now,
        "block_reason": "rule_block",
        "from_block_page": True,
        "host": "www.tiktok.com",
        "category": "social",
        "why": "For our dance topic in PE.",
        "state": RequestState.PENDING,
    }
    with Session(engine) as session:
        session.add(UnblockRequestRow(**(values | row)))
        session.commit()
    engine.dispose()
    return data


def test_a_new_request_reaches_the_business_manager_once(tmp_path: Path) -> None:
    data = data_with_request(tmp_path)
    tls = make_mail_tls(tmp_path)
    with smtp_sink(tls.server) as sink:
        settings = tmp_path / "notifications.yaml"
        settings.write_text(
            f"email: {{host: 127.0.0.1, port: {sink.port}, from: gate@school.test, "
            f"to: [unused@school.test], ca_file: '{tls.cert}'}}\n"
            "admin_url: https://admin.school.test\n"
            "business_manager: {to: [bursar@school.test]}\n"
            "dsl: {to: [dsl@school.test]}\n"
        )
        first = notify(data, settings)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "sent to bursar@school.test" in first.stdout
        assert len(sink.messages) == 1
        assert sink.messages[0].encrypted  # STARTTLS by default
        second = notify(data, settings)
        assert second.returncode == 0, second.stderr
        assert len(sink.messages) == 1  # remembered: nothing is sent twice


def test_a_broken_settings_file_is_refused_in_words(tmp_path: Path) -> None:
    settings = tmp_path / "notifications.yaml"
    settings.write_text("email: {host: 127.0.0.1, starttls: false}\nnonsense: [\n")
    result = notify(tmp_path, settings)
    assert result.returncode == 2
    assert "notifications" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_requester_is_told_at_the_address_the_directory_gives(tmp_path: Path) -> None:
    data = data_with_request(
        tmp_path,
        requester="teacher1",
        requester_name="Teacher One",
        requester_role="staff",
        blocked_user="teacher1",
        blocked_role="staff",
        host="www.reddit.com",
        state=RequestState.DENIED,
        reviewed_by="bursar1",
        reviewed_at=datetime.now(UTC),
        review_note="Please use the library.",
    )
    tls = make_mail_tls(tmp_path)
    with smtp_sink(tls.server) as sink:
        settings = tmp_path / "notifications.yaml"
        settings.write_text(
            f"email: {{host: 127.0.0.1, port: {sink.port}, from: gate@school.test, "
            f"to: [unused@school.test], ca_file: '{tls.cert}'}}\n"
        )
        result = notify(data, settings, SCHOOLGATE_IDENTITY_FILE=str(DEMO_IDENTITY))
        assert result.returncode == 0, result.stdout + result.stderr
        assert [m.recipients for m in sink.messages] == [["teacher1@demo.school.example"]]
