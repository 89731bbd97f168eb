"""What a policy change would have done: replay recorded decisions (who, which role, which
site, when) through the old and the new policy and group the ones that flip, in words a person
can read ("Staff would lose facebook during lunch: 1,240 requests by 23 people"). Also the
governors' table of two policies cell by cell. Pure: the decisions and the day are passed in.

Exceptions, sanctions and local lists are left out of the replay on both sides: the preview
shows what the policy text changes, not what the overrides of the day did. Without them a
verdict depends only on the role, the host and the calendar windows open at that instant, so
each (role, host, windows) is decided once: a million decisions replay in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from schoolgate.policy.decide import decide
from schoolgate.policy.model import Decision, Policy, Request, Subject, Verdict
from schoolgate.policy.table import policy_table

LOSE = "lose"
GAIN = "gain"
MAX_EXAMPLES = 5
MAX_REMEMBERED = 200_000  # verdict pairs kept (forgotten all at once past this)


@dataclass(frozen=True, slots=True)
class Flip:
    """One group of requests whose verdict would change: `role` would `direction` (lose or
    gain) `what` (a category, or a site with no category) during `when` (a part of the day)."""

    role: str
    direction: str
    what: str
    when: str
    requests: int
    people: int
    examples: tuple[str, ...]  # a few of the people (user names), for whoever checks

    @property
    def sentence(self) -> str:
        who = self.role[:1].upper() + self.role[1:]
        people = f"{self.people:,} {'person' if self.people == 1 else 'people'}"
        asks = f"{self.requests:,} request{'' if self.requests == 1 else 's'}"
        return f"{who} would {self.direction} {self.what} during {self.when}: {asks} by {people}"


@dataclass(frozen=True, slots=True)
class Preview:
    replayed: int  # decisions replayed
    changed: int  # of which the verdict flips
    flips: tuple[Flip, ...]  # biggest group first


@dataclass(slots=True)
class _Group:
    requests: int = 0
    users: set[str] = field(default_factory=set)


def replay(
    old: Policy, new: Policy, decisions: Iterable[tuple[str | None, str | None, str, datetime]]
) -> Preview:
    """Replay (user, role, host, at) through both policies; group the flips."""
    groups: dict[tuple[str, str, str, str], _Group] = {}
    remembered: dict[
        tuple[str, str, frozenset[str], frozenset[str]], tuple[Decision, Decision]
    ] = {}
    replayed = changed = 0
    for user, role, host, at in decisions:
        replayed += 1
        the_role = role or old.default_role
        memo = (the_role, host, open_windows(old, at), open_windows(new, at))
        pair = remembered.get(memo)
        if pair is None:
            if len(remembered) >= MAX_REMEMBERED:
                remembered.clear()
            subject = Subject(role=the_role)
            pair = remembered[memo] = (
                _verdict(old, host, subject, at),
                _verdict(new, host, subject, at),
            )
        before, after = pair
        if before.verdict is after.verdict:
            continue
        changed += 1
        direction = LOSE if after.verdict is Verdict.BLOCK else GAIN
        what = after.category or before.category or (after.host or host)
        key = (the_role, direction, what, old.calendar.describe(at))
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        group.requests += 1
        group.users.add(user or "(a device with no name)")
    flips = tuple(
        sorted(
            (
                Flip(
                    role=k[0],
                    direction=k[1],
                    what=k[2],
                    when=k[3],
                    requests=g.requests,
                    people=len(g.users),
                    examples=tuple(sorted(g.users)[:MAX_EXAMPLES]),
                )
                for k, g in groups.items()
            ),
            key=lambda f: (-f.requests, f.role, f.direction, f.what, f.when),
        )
    )
    return Preview(replayed=replayed, changed=changed, flips=flips)


def _verdict(policy: Policy, host: str, subject: Subject, at: datetime) -> Decision:
    return decide(policy, Request(host), subject, None, at)


def open_windows(policy: Policy, at: datetime) -> frozenset[str]:
    """The calendar windows open at `at`: with no overrides, all that time changes in a
    verdict (rules match on windows; expiries belong to overrides), so a verdict decided once
    for (role, host, port, open windows) holds for every such request."""
    cal = policy.calendar
    return cal._active(at.astimezone(cal.timezone))  # same package; read only


@dataclass(frozen=True, slots=True)
class TableDiff:
    header_old: list[str]
    rows_old: list[list[str]]
    header_new: list[str]
    rows_new: list[list[str]]
    note_old: str
    note_new: str
    changed_cells: tuple[str, ...]  # "staff facebook lunch 12:00-13:00: BLOCK -> allow"


def table_diff(old: Policy, new: Policy, day: date) -> TableDiff:
    """The governors' tables of both policies for `day`, and the cells that differ (matched by
    role, category and column title)."""
    h_old, r_old, n_old = policy_table(old, day)
    h_new, r_new, n_new = policy_table(new, day)
    old_cells = {
        (row[0], row[1], h_old[i]): cell for row in r_old for i, cell in enumerate(row) if i >= 2
    }
    changed = []
    for row in r_new:
        for i, cell in enumerate(row):
            if i < 2:
                continue
            key = (row[0], row[1], h_new[i])
            was = old_cells.get(key)
            if was is None:
                changed.append(f"{row[0]} {row[1]} {h_new[i]}: (new) {cell}")
            elif was != cell:
                changed.append(f"{row[0]} {row[1]} {h_new[i]}: {was} -> {cell}")
    return TableDiff(h_old, r_old, h_new, r_new, n_old, n_new, tuple(changed))
