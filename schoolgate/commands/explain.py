"""`schoolgate explain`: what would this role or user get at this host at this time, and why."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from schoolgate.commands.common import DEMO_IDENTITY, load_policy_or_report
from schoolgate.policy.decide import decide
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.explain import explain_decision
from schoolgate.policy.model import Decision, Policy, Request, Subject
from schoolgate.store.directory import DirectoryUnavailable, make_directory
from schoolgate.store.identity_config import IdentityConfigError, load_identity_config
from schoolgate.store.trust_files import load_trust, load_trust_file

EXIT_CODES = (
    "Exit status: 0 when a decision was printed, whether it is allow or block (read the "
    "verdict, or the 'verdict' key of --json); 1 when the policy has problems or, with "
    "--batch, a line could not be answered; 2 when the question cannot be asked (a missing "
    "option, an unknown role or user, an unreadable time)."
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="the decision for a role or user, host and time, and why",
        description="Print the decision and, in words, why; including when access next opens. "
        'With --batch, read JSON lines {"role" or "user", "host", "at"} and '
        "write one JSON decision per line, in order.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--role", help="a role of the policy")
    parser.add_argument(
        "--user",
        help="a user name: the role comes from the directory of --identity (a name the "
        "directory does not know is an error), unless --role is given",
    )
    parser.add_argument(
        "--groups",
        default="",
        help="the user's groups, comma-separated (instead of asking the directory; "
        "--identity maps them to a role)",
    )
    parser.add_argument(
        "--identity",
        type=Path,
        default=Path(os.environ["SCHOOLGATE_IDENTITY"])
        if os.environ.get("SCHOOLGATE_IDENTITY")
        else None,
        help="identity settings whose directory says who --user is, e.g. the demo's "
        f"{DEMO_IDENTITY} (default: $SCHOOLGATE_IDENTITY)",
    )
    parser.add_argument("--host", help="the host name (any spelling)")
    parser.add_argument(
        "--at",
        help="when: HH:MM for today (like 10:35), or a date and time like 2026-11-23T10:35 "
        "or 2026-11-23T10:35:00+00:00 (a time without an offset is in the school's time "
        "zone; default: now)",
    )
    parser.add_argument("--policy", help="policy file (default: the seed policy)")
    parser.add_argument(
        "--trust",
        type=Path,
        help="a trust file (docs/trust.md): decide with one school's policy (its own on the "
        "trust's base), named by --school",
    )
    parser.add_argument("--school", help="with --trust: the school's id in the trust file")
    parser.add_argument("--json", action="store_true", help="print the Decision as JSON")
    parser.add_argument(
        "--batch", metavar="FILE", help="JSON lines to decide ('-' for standard input)"
    )
    parser.set_defaults(handler=run)


_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")


def parse_at(text: str | None, policy: Policy, *, now: datetime | None = None) -> datetime:
    """When a question is about: now, HH:MM (today in the school's zone) or an ISO date and
    time (without an offset: in the school's zone). ValueError naming the forms otherwise."""
    zone = policy.calendar.timezone
    now = now or datetime.now(UTC)
    if not text or not text.strip():
        return now
    text = text.strip()
    clock = _CLOCK.fullmatch(text)
    if clock:
        today = now.astimezone(zone).date()
        moment = time(int(clock[1]), int(clock[2]), int(clock[3] or 0))
        return datetime.combine(today, moment, tzinfo=zone)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read the time {text!r}: write HH:MM for today (like 10:35), or a date "
            "and time like 2026-11-23T10:35 (add +00:00 or Z for UTC; without it the time "
            "is in the school's time zone)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
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
    """Turns a question's role/user/groups into a Subject. Without a role, the role comes from
    the directory of the identity settings (asked once per user for a user's groups), as at the
    gateway; with no identity settings, or for a name the directory does not know, it is an
    error rather than a silent default."""

    def __init__(self, policy: Policy, identity: Path | None) -> None:
        self.policy = policy
        self.identity = identity
        self.config = load_identity_config(identity) if identity else None
        self.directory = make_directory(self.config.directory) if self.config else None
        self.known: dict[str, frozenset[str] | None] = {}

    def subject(self, role: str | None, user: str | None, groups: Iterable[str] = ()) -> Subject:
        policy = self.policy
        held = frozenset(groups)
        if role is not None:
            if role not in policy.roles:
                raise ValueError(f"unknown role {role!r} (known: {', '.join(policy.roles)})")
            return Subject(role=role, user=user, groups=held)
        if self.config is None:
            raise ValueError(
                f"to say who {user!r} is, schoolgate needs the directory: "
                "pass --identity FILE (the identity settings; the demo's are "
                f"{DEMO_IDENTITY}) or set $SCHOOLGATE_IDENTITY, or give --role ROLE "
                f"(one of: {', '.join(policy.roles)})"
            )
        if user and not held:
            found = self._groups_of(user)
            if found is None:
                raise ValueError(
                    f"nobody called {user!r} is in the directory of {self.identity}: check "
                    "the spelling, or give --role ROLE to ask about a role (someone the "
                    f"gateway cannot identify gets the role {policy.default_role})"
                )
            held = found
        mapped = self.config.role_for_groups(held)
        if mapped is None or mapped not in policy.roles:
            mapped = policy.default_role  # in no mapped group: the default role, as at the gateway
        return Subject(role=mapped, user=user, groups=held)

    def _groups_of(self, user: str) -> frozenset[str] | None:
        if user not in self.known:
            assert self.directory is not None
            try:
                found = asyncio.run(self.directory.lookup(user))
            except DirectoryUnavailable as exc:
                raise ValueError(f"the directory cannot say who {user!r} is: {exc}") from None
            self.known[user] = found.groups if found else None
        return self.known[user]


def _policy(args: argparse.Namespace) -> Policy | int:
    """The policy to decide with: the --policy file, or --school's of the --trust file; else
    the exit status, after saying what was wrong."""
    if args.trust is None:
        if args.school is not None:
            print("schoolgate explain: --school needs --trust FILE", file=sys.stderr)
            return 2
        policy = load_policy_or_report(args.policy)
        return 1 if policy is None else policy
    if args.policy is not None:
        print("schoolgate explain: give --policy or --trust, not both", file=sys.stderr)
        return 2
    try:
        trust = load_trust_file(args.trust)
        if args.school not in trust.schools:
            schools = ", ".join(sorted(trust.schools))
            print(
                "schoolgate explain: "
                + (
                    f"give --school: one of {schools}"
                    if args.school is None
                    else f"there is no school {args.school!r} in {args.trust} (it has {schools})"
                ),
                file=sys.stderr,
            )
            return 2
        return load_trust(args.trust, only=args.school).policies[args.school]
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    policy = _policy(args)
    if isinstance(policy, int):
        return policy
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


_ROW_KEYS = ("role", "user", "groups", "host", "at")


def read_question(line: str) -> dict[str, Any]:
    """One batch line as a question whose values have the right types; ValueError saying what
    to write otherwise (a number, list or null where text belongs would crash further on)."""
    question = json.loads(line)
    if not isinstance(question, dict):
        raise ValueError('each line must be a JSON object, like {"role": "staff", "host": "x.com"}')
    unknown = set(question) - set(_ROW_KEYS)
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} (known: {', '.join(_ROW_KEYS)})")
    host = question.get("host")
    if not isinstance(host, str) or not host:
        raise ValueError("'host' is required and must be a host name in quotes, like \"x.com\"")
    for key, what, example in (
        ("role", "a role's name", '"staff"'),
        ("user", "a user name", '"j.smith"'),
        ("at", "a time", '"10:35" or "2026-11-23T10:35" (leave \'at\' out for now)'),
    ):
        if key in question and not isinstance(question[key], str):
            raise ValueError(
                f"{key!r} must be {what} written as text in quotes, like {example}, "
                f"not {json.dumps(question[key])}"
            )
    groups = question.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ValueError(
            '\'groups\' must be a list of group names in quotes, like ["staff", "year7"], '
            f"not {json.dumps(groups)}"
        )
    if not (question.get("role") or question.get("user")):
        raise ValueError("give 'role' or 'user', like \"role\": \"staff\"")
    return question


def batch_lines(resolver: Resolver, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """One JSON object per input line, in order; a bad line gives {"line": n, "error": ...}."""
    policy = resolver.policy
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            question = read_question(line)
            subject = resolver.subject(
                question.get("role"), question.get("user"), question.get("groups", [])
            )
            at = parse_at(question.get("at"), policy)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            yield {"line": number, "error": f"line {number}: {exc}"}
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
