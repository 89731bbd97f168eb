"""The governors' table shows every category: an empty one (what its rules do once list updates
fill it) and the locked slot too, not only the categories that hold domains today."""

from __future__ import annotations

from datetime import date

from schoolgate.policy.parse import parse_policy
from schoolgate.policy.table import policy_table

POLICY = """\
name: table
roles: {pupil: Pupils, staff: Staff}
default_role: pupil
categories:
  illegal_content: {locked: true, domains: []}
  violence: {domains: []}
  social: {domains: [tiktok.com]}
calendar: {timezone: Europe/London, school_day: {start: "08:45", end: "15:15"}}
rules:
  - {name: content-for-pupils, roles: [pupil], categories: [violence], action: block}
  - {name: social, roles: all, categories: [social], action: block}
default: allow
"""


def test_every_category_has_a_row_and_the_empty_and_locked_ones_are_named() -> None:
    policy = parse_policy(POLICY, source="t.yaml")
    _, rows, note = policy_table(policy, date(2026, 12, 3))
    verdicts = {(r[0], r[1]): set(r[2:]) for r in rows}
    assert verdicts[("pupil", "violence")] == {"BLOCK"}  # once filled: blocked for pupils
    assert verdicts[("staff", "violence")] == {"allow"}
    assert verdicts[("staff", "illegal_content")] == {"BLOCK"}  # locked: blocked for everyone
    assert verdicts[("staff", "social")] == {"BLOCK"}
    assert verdicts[("pupil", "(uncategorised)")] == {"allow"}
    assert "Locked (no exception, admin or approver can ever unblock it): illegal_content." in note
    assert "filled by list updates ('schoolgate lists update'): illegal_content, violence." in note
    # the stand-in host used for an empty category leaves the real policy as it was
    assert policy.domains.categories("violence.empty-category.example") == ()
