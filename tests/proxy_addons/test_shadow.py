"""proxy_addons/shadow.py with mitmproxy's test flows: only the chosen roles are compared,
only verdicts the policy text made, a remembered verdict equals a fresh decide(), and nothing
about the flow ever changes (not even when the comparison fails)."""

from __future__ import annotations

from datetime import UTC, datetime

from mitmproxy.test import taddons, tflow

from schoolgate.policy.decide import decide
from schoolgate.policy.model import Decision, Reason, Request, Subject, Verdict
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.proxy_addons.shadow import Shadow, Trial
from schoolgate.store.policy_files import load_policy


def _flow(
    host: str,
    role: str,
    verdict: Verdict,
    reason: Reason = Reason.RULE_ALLOW,
) -> tflow.http.HTTPFlow:
    flow = tflow.tflow()
    flow.request.host = host
    flow.request.scheme = "http"
    flow.metadata[context.DECISION] = Decision(verdict, reason, host=host)
    flow.metadata[context.IDENTITY] = context.Identity(
        role=role, source=context.IdentitySource.LOCAL, user="someone"
    )
    return flow


def test_only_chosen_roles_and_rule_verdicts_are_compared() -> None:
    shadow = Shadow(PolicySource())
    seed = load_policy(None)
    with taddons.context(shadow):
        shadow.trial = Trial(seed, "abc", frozenset({"pupil"}))
        # The seed blocks x.com for everyone: a live 'allow' differs.
        shadow.requestheaders(_flow("x.com", "pupil", Verdict.ALLOW))
        shadow.requestheaders(_flow("x.com", "staff", Verdict.ALLOW))  # not in shadow
        shadow.requestheaders(_flow("x.com", "pupil", Verdict.ALLOW, Reason.EXCEPTION))
        shadow.requestheaders(_flow("x.com", "pupil", Verdict.BLOCK, Reason.RULE_BLOCK))
    assert dict(shadow._pending) == {
        ("abc", "pupil", "x.com", "allow", "block", "x-and-instagram"): 1
    }


def test_a_remembered_verdict_is_the_one_decide_gives() -> None:
    shadow = Shadow(PolicySource())
    seed = load_policy(None)
    with taddons.context(shadow):
        shadow.trial = Trial(seed, "abc", frozenset())
        for _ in range(3):
            shadow.requestheaders(_flow("www.facebook.com", "staff", Verdict.ALLOW))
    fresh = decide(seed, Request("www.facebook.com", 80), Subject("staff"), None, datetime.now(UTC))
    assert [v for v, _ in shadow.trial.remembered.values()] == [fresh.verdict]
    expected = 3 if fresh.verdict is Verdict.BLOCK else 0
    assert sum(shadow._pending.values()) == expected


def test_a_failing_comparison_changes_nothing_and_is_counted() -> None:
    shadow = Shadow(PolicySource())
    with taddons.context(shadow):
        shadow.trial = Trial(load_policy(None), "abc", frozenset())
        flow = _flow("x.com", "pupil", Verdict.ALLOW)
        flow.metadata[context.IDENTITY] = context.Identity(
            role=["pupil"], source=context.IdentitySource.LOCAL
        )  # type: ignore[arg-type]
        shadow.requestheaders(flow)
    assert flow.response is None
    assert shadow.stats.shadow_errors == 1


def test_no_trial_means_nothing_is_compared() -> None:
    shadow = Shadow(PolicySource())
    with taddons.context(shadow):
        shadow.requestheaders(_flow("x.com", "pupil", Verdict.ALLOW))
    assert shadow.stats.shadow_compared == 0
