"""`schoolgate policy check FILE` and `schoolgate policy table`: the policy for people."""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import UTC, date, datetime, time
from typing import Any

from policy.decide import decide
from policy.model import Policy, Request, Subject, Verdict
from schoolgate.commands.common import load_policy_or_report

UNCATEGORISED_HOST = "uncategorised-site.example"


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


def summary(policy: Policy) -> str:
    domains = sum(c.domain_count for c in policy.categories.values())
    return (f"{policy.source}: OK: '{policy.name}': {len(policy.roles)} roles, "
            f"{len(policy.categories)} categories ({domains} domains), {len(policy.rules)} "
            f"rules, default {policy.default.value} (default role {policy.default_role})")


def run_check(args: argparse.Namespace) -> int:
    policy = load_policy_or_report(args.file)
    if policy is None:
        return 1
    print(summary(policy))
    return 0


def policy_table(policy: Policy, day: date) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, note): each role x category (and uncategorised sites) against each part
    of `day`, the verdict at the middle of that part."""
    cal = policy.calendar
    zone = cal.timezone
    segments = [(start, end, name) for start, end, name, _ in cal.day_timeline(day)]
    if segments:
        parts = [(time(0), cal.day_start, "before school"), *segments,
                 (cal.day_end, time(23, 59, 59), "after school")]
        note = f"{day.isoformat()} ({day.strftime('%A')}) is a school day."
    else:
        parts = [(time(0), time(23, 59, 59), "all day")]
        noon = datetime.combine(day, time(12), zone)
        note = (f"{day.isoformat()} ({day.strftime('%A')}) is not a school day: "
                f"{cal.describe(noon)}.")
    header = ["role", "category"] + [f"{name} {s:%H:%M}-{e:%H:%M}" for s, e, name in parts]
    hosts = [(name, c.example_domain) for name, c in policy.categories.items() if c.example_domain]
    hosts.append(("(uncategorised)", UNCATEGORISED_HOST))
    rows = []
    for role in policy.roles:
        for category, host in hosts:
            row = [role, category]
            for start, end, _ in parts:
                middle = _middle(datetime.combine(day, start, zone),
                                 datetime.combine(day, end, zone))
                decision = decide(policy, Request(host), Subject(role=role), None, middle)
                row.append("allow" if decision.verdict is Verdict.ALLOW else "BLOCK")
            rows.append(row)
    return header, rows, note


def _middle(start: datetime, end: datetime) -> datetime:
    a, b = start.astimezone(UTC), end.astimezone(UTC)
    return a + (b - a) / 2


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
