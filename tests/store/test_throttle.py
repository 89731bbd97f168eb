"""store/throttle.py: the shared sign-in throttle on real SQLite and PostgreSQL (findings 3, 5
and 13 of the December security review)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import SignInThrottleRow
from schoolgate.store.throttle import ADDRESS, USER, USER_AT_ADDRESS, Limit, Throttle
from tests.support.leaks import UNCLOSED_SQLITE, closed_what_it_opened
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["closed_what_it_opened", "database_url", "postgres_session_url"]
pytestmark = list(UNCLOSED_SQLITE)  # the memory fallback and a broken engine were left open

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = (
        make_engine(database_url, pool_size=20)
        if "postgresql" in database_url
        else make_engine(database_url)
    )
    yield engine
    engine.dispose()


def proxy_throttle(engine: Engine | None, clock: Clock, **kw: object) -> Throttle:
    return Throttle(
        engine,
        scope="proxy",
        clock=clock,
        limits={USER: Limit(3, 600), ADDRESS: Limit(30, 600)},
        **kw,
    )  # type: ignore[arg-type]


def test_three_failures_then_a_wait_until_the_window_ends_then_longer(engine: Engine) -> None:
    clock = Clock()
    throttle = proxy_throttle(engine, clock)
    for _ in range(3):
        assert throttle.reserve(user="teacher1", address="10.0.0.5").allowed
        clock.advance(60)
    refused = throttle.reserve(user="teacher1", address="10.0.0.9")
    assert not refused.allowed
    assert refused.retry_after == 600 - 180
    clock.advance(600 - 180)  # the window from the first failure has ended
    for _ in range(3):
        assert throttle.reserve(user="teacher1", address="10.0.0.5").allowed
    clock.advance(599)
    assert not throttle.reserve(user="teacher1", address="10.0.0.5").allowed
    clock.advance(1)  # a second window in a row that reached the limit waits twice as long
    assert not throttle.reserve(user="teacher1", address="10.0.0.5").allowed
    clock.advance(600)
    assert throttle.reserve(user="teacher1", address="10.0.0.5").allowed
    # Other people are not affected.
    assert throttle.reserve(user="teacher2", address="10.0.0.6").allowed


def test_a_right_password_releases_the_reservation(engine: Engine) -> None:
    clock = Clock()
    throttle = proxy_throttle(engine, clock)
    for _ in range(2):
        assert throttle.reserve(user="pupil1", address="10.0.0.5").allowed
    right = throttle.reserve(user="pupil1", address="10.0.0.5")
    throttle.succeeded(right)
    for _ in range(3):  # the user's count starts again
        assert throttle.reserve(user="pupil1", address="10.0.0.5").allowed
    assert not throttle.reserve(user="pupil1", address="10.0.0.5").allowed


def test_the_address_limit_covers_many_user_names(engine: Engine) -> None:
    clock = Clock()
    throttle = proxy_throttle(engine, clock)
    for n in range(30):
        assert throttle.reserve(user=f"user{n}", address="10.0.0.66").allowed
    assert not throttle.reserve(user="someone", address="10.0.0.66").allowed
    assert throttle.reserve(user="someone", address="10.0.0.67").allowed


def test_the_right_password_from_another_address_is_not_refused(engine: Engine) -> None:
    # Finding 13: five wrong passwords for dsl1 from anywhere locked the DSL out for 15 minutes.
    clock = Clock()
    throttle = Throttle(
        engine,
        scope="admin",
        clock=clock,
        limits={USER_AT_ADDRESS: Limit(5, 900), ADDRESS: Limit(30, 900), USER: Limit(50, 900)},
    )
    for _ in range(5):
        assert throttle.reserve(user="dsl1", address="10.0.0.66").allowed
    assert not throttle.reserve(user="dsl1", address="10.0.0.66").allowed
    assert throttle.reserve(user="dsl1", address="10.0.0.20").allowed


def test_a_burst_counts_every_attempt_before_any_password_is_checked(engine: Engine) -> None:
    # Finding 5: 60 parallel wrong passwords all passed a check-then-count throttle.
    throttle = proxy_throttle(engine, Clock())
    twin = proxy_throttle(engine, Clock())  # another worker or replica on the same database
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        outcomes = list(
            pool.map(
                lambda n: (throttle if n % 2 else twin).reserve(user="dsl1", address=f"10.0.1.{n}"),
                range(60),
            )
        )
    assert sum(o.allowed for o in outcomes) == 3


def test_scopes_are_counted_apart(engine: Engine) -> None:
    clock = Clock()
    proxy = proxy_throttle(engine, clock)
    admin = Throttle(engine, scope="admin", clock=clock, limits={USER: Limit(3, 600)})
    for _ in range(3):
        assert proxy.reserve(user="it1", address="10.0.0.5").allowed
    assert admin.reserve(user="it1", address="10.0.0.5").allowed


def _rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(SignInThrottleRow)).scalar_one()


def test_bounded_in_size_without_forgetting_a_lock(engine: Engine) -> None:
    # Finding 5's note: a flood of made-up keys cleared every count, locks included.
    clock = Clock()
    throttle = Throttle(
        engine,
        scope="proxy",
        clock=clock,
        max_rows=50,
        prune_every_seconds=0,
        limits={USER: Limit(3, 600)},
    )
    for _ in range(3):
        throttle.reserve(user="dsl1", address="x")
    for n in range(200):
        clock.advance(0.01)
        throttle.reserve(user=f"flood{n}", address="x")
    assert _rows(engine) <= 51
    assert not throttle.reserve(user="dsl1", address="x").allowed
    clock.advance(3600 + 601)  # everything has ended: pruned
    throttle.reserve(user="late", address="x")
    assert _rows(engine) == 1


def test_without_a_database_it_counts_in_memory() -> None:
    clock = Clock()
    throttle = proxy_throttle(None, clock)
    for _ in range(3):
        assert throttle.reserve(user="pupil1", address="10.0.0.5").allowed
    assert not throttle.reserve(user="pupil1", address="10.0.0.5").allowed
    throttle.close()


def test_a_database_that_fails_falls_back_to_memory(tmp_path: object) -> None:
    broken = make_engine("sqlite:////nonexistent-dir/for/schoolgate.db")
    clock = Clock()
    throttle = proxy_throttle(broken, clock)
    for _ in range(3):
        assert throttle.reserve(user="pupil1", address="10.0.0.5").allowed
    assert not throttle.reserve(user="pupil1", address="10.0.0.5").allowed
    assert throttle.database_errors == 4
    throttle.close()
    broken.dispose()
