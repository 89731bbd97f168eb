"""store/sanctions.py `count_act`: the sanction threshold counted in the database, so every
gateway worker and replica reaches it together (real SQLite and PostgreSQL)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from schoolgate.policy.model import CircumventionSettings
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.sanctions import count_act
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SETTINGS = CircumventionSettings(threshold_attempts=3, threshold_window_seconds=600)


@pytest.fixture
def engines(database_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database: two gateway processes."""
    upgrade(database_url)
    one, two = make_engine(database_url), make_engine(database_url)
    yield one, two
    one.dispose()
    two.dispose()


def act(engine: Engine, at: datetime, user: str = "pupil1") -> tuple[datetime, ...] | None:
    with Session(engine) as session, session.begin():
        return count_act(session=session, user=user, at=at, settings=SETTINGS)


def test_two_processes_reach_the_threshold_together(engines: tuple[Engine, Engine]) -> None:
    one, two = engines
    assert act(one, T0) is None
    assert act(two, T0 + timedelta(minutes=1)) is None
    reached = act(one, T0 + timedelta(minutes=2), user="Pupil1")  # one person, any spelling
    assert reached == (T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))
    assert act(two, T0 + timedelta(minutes=3)) is None  # the count started again


def test_acts_outside_the_window_do_not_count(engines: tuple[Engine, Engine]) -> None:
    one, two = engines
    assert act(one, T0) is None
    assert act(two, T0 + timedelta(minutes=6)) is None
    assert act(one, T0 + timedelta(minutes=11)) is None  # the first is out of the window
    assert act(two, T0 + timedelta(minutes=12)) is not None
    assert act(one, T0, user="pupil2") is None  # counted per person


def test_simultaneous_acts_from_two_processes_are_all_counted(
    engines: tuple[Engine, Engine],
) -> None:
    one, two = engines
    at = [T0 + timedelta(seconds=i) for i in range(30)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: act(one if i % 2 else two, at[i]), range(30)))
    assert sum(r is not None for r in results) == 10  # 30 acts, a threshold every 3


def shared_act(
    engine: Engine,
    at: datetime,
    site: str,
    user: str = "pupil1",
) -> tuple[datetime, ...] | None:
    with Session(engine) as session, session.begin():
        return count_act(
            session=session,
            user=user,
            at=at,
            settings=SETTINGS,
            act=f"{site}|web_proxy",
            act_seconds=30,
        )


def test_one_act_seen_by_two_processes_counts_once(engines: tuple[Engine, Engine]) -> None:
    # The page from one worker, its favicon and a reload through another: one act.
    one, two = engines
    assert shared_act(one, T0, "proxysite.test") is None
    assert shared_act(two, T0 + timedelta(seconds=2), "proxysite.test") is None
    assert shared_act(one, T0 + timedelta(seconds=20), "proxysite.test") is None
    # a different site at once, and the same site after the act's window: two more acts
    assert shared_act(two, T0 + timedelta(seconds=21), "vpn.test") is None
    reached = shared_act(one, T0 + timedelta(seconds=40), "proxysite.test")
    assert reached == (T0, T0 + timedelta(seconds=21), T0 + timedelta(seconds=40))


def test_acts_are_shared_per_person(engines: tuple[Engine, Engine]) -> None:
    one, two = engines
    assert shared_act(one, T0, "proxysite.test") is None
    assert shared_act(two, T0 + timedelta(seconds=1), "proxysite.test", user="pupil2") is None
    assert shared_act(two, T0 + timedelta(seconds=2), "proxysite.test", user="PUPIL2") is None
    assert shared_act(one, T0 + timedelta(seconds=3), "vpn.test") is None
    assert shared_act(one, T0 + timedelta(seconds=4), "tor.test") is not None  # pupil1: 3 acts
