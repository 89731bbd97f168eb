"""Reading the monitoring logs for the DSL: events filtered by user, IP, host, category, verdict,
technique and time, in keyset pages over (at, seq, id) — never OFFSET, so page 10,000 costs
what page 1 does — a streamed walk for CSV exports, and one user's timeline around a moment.

Every query is shaped for the indexes of store/models.py: an equality filter on user, host,
category or verdict plus a range and an ORDER BY on `at` is one backwards index range scan
(ix_events_<column>_at), stopped by the LIMIT; without such a filter, ix_events_at.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from schoolgate.policy.model import Verdict
from schoolgate.store.incident_models import IncidentNoteRow
from schoolgate.store.models import CircumventionAttemptRow, EventRow

PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
EXPORT_BATCH = 1000
EXPORT_MAX_ROWS = 2_000_000  # a bound on one download, far above a term's events per pupil
MAX_TIMELINE_MINUTES = 24 * 60


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What the DSL asked for; None means "any". Times are aware UTC, [since, until)."""

    user: str | None = None
    client_ip: str | None = None
    host: str | None = None
    category: str | None = None
    verdict: Verdict | None = None
    technique: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # The pages' looser filters (the API keeps the exact ones above): part of a user name (any
    # case), a site and its subdomains (or part of a name without a dot), any of some
    # categories or techniques, and leaving out the favicon a browser fetches by itself after
    # every page (one act shown once).
    user_contains: str | None = None
    users_named: tuple[str, ...] = ()  # or these users (their names in the directory matched)
    host_within: str | None = None
    categories: tuple[str, ...] | None = None
    techniques: tuple[str, ...] | None = None
    skip_favicons: bool = False
    # Only these users (the members of a class or group in the directory); () finds nothing.
    users_in: tuple[str, ...] | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.user_contains:
            found.append(
                or_(
                    func.lower(EventRow.user).contains(self.user_contains.lower(), autoescape=True),
                    EventRow.user.in_(self.users_named),
                )
            )
        if self.host_within:
            site = self.host_within
            found.append(
                or_(EventRow.host == site, EventRow.host.endswith("." + site, autoescape=True))
                if "." in site
                else EventRow.host.contains(site, autoescape=True)
            )
        if self.categories is not None:
            found.append(EventRow.category.in_(self.categories))
        if self.techniques is not None:
            found.append(EventRow.technique.in_(self.techniques))
        if self.users_in is not None:
            found.append(EventRow.user.in_(self.users_in))
        if self.skip_favicons:
            found.append(or_(EventRow.path.is_(None), ~EventRow.path.startswith("/favicon.ico")))
        for column, value in (
            (EventRow.user, self.user),
            (EventRow.client_ip, self.client_ip),
            (EventRow.host, self.host),
            (EventRow.category, self.category),
            (EventRow.technique, self.technique),
        ):
            if value is not None:
                found.append(column == value)
        if self.verdict is not None:
            found.append(EventRow.verdict == self.verdict)
        if self.since is not None:
            found.append(EventRow.at >= self.since)
        if self.until is not None:
            found.append(EventRow.at < self.until)
        return found


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the newest-first order of events: the (at, seq, id) of a row. Opaque to
    people (URL-safe text); a cursor that does not decode is refused, never guessed at."""

    at: datetime
    seq: int
    id: str

    def encode(self) -> str:
        raw = f"{self.at.astimezone(UTC).isoformat()}|{self.seq}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor written by `encode`; ValueError if `text` is not one."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at_text, seq_text, row_id = raw.split("|")
            at = datetime.fromisoformat(at_text)
            seq = int(seq_text)
        except (binascii.Error, UnicodeDecodeError, ValueError) as error:
            raise ValueError(
                "this page link is damaged; start again from the newest events"
            ) from error
        if at.tzinfo is None or not row_id or len(row_id) > 36 or abs(seq) >= 2**63:
            raise ValueError("this page link is damaged; start again from the newest events")
        return cls(at, seq, row_id)

    @classmethod
    def of(cls, row: EventRow) -> Cursor:
        return cls(row.at, row.seq, row.id)


@dataclass(frozen=True, slots=True)
class EventPage:
    """Up to `limit` events, newest first; `older` continues after the last row, `newer`
    before the first (None at either end)."""

    rows: Sequence[EventRow]
    older: Cursor | None
    newer: Cursor | None


def _older_than(cursor: Cursor) -> ColumnElement[bool]:
    # (at, seq, id) < cursor, spelled so that `at <= :at` is an index range condition.
    return and_(
        EventRow.at <= cursor.at,
        or_(
            EventRow.at < cursor.at,
            EventRow.seq < cursor.seq,
            and_(EventRow.seq == cursor.seq, EventRow.id < cursor.id),
        ),
    )


def _newer_than(cursor: Cursor) -> ColumnElement[bool]:
    return and_(
        EventRow.at >= cursor.at,
        or_(
            EventRow.at > cursor.at,
            EventRow.seq > cursor.seq,
            and_(EventRow.seq == cursor.seq, EventRow.id > cursor.id),
        ),
    )


def _newest_first(query: Select[Any]) -> Select[Any]:
    return query.order_by(EventRow.at.desc(), EventRow.seq.desc(), EventRow.id.desc())


def events_query(
    filters: EventFilter, *, older: Cursor | None = None, limit: int = PAGE_SIZE
) -> Select[EventRow]:
    """The SELECT for one newest-first page (also what the plan tests EXPLAIN)."""
    query = select(EventRow).where(*filters.conditions())
    if older is not None:
        query = query.where(_older_than(older))
    return _newest_first(query).limit(limit)


def events_page(
    session: Session,
    *,
    filters: EventFilter,
    older: Cursor | None = None,
    newer: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> EventPage:
    """One page of matching events, newest first: the newest (no cursor), the page after
    `older`, or the page before `newer`."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    if newer is not None:
        query = (
            select(EventRow)
            .where(*filters.conditions(), _newer_than(newer))
            .order_by(EventRow.at, EventRow.seq, EventRow.id)
            .limit(limit + 1)
        )
        found = list(session.scalars(query))
        more_newer = len(found) > limit
        rows = list(reversed(found[:limit]))
        return EventPage(
            rows,
            Cursor.of(rows[-1]) if rows else None,
            Cursor.of(rows[0]) if rows and more_newer else None,
        )
    found = list(session.scalars(events_query(filters, older=older, limit=limit + 1)))
    rows = found[:limit]
    return EventPage(
        rows,
        Cursor.of(rows[-1]) if len(found) > limit else None,
        Cursor.of(rows[0]) if rows and older is not None else None,
    )


def walk_events(
    sessions: sessionmaker[Session], *, filters: EventFilter, max_rows: int = EXPORT_MAX_ROWS
) -> Iterator[EventRow]:
    """Every matching event, newest first, in keyset batches, each batch in a short session of
    its own (a long export holds no transaction open while the gateway writes)."""
    cursor: Cursor | None = None
    sent = 0
    while sent < max_rows:
        with sessions() as session:
            batch = list(
                session.scalars(
                    events_query(filters, older=cursor, limit=min(EXPORT_BATCH, max_rows - sent))
                )
            )
            session.expunge_all()
        yield from batch
        sent += len(batch)
        if len(batch) < EXPORT_BATCH:
            return
        cursor = Cursor.of(batch[-1])


@dataclass(frozen=True, slots=True)
class Timeline:
    """One user's activity in [start, end): events and attempts oldest first, and the
    incident notes about them in that span."""

    user: str
    start: datetime
    end: datetime
    events: Sequence[EventRow]
    attempts: Sequence[CircumventionAttemptRow]
    notes: Sequence[IncidentNoteRow]
    truncated: bool  # more events than shown


def timeline(
    session: Session,
    *,
    user: str,
    around: datetime,
    minutes: int,
    limit: int = 2000,
    skip_favicons: bool = False,
) -> Timeline:
    """What `user` did from `minutes` before `around` to `minutes` after it (for the page,
    `skip_favicons`: without the favicon a browser fetches by itself after each page)."""
    minutes = max(1, min(minutes, MAX_TIMELINE_MINUTES))
    start, end = around - timedelta(minutes=minutes), around + timedelta(minutes=minutes)
    events = list(
        session.scalars(
            select(EventRow)
            .where(EventRow.user == user, EventRow.at >= start, EventRow.at < end)
            .where(*EventFilter(skip_favicons=skip_favicons).conditions())
            .order_by(EventRow.at, EventRow.seq, EventRow.id)
            .limit(limit + 1)
        )
    )
    attempts = session.scalars(
        select(CircumventionAttemptRow)
        .where(
            CircumventionAttemptRow.user == user,
            CircumventionAttemptRow.at >= start,
            CircumventionAttemptRow.at < end,
        )
        .order_by(CircumventionAttemptRow.at)
        .limit(limit)
    ).all()
    notes = session.scalars(
        select(IncidentNoteRow)
        .where(
            IncidentNoteRow.user == user,
            or_(
                and_(IncidentNoteRow.happened_at >= start, IncidentNoteRow.happened_at < end),
                and_(IncidentNoteRow.at >= start, IncidentNoteRow.at < end),
            ),
        )
        .order_by(IncidentNoteRow.at)
    ).all()
    return Timeline(user, start, end, events[:limit], attempts, notes, len(events) > limit)
