"""What several sub-commands share: loading the policy the way a technician expects."""

from __future__ import annotations

import sys
from pathlib import Path

from policy.errors import PolicyError
from policy.model import Policy
from store.policy_files import load_policy


def load_policy_or_report(path: Path | str | None) -> Policy | None:
    """The policy at `path` (None: the seed), or None after printing every problem to stderr."""
    try:
        return load_policy(path)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return None
