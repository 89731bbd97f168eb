"""The block page's words (proxy_addons/blockpage.py, templates/blocked.html): a child's words
for pupils, adult words for staff, and a sanctioned pupil told what is happening and until when
(UX review finding 3), never the sanction's id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schoolgate.policy.model import Decision, Policy, Reason, Subject, Verdict
from schoolgate.proxy_addons.blockpage import BlockPageSettings, describe_opening, make_block_page
from schoolgate.store.policy_files import load_policy

SETTINGS = BlockPageSettings("http://admin.test:8081/", b"s" * 40)
# Thursday 3 December 2026, 00:56 in London; the sanction ends on Thursday 17 December.
AT = datetime(2026, 12, 3, 0, 56, tzinfo=UTC)
ENDS = datetime(2026, 12, 17, 0, 56, tzinfo=UTC)
SANCTION_ID = "0b8cd7d4-1111-4222-8333-944455556666"


@pytest.fixture(scope="module")
def seed() -> Policy:
    return load_policy()


def page(seed: Policy, decision: Decision, role: str, user: str = "pupil1") -> str:
    return (
        make_block_page(
            decision,
            Subject(role, user),
            site=decision.host or "x.test",
            at=AT,
            policy=seed,
            settings=SETTINGS,
        ).text
        or ""
    )


def test_a_sanctioned_pupil_reads_what_is_happening_and_until_when(seed: Policy) -> None:
    decision = Decision(
        Verdict.BLOCK,
        Reason.SUPERVISED_ONLY,
        rule=SANCTION_ID,
        host="www.pinterest.com",
        opens_at=ENDS,
    )
    html = page(seed, decision, "pupil")
    assert "You can use the computer only with a teacher until Thursday 17 December." in html
    assert "You can use it on Thursday" not in html  # the old, dateless and wrong promise
    assert "cannot be unblocked" not in html
    assert "social media policy" not in html
    assert SANCTION_ID not in html
    assert "/requests/new?token=" not in html


def test_a_sanctioned_pupil_without_an_end_in_sight_is_told_so_plainly(seed: Policy) -> None:
    decision = Decision(
        Verdict.BLOCK, Reason.SUPERVISED_ONLY, rule=SANCTION_ID, host="www.tiktok.com"
    )
    html = page(seed, decision, "pupil")
    assert "You can use the computer only with a teacher." in html


def test_pupils_and_staff_read_different_words(seed: Policy) -> None:
    decision = Decision(
        Verdict.BLOCK,
        Reason.RULE_BLOCK,
        rule="pupils-social-media",
        category="social",
        host="www.tiktok.com",
    )
    pupil = page(seed, decision, "pupil")
    assert "You can ask to use it." in pupil
    assert "A grown-up at school will read what you write and decide." in pupil
    assert "monitors the use of its network" not in pupil  # adult words
    assert "Business Manager" not in pupil.split("<details>")[0]
    staff = page(seed, decision, "staff", "teacher1")
    assert "ask your teacher" not in staff
    assert "talk to your teacher" not in staff
    assert "The Business Manager decides each request" in staff


def test_a_blocked_vpn_reads_plainly_for_a_pupil(seed: Policy) -> None:
    decision = Decision(
        Verdict.BLOCK, Reason.CIRCUMVENTION, category="vpn", host="nordvpn.com", technique="vpn"
    )
    html = page(seed, decision, "pupil")
    assert "a way to get round the school&#39;s safety filter" in html
    assert "This website cannot be unblocked at school, even if you ask." in html


def test_an_opening_on_another_day_has_its_date(seed: Policy) -> None:
    thursday = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    assert (
        describe_opening(seed, datetime(2026, 12, 4, 10, 30, tzinfo=UTC), thursday)
        == "You can use it at morning break tomorrow, from 10:30."
    )
    assert (
        describe_opening(seed, datetime(2026, 12, 7, 10, 30, tzinfo=UTC), thursday)
        == "You can use it at morning break on Monday 7 December, from 10:30."
    )
