"""`schoolgate policy diff OLD NEW [--against-history 7d --database URL]`, run as a real
process against a real SQLite file and PostgreSQL: the changed cells of the governors' table
and the recorded decisions that would flip, in words."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from schoolgate.commands.policy import parse_duration
from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import EventRow
from schoolgate.store.policy_files import load_policy, seed_policy_path
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]

SCHOOLGATE = str(Path(sys.executable).parent / "schoolgate")
BREAK_RULE = "    categories: [facebook, social]\n    when: [break]\n"


def _files(tmp_path: Path) -> tuple[Path, Path]:
    old = tmp_path / "old.yaml"
    old.write_bytes(seed_policy_path().read_bytes())
    new = tmp_path / "new.yaml"
    new.write_text(
        old.read_text(encoding="utf-8").replace(
            BREAK_RULE, "    categories: [social]\n    when: [break]\n"
        ),
        encoding="utf-8",
    )
    return old, new


def _recent_lunch() -> datetime:
    """12:30 school time on the latest school day before today (within the last week)."""
    cal = load_policy(None).calendar
    day = datetime.now(cal.timezone).date()
    for _ in range(7):
        day -= timedelta(days=1)
        if cal.is_school_day(day):
            return datetime.combine(day, time(12, 30), cal.timezone).astimezone(UTC)
    raise AssertionError("no school day in the last week")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCHOOLGATE, "policy", "diff", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_history_it_names_the_changed_cells(tmp_path: Path) -> None:
    old, new = _files(tmp_path)
    done = run(str(old), str(new), "--date", "2026-11-23")
    assert done.returncode == 0, done.stderr
    assert "staff facebook lunch 12:00-13:00: allow -> BLOCK" in done.stdout
    assert "staff facebook morning break 10:30-10:45: allow -> BLOCK" in done.stdout


def test_against_history_it_counts_who_would_lose_what(database_url: str, tmp_path: Path) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    lunch = _recent_lunch()
    rows = [
        ("s1", lunch),
        ("s1", lunch + timedelta(minutes=5)),
        ("s2", lunch),
        ("s3", lunch - timedelta(days=30)),
    ]  # too old: left out
    with Session(engine) as session:
        for i, (user, at) in enumerate(rows):
            session.add(
                EventRow(
                    id=str(uuid.uuid4()),
                    replica="r",
                    seq=i,
                    at=at,
                    user=user,
                    role="staff",
                    host="www.facebook.com",
                    verdict=Verdict.ALLOW,
                    reason=Reason.RULE_ALLOW.value,
                    intercepted=False,
                )
            )
        session.commit()
    engine.dispose()
    old, new = _files(tmp_path)
    done = run(str(old), str(new), "--against-history", "7d", "--database", database_url)
    assert done.returncode == 0, done.stderr
    assert "3 replayed, 3 would change" in done.stdout
    assert "Staff would lose facebook during lunch: 3 requests by 2 people" in done.stdout


def test_a_bad_new_policy_is_reported_with_its_place(tmp_path: Path) -> None:
    old, new = _files(tmp_path)
    new.write_text(
        old.read_text(encoding="utf-8").replace(
            "categories: [x, instagram]", "categories: [x, gamez]"
        )
    )
    done = run(str(old), str(new))
    assert done.returncode == 1
    assert "rules[0]" in done.stderr
    assert "gamez" in done.stderr


@pytest.mark.parametrize(
    ("text", "expected"), [("7d", timedelta(days=7)), ("12h", timedelta(hours=12))]
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7", "0d", "7w", "-1d", ""])
def test_bad_durations_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 7d or 12h"):
        parse_duration(text)
