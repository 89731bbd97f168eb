"""Seeded monitoring rows for the DSL's tests: thousands of events in a fixed window of their own
(so other tests' rows never mix in), with ties on `at` and on `seq` across two replicas, a few
attempts and alerts, all tagged with one run's user names."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from schoolgate.store.models import (
    AlertRow,
    AlertSeverity,
    AlertState,
    CircumventionAttemptRow,
    EventRow,
)

HOSTS = ("www.tiktok.com", "x.com", "www.bbc.co.uk", "proxysite.test")
CATEGORIES = {
    "www.tiktok.com": "social",
    "x.com": "x",
    "www.bbc.co.uk": None,
    "proxysite.test": "web_proxy",
}


@dataclass
class Seed:
    """What was written: the rows as dicts (to compute expected answers in Python)."""

    tag: str
    start: datetime
    end: datetime
    events: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    alert_ids: list[str] = field(default_factory=list)

    def users(self) -> list[str]:
        return [f"{self.tag}-p{n}" for n in range(7)]

    def newest_first(self, rows: list[dict[str, Any]] | None = None) -> list[str]:
        ordered = sorted(
            rows if rows is not None else self.events,
            key=lambda e: (e["at"], e["seq"], e["id"]),
            reverse=True,
        )
        return [e["id"] for e in ordered]


def seed_events(
    sessions: sessionmaker[Session], *, count: int = 2500, start: datetime | None = None
) -> Seed:
    """`count` events, five per second (so `at` ties), two replicas whose `seq` collide."""
    tag = uuid.uuid4().hex[:8]
    start = start or datetime(2030, 3, 4, 8, 0, tzinfo=UTC) + timedelta(days=int(tag, 16) % 300)
    seed = Seed(tag, start, start + timedelta(seconds=count // 5 + 1))
    users = seed.users()
    for i in range(count):
        host = HOSTS[i % len(HOSTS)]
        blocked = host != "www.bbc.co.uk"
        technique = "web_proxy" if host == "proxysite.test" else None
        seed.events.append(
            {
                "id": str(uuid.uuid4()),
                "replica": f"gw{i % 2}",
                "seq": i // 2,
                "at": start + timedelta(seconds=i // 5),
                "user": users[i % len(users)],
                "role": "pupil",
                "identity_source": "local",
                "client_ip": f"10.9.{i % 3}.{i % 5}",
                "device": None,
                "method": "GET",
                "scheme": "https",
                "host": host,
                "port": 443,
                "path": '/=HYPERLINK("x")' if i == 7 else "/",
                "query": None,
                "search_terms": None,
                "category": CATEGORIES[host],
                "verdict": "block" if blocked else "allow",
                "reason": "rule_block" if blocked else "default",
                "rule": None,
                "technique": technique,
                "intercepted": True,
            }
        )
        if technique:
            seed.attempts.append(
                {
                    "id": str(uuid.uuid4()),
                    "event_id": seed.events[-1]["id"],
                    "at": seed.events[-1]["at"],
                    "user": users[i % len(users)],
                    "client_ip": seed.events[-1]["client_ip"],
                    "host": host,
                    "technique": technique,
                    "evidence": {"host": host},
                    "counted": i % 8 != 3,
                }
            )
    with sessions() as session:
        for chunk in range(0, len(seed.events), 1000):
            session.execute(insert(EventRow), seed.events[chunk : chunk + 1000])
        session.execute(insert(CircumventionAttemptRow), seed.attempts)
        for n, severity in enumerate((AlertSeverity.LOW, AlertSeverity.HIGH, AlertSeverity.MEDIUM)):
            alert_id = str(uuid.uuid4())
            seed.alert_ids.append(alert_id)
            session.add(
                AlertRow(
                    id=alert_id,
                    at=start + timedelta(minutes=n + 1),
                    severity=severity,
                    kind="circumvention_attempt",
                    user=users[n],
                    summary=f"{users[n]}: web proxy ({severity})",
                    details={"host": "proxysite.test"},
                    state=AlertState.OPEN,
                )
            )
        session.commit()
    return seed
