"""The policy's `inspection:` and `search:` keys, and the safeguarding term matching (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from schoolgate.policy.errors import PolicyError
from schoolgate.policy.inspection import (
    InspectMode,
    SearchSettings,
    SearchTerm,
    YouTubeMode,
    parse_term_list,
)
from schoolgate.policy.parse import list_files_named, parse_policy
from schoolgate.store.policy_files import load_policy

BASE = """\
name: t
roles: {pupil: Pupils, staff: Staff}
default_role: pupil
calendar:
  timezone: Europe/London
  school_days: [monday]
  school_day: {start: "08:45", end: "15:15"}
  bank_holidays: none
default: allow
"""


def test_the_seed_inspects_everything_for_pupils_and_listed_for_staff() -> None:
    seed = load_policy()
    pupil, staff = seed.inspection.for_role("pupil"), seed.inspection.for_role("staff")
    assert pupil.inspect is InspectMode.ALL
    assert pupil.safe_search
    assert pupil.youtube is YouTubeMode.STRICT
    assert staff.inspect is InspectMode.LISTED
    assert not staff.safe_search
    assert staff.youtube is YouTubeMode.OFF


@pytest.mark.parametrize(
    "host",
    [
        "courier.push.apple.com",
        "mesu.apple.com",
        "download.windowsupdate.com",
        "fe2.update.microsoft.com",
        "play.googleapis.com",
        "mtalk.google.com",
        "barclays.co.uk",
        "www.nhs.uk",
    ],
)
def test_the_seed_never_decrypts_pinned_apps_banking_and_health(host: str) -> None:
    seed = load_policy()
    categories = seed.domains.categories(host)
    assert categories
    assert any(seed.categories[c].sensitive for c in categories)


def test_an_unnamed_role_gets_listed_and_no_forced_safe_search() -> None:
    policy = parse_policy(BASE + "inspection:\n  pupil: {inspect: all}\n", source="p.yaml")
    assert policy.inspection.for_role("staff").inspect is InspectMode.LISTED
    assert policy.inspection.for_role("pupil").inspect is InspectMode.ALL
    assert not policy.inspection.for_role("pupil").safe_search


def test_bad_inspection_settings_are_reported_with_their_place() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(
            BASE + "inspection:\n  pupils: {inspect: everything}\n  staff: {youtube: maybe}\n",
            source="p.yaml",
        )
    text = str(caught.value)
    assert "inspection.pupils" in text
    assert "inspection.staff.youtube" in text


def test_an_unknown_role_in_inspection_is_named() -> None:
    with pytest.raises(PolicyError, match=r"inspection\.governor: unknown role 'governor'"):
        parse_policy(BASE + "inspection:\n  governor: {inspect: all}\n", source="p.yaml")


def test_a_missing_term_list_is_a_problem_not_silence() -> None:
    text = BASE + "search:\n  alert_terms: [mine.terms]\n"
    assert list_files_named(text) == ("mine.terms",)
    with pytest.raises(PolicyError, match=r"search\.alert_terms\[0\]: the term list 'mine"):
        parse_policy(text, source="p.yaml")


def test_a_term_list_beside_the_policy_is_read(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(BASE + "search:\n  alert_terms: [mine.terms]\n")
    (tmp_path / "mine.terms").write_text("# topic: bullying\nnobody likes me\n")
    policy = load_policy(tmp_path / "policy.yaml")
    assert policy.search.alert_terms == (SearchTerm("nobody likes me", "bullying"),)


def test_term_list_topics_comments_and_problems() -> None:
    terms, problems = parse_term_list(
        "# a comment\nsuicide\n# topic: self_harm\nSelf-Harm  # x\n\n!!!\n", source="t.terms"
    )
    assert terms == [SearchTerm("suicide", "safeguarding"), SearchTerm("self harm", "self_harm")]
    assert problems == ["t.terms: line 6: '!!!' has no letters or digits"]


@pytest.mark.parametrize(
    ("searched", "found"),
    [
        ("how to SELF-HARM", ("self harm",)),
        ("self   harm", ("self harm",)),
        ("i want to kill myself now", ("kill myself",)),
        ("harmless selfie", ()),
        ("unsuicided", ()),  # whole words only
        ("suicide squad and self harm", ("suicide", "self harm")),
        ("", ()),
    ],
)
def test_terms_match_whole_words_in_any_case_and_spacing(
    searched: str, found: tuple[str, ...]
) -> None:
    settings = SearchSettings(
        (
            SearchTerm("suicide", "suicide"),
            SearchTerm("self harm", "sh"),
            SearchTerm("kill myself", "suicide"),
        )
    )
    assert tuple(t.words for t in settings.matches(searched)) == found


def test_the_shipped_starter_list_catches_the_obvious_and_not_the_everyday() -> None:
    seed = load_policy()
    assert seed.search.alert_lists == ("safeguarding.terms",)
    assert seed.search.matches("how do i hurt myself")
    assert seed.search.matches("being bullied at school")
    assert not seed.search.matches("volcano facts for year 4")
    assert not seed.search.matches("how to cut paper snowflakes")
