"""store/policy_versions.py on SQLite and PostgreSQL: a version is recorded only when the text
changes, with its diff; an old version can be read back whole; a policy file edited outside the
admin becomes a version; the atomic write replaces the file; recorded decisions stream back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from schoolgate.policy.model import Reason, Verdict
from schoolgate.store import policy_versions as versions
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import EventRow, LocalListRow
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    made = make_engine(database_url)
    yield made
    made.dispose()


def test_versions_are_recorded_only_on_change_with_a_diff(engine: Engine) -> None:
    with Session(engine) as session:
        first = versions.record(
            session, kind=versions.POLICY, text="a: 1\n", author="it1", reason="start", at=T0
        )
        same = versions.record(
            session, kind=versions.POLICY, text="a: 1\n", author="it1", reason="again", at=T0
        )
        second = versions.record(
            session,
            kind=versions.POLICY,
            text="a: 2\n",
            author="it2",
            reason="two",
            at=T0 + timedelta(minutes=1),
        )
        session.commit()
        assert first is not None
        assert second is not None
        assert same is None
        assert second.id > first.id
        assert "-a: 1\n+a: 2\n" in second.diff
        assert second.sha256 == versions.content_hash("a: 2\n")
    with Session(engine) as session:
        back = versions.get(session, first.id)
        assert back is not None
        assert (back.text, back.author, back.reason, back.at) == ("a: 1\n", "it1", "start", T0)
        assert [r.id for r in versions.history(session, versions.POLICY)] == [second.id, first.id]
        latest = versions.latest(session, versions.POLICY)
        assert latest is not None
        assert latest.id == second.id


def test_restoring_an_old_text_is_a_new_version(engine: Engine) -> None:
    with Session(engine) as session:
        for text in ("v: 1\n", "v: 2\n", "v: 1\n"):
            versions.record(
                session, kind=versions.POLICY, text=text, author="it1", reason="r", at=T0
            )
        session.commit()
        rows = versions.history(session, versions.POLICY)
        assert [r.text for r in rows] == ["v: 1\n", "v: 2\n", "v: 1\n"]
        assert rows[0].sha256 == rows[2].sha256
        assert rows[0].id != rows[2].id


def test_a_file_edited_outside_the_admin_becomes_a_version(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("name: one\n", encoding="utf-8")
    with Session(engine) as session:
        first = versions.notice_file(session, path, at=T0)
        assert first is not None
        assert first.reason == versions.FIRST_SEEN
        assert versions.notice_file(session, path, at=T0) is None  # unchanged: nothing new
        path.write_text("name: two\n", encoding="utf-8")
        second = versions.notice_file(session, path, at=T0 + timedelta(hours=1))
        assert second is not None
        assert (second.author, second.reason) == (versions.OUTSIDE, versions.CHANGED_OUTSIDE)
        assert "-name: one\n+name: two\n" in second.diff
    with Session(engine) as session:  # committed
        latest = versions.latest(session, versions.POLICY)
        assert latest is not None
        assert latest.text == "name: two\n"


def test_the_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("old\n", encoding="utf-8")
    path.chmod(0o640)
    versions.write_atomically(path, "new £\n")
    assert path.read_text(encoding="utf-8") == "new £\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["policy.yaml"]


def test_the_local_lists_as_text(engine: Engine) -> None:
    with Session(engine) as session:
        session.add_all(
            [
                LocalListRow(
                    host="b.example",
                    verdict=Verdict.BLOCK,
                    note="reported\nby a parent",
                    added_by="bursar1",
                    added_at=T0,
                ),
                LocalListRow(
                    host="a.example",
                    verdict=Verdict.ALLOW,
                    note="",
                    added_by="bursar1",
                    added_at=T0,
                ),
                LocalListRow(  # Oak's own list, with a trust file (docs/trust.md)
                    host="b.example",
                    verdict=Verdict.BLOCK,
                    note="oak's",
                    added_by="oak-bursar",
                    added_at=T0,
                    school="oak",
                ),
            ]
        )
        session.commit()
        text = versions.lists_text(session)
        assert text == (
            "allow a.example\nblock b.example  # reported by a parent\n"
            "block b.example @oak  # oak's\n"
        )
        assert versions.parse_lists_text(text) == [
            ("allow", "a.example", "", None),
            ("block", "b.example", "reported by a parent", None),
            ("block", "b.example", "oak's", "oak"),
        ]


def test_recorded_decisions_stream_back_within_the_window(engine: Engine) -> None:
    with Session(engine) as session:
        for i, minutes in enumerate((-10, 0, 30, 60)):
            session.add(
                EventRow(
                    id=str(uuid.uuid4()),
                    replica="r",
                    seq=i,
                    at=T0 + timedelta(minutes=minutes),
                    user=f"u{i}",
                    role="staff",
                    host=f"h{i}.example",
                    verdict=Verdict.ALLOW,
                    reason=Reason.RULE_ALLOW.value,
                    intercepted=False,
                )
            )
        session.commit()
        found = list(
            versions.recorded_decisions(session, since=T0, until=T0 + timedelta(minutes=60))
        )
        assert sorted(found) == [
            ("u1", "staff", "h1.example", T0),
            ("u2", "staff", "h2.example", T0 + timedelta(minutes=30)),
        ]
