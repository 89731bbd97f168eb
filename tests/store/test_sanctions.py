"""Sanctions: the threshold window as a table, and the service functions on a real SQLite
database read back through the gateway's DatabaseOverridesSource."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from schoolgate.policy.model import CircumventionSettings, SanctionAction
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import AlertRow, AlertSeverity, SanctionRow, SanctionState
from schoolgate.store.overrides_db import DatabaseOverridesSource
from schoolgate.store.sanctions import (
    AttemptWindow,
    SanctionNotFound,
    active_sanction,
    extend_sanction,
    lift_sanction,
    on_threshold,
    open_supervised_session,
    place_sanction,
)
from tests.support.leaks import UNCLOSED_SQLITE, closed_what_it_opened

__all__ = ["closed_what_it_opened"]
pytestmark = list(UNCLOSED_SQLITE)  # its engine fixture was never disposed

T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
SETTINGS = CircumventionSettings(
    threshold_attempts=3, threshold_window_seconds=600, sanction_days=14
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'sg.db'}"
    upgrade(url)
    made = make_engine(url)
    yield made
    made.dispose()


def test_three_attempts_in_ten_minutes_reach_the_threshold() -> None:
    window = AttemptWindow()
    assert window.add("pupil1", T0, SETTINGS) is None
    assert window.add("pupil2", T0 + timedelta(minutes=1), SETTINGS) is None
    assert window.add("pupil1", T0 + timedelta(minutes=5), SETTINGS) is None
    reached = window.add("pupil1", T0 + timedelta(minutes=9, seconds=59), SETTINGS)
    assert reached == (T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=9, seconds=59))
    assert window.count("pupil1") == 0  # starts again
    assert window.count("pupil2") == 1


def test_attempts_older_than_the_window_do_not_count() -> None:
    window = AttemptWindow()
    window.add("pupil1", T0, SETTINGS)
    window.add("pupil1", T0 + timedelta(minutes=5), SETTINGS)
    # exactly ten minutes after the first: the first has left the window
    assert window.add("pupil1", T0 + timedelta(minutes=10), SETTINGS) is None
    assert window.count("pupil1") == 2


def test_the_window_stays_bounded() -> None:
    window = AttemptWindow(max_users=10)
    for i in range(100):
        window.add(f"user{i}", T0 + timedelta(hours=i), SETTINGS)
    assert len(window._seen) <= 10


@pytest.mark.parametrize(
    ("action", "state", "blocked"),
    [
        (SanctionAction.SANCTION, SanctionState.PLACED, True),
        (SanctionAction.RECOMMEND, SanctionState.RECOMMENDED, False),
    ],
)
def test_on_threshold_places_or_recommends_and_alerts(
    engine: Engine, action: SanctionAction, state: SanctionState, blocked: bool
) -> None:
    settings = CircumventionSettings(
        threshold_attempts=3, threshold_window_seconds=600, on_threshold=action, sanction_days=14
    )
    attempts = (T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))
    with Session(engine) as session, session.begin():
        outcome = on_threshold(
            session=session, user="pupil1", attempts=attempts, settings=settings, at=attempts[-1]
        )
    assert outcome.state is state
    assert outcome.alert.severity is AlertSeverity.HIGH
    with Session(engine) as session:
        row = session.get(SanctionRow, outcome.sanction_id)
        assert row is not None
        assert (row.user, row.state, row.placed_by) == ("pupil1", state, "schoolgate")
        assert row.ends == attempts[-1] + timedelta(days=14)
        alert = session.scalars(select(AlertRow)).one()
        assert alert.details["sanction_id"] == outcome.sanction_id
        assert "3 attempts" in alert.summary
    overrides = DatabaseOverridesSource(engine, clock=lambda: T0).load_now()
    assert [s.user for s in overrides.sanctions] == (["pupil1"] if blocked else [])


def test_on_threshold_while_already_sanctioned_only_alerts(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        place_sanction(
            session=session,
            user="pupil1",
            starts=T0,
            ends=T0 + timedelta(days=1),
            reason="by hand",
            placed_by="dsl",
        )
    with Session(engine) as session, session.begin():
        outcome = on_threshold(
            session=session,
            user="pupil1",
            attempts=(T0, T0, T0),
            settings=SETTINGS,
            at=T0 + timedelta(hours=1),
        )
    assert outcome.sanction_id is None
    with Session(engine) as session:
        assert len(session.scalars(select(SanctionRow)).all()) == 1
        assert "already supervised-only" in session.scalars(select(AlertRow.summary)).one()


def test_place_extend_lift_and_supervise_reach_the_gateway_snapshot(engine: Engine) -> None:
    source = DatabaseOverridesSource(engine, clock=lambda: T0)
    with Session(engine) as session, session.begin():
        sid = place_sanction(
            session=session,
            user="pupil1",
            starts=T0,
            ends=T0 + timedelta(days=1),
            reason="r",
            placed_by="dsl",
        )
    assert [(s.id, s.ends) for s in source.load_now().sanctions] == [(sid, T0 + timedelta(days=1))]
    with Session(engine) as session, session.begin():
        extend_sanction(
            session=session,
            sanction_id=sid,
            ends=T0 + timedelta(days=7),
            by="dsl",
            note="second incident",
        )
    assert source.load_now().sanctions[0].ends == T0 + timedelta(days=7)
    with Session(engine) as session, session.begin():
        open_supervised_session(
            session=session,
            user="pupil1",
            starts=T0,
            ends=T0 + timedelta(hours=1),
            opened_by="teacher1",
        )
    assert [s.user for s in source.load_now().supervised_sessions] == ["pupil1"]
    with Session(engine) as session, session.begin():
        assert active_sanction(session=session, user="pupil1", at=T0) is not None
        lift_sanction(session=session, sanction_id=sid, by="dsl", at=T0, note="spoke to them")
        lift_sanction(session=session, sanction_id=sid, by="dsl", at=T0)  # twice: no change
    assert source.load_now().sanctions == ()
    with Session(engine) as session:
        row = session.get(SanctionRow, sid)
        assert row is not None
        assert (row.state, row.lifted_by) == (SanctionState.LIFTED, "dsl")
        assert "extended by dsl: second incident" in row.note
        assert "lifted by dsl: spoke to them" in row.note


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (
            lambda s: place_sanction(
                session=s, user="", starts=T0, ends=None, reason="r", placed_by="dsl"
            ),
            "user name is empty",
        ),
        (
            lambda s: place_sanction(
                session=s, user="p", starts=T0, ends=T0, reason="r", placed_by="dsl"
            ),
            "must end after it starts",
        ),
        (
            lambda s: extend_sanction(session=s, sanction_id="nope", ends=None, by="dsl"),
            "no sanction has the id",
        ),
        (
            lambda s: lift_sanction(session=s, sanction_id="nope", by="dsl", at=T0),
            "no sanction has the id",
        ),
        (
            lambda s: open_supervised_session(
                session=s, user="p", starts=T0, ends=T0, opened_by="t"
            ),
            "must end after it starts",
        ),
    ],
)
def test_service_functions_refuse_bad_input(engine: Engine, call: object, error: str) -> None:
    with (
        Session(engine) as session,
        session.begin(),
        pytest.raises((ValueError, SanctionNotFound), match=error),
    ):
        call(session)  # type: ignore[operator]


def test_a_lifted_sanction_cannot_be_extended(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        sid = place_sanction(
            session=session, user="p", starts=T0, ends=None, reason="r", placed_by="dsl"
        )
        lift_sanction(session=session, sanction_id=sid, by="dsl", at=T0)
        with pytest.raises(ValueError, match="was lifted"):
            extend_sanction(session=session, sanction_id=sid, ends=None, by="dsl")


# --- one canonical name (finding 10) ---------------------------------------------------------


def test_a_sanction_is_stored_and_found_under_the_canonical_name(engine: Engine) -> None:
    now = datetime.now(UTC)  # the overrides source reads the real clock
    with Session(engine) as session, session.begin():
        place_sanction(
            session=session,
            user=" ＰＵＰＩＬ１",
            starts=now,
            ends=None,
            reason="typed on a Japanese keyboard",
            placed_by="dsl1",
        )
        open_supervised_session(
            session=session,
            user="Pupil1",
            starts=now,
            ends=now + timedelta(minutes=30),
            opened_by="teacher1",
        )
    with Session(engine) as session:
        assert session.scalars(select(SanctionRow.user)).all() == ["pupil1"]
        found = active_sanction(session=session, user="PUPIL1", at=now + timedelta(hours=1))
        assert found is not None
    overrides = DatabaseOverridesSource(engine).load_now()
    assert [s.user for s in overrides.sanctions] == ["pupil1"]
    assert [s.user for s in overrides.supervised_sessions] == ["pupil1"]


def test_rows_written_before_names_were_canonical_still_apply(engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.add(
            SanctionRow(
                id="old",
                user="Pupil1",
                starts=now,
                ends=None,
                reason="old",
                placed_by="dsl1",
                state=SanctionState.PLACED,
                note="",
            )
        )
    overrides = DatabaseOverridesSource(engine).load_now()
    assert [s.user for s in overrides.sanctions] == ["pupil1"]
