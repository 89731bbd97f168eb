"""The event: one decision as recorded, and its one codec. `event_row` is the row of the
`events` table, `json_line` the same row as one JSON line: the spool, the rejected file and
the SIEM output (with or without a database) all write that one shape (review 2026-12, F2).
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schoolgate.policy.model import Reason, Verdict
from schoolgate.policy.names import user_key

JSONScalar = str | int | float | bool | None


# Event ids: a random UUID-4 prefix per process and a counter in the last 48 bits. As unique as
# uuid4() across replicas (62 random bits per process) and several times cheaper per request.
_ID_PREFIX = str(uuid.uuid4())[:24]
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(5)))


def new_event_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFF_FFFF_FFFF:012x}"


@dataclass(frozen=True, slots=True)
class AttemptEvidence:
    """What made an event a circumvention attempt. `counted=False` for a blocked platform's
    widget loaded by an allowed page: recorded, but never counted towards a sanction."""

    evidence: Mapping[str, JSONScalar] = field(default_factory=dict)
    counted: bool = True


@dataclass(frozen=True, slots=True)
class Event:
    """One decision, as recorded. There is no field for passwords, cookies or bodies; `path`
    and `query` are kept only when `intercepted` (the traffic was decrypted)."""

    at: datetime  # aware
    host: str
    verdict: Verdict
    reason: Reason
    user: str | None = None
    role: str | None = None
    identity_source: str | None = None
    client_ip: str | None = None
    device: str | None = None
    method: str | None = None
    scheme: str | None = None
    port: int | None = None
    path: str | None = None
    query: str | None = None
    search_terms: str | None = None
    category: str | None = None
    rule: str | None = None
    technique: str | None = None
    intercepted: bool = False
    attempt: AttemptEvidence | None = None
    id: str = field(default_factory=new_event_id)
    school: str | None = None  # the client's school with a trust file (docs/trust.md)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(
                f"Event.at must be an aware datetime, not {self.at!r} (use datetime.now(UTC))"
            )
        if self.user is not None:  # one spelling of a person in the records
            object.__setattr__(self, "user", user_key(self.user))


# --- the codec ---------------------------------------------------------------------------


def event_row(replica: str, seq: int, event: Event) -> dict[str, Any]:
    decrypted = event.intercepted
    return {
        "id": event.id,
        "replica": replica,
        "seq": seq,
        "at": event.at,
        "user": event.user,
        "role": event.role,
        "identity_source": event.identity_source,
        "client_ip": event.client_ip,
        "device": event.device,
        "method": event.method,
        "scheme": event.scheme,
        "host": event.host,
        "port": event.port,
        "path": event.path if decrypted else None,
        "query": event.query if decrypted else None,
        "search_terms": event.search_terms,
        "category": event.category,
        "verdict": str(event.verdict),
        "reason": str(event.reason),
        "rule": event.rule,
        "technique": event.technique,
        "intercepted": decrypted,
        "school": event.school,
    }


def attempt_record(event: Event) -> dict[str, Any] | None:
    if event.attempt is None:
        return None
    return {"evidence": dict(event.attempt.evidence), "counted": event.attempt.counted}


def event_json_line(replica: str, seq: int, event: Event) -> bytes:
    """The event as the one JSON line (spool, SIEM): its row and its attempt, if any."""
    return json_line(event_row(replica, seq, event), attempt_record(event))


def json_line(row: Mapping[str, Any], attempt: Mapping[str, Any] | None) -> bytes:
    record = dict(row)
    record["at"] = row["at"].isoformat()
    record["attempt"] = attempt
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def from_json_line(line: bytes) -> tuple[dict[str, Any], dict[str, Any] | None]:
    record = json.loads(line)
    if not isinstance(record, dict) or "id" not in record or "at" not in record:
        raise ValueError("not an event record")
    attempt = record.pop("attempt", None)
    record.setdefault("school", None)  # spooled by a gateway from before schools
    record["at"] = datetime.fromisoformat(record["at"])
    if record["at"].tzinfo is None:
        raise ValueError("naive time")
    return record, attempt


Item = tuple[dict[str, Any], dict[str, Any] | None]  # (events row, attempt or None)


def attempt_row(row: Mapping[str, Any], attempt: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "event_id": row["id"],
        "at": row["at"],
        "user": row["user"],
        "client_ip": row["client_ip"],
        "host": row["host"],
        "technique": row["technique"] or "unknown",
        "evidence": attempt.get("evidence") or {},
        "counted": bool(attempt.get("counted")),
        "school": row.get("school"),
    }
