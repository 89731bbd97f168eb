"""policy/explain.py: the words are chosen for who reads them. The person who was blocked (and
IT at the CLI) is told to ask the Business Manager where an approval could open the site; the
Business Manager, who decides, is told what an approval would do (her request page used to get
the first text with "ask the Business Manager" cut out by string replacement)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schoolgate.policy.decide import decide
from schoolgate.policy.explain import Reader, explain_decision, explain_plainly
from schoolgate.policy.model import Request, Subject
from schoolgate.store.policy_files import load_policy

LUNCH = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)  # a Monday in term


@pytest.mark.parametrize(
    ("role", "host", "asker", "decider"),
    [
        (
            "pupil",
            "facebook.com",
            "It does not open at any time for this role; ask the Business Manager if you need it.",
            "It does not open at any time for this role; only an approved request opens it.",
        ),
        (
            "pupil",
            "x.com",
            "It does not open at any time for this role; it cannot be unblocked at school, "
            "even if you ask.",
            "It does not open at any time for this role; it cannot be unblocked at school, "
            "even with an approved request.",
        ),
    ],
)
def test_the_last_sentence_is_written_for_its_reader(
    role: str, host: str, asker: str, decider: str
) -> None:
    policy = load_policy(None)
    subject = Subject(role)
    decision = decide(policy, Request(host), subject, None, LUNCH)
    assert not decision.allowed
    default = explain_decision(policy, decision, subject, LUNCH)
    assert default == explain_decision(policy, decision, subject, LUNCH, reader=Reader.ASKER)
    assert default.endswith(asker)
    for_her = explain_plainly(policy, decision, subject, LUNCH, now=LUNCH, reader=Reader.DECIDER)
    assert for_her.endswith(decider)
    assert "ask the Business Manager" not in for_her
