"""What several sub-commands share: loading the policy and preparing the database the way a
technician expects."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from schoolgate import store
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.model import Policy
from schoolgate.store.db import (
    SchemaOutOfDate,
    display_url,
    make_engine,
    require_current_schema,
    upgrade,
)
from schoolgate.store.policy_files import load_policy

# The demo's identity settings: a users file with pupil1, teacher1, socialmedia1, ...
DEMO_IDENTITY = Path(store.__file__).resolve().parent / "data" / "demo-identity.yaml"


def add_command_group(subparsers: Any, name: str, *, help: str, description: str) -> Any:
    """`schoolgate NAME SUBCOMMAND ...`: a command made of sub-commands, built one way for all
    (one of them is required; the handler's choice is in `args.NAME_command`). Returns the
    group to add the sub-commands to; say in each one's description what its exit status
    means (tests/schoolgate/test_cli_help.py)."""
    parser = subparsers.add_parser(name, help=help, description=description)
    group = parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
    group.required = True
    return group


def load_policy_or_report(path: Path | str | None) -> Policy | None:
    """The policy at `path` (None: the seed), or None after printing every problem to stderr."""
    try:
        return load_policy(path)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return None


_UK_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def parse_day(text: str) -> date:
    """A day as a UK user types it (25/12/2026, day first) or in ISO form (2026-12-25); for
    argparse's `type=`, so a mistake is reported with the option's name and the forms."""
    found = _UK_DATE.fullmatch(text.strip())
    try:
        if found:
            return date(int(found[3]), int(found[2]), int(found[1]))
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"cannot read the day {text!r}: write it as DD/MM/YYYY (like 25/12/2026) or "
            "YYYY-MM-DD (like 2026-12-25)"
        ) from None


def prepare_database(url: str, *, embedded: bool) -> str | None:
    """None when the database is ready; otherwise the message saying what to run."""
    try:
        if embedded:
            upgrade(url)
        engine = make_engine(url)
        try:
            require_current_schema(engine)
        finally:
            engine.dispose()
    except SchemaOutOfDate as error:
        return str(error)
    except (SQLAlchemyError, OSError) as error:
        return f"cannot use the database {display_url(url)}: {error}"
    return None
