"""`schoolgate trust check FILE` and `schoolgate trust add-school FILE ID`: one schoolgate for
many schools (docs/trust.md). Checks the trust file, the trust's base policy and every school's
own, and says what each school gets; adds a school only if the trust still checks with it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from schoolgate.commands.common import add_command_group
from schoolgate.policy.attribution import show_listener
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.trust import School, Trust
from schoolgate.store.trust_files import load_trust


def register(subparsers: Any) -> None:
    sub = add_command_group(
        subparsers,
        "trust",
        help="many schools, one service: check a trust file, or add a school to it",
        description="A trust or local authority runs one schoolgate for many schools: the trust "
        "file names each school, its client address ranges and its own policy on top of the "
        "trust's base policy, whose locks no school can loosen (docs/trust.md).",
    )

    check = sub.add_parser(
        "check",
        help="validate a trust file, its base policy and every school's policy",
        description="Exit 0 with one line per school, or exit 1 listing every problem with "
        "its place and the school it belongs to.",
    )
    check.add_argument("file", help="the trust YAML file")
    check.set_defaults(handler=run_check)

    add = sub.add_parser(
        "add-school",
        help="add a school to a trust file, checked whole before it is written",
        description="Adds the school at the end of 'schools:' (the rest of the file, comments "
        "included, is kept), checks the whole trust with it, and only then replaces the file. "
        "With --policy naming a file that does not exist yet, an empty one is made: the "
        "school starts on the trust's base policy. Exit 0 when the school was added; 1, "
        "with nothing written, when the trust file cannot be read or the trust would have "
        "problems with the school.",
    )
    add.add_argument("file", help="the trust YAML file")
    add.add_argument("id", help="the school's short id: a-z, 0-9, '-' and '_', e.g. oak")
    add.add_argument("--name", required=True, help="the school's name, e.g. 'Oak Primary'")
    add.add_argument(
        "--subnet",
        action="append",
        default=[],
        metavar="RANGE",
        help="a client address range of the school, e.g. 10.1.0.0/16 (repeat for more)",
    )
    add.add_argument(
        "--policy", help="the school's own policy file, relative to the trust file (optional)"
    )
    add.set_defaults(handler=run_add_school)


def run_check(args: argparse.Namespace) -> int:
    try:
        trust = load_trust(args.file)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(summary(trust))
    return 0


def run_add_school(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cannot read the trust file {path}: {exc}", file=sys.stderr)
        return 1
    entry = {"name": args.name, "subnets": args.subnet}
    if args.policy:
        entry["policy"] = args.policy
    try:
        new_text = with_school(text, args.id, entry)
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    made = None
    if args.policy and not (path.parent / args.policy).exists():
        made = path.parent / args.policy
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_text(STARTER_POLICY.format(name=args.name), encoding="utf-8")
    trial = path.with_name(f".{path.name}.new")
    trial.write_text(new_text, encoding="utf-8")
    try:
        trust = load_trust(trial)
    except PolicyError as exc:
        trial.unlink()
        if made is not None:
            made.unlink()
        problems = "\n".join(f"  {p}" for p in exc.problems)
        print(f"{path}: the school was not added:\n{problems}", file=sys.stderr)
        return 1
    os.replace(trial, path)
    print(f"Added {args.id} ({args.name}) to {path}.")
    if made is not None:
        print(f"Made {made}: empty, so the school starts on the trust's base policy.")
    print(summary(trust))
    return 0


STARTER_POLICY = """\
# {name}'s own policy: only what differs from the trust's base policy (docs/trust.md).
# Empty: the base policy as it is. Check with: schoolgate trust check TRUST-FILE
"""


def with_school(text: str, school_id: str, entry: dict[str, Any]) -> str:
    """`text` with the school added at the end of its `schools:` mapping, the rest unchanged
    (comments included). ValueError saying what is wrong otherwise."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
    schools = None
    if isinstance(root, yaml.MappingNode):
        schools = next((v for k, v in root.value if k.value == "schools"), None)
    if not isinstance(schools, yaml.MappingNode) or schools.flow_style or not schools.value:
        raise ValueError(
            "add-school needs 'schools:' written as a block, one school per line, with at "
            "least one school already (see docs/trust.md)"
        )
    if any(key.value == school_id for key, _ in schools.value):
        raise ValueError(f"there is already a school {school_id!r}: choose another id")
    indent = " " * schools.value[0][0].start_mark.column
    last = _last_scalar(schools).end_mark.index
    line_end = text.find("\n", last)
    at = len(text) if line_end == -1 else line_end
    block = f"\n{indent}{school_id}: " + json.dumps(entry, ensure_ascii=False)
    return text[:at] + block + text[at:] + ("" if text.endswith("\n") else "\n")


def _last_scalar(node: yaml.Node) -> yaml.Node:
    """The last thing written inside a block node: its end is exact (a block's own end mark may
    lie on the next line)."""
    while not getattr(node, "flow_style", True) and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return node


def _listeners_and_directory(school: School) -> str:
    """'; listeners ...; people in the group ... or under ...' (docs/trust.md), or ''."""
    text = ""
    if school.listeners:
        text += f"; listeners {', '.join(show_listener(each) for each in school.listeners)}"
    found = school.directory
    if found is not None:
        ways = [f"in the group {found.group}"] if found.group else []
        ways += [f"under {found.ou}"] if found.ou else []
        text += f"; people {' or '.join(ways)}"
    return text


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
            + _listeners_and_directory(school)
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
    ways = "subnets"
    if any(school.listeners or school.directory for school in file.schools.values()):
        ways = "listeners, subnets, directory groups or OUs"
    if file.unmatched is None:
        lines.append(f"A device in no school's {ways} is refused.")
    else:
        lines.append(f"A device in no school's {ways} counts as {file.unmatched}.")
    return "\n".join(lines)
