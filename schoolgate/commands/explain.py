"""`schoolgate explain`: what would this role or user get at this host at this time, and why."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from policy.decide import decide
from policy.explain import explain_decision
from policy.model import Decision, Policy, Request, Subject
from schoolgate.commands.common import load_policy_or_report


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain", help="the decision for a role or user, host and time, and why",
        description="Print the decision and, in words, why; including when access next opens. "
                    "With --batch, read JSON lines {\"role\" or \"user\", \"host\", \"at\"} and "
                    "write one JSON decision per line, in order.")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--role", help="a role of the policy")
    who.add_argument("--user", help="a user name (gets the default role unless --role-of-user)")
    parser.add_argument("--groups", default="", help="the user's groups, comma-separated")
    parser.add_argument("--host", help="the host name (any spelling)")
    parser.add_argument("--at", help="ISO-8601 time, e.g. 2026-11-23T10:35:00+00:00 "
                                     "(a time without offset is read in the school's zone; "
                                     "default: now)")
    parser.add_argument("--policy", help="policy file (default: the seed policy)")
    parser.add_argument("--json", action="store_true", help="print the Decision as JSON")
    parser.add_argument("--batch", metavar="FILE",
                        help="JSON lines to decide ('-' for standard input)")
    parser.set_defaults(handler=run)


def parse_at(text: str | None, policy: Policy) -> datetime:
    if not text:
        return datetime.now(UTC)
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=policy.calendar.timezone)
    return value


def decision_json(policy: Policy, decision: Decision, subject: Subject, at: datetime,
                  ) -> dict[str, Any]:
    return {
        "verdict": decision.verdict.value,
        "reason": decision.reason.value,
        "rule": decision.rule,
        "category": decision.category,
        "host": decision.host,
        "opens_at": decision.opens_at.isoformat() if decision.opens_at else None,
        "technique": decision.technique,
        "role": subject.role,
        "user": subject.user,
        "at": at.isoformat(),
        "explanation": explain_decision(policy, decision, subject, at),
    }


def subject_for(policy: Policy, role: str | None, user: str | None,
                groups: Iterable[str] = ()) -> Subject:
    if role is not None and role not in policy.roles:
        known = ", ".join(policy.roles)
        raise ValueError(f"unknown role {role!r} (known: {known})")
    return Subject(role=role or policy.default_role, user=user, groups=frozenset(groups))


def run(args: argparse.Namespace) -> int:
    policy = load_policy_or_report(args.policy)
    if policy is None:
        return 1
    if args.batch:
        return run_batch(policy, args.batch)
    if not args.host or not (args.role or args.user):
        print("schoolgate explain: give --host and --role (or --user), or --batch FILE",
              file=sys.stderr)
        return 2
    try:
        at = parse_at(args.at, policy)
        groups = [g.strip() for g in args.groups.split(",") if g.strip()]
        subject = subject_for(policy, args.role, args.user, groups)
    except ValueError as exc:
        print(f"schoolgate explain: {exc}", file=sys.stderr)
        return 2
    decision = decide(policy, Request(args.host), subject, None, at)
    if args.json:
        print(json.dumps(decision_json(policy, decision, subject, at), indent=2))
    else:
        print(explain_decision(policy, decision, subject, at))
    return 0


def batch_lines(policy: Policy, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """One JSON object per input line, in order; a bad line gives {"line": n, "error": ...}."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            question = json.loads(line)
            if not isinstance(question, dict):
                raise ValueError("each line must be a JSON object")
            unknown = set(question) - {"role", "user", "groups", "host", "at"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)} (known: role, user, groups, "
                                 "host, at)")
            if not isinstance(question.get("host"), str) or not question["host"]:
                raise ValueError("'host' is required and must be a string")
            if not (question.get("role") or question.get("user")):
                raise ValueError("give 'role' or 'user'")
            subject = subject_for(policy, question.get("role"), question.get("user"),
                                  question.get("groups") or ())
            at = parse_at(question.get("at"), policy)
        except (ValueError, TypeError) as exc:
            yield {"line": number, "error": str(exc)}
            continue
        decision = decide(policy, Request(question["host"]), subject, None, at)
        yield {"line": number, **decision_json(policy, decision, subject, at)}


def run_batch(policy: Policy, path: str) -> int:
    errors = 0
    try:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        print(f"schoolgate explain: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    with stream:
        for result in batch_lines(policy, stream):
            errors += "error" in result
            print(json.dumps(result), flush=False)
    return 1 if errors else 0
