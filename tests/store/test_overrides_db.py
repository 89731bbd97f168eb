"""store/overrides_db.py: rows become an Overrides snapshot; a change reaches a refreshing
source within 5 s; a database outage keeps the last snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from schoolgate.policy.model import (
    ApprovedException,
    LocalListEntry,
    Overrides,
    Sanction,
    Scope,
    SupervisedSession,
    TargetKind,
    Verdict,
)
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import (
    ExceptionRow,
    LocalListRow,
    SanctionRow,
    SanctionState,
    SupervisedSessionRow,
)
from schoolgate.store.overrides_db import DatabaseOverridesSource
from schoolgate.store.snapshots import OverridesSource
from tests.support.postgres import (
    PrivatePostgres,
    database_url,
    postgres_session_url,
    private_postgres,
)

__all__ = ["database_url", "postgres_session_url", "private_postgres"]

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _sanction(
    id: str,
    *,
    state: SanctionState = SanctionState.PLACED,
    ends: datetime | None = None,
    user: str = "pupil1",
) -> SanctionRow:
    return SanctionRow(
        id=id,
        user=user,
        starts=NOW - HOUR,
        ends=ends,
        reason="3 attempts",
        placed_by="schoolgate",
        state=state,
        lifted_by=None,
        lifted_at=None,
        note="",
    )


def _exception(
    id: str,
    target: str,
    *,
    kind: TargetKind = TargetKind.HOST,
    ends: datetime | None = None,
    school: str | None = None,
) -> ExceptionRow:
    return ExceptionRow(
        id=id,
        scope=Scope.GROUP,
        who="Year5",
        target_kind=kind,
        target=target,
        starts=NOW,
        ends=ends,
        created_by="bm",
        created_at=NOW - HOUR,
        request_id=None,
        note="",
        school=school,
    )


def _seed(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.add_all(
            [
                _exception("e1", "WWW.Example.COM.", ends=NOW + HOUR),
                _exception("e2", "social", kind=TargetKind.CATEGORY, school="oak"),
                _exception("e-old", "old.example", ends=NOW - 2 * HOUR),  # ended: left out
                _exception("e-bad", "exa mple.com"),  # not a host name: left out, logged
                _sanction("s1", ends=NOW + 14 * 24 * HOUR),
                _sanction("s-lifted", state=SanctionState.LIFTED),
                _sanction("s-recommended", state=SanctionState.RECOMMENDED),
                _sanction("s-ended", ends=NOW - HOUR),
                SupervisedSessionRow(
                    id="v1", user="pupil1", starts=NOW, ends=NOW + HOUR, opened_by="teacher1"
                ),
                SupervisedSessionRow(
                    id="v-old",
                    user="pupil1",
                    starts=NOW - 3 * HOUR,
                    ends=NOW - 2 * HOUR,
                    opened_by="teacher1",
                ),
                LocalListRow(
                    host="bad.example",
                    verdict=Verdict.BLOCK,
                    note="reported",
                    added_by="bm",
                    added_at=NOW,
                ),
                LocalListRow(
                    host="good.example", verdict=Verdict.ALLOW, note="", added_by="bm", added_at=NOW
                ),
                LocalListRow(  # the same host on Oak's own list (docs/trust.md)
                    host="bad.example",
                    verdict=Verdict.ALLOW,
                    note="oak's",
                    added_by="oak-bm",
                    added_at=NOW,
                    school="oak",
                ),
            ]
        )


def test_the_source_has_the_gateways_protocol(engine: Engine) -> None:
    source: OverridesSource = DatabaseOverridesSource(engine)
    assert callable(source.load)


def test_rows_become_the_snapshot_of_what_is_active_or_to_come(engine: Engine) -> None:
    _seed(engine)
    source = DatabaseOverridesSource(engine, clock=lambda: NOW)
    assert source.load_now() == Overrides(
        exceptions=(
            ApprovedException(
                "e1", Scope.GROUP, TargetKind.HOST, "www.example.com", NOW, NOW + HOUR, "Year5"
            ),
            ApprovedException(
                "e2", Scope.GROUP, TargetKind.CATEGORY, "social", NOW, None, "Year5", "oak"
            ),
        ),
        sanctions=(Sanction("s1", "pupil1", NOW - HOUR, NOW + 14 * 24 * HOUR),),
        supervised_sessions=(SupervisedSession("pupil1", NOW, NOW + HOUR),),
        local_list=(
            LocalListEntry("bad.example", Verdict.BLOCK, "reported"),
            LocalListEntry("bad.example", Verdict.ALLOW, "oak's", school="oak"),
            LocalListEntry("good.example", Verdict.ALLOW, ""),
        ),
    )


def test_it_reloads_only_when_the_change_counter_moves(engine: Engine) -> None:
    _seed(engine)
    source = DatabaseOverridesSource(engine, clock=lambda: NOW)
    first = source.load_now()
    assert source.load_now() is first
    assert source.reloads == 1
    with Session(engine) as session, session.begin():
        session.add(_sanction("s2", user="pupil2"))
    second = source.load_now()
    assert source.reloads == 2
    assert {s.user for s in second.sanctions} == {"pupil1", "pupil2"}


async def test_a_change_reaches_a_refreshing_source_within_5_seconds(database_url: str) -> None:
    upgrade(database_url)
    gateway_engine, admin_engine = make_engine(database_url), make_engine(database_url)
    source = DatabaseOverridesSource(gateway_engine)

    async def refresh_forever() -> None:  # what the Enforce addon does (every 2 s there)
        while True:
            await source.load()
            await asyncio.sleep(0.5)

    task = asyncio.create_task(refresh_forever())
    try:
        await asyncio.sleep(0.2)
        assert not source.current.sanctions
        with Session(admin_engine) as session, session.begin():
            session.add(_sanction("s9", user="pupil9"))
        written = time.monotonic()
        while not source.current.sanctions and time.monotonic() - written < 5:
            await asyncio.sleep(0.05)
        assert [s.user for s in source.current.sanctions] == ["pupil9"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gateway_engine.dispose()
        admin_engine.dispose()


@pytest.mark.postgres
def test_an_outage_keeps_the_last_snapshot_and_logs_once(
    private_postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(private_postgres.url)
    engine = make_engine(private_postgres.url)
    try:
        _seed(engine)
        source = DatabaseOverridesSource(engine, clock=lambda: NOW)
        before = source.load_now()
        assert before.sanctions
        private_postgres.stop()
        with caplog.at_level(logging.WARNING, logger="schoolgate.store.overrides_db"):
            assert source.load_now() is before
            assert source.load_now() is before
        assert source.last_problem is not None
        assert len([r for r in caplog.records if "keeping the previous" in r.message]) == 1
        private_postgres.start()
        with Session(engine) as session, session.begin():
            session.add(_sanction("s3", user="pupil3"))
        assert {s.user for s in source.load_now().sanctions} == {"pupil1", "pupil3"}
        assert source.last_problem is None
    finally:
        engine.dispose()


def test_an_unreadable_sqlite_file_keeps_the_last_snapshot(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "schoolgate.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    try:
        _seed(engine)
        source = DatabaseOverridesSource(engine, clock=lambda: NOW)
        before = source.load_now()
        engine.dispose()
        path.rename(tmp_path / "moved.db")
        path.mkdir()  # a directory where the database was: it cannot be opened
        assert source.load_now() is before
        assert source.last_problem is not None
        assert "keeping the previous" in source.last_problem
    finally:
        engine.dispose()
