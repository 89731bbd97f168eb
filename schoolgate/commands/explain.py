"""`schoolgate explain`: what would this role or user get at this host at this time, and why."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schoolgate.commands.common import load_policy_or_report
from schoolgate.policy.decide import decide
from schoolgate.policy.explain import explain_decision
from schoolgate.policy.model import Decision, Policy, Request, Subject
from schoolgate.store.directory import DirectoryUnavailable, make_directory
from schoolgate.store.identity_config import IdentityConfigError, load_identity_config


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="the decision for a role or user, host and time, and why",
        description="Print the decision and, in words, why; including when access next opens. "
        'With --batch, read JSON lines {"role" or "user", "host", "at"} and '
        "write one JSON decision per line, in order.",
    )
    parser.add_argument("--role", help="a role of the policy")
    parser.add_argument(
        "--user",
        help="a user name: the role comes from the directory of "
        "--identity (else the default role), unless --role",
    )
    parser.add_argument(
        "--groups",
        default="",
        help="the user's groups, comma-separated (instead of asking the directory)",
    )
    parser.add_argument(
        "--identity",
        type=Path,
        default=Path(os.environ["SCHOOLGATE_IDENTITY"])
        if os.environ.get("SCHOOLGATE_IDENTITY")
        else None,
        help="identity settings whose directory says who --user is (default: $SCHOOLGATE_IDENTITY)",
    )
    parser.add_argument("--host", help="the host name (any spelling)")
    parser.add_argument(
        "--at",
        help="ISO-8601 time, e.g. 2026-11-23T10:35:00+00:00 "
        "(a time without offset is read in the school's zone; "
        "default: now)",
    )
    parser.add_argument("--policy", help="policy file (default: the seed policy)")
    parser.add_argument("--json", action="store_true", help="print the Decision as JSON")
    parser.add_argument(
        "--batch", metavar="FILE", help="JSON lines to decide ('-' for standard input)"
    )
    parser.set_defaults(handler=run)


def parse_at(text: str | None, policy: Policy) -> datetime:
    if not text:
        return datetime.now(UTC)
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=policy.calendar.timezone)
    return value


def decision_json(
    policy: Policy,
    decision: Decision,
    subject: Subject,
    at: datetime,
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


class Resolver:
    """Turns a question's role/user/groups into a Subject, asking the directory (once per user)
    for a user's groups when no role or groups are given."""

    def __init__(self, policy: Policy, identity: Path | None) -> None:
        self.policy = policy
        self.config = load_identity_config(identity) if identity else None
        self.directory = make_directory(self.config.directory) if self.config else None
        self.known: dict[str, frozenset[str]] = {}

    def subject(self, role: str | None, user: str | None, groups: Iterable[str] = ()) -> Subject:
        policy = self.policy
        if role is not None and role not in policy.roles:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(policy.roles)})")
        held = frozenset(groups)
        if user and not role and not held and self.directory is not None:
            held = self._groups_of(user)
        if role is None and self.config is not None:
            role = self.config.role_for_groups(held)
        if role is None or role not in policy.roles:
            role = policy.default_role  # unknown to the directory, or mapped to no role
        return Subject(role=role, user=user, groups=held)

    def _groups_of(self, user: str) -> frozenset[str]:
        if user not in self.known:
            assert self.directory is not None
            try:
                found = asyncio.run(self.directory.lookup(user))
            except DirectoryUnavailable as exc:
                raise ValueError(f"the directory cannot say who {user!r} is: {exc}") from None
            self.known[user] = found.groups if found else frozenset()
        return self.known[user]


def run(args: argparse.Namespace) -> int:
    policy = load_policy_or_report(args.policy)
    if policy is None:
        return 1
    if args.batch:
        try:
            resolver = Resolver(policy, args.identity)
        except IdentityConfigError as exc:
            print(f"schoolgate explain: {exc}", file=sys.stderr)
            return 2
        return run_batch(resolver, args.batch)
    if not args.host or not (args.role or args.user):
        print(
            "schoolgate explain: give --host and --role (or --user), or --batch FILE",
            file=sys.stderr,
        )
        return 2
    try:
        at = parse_at(args.at, policy)
        groups = [g.strip() for g in args.groups.split(",") if g.strip()]
        subject = Resolver(policy, args.identity).subject(args.role, args.user, groups)
    except (ValueError, IdentityConfigError) as exc:
        print(f"schoolgate explain: {exc}", file=sys.stderr)
        return 2
    decision = decide(policy, Request(args.host), subject, None, at)
    if args.json:
        print(json.dumps(decision_json(policy, decision, subject, at), indent=2))
    else:
        print(explain_decision(policy, decision, subject, at))
    return 0


def batch_lines(resolver: Resolver, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """One JSON object per input line, in order; a bad line gives {"line": n, "error": ...}."""
    policy = resolver.policy
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            question = json.loads(line)
            if not isinstance(question, dict):
                raise ValueError("each line must be a JSON object")
            unknown = set(question) - {"role", "user", "groups", "host", "at"}
            if unknown:
                raise ValueError(
                    f"unknown keys {sorted(unknown)} (known: role, user, groups, host, at)"
                )
            if not isinstance(question.get("host"), str) or not question["host"]:
                raise ValueError("'host' is required and must be a string")
            if not (question.get("role") or question.get("user")):
                raise ValueError("give 'role' or 'user'")
            subject = resolver.subject(
                question.get("role"), question.get("user"), question.get("groups") or ()
            )
            at = parse_at(question.get("at"), policy)
        except (ValueError, TypeError) as exc:
            yield {"line": number, "error": str(exc)}
            continue
        decision = decide(policy, Request(question["host"]), subject, None, at)
        yield {"line": number, **decision_json(policy, decision, subject, at)}


def run_batch(resolver: Resolver, path: str) -> int:
    errors = 0
    try:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        print(f"schoolgate explain: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    with stream:
        for result in batch_lines(resolver, stream):
            errors += "error" in result
            print(json.dumps(result), flush=False)
    return 1 if errors else 0
