"""`schoolgate db upgrade|status|purge`: apply the schema migrations, show where a database
stands, and delete records past their retention."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from schoolgate.store.db import (
    SchemaOutOfDate,
    current_revision,
    database_url_from_environment,
    display_url,
    head_revision,
    make_engine,
    require_current_schema,
    sqlite_file,
    upgrade,
)
from schoolgate.store.retention import RetentionDays, purge, refresh_statistics

URL_HELP = (
    "database URL, e.g. sqlite:////var/lib/schoolgate/schoolgate.db or "
    "postgresql+psycopg://user:password@host/schoolgate (default: "
    "$SCHOOLGATE_DATABASE_URL, else schoolgate.db in $SCHOOLGATE_DATA_DIR or "
    "./var/schoolgate)"
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db",
        help="the database: upgrade the schema, status, purge",
        description="Manage schoolgate's database.",
    )
    commands = parser.add_subparsers(dest="db_command", metavar="ACTION")
    commands.required = True

    up = commands.add_parser(
        "upgrade",
        help="apply the schema migrations (safe to repeat)",
        description="Bring the database's tables up to this version of schoolgate (Alembic "
        "migrations). Run it after installing a new version, before starting the services; "
        "running it again changes nothing.",
    )
    up.add_argument("--database", help=URL_HELP)
    up.set_defaults(handler=run_upgrade)

    status = commands.add_parser(
        "status",
        help="show the schema revision (exit 1: upgrade)",
        description="Print the database's schema revision and whether it is current. Exit 0 "
        "when it is; exit 1 when `schoolgate db upgrade` is needed.",
    )
    status.add_argument("--database", help=URL_HELP)
    status.set_defaults(handler=run_status)

    defaults = RetentionDays()
    clean = commands.add_parser(
        "purge",
        help="delete records older than their retention",
        description="Delete what is older than the school keeps it for (the defaults follow "
        "docs/storage.md; each --...-days option changes one). Run it daily, e.g. from the "
        "timer deploy/systemd/schoolgate-purge.timer.",
    )
    clean.add_argument("--database", help=URL_HELP)
    for field, what in RETENTION_FLAGS:
        clean.add_argument(
            f"--{field.replace('_', '-')}-days",
            dest=f"{field}_days",
            type=int,
            default=getattr(defaults, field),
            metavar="N",
            help=f"keep {what} (default {getattr(defaults, field)})",
        )
    clean.set_defaults(handler=run_purge)


# `db purge`'s flags: each RetentionDays field as --FIELD-days, and what it keeps.
RETENTION_FLAGS = (
    ("events", "browsing events N days"),
    ("attempts", "circumvention attempts N days"),
    ("alerts", "alerts N days after they were closed; one not closed is kept"),
    ("sanctions", "sanctions and supervised sessions N days after they ended"),
    ("requests", "unblock requests (names and reasons) N days"),
    ("audit_log", "the admin's audit log N days"),
    ("incident_notes", "incident notes (safeguarding records) N days"),
)


def _url(args: argparse.Namespace) -> str:
    return str(args.database or database_url_from_environment())


def _fail(action: str, url: str, exc: Exception) -> int:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    print(f"schoolgate db {action}: {display_url(url)}: {first}", file=sys.stderr)
    return 2


def run_upgrade(args: argparse.Namespace) -> int:
    url = _url(args)
    try:
        path = sqlite_file(url)
        before = None
        if path is None or path.exists():
            engine = make_engine(url)
            try:
                before = current_revision(engine)
            finally:
                engine.dispose()
        upgrade(url)
    except (SQLAlchemyError, OSError, ValueError) as exc:
        return _fail("upgrade", url, exc)
    head = head_revision()
    if before == head:
        print(f"{display_url(url)}: already at revision {head}; nothing to do")
    else:
        print(
            f"{display_url(url)}: upgraded from {before or 'an empty database'} to revision {head}"
        )
    return 0


def run_status(args: argparse.Namespace) -> int:
    url = _url(args)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        print(
            f"database: {display_url(url)}\nrevision: none (the file does not exist)\n"
            f"needed:   {head_revision()}\nrun: schoolgate db upgrade --database '{url}'"
        )
        return 1
    try:
        engine = make_engine(url)
        try:
            current = current_revision(engine)
            require_current_schema(engine)
        finally:
            engine.dispose()
    except SchemaOutOfDate as exc:
        print(
            f"database: {display_url(url)}\nrevision: {current or 'none (empty)'}\n"
            f"needed:   {head_revision()}\n{exc}"
        )
        return 1
    except (SQLAlchemyError, ValueError) as exc:
        return _fail("status", url, exc)
    print(f"database: {display_url(url)}\nrevision: {current} (up to date)")
    return 0


def run_purge(args: argparse.Namespace) -> int:
    url = _url(args)
    try:
        days = RetentionDays(
            **{field: getattr(args, f"{field}_days") for field, _ in RETENTION_FLAGS}
        )
    except ValueError as exc:
        print(f"schoolgate db purge: {exc}", file=sys.stderr)
        return 2
    try:
        engine = make_engine(url)
        try:
            require_current_schema(engine)
            counts = purge(engine, now=datetime.now(UTC), days=days)
            refresh_statistics(engine)
        finally:
            engine.dispose()
    except SchemaOutOfDate as exc:
        print(f"schoolgate db purge: {exc}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, ValueError) as exc:
        return _fail("purge", url, exc)
    for table, count in counts.items():
        print(f"{table}: {count} deleted")
    return 0
