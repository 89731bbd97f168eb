"""`schoolgate lists update | status | build`: refresh the category lists from their sources,
say how fresh and full they are, and rebuild list files from pinned upstream checkouts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from schoolgate import policy
from schoolgate.commands.common import add_command_group
from schoolgate.store.db import display_url, make_engine
from schoolgate.store.list_build import BuildError, build_lists, load_manifest
from schoolgate.store.list_status import CONFIG_FILE, ListsReport, ListStatusReader
from schoolgate.store.list_updates import (
    ListsConfigError,
    raise_list_alerts,
    update_lists,
    write_atomic,
)

SHIPPED_MANIFEST = Path(policy.__file__).resolve().parent / "data" / "sources.yaml"
VENDORED_UPSTREAM = SHIPPED_MANIFEST.parent / "upstream"  # the pinned files, with their licences
SHIPPED_LISTS = SHIPPED_MANIFEST.parent / "lists"
DB_HELP = (
    "database to raise alerts for IT in (stale or failing lists); default: "
    "$SCHOOLGATE_DATABASE_URL, else no alerts"
)


def register(subparsers: Any) -> None:
    sub = add_command_group(
        subparsers,
        "lists",
        help="update the category lists, show their state, or build them from pinned sources",
        description="The domain lists behind the policy's categories: fetch updates, say how "
        "old each is, or build them from pinned upstream checkouts (docs/list-updates.md).",
    )

    update = sub.add_parser(
        "update",
        help="fetch the lists named in lists.yaml and swap them in atomically",
        description="Fetch every source in lists.yaml (beside the policy), verify it, and "
        "write each list beside the policy. A list whose source fails keeps its "
        "last good file. The running gateway picks the new lists up by itself. "
        "Exit 0: all updated; 1: some kept their old file; 2: lists.yaml is wrong.",
    )
    update.add_argument(
        "--policy",
        type=Path,
        required=True,
        help="the policy file; the lists are written beside it and it must still load with them",
    )
    update.add_argument(
        "--config", type=Path, help=f"the sources file (default: {CONFIG_FILE} beside the policy)"
    )
    update.add_argument("--database", help=DB_HELP)
    update.set_defaults(handler=run_update)

    status = sub.add_parser(
        "status",
        help="each list's age and entry count, empty categories, stale lists",
        description="Exit 0 when no list is stale or missing, 1 otherwise.",
    )
    status.add_argument("--policy", type=Path, help="the policy file (default: the seed)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--database", help=DB_HELP)
    status.set_defaults(handler=run_status)

    build = sub.add_parser(
        "build",
        help="build list files from pinned upstream checkouts (sources.yaml)",
        description="Read the upstream checkouts named in the manifest (each in "
        "UPSTREAM/<source>/ at its pinned commit; every file's sha256 is checked) "
        "and write one list file per output. The same inputs always give the same "
        "bytes. With --check, write nothing and exit 1 if a file would change. "
        "Exit 0 when the lists were built (or, with --check, are the same); 2 when the "
        "manifest or a checkout is wrong.",
    )
    build.add_argument(
        "--manifest",
        type=Path,
        default=SHIPPED_MANIFEST,
        help="the manifest (default: schoolgate/policy/data/sources.yaml)",
    )
    build.add_argument(
        "--upstream",
        type=Path,
        default=VENDORED_UPSTREAM,
        help="folder holding one checkout per source, named after it (default: "
        "the pinned files vendored in schoolgate/policy/data/upstream)",
    )
    build.add_argument(
        "--out",
        type=Path,
        default=SHIPPED_LISTS,
        help="where to write the lists (default: schoolgate/policy/data/lists)",
    )
    build.add_argument(
        "--check", action="store_true", help="compare with the files in --out instead of writing"
    )
    build.set_defaults(handler=run_build)


def run_update(args: argparse.Namespace) -> int:
    config = args.config or args.policy.parent / CONFIG_FILE
    now = datetime.now(UTC)
    try:
        report = update_lists(config, now=now, policy_path=args.policy)
    except ListsConfigError as exc:
        print(f"schoolgate lists update: {exc}", file=sys.stderr)
        return 2
    for outcome in report.outcomes:
        if outcome.written:
            print(
                f"{outcome.list_name}: updated, {outcome.entries} entries "
                f"(category {outcome.category})"
            )
        else:
            print(
                f"{outcome.list_name}: NOT updated; the last good list stays in use: "
                f"{outcome.error}"
            )
        for line in outcome.messages:
            print(f"  {line}")
    status = ListStatusReader().read(args.policy, now=now)
    _alerts(args.database, status, [o for o in report.outcomes if o.error], now)
    _print_empty(status)
    return 0 if report.ok else 1


def run_status(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    report = ListStatusReader().read(args.policy, now=now)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(format_status(report))
    _alerts(args.database, report, [], now)
    bad = report.stale or [s for s in report.lists if s.updated_by == "missing"]
    return 1 if bad else 0


def run_build(args: argparse.Namespace) -> int:
    try:
        manifest, hand = load_manifest(args.manifest)
        built = build_lists(manifest, hand, args.upstream)
    except BuildError as exc:
        print(f"schoolgate lists build: {exc}", file=sys.stderr)
        return 2
    changed = 0
    for item in built:
        target = args.out / item.name
        current = target.read_bytes() if target.is_file() else None
        same = current == item.text.encode("utf-8")
        if args.check:
            print(f"{item.name}: {'same' if same else 'DIFFERS'} ({item.entries} entries)")
        elif not same:
            args.out.mkdir(parents=True, exist_ok=True)
            write_atomic(target, item.text.encode("utf-8"))
            print(f"{item.name}: written ({item.entries} entries)")
        else:
            print(f"{item.name}: unchanged ({item.entries} entries)")
        changed += not same
    return 1 if args.check and changed else 0


def format_status(report: ListsReport) -> str:
    lines = [f"{'list':<24} {'entries':>9}  {'age':>9}  state"]
    for s in report.lists:
        age = f"{s.age_seconds / 86400:.1f} d" if s.age_seconds is not None else "-"
        state = "STALE" if s.stale else ("missing" if s.updated_by == "missing" else "ok")
        extra = f" (last update failed: {s.last_error})" if s.last_error else ""
        lines.append(f"{s.name:<24} {s.entries:>9}  {age:>9}  {state}, {s.updated_by}{extra}")
    lines.extend(f"EMPTY: {e.how_to_fill}" for e in report.empty)
    return "\n".join(lines)


def empty_category_lines(policy: Path | None) -> list[str]:
    """What `schoolgate run` prints about empty categories (nothing when all are filled)."""
    report = ListStatusReader().read(policy, now=datetime.now(UTC))
    if not report.empty:
        return []
    names = ", ".join(e.name for e in report.empty)
    return [
        f"  Empty categories (they block nothing yet): {names}.",
        "  Fill them with 'schoolgate lists update' (see docs/list-updates.md).",
    ]


def _print_empty(report: ListsReport) -> None:
    for empty in report.empty:
        print(f"EMPTY: {empty.how_to_fill}")


def _alerts(url: str | None, report: ListsReport, failures: list[Any], now: datetime) -> None:
    url = url or os.environ.get("SCHOOLGATE_DATABASE_URL", "")
    if not url or not (report.stale or failures):
        return
    try:
        engine = make_engine(url)
        try:
            with Session(engine) as session, session.begin():
                raised = raise_list_alerts(
                    session=session, report=report, failures=failures, at=now
                )
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        print(f"could not raise alerts in {display_url(url)}: {exc}", file=sys.stderr)
        return
    if raised:
        print(f"raised {raised} alert(s) for IT in {display_url(url)}")
