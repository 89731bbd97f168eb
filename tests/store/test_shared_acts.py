"""store/escalation.py `act_job` and store/acts.py: whether an attempt is a counted act or a
follow-up, and whether it raises the DSL's alert, decided once for every gateway worker and
replica in the database (real SQLite and PostgreSQL). Two engines on one database stand for two
gateway processes; the event writer's own insert of the attempt row may come before or after."""

from __future__ import annotations

import concurrent.futures
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from schoolgate.policy.model import CircumventionSettings, Reason, Verdict
from schoolgate.store.alerts import AlertKind
from schoolgate.store.escalation import act_job, in_transaction
from schoolgate.store.event_writer import EventInserter
from schoolgate.store.events import AttemptEvidence, Event, attempt_record, event_row
from schoolgate.store.models import (
    ActMarkRow,
    AlertRow,
    AttemptCountRow,
    CircumventionAttemptRow,
)
from tests.store.test_attempt_counts import engines
from tests.support.postgres import database_url, postgres_session_url

# Fixtures: `engines`, two engines on one database (SQLite and PostgreSQL).
__all__ = ["database_url", "engines", "postgres_session_url"]

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SETTINGS = CircumventionSettings(threshold_attempts=3, threshold_window_seconds=600)
ACT = "vpn.example|web_proxy"


def attempt(at: datetime, *, user: str | None = "pupil1", path: str = "/") -> Event:
    return Event(
        at=at,
        host="www.vpn.example",
        verdict=Verdict.BLOCK,
        reason=Reason.CIRCUMVENTION,
        user=user,
        client_ip="10.0.0.9",
        technique="web_proxy",
        attempt=AttemptEvidence({"path": path}),
    )


def decide(engine: Engine, event: Event, act_seconds: float = 30) -> int:
    """Run the act job as a gateway's alert worker would; the number of alerts it raised."""
    raised = in_transaction(engine, act_job(event, SETTINGS, act=ACT, act_seconds=act_seconds).run)
    return len(raised) if isinstance(raised, list) else int(raised is not None)


def write(engine: Engine, event: Event) -> None:
    """The event writer's insert of the event and its attempt row (as the gateway saw it)."""
    EventInserter(engine).insert([(event_row("test", 1, event), attempt_record(event))])


def attempts(engine: Engine) -> dict[str, CircumventionAttemptRow]:
    with Session(engine) as session:
        return {r.id: r for r in session.scalars(select(CircumventionAttemptRow))}


def attempt_alerts(engine: Engine) -> list[AlertRow]:
    with Session(engine) as session:
        return list(session.scalars(select(AlertRow).where(AlertRow.kind == AlertKind.ATTEMPT)))


@pytest.mark.parametrize("user", ["pupil1", None], ids=["person", "device-by-address"])
@pytest.mark.parametrize("written_first", [True, False], ids=["row-first", "job-first"])
def test_a_follow_up_seen_by_another_process_is_marked_and_raises_no_alert(
    engines: tuple[Engine, Engine], user: str | None, written_first: bool
) -> None:
    one, two = engines
    page, reload = attempt(T0, user=user), attempt(T0 + timedelta(seconds=2), user=user)
    write(one, page)
    assert decide(one, page) == 1  # the act: its alert
    if written_first:
        write(two, reload)
    assert decide(two, reload) == 0  # the reload through the other process
    if not written_first:
        write(two, reload)  # the writer's insert after the decision keeps it
    rows = attempts(one)
    assert rows[page.id].counted
    assert "same_act_as" not in rows[page.id].evidence
    assert not rows[reload.id].counted
    assert rows[reload.id].evidence == {"path": "/", "same_act_as": page.id}
    assert len(attempt_alerts(one)) == 1


def test_a_new_act_after_the_act_window_is_counted_but_alerted_once_per_window(
    engines: tuple[Engine, Engine],
) -> None:
    one, two = engines
    first, later = attempt(T0), attempt(T0 + timedelta(seconds=40))
    assert decide(one, first) == 1
    assert decide(two, later) == 0  # a second act: counted, but the alert is per window
    write(two, later)
    assert attempts(two)[later.id].counted
    after_window = attempt(T0 + timedelta(minutes=11))
    assert decide(one, after_window) == 1
    assert len(attempt_alerts(one)) == 2


def test_the_third_act_from_two_processes_reaches_the_threshold_but_follow_ups_do_not(
    engines: tuple[Engine, Engine],
) -> None:
    one, two = engines
    for n in range(3):  # three acts, each with a follow-up through the other process
        at = T0 + timedelta(minutes=n)
        decide(one, attempt(at, path=f"/{n}"))
        decide(two, attempt(at + timedelta(seconds=1), path=f"/{n}"))
    with Session(one) as session:
        kinds = sorted(session.scalars(select(AlertRow.kind)))
    # One attempt alert (per window) and one for the sanction placed at the third act.
    assert kinds == [AlertKind.ATTEMPT, "sanction_recommended"]


def test_simultaneous_requests_of_one_act_from_two_processes_are_one_act(
    engines: tuple[Engine, Engine],
) -> None:
    one, two = engines
    events = [attempt(T0 + timedelta(milliseconds=n)) for n in range(8)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        raised = list(pool.map(lambda n: decide((one, two)[n % 2], events[n]), range(len(events))))
    assert sum(raised) == 1
    for event in events:
        write(one, event)
    assert sum(r.counted for r in attempts(one).values()) == 1


def test_old_marks_are_forgotten(engines: tuple[Engine, Engine]) -> None:
    one, _ = engines
    decide(one, attempt(T0, user="pupil2"))
    decide(one, attempt(T0 + timedelta(days=2)))
    with Session(one) as session:
        keys = list(session.scalars(select(ActMarkRow.key)))
    assert keys
    assert not any("pupil2" in key for key in keys)


def test_the_marks_and_counts_carry_the_school_of_the_act(engines: tuple[Engine, Engine]) -> None:
    """With a trust, the act's marks and the person's count carry the attempt's school (so a
    school's rows can be exported or removed with the rest of its data: docs/trust.md)."""
    one, _ = engines
    first = replace(attempt(T0), school="oak")
    write(one, first)
    assert decide(one, first) == 1
    with Session(one) as session:
        marks = {row.key.split("|")[0]: row.school for row in session.scalars(select(ActMarkRow))}
        assert marks == {"act": "oak", "alert": "oak"}
        (count,) = session.scalars(select(AttemptCountRow))
        assert (count.user, count.school) == ("pupil1", "oak")
