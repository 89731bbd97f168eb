"""policy/diff.py: replaying a recorded history through two policies gives known answers,
grouped and worded for people; the governors' tables side by side name the changed cells."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from schoolgate.policy.diff import GAIN, LOSE, replay, table_diff
from schoolgate.policy.model import Policy
from schoolgate.store.policy_files import load_policy, seed_policy_path

MONDAY = date(2026, 11, 23)  # a school day (no terms listed: every weekday is a term day)


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 23, hour, minute, tzinfo=UTC)  # London is on UTC in November


def no_facebook_at_break(text: str) -> str:
    old = "    categories: [facebook, social]\n    when: [break]\n"
    assert old in text
    return text.replace(old, "    categories: [social]\n    when: [break]\n")


def policies(tmp_path: Path) -> tuple[Policy, Policy]:
    folder = tmp_path
    text = seed_policy_path().read_text(encoding="utf-8")
    (folder / "new.yaml").write_text(no_facebook_at_break(text), encoding="utf-8")
    return load_policy(None), load_policy(folder / "new.yaml")


HISTORY = [
    ("s1", "staff", "www.facebook.com", at(12, 30)),
    ("s1", "staff", "facebook.com", at(12, 40)),
    ("s2", "staff", "m.facebook.com", at(12, 5)),
    ("s3", "staff", "facebook.com", at(12, 59)),
    ("s1", "staff", "facebook.com", at(10, 35)),  # morning break
    ("s1", "staff", "facebook.com", at(9, 30)),  # lesson: blocked before and after
    ("p1", "pupil", "facebook.com", at(12, 30)),  # pupils: blocked before and after
    ("s2", "staff", "www.bbc.co.uk", at(12, 30)),  # allowed before and after
]


def test_a_recorded_history_gives_the_known_flips(tmp_path: Path) -> None:
    old, new = policies(tmp_path)
    found = replay(old, new, HISTORY)
    assert (found.replayed, found.changed) == (8, 5)
    assert [f.sentence for f in found.flips] == [
        "Staff would lose facebook during lunch: 4 requests by 3 people",
        "Staff would lose facebook during morning break: 1 request by 1 person",
    ]
    assert found.flips[0].examples == ("s1", "s2", "s3")


def test_the_reverse_change_is_a_gain(tmp_path: Path) -> None:
    old, new = policies(tmp_path)
    found = replay(new, old, HISTORY)
    assert {(f.direction, f.when, f.requests) for f in found.flips} == {
        (GAIN, "lunch", 4),
        (GAIN, "morning break", 1),
    }
    assert LOSE not in {f.direction for f in found.flips}


def test_the_same_policy_changes_nothing(tmp_path: Path) -> None:
    old, _ = policies(tmp_path)
    found = replay(old, old, HISTORY)
    assert (found.replayed, found.changed, found.flips) == (8, 0, ())


def test_an_unknown_role_is_replayed_as_the_default_role(tmp_path: Path) -> None:
    old, new = policies(tmp_path)
    found = replay(old, new, [(None, None, "facebook.com", at(12, 30))])
    assert found.changed == 0  # the default role (pupil) is blocked in both


def test_the_governors_tables_name_the_changed_cells(tmp_path: Path) -> None:
    old, new = policies(tmp_path)
    tables = table_diff(old, new, MONDAY)
    assert tables.header_old == tables.header_new
    assert set(tables.changed_cells) == {
        "staff facebook morning break 10:30-10:45: allow -> BLOCK",
        "staff facebook lunch 12:00-13:00: allow -> BLOCK",
    }


def test_remembering_verdicts_gives_the_same_answer_as_deciding_each_one(tmp_path: Path) -> None:
    """Every 7 minutes for a week (weekend, bank-holiday-free days, both breaks, before and
    after school), several roles and sites: the grouped replay equals a plain count made by
    calling decide() for every single request."""
    from schoolgate.policy.decide import decide
    from schoolgate.policy.model import Request, Subject

    old, new = policies(tmp_path)
    hosts = ["www.facebook.com", "tiktok.com", "www.bbc.co.uk", "x.com", "unknown.example"]
    start = datetime(2026, 11, 21, 0, 3, tzinfo=UTC)  # a Saturday
    history = [
        (
            f"u{i % 11}",
            ("staff", "pupil", "social_media_manager")[i % 3],
            hosts[i % len(hosts)],
            start + timedelta(minutes=7 * i),
        )
        for i in range(7 * 24 * 60 // 7)
    ]
    found = replay(old, new, history)
    expected: dict[tuple[str, str], int] = {}
    for user, role, host, when in history:
        subject = Subject(role=role, user=user)
        a = decide(old, Request(host), subject, None, when).verdict
        b = decide(new, Request(host), subject, None, when).verdict
        if a is not b:
            key = (role, old.calendar.describe(when))
            expected[key] = expected.get(key, 0) + 1
    assert expected  # the change shows in this history
    assert {(f.role, f.when): f.requests for f in found.flips} == expected
    assert found.changed == sum(expected.values())
