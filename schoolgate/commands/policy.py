"""`schoolgate policy check FILE` and `schoolgate policy table`: the policy for people."""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import date, datetime
from typing import Any

from policy.table import policy_table, summary
from schoolgate.commands.common import load_policy_or_report


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("policy", help="check a policy file, or print it as a table")
    sub = parser.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    sub.required = True

    check = sub.add_parser("check", help="validate a policy file and the lists it names",
                           description="Exit 0 with a one-line summary, or exit 1 listing "
                                       "every problem with its place.")
    check.add_argument("file", help="the policy YAML file")
    check.set_defaults(handler=run_check)

    table = sub.add_parser("table", help="role x category x period matrix (governors' review)")
    table.add_argument("--policy", help="policy file (default: the seed policy)")
    table.add_argument("--date", type=date.fromisoformat, default=None,
                       help="the day to show, YYYY-MM-DD (default: today)")
    table.add_argument("--csv", action="store_true", help="print CSV instead of a text table")
    table.set_defaults(handler=run_table)


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
    print(f"{policy.name}\n{note}\n")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0
