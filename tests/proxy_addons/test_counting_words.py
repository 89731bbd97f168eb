"""Reaching the threshold proposes a sanction to the DSL by default (the seed says
`on_threshold: recommend`), and the page a pupil sees on an attempt says, in plain words, what
trying again can lead to."""

from __future__ import annotations

from datetime import UTC, datetime

from schoolgate.policy.model import Decision, Reason, SanctionAction, Subject, Verdict
from schoolgate.proxy_addons.blockpage import BlockPageSettings, make_block_page
from schoolgate.store.policy_files import load_policy

SETTINGS = BlockPageSettings("http://admin.test:8081/", b"s" * 40)
AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_the_seed_recommends_rather_than_sanctions() -> None:
    assert load_policy().circumvention.on_threshold is SanctionAction.RECOMMEND


def attempt_page(role: str) -> str:
    decision = Decision(
        Verdict.BLOCK,
        Reason.CIRCUMVENTION,
        rule="circumvention",
        category="vpn",
        host="www.vpn.example",
        technique="vpn",
    )
    return (
        make_block_page(
            decision,
            Subject(role, "someone"),
            site="www.vpn.example",
            at=AT,
            policy=load_policy(),
            settings=SETTINGS,
        ).text
        or ""
    )


def test_a_pupil_is_told_what_trying_again_can_lead_to() -> None:
    html = attempt_page("pupil")
    assert "Your teachers can see that it was tried." in html
    assert "If you keep trying, you may have to use the computer only with a teacher." in html


def test_staff_are_told_who_decides() -> None:
    html = attempt_page("staff")
    assert "Repeated attempts are reported to the Designated Safeguarding Lead" in html
