"""store/retention.py: each table keeps its own number of days; purges go in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.event_writer import EventInserter
from schoolgate.store.events import Event as RecordedEvent
from schoolgate.store.events import event_row as _row
from schoolgate.store.models import (
    AlertRow,
    AlertSeverity,
    AlertState,
    Base,
    CircumventionAttemptRow,
    EventRow,
    SanctionRow,
    SanctionState,
    SupervisedSessionRow,
)
from schoolgate.store.retention import RetentionDays, purge
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _count(session: Session, table: type[Base]) -> int:
    return session.scalar(select(func.count()).select_from(table)) or 0


def test_each_table_keeps_its_own_number_of_days(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        # Events 89, 90 (exactly: kept) and 91, 200 days old, five in all.
        ages = [0, 89, 90, 91, 200]
        EventInserter(engine).insert(
            [
                (
                    _row(
                        "r",
                        i,
                        RecordedEvent(
                            at=NOW - age * DAY,
                            host="x.example",
                            verdict=Verdict.ALLOW,
                            reason=Reason.RULE_ALLOW,
                        ),
                    ),
                    None,
                )
                for i, age in enumerate(ages)
            ]
        )
        with Session(engine) as session, session.begin():
            for i, age in enumerate([10, 364, 366]):
                session.add(
                    CircumventionAttemptRow(
                        id=f"c{i}",
                        event_id=None,
                        at=NOW - age * DAY,
                        user="p",
                        client_ip=None,
                        host="proxy.example",
                        technique="web_proxy",
                        evidence={},
                        counted=True,
                    )
                )
                session.add(_alert(f"a{i}", age, AlertState.CLOSED, None))
            sanctions = [
                ("ended-long-ago", NOW - 400 * DAY, SanctionState.PLACED, None),
                ("ended-recently", NOW - 10 * DAY, SanctionState.PLACED, None),
                ("no-end", None, SanctionState.PLACED, None),
                ("lifted-long-ago", None, SanctionState.LIFTED, NOW - 400 * DAY),
                ("recommended-long-ago", None, SanctionState.RECOMMENDED, None),
            ]
            for id, ends, state, lifted_at in sanctions:
                session.add(
                    SanctionRow(
                        id=id,
                        user="p",
                        starts=NOW - 500 * DAY,
                        ends=ends,
                        reason="r",
                        placed_by="dsl",
                        state=state,
                        lifted_by=None,
                        lifted_at=lifted_at,
                        note="",
                    )
                )
            for i, age in enumerate([1, 400]):
                session.add(
                    SupervisedSessionRow(
                        id=f"v{i}",
                        user="p",
                        starts=NOW - age * DAY - DAY,
                        ends=NOW - age * DAY,
                        opened_by="t",
                    )
                )

        counts = purge(engine, now=NOW, days=RetentionDays(), batch=2)

        assert counts == {
            "events": 2,
            "circumvention_attempts": 1,
            "alerts": 1,
            "sanctions": 3,
            "supervised_sessions": 1,
            "audit_log": 0,
            "unblock_requests": 0,
            "incident_notes": 0,
        }
        with Session(engine) as session:
            assert sorted(session.scalars(select(EventRow.at))) == [
                NOW - age * DAY for age in (90, 89, 0)
            ]
            assert sorted(session.scalars(select(SanctionRow.id))) == ["ended-recently", "no-end"]
            assert _count(session, CircumventionAttemptRow) == 2
            assert _count(session, AlertRow) == 2
            assert _count(session, SupervisedSessionRow) == 1
        assert set(purge(engine, now=NOW).values()) == {0}  # nothing more to do
    finally:
        engine.dispose()


def test_shorter_retention_is_configurable(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        EventInserter(engine).insert(
            [
                (
                    _row(
                        "r",
                        1,
                        RecordedEvent(
                            at=NOW - 8 * DAY,
                            host="x.example",
                            verdict=Verdict.ALLOW,
                            reason=Reason.RULE_ALLOW,
                        ),
                    ),
                    None,
                )
            ]
        )
        assert purge(engine, now=NOW, days=RetentionDays(events=30))["events"] == 0
        assert purge(engine, now=NOW, days=RetentionDays(events=7))["events"] == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("field", ["events", "attempts", "alerts", "sanctions"])
def test_retention_of_less_than_a_day_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=f"retention for {field} must be at least 1 day"):
        RetentionDays(**{field: 0})


def _alert(id: str, age_days: int, state: AlertState, closed_days: int | None) -> AlertRow:
    return AlertRow(
        id=id,
        at=NOW - age_days * DAY,
        severity=AlertSeverity.HIGH,
        kind="attempt",
        user="p",
        summary="s",
        details={},
        state=state,
        acknowledged_by=None if state is AlertState.OPEN else "dsl1",
        action_taken=None,
        outcome=None,
        pushed_at=None,
        closed_at=None if closed_days is None else NOW - closed_days * DAY,
    )


def test_an_alert_is_kept_until_it_is_closed_then_its_retention_runs(database_url: str) -> None:
    """Ops review L4: an open, never-reviewed alert was deleted after 365 days. An alert not
    closed yet (open, or acknowledged and still being dealt with) is kept however old; a
    closed one is kept `alerts` days from when it was closed (from when it was raised if
    it was closed before schoolgate stored that)."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            session.add_all(
                [
                    _alert("open-old", 900, AlertState.OPEN, None),
                    _alert("acknowledged-old", 900, AlertState.ACKNOWLEDGED, None),
                    _alert("closed-recently", 900, AlertState.CLOSED, 10),
                    _alert("closed-long-ago", 900, AlertState.CLOSED, 400),
                    _alert("closed-before-it-was-stored", 400, AlertState.CLOSED, None),
                    _alert("closed-young", 10, AlertState.CLOSED, None),
                ]
            )
        assert purge(engine, now=NOW)["alerts"] == 2
        with Session(engine) as session:
            assert sorted(session.scalars(select(AlertRow.id))) == [
                "acknowledged-old",
                "closed-recently",
                "closed-young",
                "open-old",
            ]
    finally:
        engine.dispose()
