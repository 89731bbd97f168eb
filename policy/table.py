"""The policy as a table for people (the governors' annual review): each role x category against
each part of a day, and a one-line summary. Pure: the day is passed in."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from policy.decide import decide
from policy.model import Policy, Request, Subject, Verdict

UNCATEGORISED_HOST = "uncategorised-site.example"


def summary(policy: Policy) -> str:
    domains = sum(c.domain_count for c in policy.categories.values())
    return (f"{policy.source}: OK: '{policy.name}': {len(policy.roles)} roles, "
            f"{len(policy.categories)} categories ({domains} domains), {len(policy.rules)} "
            f"rules, default {policy.default.value} (default role {policy.default_role})")


def policy_table(policy: Policy, day: date) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, note): each role x category (and uncategorised sites) against each part
    of `day`, the verdict at the middle of that part."""
    cal = policy.calendar
    zone = cal.timezone
    segments = [(start, end, name) for start, end, name, _ in cal.day_timeline(day)]
    if segments:
        parts = [(time(0), cal.day_start, "before school"), *segments,
                 (cal.day_end, time(23, 59, 59), "after school")]
        note = f"{day:%A} {day.day} {day:%B %Y} is a school day."
    else:
        parts = [(time(0), time(23, 59, 59), "all day")]
        noon = datetime.combine(day, time(12), zone)
        note = (f"{day:%A} {day.day} {day:%B %Y} is not a school day: "
                f"{cal.describe(noon)}.")
    header = ["role", "category"] + [f"{name} {s:%H:%M}-{e:%H:%M}" for s, e, name in parts]
    hosts = [(name, c.example_domain) for name, c in policy.categories.items() if c.example_domain]
    hosts.append(("(uncategorised)", UNCATEGORISED_HOST))
    rows = []
    for role in policy.roles:
        for category, host in hosts:
            row = [role, category]
            for start, end, _ in parts:
                middle = _middle(datetime.combine(day, start, zone),
                                 datetime.combine(day, end, zone))
                decision = decide(policy, Request(host), Subject(role=role), None, middle)
                row.append("allow" if decision.verdict is Verdict.ALLOW else "BLOCK")
            rows.append(row)
    return header, rows, note


def _middle(start: datetime, end: datetime) -> datetime:
    a, b = start.astimezone(UTC), end.astimezone(UTC)
    return a + (b - a) / 2
