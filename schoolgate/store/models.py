"""The tables the gateway and the admin share, as SQLAlchemy 2 typed models on one metadata.

Timestamps are aware UTC everywhere (`UTCDateTime`, also on SQLite). Only Alembic revisions in
store/migrations change the schema. The admin's own tables are in store/admin_models.py and the
DSL's incident notes in store/incident_models.py, on the same metadata.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from schoolgate.policy.model import Scope, TargetKind, Verdict

# Named constraints, so that Alembic (batch mode on SQLite) can find and change them later.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The tables whose writes change what the gateway decides: every write bumps `changes`.
OVERRIDE_TABLES = ("sanctions", "supervised_sessions", "exceptions", "local_list")
CHANGES_ROW = 1


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC and always read back aware in UTC (SQLite keeps no zone,
    so naive values there are UTC by construction). Naive values are refused on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} given to the database: "
                "schoolgate stores aware times only (e.g. datetime.now(UTC))"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class SanctionState(StrEnum):
    PLACED = "placed"  # in force (between starts and ends)
    RECOMMENDED = "recommended"  # the threshold was reached; the DSL decides
    LIFTED = "lifted"  # ended early by a member of staff


class AlertSeverity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


def enum_column(cls: type[StrEnum], name: str) -> Enum:
    """A StrEnum stored as its value in a short string column with a CHECK constraint."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


# The tables that hold one school's data carry its id from the trust file (docs/trust.md);
# NULL: a single-school install (no trust file), or a row no school could be found for.
SCHOOL_TABLES = (
    "events",
    "circumvention_attempts",
    "sanctions",
    "supervised_sessions",
    "exceptions",
    "alerts",
    "unblock_requests",
    "incident_notes",
    "audit_log",
    "local_list",  # migration 0012
    "attempt_counts",  # migration 0013: the person's school, for exporting or removing it
    "act_marks",
)
SCHOOL_ID_LENGTH = 40  # policy/trust.py SchoolId


def school_column() -> Mapped[str | None]:
    """The `school` column of a table in SCHOOL_TABLES (indexed with the table's time, but for
    the small, self-pruning `attempt_counts` and `act_marks`)."""
    return mapped_column(String(SCHOOL_ID_LENGTH), default=None)


class EventRow(Base):
    """One decision: per request for intercepted traffic, per connection for passed-through
    traffic. Path and query are kept only when the traffic was decrypted."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    replica: Mapped[str] = mapped_column(String(100))  # the gateway (writer) that recorded it
    seq: Mapped[int] = mapped_column(BigInteger)  # increasing per writer: order within `at`
    at: Mapped[datetime]
    user: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(100))
    identity_source: Mapped[str | None] = mapped_column(String(32))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(200))
    method: Mapped[str | None] = mapped_column(String(16))
    scheme: Mapped[str | None] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(300))
    port: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str | None] = mapped_column(Text)
    query: Mapped[str | None] = mapped_column(Text)
    search_terms: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    verdict: Mapped[Verdict] = mapped_column(enum_column(Verdict, "verdict"))
    # Reason and technique codes grow with the policy engine: plain strings, no constraint.
    reason: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str | None] = mapped_column(String(200))
    technique: Mapped[str | None] = mapped_column(String(64))
    intercepted: Mapped[bool] = mapped_column(Boolean)
    school: Mapped[str | None] = school_column()

    __table_args__ = (
        Index("ix_events_user_at", "user", "at"),
        Index("ix_events_at", "at"),
        Index("ix_events_host_at", "host", "at"),
        Index("ix_events_category_at", "category", "at"),
        Index("ix_events_verdict_at", "verdict", "at"),
        Index("ix_events_school_at", "school", "at"),
    )


class CircumventionAttemptRow(Base):
    """A trick to get round the filter, with its evidence. Widget loads of a blocked platform
    from an allowed page are recorded with counted=False (they never count to a sanction).
    `event_id` is not a foreign key: attempts outlive browsing events (retention)."""

    __tablename__ = "circumvention_attempts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(36))
    at: Mapped[datetime]
    user: Mapped[str | None] = mapped_column(String(200))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(300))
    technique: Mapped[str] = mapped_column(String(64))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    counted: Mapped[bool] = mapped_column(Boolean)
    school: Mapped[str | None] = school_column()

    __table_args__ = (
        Index("ix_circumvention_attempts_user_at", "user", "at"),
        Index("ix_circumvention_attempts_school_at", "school", "at"),
    )


class AttemptCountRow(Base):
    """The counted acts of one user still inside the sanction threshold's window, shared by
    every gateway worker and replica (store/sanctions.py `count_act`): the threshold is reached
    together, not per process. `times` is a JSON list of ISO 8601 UTC instants. `acts` maps
    the acts in progress ("site|technique") to when each began, for `count_act(act=...)`; the
    gateway now decides acts in `act_marks` (store/acts.py) and counts without it."""

    __tablename__ = "attempt_counts"

    user: Mapped[str] = mapped_column(String(200), primary_key=True)  # canonical user name
    times: Mapped[list[str]] = mapped_column(JSON)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)
    acts: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    school: Mapped[str | None] = school_column()  # of the person's latest counted act


class ActMarkRow(Base):
    """Shared marks of what was already decided, read and written by every gateway worker and
    replica in one locked transaction (store/acts.py `claim`): an act in progress (its first
    event, so a follow-up that another worker sees names it) and the last attempt alert per
    person (or device address) and technique (one alert per window). One row per key."""

    __tablename__ = "act_marks"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    at: Mapped[datetime]
    event_id: Mapped[str] = mapped_column(String(36))
    school: Mapped[str | None] = school_column()  # of the event that holds the mark

    __table_args__ = (Index("ix_act_marks_at", "at"),)


class SanctionRow(Base):
    """A supervised-only sanction (placed) or a recommendation of one, and who lifted it."""

    __tablename__ = "sanctions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user: Mapped[str] = mapped_column(String(200), index=True)
    starts: Mapped[datetime]
    ends: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(200))  # a user name, or "schoolgate"
    state: Mapped[SanctionState] = mapped_column(enum_column(SanctionState, "state"))
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    lifted_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")
    school: Mapped[str | None] = school_column()

    __table_args__ = (Index("ix_sanctions_school_starts", "school", "starts"),)


class SupervisedSessionRow(Base):
    """A member of staff supervises a sanctioned user for [starts, ends)."""

    __tablename__ = "supervised_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user: Mapped[str] = mapped_column(String(200), index=True)
    starts: Mapped[datetime]
    ends: Mapped[datetime]
    opened_by: Mapped[str] = mapped_column(String(200))
    school: Mapped[str | None] = school_column()

    __table_args__ = (Index("ix_supervised_sessions_school_starts", "school", "starts"),)


class ExceptionRow(Base):
    """An approved exception: scope (who) x target (host or category) for [starts, ends)."""

    __tablename__ = "exceptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    scope: Mapped[Scope] = mapped_column(enum_column(Scope, "scope"))
    who: Mapped[str | None] = mapped_column(String(200))  # None for everyone
    target_kind: Mapped[TargetKind] = mapped_column(enum_column(TargetKind, "target_kind"))
    target: Mapped[str] = mapped_column(String(300))  # normalised host, or a category name
    starts: Mapped[datetime]
    ends: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    request_id: Mapped[str | None] = mapped_column(String(36))  # the unblock request, if any
    note: Mapped[str] = mapped_column(Text, default="")
    school: Mapped[str | None] = school_column()

    __table_args__ = (Index("ix_exceptions_school_starts", "school", "starts"),)


class LocalListRow(Base):
    """The business manager's local lists: a host allowed or blocked for everyone of a school
    (`school`), or of the whole trust or the one school without a trust file (`school` NULL).
    A host is on each list at most once (the two partial unique indexes: NULL never equals
    NULL in a plain unique index)."""

    __tablename__ = "local_list"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(300))  # normalised
    verdict: Mapped[Verdict] = mapped_column(enum_column(Verdict, "verdict"))
    note: Mapped[str] = mapped_column(Text, default="")
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime]
    school: Mapped[str | None] = school_column()

    __table_args__ = (
        Index(
            "uq_local_list_host_no_school",
            "host",
            unique=True,
            sqlite_where=text("school IS NULL"),
            postgresql_where=text("school IS NULL"),
        ),
        Index(
            "uq_local_list_school_host",
            "school",
            "host",
            unique=True,
            sqlite_where=text("school IS NOT NULL"),
            postgresql_where=text("school IS NOT NULL"),
        ),
    )


class AlertRow(Base):
    """Something for the DSL to review: an attempt, a sanction, a recommendation."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime]
    severity: Mapped[AlertSeverity] = mapped_column(enum_column(AlertSeverity, "severity"))
    kind: Mapped[str] = mapped_column(String(64))
    user: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[AlertState] = mapped_column(enum_column(AlertState, "state"))
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    action_taken: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    pushed_at: Mapped[datetime | None]
    # When the DSL closed it: retention counts from here (an alert not closed is kept).
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    school: Mapped[str | None] = school_column()

    __table_args__ = (
        Index("ix_alerts_state_at", "state", "at"),
        Index("ix_alerts_school_at", "school", "at"),
    )


class SignInThrottleRow(Base):
    """Failed sign-ins counted for one key (a user name, an address, or both), shared by every
    gateway replica and admin process: see store/throttle.py. The key is a hash, so the table
    holds no user names or addresses."""

    __tablename__ = "signin_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)  # in the current window
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    strikes: Mapped[int] = mapped_column(Integer)  # windows in a row that reached the limit
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # meaningless after


class SessionStampRow(Base):
    """The admin's per-person "valid after" stamp: a session cookie issued before it is no
    longer accepted (signing out, or a member of staff signed out everywhere)."""

    __tablename__ = "session_stamps"

    user: Mapped[str] = mapped_column(String(256), primary_key=True)  # canonical user name
    valid_after: Mapped[datetime] = mapped_column(UTCDateTime)


class ChangeCounter(Base):
    """One row whose counter goes up with every write to the override tables (by triggers, and
    by `bump_change_counter`): the gateway's cheap "did anything change?" check."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger)


def bump_change_counter(session: Session) -> None:
    """Count a change to the overrides, in the caller's transaction (the triggers do too; a
    double count is harmless: readers only compare for equality)."""
    session.execute(
        update(ChangeCounter)
        .where(ChangeCounter.id == CHANGES_ROW)
        .values(counter=ChangeCounter.counter + 1)
    )


class PolicyVersionRow(Base):
    """One version of the policy file or of the local lists: the whole text, its SHA-256, who
    saved it, when, why, and the unified diff from the version before (of the same kind).
    `id` is the sequence number people see ("version 12"); a version is never changed."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # "policy" or "lists"
    sha256: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    diff: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_policy_versions_kind_id", "kind", "id"),)


class ShadowDifferenceRow(Base):
    """Requests where a policy running in shadow would have decided differently from the live
    one (which alone was enforced), counted per gateway flush: who (role), which site, both
    verdicts, the shadow rule that decided, and for which shadow text (its SHA-256)."""

    __tablename__ = "shadow_differences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shadow_sha256: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]  # the last request counted in this row
    role: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(300))
    live: Mapped[str] = mapped_column(String(16))  # the enforced verdict
    shadow: Mapped[str] = mapped_column(String(16))  # the shadow policy's verdict
    rule: Mapped[str] = mapped_column(String(200))  # the shadow rule that decided ("" default)
    requests: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_shadow_differences_sha_at", "shadow_sha256", "at"),)


class SchemaCompatRow(Base):
    """One row: the oldest schema revision whose code still works on this database, written by
    every `schoolgate db upgrade` from the migrations' `expand_only` marks (store/db.py)."""

    __tablename__ = "schema_compat"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    oldest_compatible: Mapped[str] = mapped_column(String(64))
