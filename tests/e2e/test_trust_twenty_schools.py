"""Twenty schools, one gateway (docs/trust.md, issue 17): a real `schoolgate gateway` given a
trust of twenty schools, each with its own lunch, on SQLite and on PostgreSQL. A member of staff
asks for Facebook from each school's subnet (a client bound to 127.20.N.7): those whose school
is at lunch now get it, the others get their school's block page, and every event is recorded
with the school whose subnet the client is in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from schoolgate.store.db import make_engine
from schoolgate.store.models import EventRow
from tests.e2e.test_trust_gateway import calendar, client_from
from tests.support.gateway import Gateway, noon_zone, policy_text, wait_for
from tests.support.postgres import shared_postgres_database
from tests.support.trusts import running_trust_gateway, write_trust

pytestmark = pytest.mark.e2e

SCHOOLS = 20
FACEBOOK = "www.facebook.com"


def address(number: int) -> str:
    """A client in school `number`'s subnet (127.20.`number`.0/24)."""
    return f"127.20.{number}.7"


def at_lunch(number: int) -> bool:
    """Half the schools, interleaved, have lunch now; the others had it hours ago."""
    return number % 2 == 0


def lunch(number: int, now: datetime) -> tuple[datetime, datetime]:
    """School `number`'s own lunch, minutes apart from every other school's."""
    if at_lunch(number):
        return now - timedelta(minutes=5 + number), now + timedelta(minutes=40 + number)
    start = now - timedelta(hours=4, minutes=-number)
    return start, start + timedelta(minutes=30)


def database_url(kind: str, folder: Path) -> contextlib.AbstractContextManager[str]:
    """A database of its own: PostgreSQL's (the shared server, dropped afterwards) or SQLite's."""
    if kind == "postgresql":
        return shared_postgres_database()
    return contextlib.nullcontext(f"sqlite:///{folder / 'schoolgate.db'}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def twenty(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, str]]:
    """One gateway for all twenty schools, and its database's URL."""
    tmp = tmp_path_factory.mktemp(f"twenty-{request.param}")
    now = datetime.now(UTC)
    zone = noon_zone(now)
    schools = "".join(
        f"  s{n}: {{name: School {n}, subnets: [127.20.{n}.0/24], policy: s{n}.yaml}}\n"
        for n in range(1, SCHOOLS + 1)
    )
    # The trust's own lunch was hours ago: a school that kept it would block every request.
    base = policy_text(
        break_from=now - timedelta(hours=6), break_until=now - timedelta(hours=5), zone=zone
    )
    trust = write_trust(
        tmp,
        f"name: Twenty Trust\nbase: base.yaml\nunmatched: refuse\nschools:\n{schools}",
        {
            "base.yaml": base,
            **{f"s{n}.yaml": calendar(zone, *lunch(n, now)) for n in range(1, SCHOOLS + 1)},
        },
    )
    with (
        database_url(request.param, tmp) as database,
        running_trust_gateway(tmp, trust, database=database) as gw,
    ):
        yield gw, database


def test_each_of_twenty_schools_gets_its_own_break_times(twenty: tuple[Gateway, str]) -> None:
    gw, database = twenty
    seen = {}
    for n in range(1, SCHOOLS + 1):
        with client_from(gw, address(n)) as staff:
            seen[n] = staff.get(f"http://{FACEBOOK}/")
    statuses = {n: answer.status_code for n, answer in seen.items()}
    assert statuses == {n: 200 if at_lunch(n) else 403 for n in statuses}
    for n, answer in seen.items():
        if not at_lunch(n):  # the school's own block page: not at break there
            assert "staff-social-media-otherwise" in answer.text
    engine = make_engine(database)

    def recorded() -> dict[str | None, tuple[str | None, str]]:
        with Session(engine) as session:
            rows = session.scalars(select(EventRow).where(EventRow.host == FACEBOOK))
            return {row.client_ip: (row.school, row.verdict.value) for row in rows}

    expected = {
        address(n): (f"s{n}", "allow" if at_lunch(n) else "block") for n in range(1, SCHOOLS + 1)
    }
    try:
        wait_for(lambda: len(recorded()) == SCHOOLS, what="an event from each school")
        assert recorded() == expected
    finally:
        engine.dispose()
