"""Errors of the policy package.

    PolicyError            a policy text (or a list it names) has problems; .problems lists
                           every one with its place, e.g. "rules[3].categories[1]: unknown ..."

Deciding never raises for a request: an unreadable host is a Decision with
Reason.INVALID_HOST. Programming errors (a naive datetime passed in) raise ValueError.
"""

from __future__ import annotations


class PolicyError(Exception):
    """A policy could not be parsed; every problem is listed with its place."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))
