"""Each school's own records (docs/trust.md): a real `schoolgate gateway` with a trust file of
two schools and a database; clients bound to 127.0.0.2 (Oak) and 127.0.0.3 (Elm) browse and
try a web proxy; every event, attempt, alert and sanction carries its client's school, and a
client in no school's subnets is recorded with none."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from schoolgate.store.db import make_engine
from schoolgate.store.models import (
    AlertRow,
    AttemptCountRow,
    CircumventionAttemptRow,
    EventRow,
    SanctionRow,
)
from tests.e2e.test_trust_gateway import ELM, NOWHERE, OAK, client_from
from tests.support.gateway import (
    Gateway,
    wait_for,
)
from tests.support.trusts import running_trust_gateway, write_two_schools

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Engine]]:
    tmp = tmp_path_factory.mktemp("trust-records")
    now = datetime.now(UTC)
    trust = write_two_schools(tmp, oak=OAK, elm=ELM, now=now)
    engine = make_engine(f"sqlite:///{tmp / 'schoolgate.db'}")
    with running_trust_gateway(
        tmp,
        trust,
        *("--set", "schoolgate_act_seconds=0"),  # every try its own act: the threshold
    ) as gw:
        yield gw, engine
    engine.dispose()


def _rows[T](engine: Engine, model: type[T]) -> list[T]:
    with Session(engine) as session:
        return list(session.scalars(select(model)))


def test_every_record_carries_its_clients_school(trust: tuple[Gateway, Engine]) -> None:
    gw, engine = trust
    for address, user in ((OAK, "pupil1"), (ELM, "staff1")):
        with client_from(gw, address, user) as client:
            assert client.get("http://learning.test/").status_code == 200
            for _ in range(3):  # three tries of a web proxy: the threshold (a sanction)
                assert client.get("http://proxysite.test/").status_code == 403
    with client_from(gw, NOWHERE) as stranger:
        assert stranger.get("http://learning.test/").status_code == 403

    def sanctions() -> dict[str, str | None]:
        return {row.user: row.school for row in _rows(engine, SanctionRow)}

    wait_for(lambda: len(sanctions()) == 2, what="a sanction recommended in each school")
    assert sanctions() == {"pupil1": "oak", "staff1": "elm"}
    wait_for(
        lambda: any(e.client_ip == NOWHERE for e in _rows(engine, EventRow)),
        what="the stranger's refusal",
    )
    schools = {(e.client_ip, e.host): e.school for e in _rows(engine, EventRow)}
    assert schools[(OAK, "learning.test")] == "oak"
    assert schools[(OAK, "proxysite.test")] == "oak"
    assert schools[(ELM, "learning.test")] == "elm"
    assert schools[(ELM, "proxysite.test")] == "elm"
    assert schools[(NOWHERE, "learning.test")] is None  # no school: only the trust sees it
    attempts = {(a.user, a.school) for a in _rows(engine, CircumventionAttemptRow)}
    assert attempts == {("pupil1", "oak"), ("staff1", "elm")}
    alerts = {(a.user, a.kind, a.school) for a in _rows(engine, AlertRow)}
    assert {(user, school) for user, _, school in alerts} == {
        ("pupil1", "oak"),
        ("staff1", "elm"),
    }
    assert {kind for _, kind, _ in alerts} == {"circumvention_attempt", "sanction_recommended"}
    counts = {(c.user, c.school) for c in _rows(engine, AttemptCountRow)}  # migration 0013
    assert counts == {("pupil1", "oak"), ("staff1", "elm")}
