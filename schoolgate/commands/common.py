"""What several sub-commands share: loading the policy and preparing the database the way a
technician expects."""

from __future__ import annotations

import sys
from pathlib import Path

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


def load_policy_or_report(path: Path | str | None) -> Policy | None:
    """The policy at `path` (None: the seed), or None after printing every problem to stderr."""
    try:
        return load_policy(path)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return None


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
