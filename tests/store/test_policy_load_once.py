"""The gateway checks the policy and then its addon loads it again in the same process: the
second load of the same bytes must not parse millions of domains again (start-up time), while
any changed byte (policy or list) still gives a freshly parsed policy."""

from __future__ import annotations

from pathlib import Path

from schoolgate.store.policy_files import load_policy

POLICY = """\
name: once
roles: {pupil: Pupils}
default_role: pupil
categories:
  adult: {lists: [mine.txt]}
calendar: {timezone: Europe/London, school_day: {start: "08:45", end: "15:15"}}
rules:
  - {name: adult, roles: all, categories: [adult], action: block}
default: allow
"""
LIST = "# category: mine\n# description: d\n# compiled: 2026-12-03\n# source: s\none.example\n"


def test_the_same_bytes_are_parsed_once_and_any_change_is_seen(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    (tmp_path / "mine.txt").write_text(LIST)
    first = load_policy(policy)
    assert load_policy(policy) is first
    load_policy()  # another file (the seed) in between keeps its own slot
    assert load_policy(policy) is first
    # the gateway checks it by the path as given, its addon loads it by the absolute path
    spelled = load_policy(tmp_path / "." / "policy.yaml")
    assert spelled.domains is first.domains
    assert spelled.source == str(tmp_path / "." / "policy.yaml")
    (tmp_path / "mine.txt").write_text(LIST + "two.example\n")
    second = load_policy(policy)
    assert second is not first
    assert second.domains.categories("www.two.example") == ("adult",)
    assert first.domains.categories("www.two.example") == ()
    policy.write_text(POLICY.replace("name: once", "name: twice"))
    assert load_policy(policy).name == "twice"
    other = tmp_path / "copy"
    other.mkdir()
    (other / "policy.yaml").write_text(POLICY.replace("name: once", "name: twice"))
    (other / "mine.txt").write_text(LIST + "two.example\n")
    assert load_policy(other / "policy.yaml").source == str(other / "policy.yaml")
