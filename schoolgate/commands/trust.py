"""`schoolgate trust check FILE`: one schoolgate for many schools (docs/trust.md). Checks the
trust file, the trust's base policy and every school's own, and says what each school gets."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from schoolgate.policy.errors import PolicyError
from schoolgate.policy.trust import Trust
from schoolgate.store.trust_files import load_trust


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trust", help="many schools, one service: check a trust file (docs/trust.md)"
    )
    sub = parser.add_subparsers(dest="trust_command", metavar="SUBCOMMAND")
    sub.required = True
    check = sub.add_parser(
        "check",
        help="validate a trust file, its base policy and every school's policy",
        description="Exit 0 with one line per school, or exit 1 listing every problem with "
        "its place and the school it belongs to.",
    )
    check.add_argument("file", help="the trust YAML file")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    try:
        trust = load_trust(args.file)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(summary(trust))
    return 0


def summary(trust: Trust) -> str:
    """The trust in a few lines: its schools, what each runs, where its clients are."""
    file = trust.file
    count = len(file.schools)
    lines = [f"{file.name}: {count} school{'s' if count != 1 else ''}, base policy {file.base}"]
    for school in file.schools.values():
        policy = trust.policies[school.id]
        subnets = ", ".join(str(n) for n in school.subnets) or "no subnets"
        own = f"its own policy {school.policy}" if school.policy else "the base policy"
        lines.append(
            f"  {school.id}: {school.name}: {own} ({len(policy.rules)} rules); clients {subnets}"
        )
    locks = file.locks
    locked = sorted(locks.categories)
    parts = [f"categories {', '.join(locked)}"] if locked else []
    parts += [
        name
        for name, on in (
            ("the default verdict", locks.default),
            ("inspection", locks.inspection),
            ("ports", locks.ports),
            ("internal destinations", locks.internal),
        )
        if on
    ]
    lines.append(f"Locked by the trust: {'; '.join(parts) if parts else 'nothing'}")
    if file.unmatched is None:
        lines.append("A device in no school's subnets is refused.")
    else:
        lines.append(f"A device in no school's subnets counts as {file.unmatched}.")
    return "\n".join(lines)
