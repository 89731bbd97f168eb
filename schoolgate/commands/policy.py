"""`schoolgate policy check FILE`, `schoolgate policy table` and `schoolgate policy diff OLD NEW`:
the policy for people, and what a change to it would do."""

from __future__ import annotations

import argparse
import csv
import re
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from schoolgate.commands.common import (
    add_command_group,
    load_policy_or_report,
    parse_day,
    prepare_database,
)
from schoolgate.policy.diff import replay, table_diff
from schoolgate.policy.table import policy_table, summary
from schoolgate.store.db import database_url_from_environment, display_url, make_engine
from schoolgate.store.policy_versions import recorded_decisions

_DURATION = re.compile(r"^(\d{1,3})([dh])$")


def register(subparsers: Any) -> None:
    sub = add_command_group(
        subparsers,
        "policy",
        help="check a policy file, print it as a table, or see what a change would do",
        description="The policy file for people: check it, show it as the governors' table, "
        "or see what a change to it would do.",
    )

    check = sub.add_parser(
        "check",
        help="validate a policy file and the lists it names",
        description="Exit 0 with a one-line summary, or exit 1 listing "
        "every problem with its place.",
    )
    check.add_argument("file", help="the policy YAML file")
    check.set_defaults(handler=run_check)

    table = sub.add_parser(
        "table",
        help="role x category x period matrix (governors' review)",
        description="What each role gets for each category in each part of one day (the "
        "verdict in the middle of each period). The text table has one block per role, "
        "periods numbered with a key, to fit 100 columns; --csv gives the whole matrix. "
        "Exit 0 with the table, or exit 1 listing every problem of the policy.",
    )
    table.add_argument("--policy", help="policy file (default: the seed policy)")
    table.add_argument(
        "--date",
        type=parse_day,
        default=None,
        help="the day to show, DD/MM/YYYY or YYYY-MM-DD (default: today)",
    )
    table.add_argument("--csv", action="store_true", help="print CSV instead of a text table")
    table.set_defaults(handler=run_table)

    diff = sub.add_parser(
        "diff",
        help="what changing from OLD to NEW would do",
        description="The governors' table cells that change (for --date), "
        "and with --against-history the recorded decisions of "
        "that many days replayed through both policies, the "
        "ones that flip grouped in words. Exit 0 with the "
        "differences; 1 if a policy has problems or the database cannot be used; 2 "
        "for a --against-history that cannot be read.",
    )
    diff.add_argument("old", help="the policy in force (YAML file)")
    diff.add_argument("new", help="the proposed policy (YAML file)")
    diff.add_argument(
        "--against-history",
        metavar="DURATION",
        default=None,
        help="replay the recorded decisions of the last DURATION, e.g. 7d or 12h",
    )
    diff.add_argument(
        "--database",
        default=None,
        help="database URL holding the events (default: $SCHOOLGATE_DATABASE_URL, "
        "else the embedded SQLite file)",
    )
    diff.add_argument(
        "--date",
        type=parse_day,
        default=None,
        help="the day of the governors' table, DD/MM/YYYY or YYYY-MM-DD (default: today)",
    )
    diff.set_defaults(handler=run_diff)


def run_check(args: argparse.Namespace) -> int:
    policy = load_policy_or_report(args.file)
    if policy is None:
        return 1
    print(summary(policy))
    return 0


def run_table(args: argparse.Namespace) -> int:
    policy = load_policy_or_report(args.policy)
    if policy is None:
        return 1
    day = args.date or datetime.now(policy.calendar.timezone).date()
    header, rows, note = policy_table(policy, day)
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows(rows)
        return 0
    print("\n".join(text_table(policy.name, note, header, rows)))
    return 0


TABLE_WIDTH = 100  # columns: a normal terminal, and an A4 page in a fixed-width font


def text_table(name: str, note: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """The governors' table as lines of at most TABLE_WIDTH characters: a key numbering the
    parts of the day, then one block per role (categories as rows, parts as numbered columns);
    if the parts do not fit across, a role's block repeats with the next parts."""
    parts = header[2:]
    lines = [*textwrap.wrap(name, TABLE_WIDTH), *textwrap.wrap(note, TABLE_WIDTH), ""]
    lines.append("Parts of the day:")
    lines += [f"  {number:>2}  {part}" for number, part in enumerate(parts, start=1)]
    category_width = max(len(row[1]) for row in rows)
    cell = max(len("BLOCK"), len(str(len(parts)))) + 2
    across = max(1, (TABLE_WIDTH - 2 - category_width) // cell)
    for role in dict.fromkeys(row[0] for row in rows):
        mine = [row for row in rows if row[0] == role]
        for first in range(0, len(parts), across):
            shown = range(first, min(first + across, len(parts)))
            lines += ["", f"{role}:"]
            lines.append(
                (
                    "  "
                    + "category".ljust(category_width)
                    + "".join(str(i + 1).rjust(cell) for i in shown)
                ).rstrip()
            )
            for row in mine:
                lines.append(
                    "  "
                    + row[1].ljust(category_width)
                    + "".join(row[2 + i].rjust(cell) for i in shown)
                )
    return lines


def parse_duration(text: str) -> timedelta:
    """'7d' or '12h' as a timedelta; ValueError saying what to write otherwise."""
    found = _DURATION.match(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise ValueError(
            f"--against-history {text!r}: write a number of days or hours, e.g. 7d or 12h"
        )
    amount = int(found.group(1))
    return timedelta(days=amount) if found.group(2) == "d" else timedelta(hours=amount)


def run_diff(args: argparse.Namespace) -> int:
    old = load_policy_or_report(args.old)
    new = load_policy_or_report(args.new)
    if old is None or new is None:
        return 1
    day = args.date or datetime.now(old.calendar.timezone).date()
    tables = table_diff(old, new, day)
    print(f"The governors' table for {day.isoformat()}:")
    if tables.changed_cells:
        for cell in tables.changed_cells:
            print(f"  {cell}")
    else:
        print("  no cell changes")
    if args.against_history is None:
        return 0
    try:
        span = parse_duration(args.against_history)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    url = args.database or database_url_from_environment()
    problem = prepare_database(url, embedded=False)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            found = replay(old, new, recorded_decisions(session, since=now - span, until=now))
    finally:
        engine.dispose()
    print(
        f"\nRecorded decisions since {(now - span).isoformat(timespec='minutes')} "
        f"({display_url(url)}): {found.replayed:,} replayed, {found.changed:,} would change."
    )
    for flip in found.flips:
        print(f"  {flip.sentence}")
    if not found.flips:
        print("  nobody would notice a difference")
    return 0
