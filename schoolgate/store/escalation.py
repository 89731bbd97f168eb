"""Alerts and sanctions the gateway raises, written off the request path: a bounded queue of
database jobs worked by one task (each retried while the database is down), and each alert that
wants it pushed at once (email, webhook; store/alerts.py) and then marked as pushed.

Used by the gateway's RecordEvents (circumvention attempts: an alert, and the shared sanction
threshold, kept in the database) and SafeSearch (safeguarding searches).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from schoolgate.policy.model import CircumventionSettings
from schoolgate.store.acts import claim, forget_old, mark_follow_up, who
from schoolgate.store.alerts import (
    NO_PUSH,
    Alert,
    AlertKind,
    PushSettings,
    attempt_severity,
    mark_pushed,
    push_alert,
    raise_alert,
)
from schoolgate.store.events import Event
from schoolgate.store.sanctions import count_act, on_threshold

logger = logging.getLogger(__name__)


class EscalationCounters(Protocol):
    """Where the worker counts (the gateway's GatewayStats has these fields)."""

    alerts_raised: int
    alerts_pushed: int
    alert_jobs_dropped: int  # must stay 0
    alert_write_failures: int  # a write the database refused or timed out on (retried)
    alert_push_failures: int  # an email or webhook push that failed (the alert is kept)
    alerts_errors: int  # anything else: a bug


@dataclass(frozen=True, slots=True)
class Job:
    """A database write off the request path; returns the alert(s) it raised (to push)."""

    what: str
    run: Callable[[Session], Alert | list[Alert] | None]


class AlertWorker:
    """Use from one asyncio loop: `start()` (in mitmproxy's `running`), `submit(job)` from hooks
    (never waits), `await close()` (in `done`)."""

    def __init__(
        self,
        engine: Engine,
        counters: EscalationCounters,
        *,
        push: PushSettings = NO_PUSH,
        queue_size: int = 10_000,
        retries: int = 30,
        retry_seconds: float = 2.0,
    ) -> None:
        self.engine = engine
        self.counters = counters
        self.push = push
        self.retries = retries
        self.retry_seconds = retry_seconds
        self._jobs: asyncio.Queue[Job] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None

    def submit(self, job: Job) -> None:
        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:
            self.counters.alert_jobs_dropped += 1
            logger.warning("too many alert and sanction writes waiting; dropped one (%s)", job.what)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._work_forever())

    async def close(self, timeout: float = 5.0) -> None:
        """Let the queued jobs finish for up to `timeout` seconds, then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._jobs.join(), timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _work_forever(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                raised = await self._run(job)
                for alert in raised if isinstance(raised, list) else [raised]:
                    if alert is None:
                        continue
                    self.counters.alerts_raised += 1
                    if self.push.wants(alert):
                        await self._push(alert)
            except Exception:
                self.counters.alerts_errors += 1
                logger.exception("an alert or sanction job failed")
            finally:
                self._jobs.task_done()

    async def _run(self, job: Job) -> Alert | list[Alert] | None:
        for attempt in range(self.retries):
            try:
                return await asyncio.to_thread(in_transaction, self.engine, job.run)
            except Exception as exc:
                self.counters.alert_write_failures += 1
                if attempt == 0:
                    logger.warning(
                        "writing a %s to the database failed (%s); retrying",
                        job.what,
                        str(exc).splitlines()[0] if str(exc) else exc,
                    )
                await asyncio.sleep(self.retry_seconds)
        self.counters.alert_jobs_dropped += 1
        logger.error("gave up writing a %s to the database", job.what)
        return None

    async def _push(self, alert: Alert) -> None:
        results = await push_alert(self.push, alert)
        for channel, problem in results.items():
            if problem is not None:
                self.counters.alert_push_failures += 1
                logger.warning("pushing alert %s by %s failed: %s", alert.id, channel, problem)
        if results and all(p is None for p in results.values()):
            self.counters.alerts_pushed += 1
            await asyncio.to_thread(in_transaction, self.engine, lambda s: _mark(s, alert))


def in_transaction[T](engine: Engine, work: Callable[[Session], T]) -> T:
    with Session(engine) as session, session.begin():
        return work(session)


def _mark(session: Session, alert: Alert) -> None:
    mark_pushed(session=session, alert_id=alert.id, at=datetime.now(UTC))


# --- the jobs for circumvention attempts --------------------------------------------------------


def act_job(event: Event, settings: CircumventionSettings, *, act: str, act_seconds: float) -> Job:
    """The shared decisions about an attempt this worker saw as the first of an act (`act`
    names its site and technique), in one transaction: is it a follow-up of an act that another
    worker saw first within `act_seconds` (then its row says so, `same_act_as`, and nothing
    else happens)? Otherwise it is a counted act: the DSL's alert unless one was raised for
    this person (or device) and technique within the threshold window, and, for a signed-in
    person, the sanction threshold. Devices known only by their address get the same."""
    person = who(event)

    def run(session: Session) -> list[Alert]:
        forget_old(session=session, at=event.at)
        first = claim(
            session=session,
            key=f"act|{person}|{act}",
            at=event.at,
            seconds=act_seconds,
            event_id=event.id,
            school=event.school,
        )
        if first is not None:
            mark_follow_up(session=session, event=event, first=first)
            return []
        raised = []
        already = claim(
            session=session,
            key=f"alert|{person}|{event.technique or ''}",
            at=event.at,
            seconds=settings.threshold_window_seconds,
            event_id=event.id,
            school=event.school,
        )
        if already is None:
            raised.append(attempt_alert_job(event).run(session))
        if event.user is not None:
            raised.append(threshold_job(event, settings).run(session))
        return [alert for alert in raised if isinstance(alert, Alert)]

    return Job("attempt", run)


def attempt_alert_job(event: Event) -> Job:
    """The DSL's alert for a counted attempt."""
    technique = event.technique or "unknown"
    who = event.user or f"the device at {event.client_ip or 'an unknown address'}"
    details = {
        "technique": technique,
        "host": event.host,
        "client_ip": event.client_ip,
        "event_id": event.id,
        **(event.attempt.evidence if event.attempt else {}),
    }

    def run(session: Session) -> Alert:
        return raise_alert(
            session=session,
            severity=attempt_severity(technique),
            kind=AlertKind.ATTEMPT,
            user=event.user,
            at=event.at,
            summary=f"{who} tried to get round the filter ({technique}: {event.host})",
            details=details,
            school=event.school,
        )

    return Job("alert", run)


def threshold_job(
    event: Event,
    settings: CircumventionSettings,
    *,
    act: str | None = None,
    act_seconds: float = 0.0,
) -> Job:
    """Count the act in the shared window; if it reached the threshold, act on it (in the same
    transaction, so two gateways cannot both act on one threshold). `act` names the act (its
    site and technique), so a follow-up that another worker counted first within
    `act_seconds` is not counted again; without it every call is an act of its own."""
    user = event.user
    if user is None:
        raise ValueError("only a signed-in person's attempts count towards a sanction")

    def run(session: Session) -> Alert | None:
        attempts = count_act(
            session=session,
            user=user,
            at=event.at,
            settings=settings,
            act=act,
            act_seconds=act_seconds,
            school=event.school,
        )
        if attempts is None:
            return None
        return on_threshold(
            session=session,
            user=user,
            attempts=attempts,
            settings=settings,
            at=event.at,
            details={"last_technique": event.technique, "last_host": event.host},
            school=event.school,
        ).alert

    return Job("threshold", run)
