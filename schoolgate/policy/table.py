"""The policy as a table for people (the governors' annual review): each role x category against
each part of a day, and a one-line summary. Pure: the day is passed in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time

from schoolgate.policy.decide import decide
from schoolgate.policy.hostnames import DomainIndex
from schoolgate.policy.model import Policy, Request, Subject, Verdict

UNCATEGORISED_HOST = "uncategorised-site.example"


def summary(policy: Policy) -> str:
    domains = sum(c.domain_count for c in policy.categories.values())
    return (
        f"{policy.source}: OK: '{policy.name}': {len(policy.roles)} roles, "
        f"{len(policy.categories)} categories ({domains} domains), {len(policy.rules)} "
        f"rules, default {policy.default.value} (default role {policy.default_role})"
    )


def policy_table(policy: Policy, day: date) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, note): each role x category (and uncategorised sites) against each part
    of `day`, the verdict at the middle of that part."""
    cal = policy.calendar
    zone = cal.timezone
    segments = [(start, end, name) for start, end, name, _ in cal.day_timeline(day)]
    if segments:
        parts = [
            (time(0), cal.day_start, "before school"),
            *segments,
            (cal.day_end, time(23, 59, 59), "after school"),
        ]
        note = f"{day:%A} {day.day} {day:%B %Y} is a school day."
    else:
        parts = [(time(0), time(23, 59, 59), "all day")]
        noon = datetime.combine(day, time(12), zone)
        note = f"{day:%A} {day.day} {day:%B %Y} is not a school day: {cal.describe(noon)}."
    header = ["role", "category"] + [f"{name} {s:%H:%M}-{e:%H:%M}" for s, e, name in parts]
    # Every category, the empty ones too: what the rules would do once a list fills them.
    probes = [
        (name, *_probe(policy, name, c.example_domain)) for name, c in policy.categories.items()
    ]
    probes.append(("(uncategorised)", policy, UNCATEGORISED_HOST))
    rows = []
    for role in policy.roles:
        for category, judged, host in probes:
            row = [role, category]
            for start, end, _ in parts:
                middle = _middle(
                    datetime.combine(day, start, zone), datetime.combine(day, end, zone)
                )
                decision = decide(judged, Request(host), Subject(role=role), None, middle)
                row.append("allow" if decision.verdict is Verdict.ALLOW else "BLOCK")
            rows.append(row)
    return header, rows, note + _category_notes(policy)


def _probe(policy: Policy, name: str, example: str) -> tuple[Policy, str]:
    """The policy and a host to decide on for category `name`: its first listed domain, or for
    an empty category a stand-in host that only that category holds."""
    if example:
        return policy, example
    host = f"{name.replace('_', '-')}.empty-category.example"
    index = DomainIndex.build({name: [host]}, checked=True)
    return replace(policy, domains=index, memo={}, window_memo={}), host


def _category_notes(policy: Policy) -> str:
    locked = [n for n, c in policy.categories.items() if c.locked]
    empty = [n for n, c in policy.categories.items() if not c.domain_count]
    notes = ""
    if locked:
        notes += (
            f" Locked (no exception, admin or approver can ever unblock it): {', '.join(locked)}."
        )
    if empty:
        notes += (
            f" Empty, so they block nothing yet; the rows show what happens "
            f"once they are filled by list updates ('schoolgate lists update'): "
            f"{', '.join(empty)}."
        )
    return notes


def _middle(start: datetime, end: datetime) -> datetime:
    a, b = start.astimezone(UTC), end.astimezone(UTC)
    return a + (b - a) / 2
