"""store/models.py: aware UTC times on both databases, the change counter and its triggers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from schoolgate.policy.model import Verdict
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import (
    AlertRow,
    AlertSeverity,
    AlertState,
    ChangeCounter,
    LocalListRow,
    bump_change_counter,
)
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]

LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _counter(engine: Engine) -> int:
    with engine.connect() as conn:
        value = conn.scalar(select(ChangeCounter.counter))
    assert value is not None
    return int(value)


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),  # the second before the clocks go forward
        datetime(2026, 3, 29, 2, 0, 0, tzinfo=LONDON),  # BST
        datetime(2026, 10, 25, 1, 30, tzinfo=LONDON, fold=1),  # the repeated hour, second time
        datetime(2026, 11, 23, 10, 35, 0, 123456, tzinfo=UTC),
    ],
)
def test_times_come_back_aware_in_utc_and_equal(engine: Engine, at: datetime) -> None:
    with Session(engine) as session, session.begin():
        session.add(
            AlertRow(
                id="a1",
                at=at,
                severity=AlertSeverity.HIGH,
                kind="test",
                summary="s",
                details={"k": 1},
                state=AlertState.OPEN,
                pushed_at=None,
            )
        )
    with Session(engine) as session:
        row = session.scalars(select(AlertRow)).one()
        assert row.at.tzinfo is UTC
        # Compare instants: Python never calls an ambiguous (fold) time equal across zones.
        assert row.at.timestamp() == at.timestamp()
        assert row.at.utcoffset() == timedelta(0)
        assert row.details == {"k": 1}
        assert row.severity is AlertSeverity.HIGH
        # Comparisons in SQL use the same instant.
        assert (
            session.scalar(select(AlertRow.id).where(AlertRow.at == at.astimezone(LONDON))) == "a1"
        )


def test_naive_times_are_refused(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(
            LocalListRow(
                host="example.com",
                verdict=Verdict.BLOCK,
                note="",
                added_by="bm",
                added_at=datetime(2026, 11, 23, 10, 0),
            )
        )
        with pytest.raises(StatementError, match="naive datetime"):
            session.commit()


TRIGGERED = [
    (
        "INSERT INTO local_list (host, verdict, note, added_by, added_at) "
        "VALUES ('a.example', 'block', '', 'bm', '2026-11-23 10:00:00')"
    ),
    "UPDATE local_list SET note = 'x' WHERE host = 'a.example'",
    "DELETE FROM local_list WHERE host = 'a.example'",
    (
        'INSERT INTO sanctions (id, "user", starts, reason, placed_by, state, note) '
        "VALUES ('s1', 'pupil1', '2026-11-23 10:00:00', 'r', 'dsl1', 'placed', '')"
    ),
    "UPDATE sanctions SET state = 'lifted' WHERE id = 's1'",
    "DELETE FROM sanctions",
    (
        'INSERT INTO supervised_sessions (id, "user", starts, ends, opened_by) '
        "VALUES ('v1', 'pupil1', '2026-11-23 10:00:00', '2026-11-23 11:00:00', 'teacher1')"
    ),
    "UPDATE supervised_sessions SET opened_by = 'teacher2'",
    "DELETE FROM supervised_sessions",
    (
        "INSERT INTO exceptions (id, scope, who, target_kind, target, starts, created_by, "
        "created_at, note) VALUES ('e1', 'role', 'pupil', 'category', 'social', "
        "'2026-11-23 10:00:00', 'bm', '2026-11-23 10:00:00', '')"
    ),
    "UPDATE exceptions SET note = 'n'",
    "DELETE FROM exceptions",
]


def test_every_raw_write_to_an_override_table_bumps_the_counter(engine: Engine) -> None:
    for statement in TRIGGERED:
        before = _counter(engine)
        with engine.begin() as conn:
            conn.execute(text(statement))
        assert _counter(engine) > before, statement


def test_writes_elsewhere_do_not_bump_the_counter(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO alerts (id, at, severity, kind, summary, details, state)"
                " VALUES ('a', '2026-11-23 10:00:00', 'low', 'k', 's', '{}', "
                "'open')"
            )
        )
    assert _counter(engine) == 0


def test_bump_change_counter_counts_in_the_callers_transaction(engine: Engine) -> None:
    with Session(engine) as session:
        bump_change_counter(session)
        session.rollback()
    assert _counter(engine) == 0
    with Session(engine) as session, session.begin():
        bump_change_counter(session)
    assert _counter(engine) == 1


@pytest.mark.parametrize(
    ("table", "values"),
    [
        (
            "local_list (host, verdict, note, added_by, added_at)",
            "('b.example', 'maybe', '', 'bm', '2026-11-23 10:00:00')",
        ),
    ],
)
def test_check_constraints_refuse_unknown_codes(engine: Engine, table: str, values: str) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {table} VALUES {values}"))
