"""Nobody left waiting: what each person has waiting in the admin (the counts beside the menu and
the to-dos on the start page), and the e-mails a schedule sends: new unblock requests to the
Business Manager (each run, or one daily digest), each decision to its requester (where an
address is known), new alerts and the weekly summary to the DSL.

`run_notifications` is idempotent: what was already sent is remembered in a small state file
beside the data, so a timer may call it every few minutes (`python -m admin_api.notifications
--settings notifications.yaml`). E-mail goes encrypted unless turned off (store/alerts.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from datetime import date as date_type
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request

from schoolgate.admin_api.deps import school_scope
from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.admin_api.services.reports import week_of, weekly_summary
from schoolgate.admin_api.words import category_words, technique_words
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.alerts import EmailSettings, send_message
from schoolgate.store.directory import Directory
from schoolgate.store.models import AlertRow, AlertSeverity, AlertState
from schoolgate.store.school_scope import SchoolScope, scope_session

log = logging.getLogger("schoolgate.notifications")

# --- what is waiting, in the admin ------------------------------------------------------------


def waiting_counts(session: Session, user: SignedInUser) -> dict[str, int]:
    """Menu path -> how many things wait there for this person (only the non-zero ones)."""
    counts: dict[str, int] = {}
    if Role.BUSINESS_MANAGER in user.roles:
        counts["/requests"] = (
            session.scalar(
                select(func.count())
                .select_from(UnblockRequestRow)
                .where(UnblockRequestRow.state == RequestState.PENDING)
            )
            or 0
        )
    if Role.DSL in user.roles:
        counts["/monitoring"] = (
            session.scalar(
                select(func.count()).select_from(AlertRow).where(AlertRow.state == AlertState.OPEN)
            )
            or 0
        )
    return {path: count for path, count in counts.items() if count}


def waiting_for(request: Request, user: SignedInUser | None) -> dict[str, int]:
    """`waiting_counts` for the signed-in person, of their own school's rows (with a trust: as
    the pages count them); nothing if the database cannot say."""
    resources = getattr(request.app.state, "resources", None)
    if user is None or resources is None:
        return {}
    try:
        with resources.sessions() as session:
            scope_session(session, school_scope(request, user, resources))
            return waiting_counts(session, user)
    except Exception:  # a page must still render when the database is down
        log.warning("could not count what is waiting for %s", user.username, exc_info=True)
        return {}


def recent_outcomes(
    session: Session,
    *,
    username: str,
    since: datetime,
) -> Sequence[UnblockRequestRow]:
    """This person's requests decided since `since`, newest first (for their start page)."""
    return session.scalars(
        select(UnblockRequestRow)
        .where(
            UnblockRequestRow.requester == username,
            UnblockRequestRow.state != RequestState.PENDING,
            UnblockRequestRow.reviewed_at >= since,
        )
        .order_by(UnblockRequestRow.reviewed_at.desc())
        .limit(5)
    ).all()


# --- settings ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestMode(StrEnum):
    EACH = "each"  # an e-mail at the first run after a request arrives
    DAILY = "daily"  # one digest a day, at `daily_at`, of every request still waiting


class BusinessManagerNotices(_Strict):
    to: tuple[str, ...] = Field(min_length=1)
    mode: RequestMode = RequestMode.EACH
    daily_at: time = time(15, 30)


class DslNotices(_Strict):
    to: tuple[str, ...] = Field(min_length=1)
    alerts_from: AlertSeverity = AlertSeverity.MEDIUM  # new alerts of this severity and above
    weekly_on: int = Field(default=0, ge=0, le=6)  # 0 = Monday
    weekly_at: time = time(8, 0)


class SchoolNotices(_Strict):
    """With a trust: one school's Business Manager and DSL, sent that school's rows only."""

    business_manager: BusinessManagerNotices | None = None
    dsl: DslNotices | None = None


class NotificationSettings(_Strict):
    """The notifications file (YAML). A section left out sends nothing of that kind. With a
    trust (docs/trust.md) the top-level `business_manager` and `dsl` are the trust's and get
    every school's rows; `schools: {<id>: {business_manager, dsl}}` sends each school's own."""

    email: EmailSettings
    admin_url: str = "http://127.0.0.1:8081"
    business_manager: BusinessManagerNotices | None = None
    dsl: DslNotices | None = None
    requesters: bool = True  # tell each requester the outcome, where the directory has one
    schools: dict[str, SchoolNotices] = Field(default_factory=dict)

    def for_school(self, school: str) -> NotificationSettings:
        """The settings of one school's run: its own addresses; the requesters are told by
        the trust-wide run, once."""
        own = self.schools[school]
        return self.model_copy(
            update={
                "business_manager": own.business_manager,
                "dsl": own.dsl,
                "requesters": False,
                "schools": {},
            }
        )

    @model_validator(mode="before")
    @classmethod
    def _no_address_map(cls, raw: object) -> object:
        if isinstance(raw, dict) and "addresses" in raw:
            raise ValueError(
                "'addresses' is no longer read: each requester's e-mail address "
                "comes from the directory (LDAP 'mail', or 'mail' in the users "
                "file); remove the 'addresses' section"
            )
        return raw


def parse_notification_settings(text: str, *, source: str) -> NotificationSettings:
    """Parse the YAML; ValueError lists every problem with its place."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    try:
        return NotificationSettings.model_validate(raw)
    except ValidationError as exc:
        found = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        ]
        raise ValueError("\n  ".join([f"{source}: {len(found)} problem(s)", *found])) from None


# --- sending ----------------------------------------------------------------------------------

_RANK = {AlertSeverity.LOW: 0, AlertSeverity.MEDIUM: 1, AlertSeverity.HIGH: 2}


@dataclass
class Sent:
    """What one run sent (for logs and tests): (to, subject) pairs and the failures."""

    mails: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


Mailer = Callable[[EmailSettings, str, str, tuple[str, ...]], None]


def _smtp(settings: EmailSettings, subject: str, text: str, to: tuple[str, ...]) -> None:
    send_message(settings, subject=subject, text=text, to=to)


def _when(value: datetime, zone: ZoneInfo) -> str:
    local = value.astimezone(zone)
    return f"{local.strftime('%A')} {local.day} {local.strftime('%B')}, {local.strftime('%H:%M')}"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _request_lines(rows: Iterable[UnblockRequestRow], admin: str, zone: ZoneInfo) -> list[str]:
    lines: list[str] = []
    for row in rows:
        what = row.host + (f" ({category_words(row.category)})" if row.category else "")
        who = f"{row.requester_name} ({row.requester})"
        if row.for_group:
            who += f" for {row.for_group}"
        lines += [
            f"- {what}, asked by {who} on {_when(row.created_at, zone)}",
            f"  Why: {row.why.strip()[:300]}",
            f"  Decide: {admin}/requests/{row.id}",
            "",
        ]
    return lines


@dataclass
class _State:
    path: Path
    values: dict[str, str]

    @classmethod
    def load(cls, path: Path) -> _State:
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            values = {}
        return cls(path, {str(k): str(v) for k, v in dict(values).items()})

    def instant(self, key: str, default: datetime) -> datetime:
        text = self.values.get(key)
        return datetime.fromisoformat(text) if text else default

    def since_first_run(self, key: str, now: datetime) -> datetime:
        """For a schedule: when it was last done; the first run only starts the clock."""
        if key not in self.values:
            self.set(key, now)
        return self.instant(key, now)

    def set(self, key: str, value: datetime) -> None:
        self.values[key] = value.isoformat()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.values, indent=1), encoding="utf-8")
        temporary.replace(self.path)


def _due(
    now_local: datetime, at: time, last: datetime, zone: ZoneInfo, weekday: int | None = None
) -> bool:
    """Whether a schedule point ('each day at `at`', or 'on `weekday` at `at`') has passed since
    `last` (an aware instant), looking back up to a week."""
    for back in range(8):
        day = now_local.date() - timedelta(days=back)
        if weekday is not None and day.weekday() != weekday:
            continue
        point = datetime.combine(day, at, tzinfo=zone)
        if point <= now_local:
            return point > last
    return False


class DirectoryAddresses:
    """A requester's e-mail address from the school directory (None where it has none).
    The directory is asked once per person and run; if it cannot answer, the error goes up
    and the decision is mailed at a later run."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._loop = asyncio.new_event_loop()
        self._known: dict[str, str | None] = {}

    def __call__(self, username: str) -> str | None:
        if username not in self._known:
            found = self._loop.run_until_complete(self._directory.lookup(username))
            self._known[username] = (found.mail or None) if found is not None else None
        return self._known[username]

    def close(self) -> None:
        self._loop.close()


def run_notifications(
    session: Session,
    settings: NotificationSettings,
    *,
    now: datetime,
    zone: ZoneInfo,
    state_file: Path,
    mailer: Mailer = _smtp,
    address_of: Callable[[str], str | None] | None = None,
) -> Sent:
    """Send whatever is due now; remember it in `state_file` so it is sent once. A failed
    e-mail is logged and tried again at the next run. `address_of` gives a requester's
    e-mail address (`DirectoryAddresses`); without it, requesters are told on their pages only."""
    state = _State.load(state_file)
    first_run = now - timedelta(days=1)  # on the very first run, look back one day
    sent = Sent()
    admin = settings.admin_url.rstrip("/")
    now_local = now.astimezone(zone)

    def mail(to: tuple[str, ...], subject: str, lines: list[str]) -> bool:
        try:
            mailer(settings.email, subject, "\n".join(lines).rstrip() + "\n", to)
        except Exception as exc:  # any failure: log it, and try again at the next run
            log.warning("e-mail %r to %s failed: %s", subject, ", ".join(to), exc)
            sent.failed.append(f"{subject}: {exc}")
            return False
        sent.mails.append((to, subject))
        return True

    # 1. New requests, to the Business Manager.
    bm = settings.business_manager
    if bm is not None:
        since = state.instant("requests", first_run)
        if bm.mode is RequestMode.EACH:
            rows = session.scalars(
                select(UnblockRequestRow)
                .where(
                    UnblockRequestRow.state == RequestState.PENDING,
                    UnblockRequestRow.created_at > since,
                )
                .order_by(UnblockRequestRow.created_at)
            ).all()
            subject = (
                f"{len(rows)} new unblock request{'s' if len(rows) != 1 else ''} waiting for you"
            )
            if rows and mail(
                bm.to,
                subject,
                [
                    "New requests to unblock a website are waiting for your decision:",
                    "",
                    *_request_lines(rows, admin, zone),
                    f"All requests: {admin}/requests",
                ],
            ):
                state.set("requests", max(_aware(r.created_at) for r in rows))
        elif _due(now_local, bm.daily_at, state.since_first_run("requests_digest", now), zone):
            rows = session.scalars(
                select(UnblockRequestRow)
                .where(UnblockRequestRow.state == RequestState.PENDING)
                .order_by(UnblockRequestRow.created_at)
            ).all()
            ok = True
            if rows:
                ok = mail(
                    bm.to,
                    f"Daily digest: {len(rows)} unblock request"
                    f"{'s' if len(rows) != 1 else ''} waiting",
                    [
                        "These requests are still waiting for your decision:",
                        "",
                        *_request_lines(rows, admin, zone),
                        f"All requests: {admin}/requests",
                    ],
                )
            if ok:
                state.set("requests_digest", now)

    # 2. Decisions, to each requester.
    if settings.requesters:
        since = state.instant("outcomes", first_run)
        rows = session.scalars(
            select(UnblockRequestRow)
            .where(
                UnblockRequestRow.state != RequestState.PENDING,
                UnblockRequestRow.reviewed_at > since,
            )
            .order_by(UnblockRequestRow.reviewed_at)
        ).all()
        newest = since
        for row in rows:
            try:
                address = address_of(row.requester) if address_of else None
            except Exception as exc:  # the directory did not answer: try again next time
                log.warning("no e-mail address for %s: %s", row.requester, exc)
                sent.failed.append(f"address of {row.requester}: {exc}")
                break
            reviewed = _aware(row.reviewed_at or now)
            if address is None:
                newest = max(newest, reviewed)  # nobody to tell: the page shows it
                continue
            if mail((address,), *_outcome(row, admin, zone)):
                newest = max(newest, reviewed)
            else:
                break  # keep the order: try this one again next time
        state.set("outcomes", newest)

    # 3. New alerts and the weekly summary, to the DSL.
    dsl = settings.dsl
    if dsl is not None:
        since = state.instant("alerts", first_run)
        alerts = [
            a
            for a in session.scalars(
                select(AlertRow).where(AlertRow.at > since).order_by(AlertRow.at)
            ).all()
            if _RANK[a.severity] >= _RANK[dsl.alerts_from]
        ]
        if alerts:
            lines = ["New alerts for you to review:", ""]
            for alert in alerts:
                lines += [
                    f"- {str(alert.severity).upper()}: {alert.summary}",
                    f"  {_when(alert.at, zone)}; {admin}/monitoring/alerts/{alert.id}",
                    "",
                ]
            if mail(
                dsl.to,
                f"{len(alerts)} new safeguarding alert{'s' if len(alerts) != 1 else ''}",
                lines,
            ):
                state.set("alerts", max(_aware(a.at) for a in alerts))
        if _due(
            now_local,
            dsl.weekly_at,
            state.since_first_run("weekly", now),
            zone,
            weekday=dsl.weekly_on,
        ):
            monday = week_of(now_local.date()) - timedelta(days=7)  # the week just ended
            if mail(
                dsl.to,
                f"Weekly summary: week of {monday.day} {monday.strftime('%B')}",
                _weekly_lines(session, monday, zone, admin),
            ):
                state.set("weekly", now)
    state.save()
    return sent


def run_for_schools(
    sessions: Callable[[], Session],
    settings: NotificationSettings,
    *,
    now: datetime,
    zone: ZoneInfo,
    state_file: Path,
    mailer: Mailer = _smtp,
    address_of: Callable[[str], str | None] | None = None,
) -> Sent:
    """`run_notifications` for the whole file: the top-level sections with every row, then
    each school's section with a session limited to that school's rows (store/school_scope.py)
    and its own state file, so one school's people never get another school's pupils."""
    runs = [(None, settings, state_file, address_of)] + [
        (
            school,
            settings.for_school(school),
            state_file.with_stem(f"{state_file.stem}.{school}"),
            None,
        )
        for school in settings.schools
    ]
    sent = Sent()
    for school, these, state, addresses in runs:
        with sessions() as session:
            if school is not None:
                scope_session(session, SchoolScope(school))
            done = run_notifications(
                session,
                these,
                now=now,
                zone=zone,
                state_file=state,
                mailer=mailer,
                address_of=addresses,
            )
        sent.mails += done.mails
        sent.failed += done.failed
    return sent


def _outcome(row: UnblockRequestRow, admin: str, zone: ZoneInfo) -> tuple[str, list[str]]:
    if row.state is RequestState.APPROVED:
        ends = (row.grant or {}).get("ends")
        until = (
            f" until {_when(datetime.fromisoformat(ends), zone)}" if isinstance(ends, str) else ""
        )
        return (
            f"Yes: you can use {row.host}{until}",
            [
                f"Your request to use {row.host} was approved{until}.",
                "",
                f"See it here: {admin}/requests/{row.id}",
            ],
        )
    lines = [f"Your request to use {row.host} was not approved."]
    if row.review_note:
        lines += ["", f"The reason: {row.review_note.strip()}"]
    return (f"Not this time: {row.host}", [*lines, "", f"See it here: {admin}/requests/{row.id}"])


def _weekly_lines(session: Session, monday: date_type, zone: ZoneInfo, admin: str) -> list[str]:
    summary = weekly_summary(session, monday=monday, zone=zone)
    lines = [
        f"The week of {monday.strftime('%A')} {monday.day} {monday.strftime('%B %Y')}:",
        "",
        f"Websites blocked: {summary.blocked}",
        f"Attempts to get round the filter: {summary.attempts}",
        f"Alerts still open: {summary.alerts_still_open}",
        f"Incident notes written: {summary.incident_notes}",
        "",
    ]
    if summary.blocked_by_category:
        lines.append("Blocked, by kind of website:")
        lines += [
            f"  {category_words(name)}: {count}" for name, count in summary.blocked_by_category
        ]
    if summary.attempts_by_technique:
        lines.append("Attempts, by way round the filter:")
        lines += [
            f"  {technique_words(name)}: {count}" for name, count in summary.attempts_by_technique
        ]
    if summary.top_users:
        lines.append("Most attempts:")
        lines += [f"  {name}: {count}" for name, count in summary.top_users]
    lines += ["", f"The full summary: {admin}/monitoring/weekly?week={monday.isoformat()}"]
    return lines


# --- the command a timer runs -----------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run once: `python -m admin_api.notifications --settings notifications.yaml`."""
    from schoolgate.admin_api.resources import make_resources
    from schoolgate.admin_api.settings import get_settings, settings_problems
    from schoolgate.policy.errors import PolicyError
    from schoolgate.store.identity_config import IdentityConfigError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--settings", type=Path, required=True, help="the notifications file (YAML)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        notices = parse_notification_settings(
            args.settings.read_text(encoding="utf-8"), source=str(args.settings)
        )
    except (OSError, ValueError) as exc:
        print(f"schoolgate notifications: {exc}", file=sys.stderr)
        return 2
    try:
        admin = get_settings()
        resources = make_resources(admin)
    except ValidationError as error:  # the admin's settings (SCHOOLGATE_*) are incomplete
        for problem in settings_problems(error):
            print(f"schoolgate notifications: {problem}", file=sys.stderr)
        return 2
    except (PolicyError, IdentityConfigError, ValueError, OSError) as error:
        print(f"schoolgate notifications: {error}", file=sys.stderr)
        return 2
    schools = set(resources.trust.schools) if resources.trust is not None else set()
    if unknown := sorted(set(notices.schools) - schools):
        resources.close()
        print(
            f"schoolgate notifications: {args.settings}: schools: {', '.join(unknown)}: "
            + (
                "no such school in the trust file; use the schools' ids from it"
                if resources.trust is not None
                else "a school's section needs a trust (SCHOOLGATE_TRUST_FILE); remove 'schools'"
            ),
            file=sys.stderr,
        )
        return 2
    addresses = DirectoryAddresses(resources.directory) if resources.directory else None
    try:
        sent = run_for_schools(
            resources.sessions,
            notices,
            now=datetime.now(UTC),
            zone=resources.settings.zone,  # the policy's, unless given
            state_file=admin.data_dir / "notifications-state.json",
            address_of=addresses,
        )
    finally:
        if addresses is not None:
            addresses.close()
        resources.close()
    for to, subject in sent.mails:
        print(f"sent to {', '.join(to)}: {subject}")
    return 1 if sent.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
