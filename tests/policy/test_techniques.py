"""policy/techniques.py: the circumvention vocabulary is policy's, with words for every name;
decide() and explain use it (review 2026-12, 1.4: it lived in store/, and decide wrote bare
strings)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schoolgate.policy.decide import decide
from schoolgate.policy.explain import explain_decision
from schoolgate.policy.model import Request, Subject
from schoolgate.policy.techniques import WORDS, Technique, counted, describe_technique
from schoolgate.store.policy_files import load_policy


@pytest.mark.parametrize("technique", list(Technique))
def test_every_technique_has_words(technique: Technique) -> None:
    assert WORDS[technique]
    assert describe_technique(technique) == WORDS[technique]


def test_an_unknown_technique_is_shown_as_its_name() -> None:
    assert describe_technique("school_own_trick") == "school own trick"


def test_decide_names_its_techniques_from_the_vocabulary() -> None:
    policy = load_policy(None)
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    decision = decide(policy, Request("8.8.8.8"), Subject(policy.default_role), None, at)
    assert decision.technique is Technique.IP_LITERAL
    words = explain_decision(policy, decision, Subject(policy.default_role), at)
    assert WORDS[Technique.IP_LITERAL] in words


def test_only_widgets_are_not_counted() -> None:
    assert [t for t in Technique if not counted(t)] == [Technique.EMBEDDED_WIDGET]
