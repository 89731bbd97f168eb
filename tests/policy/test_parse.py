"""parse_policy(): every problem reported with its place and the valid alternatives."""

from __future__ import annotations

import pytest
import yaml

from schoolgate.policy.errors import PolicyError
from schoolgate.policy.model import PeriodKind, Verdict
from schoolgate.policy.parse import list_files_named, parse_policy
from tests.support.policies import POLICY_TEXT


def broken(old: str, new: str) -> str:
    assert old in POLICY_TEXT, old
    return POLICY_TEXT.replace(old, new, 1)


ERRORS = [
    # (case, text, expected fragment of one problem)
    (
        "unknown category in a rule",
        broken("categories: [vpn], action", "categories: [vpn, gamez], action"),
        "rule 2 'circumvention' (rules[1].categories[1]): unknown category 'gamez' (known: bank, "
        "facebook, instagram, locked_cat, social, vpn, x)",
    ),
    (
        "unknown role in a rule",
        broken(
            "roles: [staff], categories: [facebook, social], action: block",
            "roles: [staf], categories: [facebook], action: block",
        ),
        "(rules[4].roles[0]): unknown role 'staf' "
        "(did you mean 'staff'? known: pupil, social_media_manager, staff, or 'all')",
    ),
    (
        "unknown default role",
        broken("default_role: pupil", "default_role: guest"),
        "default_role: unknown role 'guest'",
    ),
    (
        "unknown key",
        broken("default: allow", "default: allow\ncolour: blue"),
        "colour: unknown key",
    ),
    (
        "unknown key in a category",
        broken("{locked: true, domains", "{lockd: true, domains"),
        "categories.locked_cat.lockd: unknown key",
    ),
    (
        "bad action",
        broken("categories: [vpn], action: block", "categories: [vpn], action: deny"),
        "rule 2 'circumvention' (rules[1].action): 'deny' is not one of the choices: "
        "write 'allow' or 'block'",
    ),
    (
        "unknown window",
        broken("when: [break]", "when: [playtime]"),
        "(rules[3].when[0]): unknown time window 'playtime' (known: break, lesson, lunch, "
        "morning break, outside_school_day, school_day, always)",
    ),
    (
        "bad time",
        broken('start: "10:30"', 'start: "10.30"'),
        "calendar.periods[0].start: '10.30' is not a time of day: write it as HH:MM",
    ),
    ("period end before start", broken('end: "13:00"', 'end: "11:00"'), "calendar.periods[1]"),
    (
        "bad time zone",
        broken("timezone: Europe/London", "timezone: Europe/Londn"),
        "calendar.timezone: unknown time zone 'Europe/Londn'",
    ),
    (
        "bad weekday",
        broken("school_day: {", "school_days: [monday, funday]\n  school_day: {"),
        "calendar.school_days[1]: 'funday' is not a day of the week",
    ),
    (
        "bad domain",
        broken("domains: [tiktok.com, reddit.com]", "domains: [tiktok.com, 'red dit']"),
        "categories.social.domains[1]: 'red dit' is not a host name",
    ),
    (
        "duplicate rule name",
        broken("name: staff-locked", "name: circumvention"),
        "rule 7 'circumvention' (rules[6].name): the name 'circumvention' is already used by "
        "rule 2",
    ),
    (
        "missing list file",
        broken(
            "{domains: [tiktok.com, reddit.com]}", "{lists: [social.txt], domains: [tiktok.com]}"
        ),
        "categories.social.lists[0]: list file 'social.txt' was not found",
    ),
    (
        "duplicate key",
        broken("default: allow", "default: allow\ndefault: block"),
        "the key 'default' appears twice",
    ),
    ("not yaml", "roles: [unclosed", "not valid YAML"),
    ("not a mapping", "- just\n- a list\n", "must be a YAML mapping"),
    ("missing required", broken("default: allow", ""), "default: required, but missing"),
]


@pytest.mark.parametrize(("case", "text", "expected"), ERRORS, ids=[e[0] for e in ERRORS])
def test_problems_are_located(case: str, text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="policy.yaml")
    assert any(expected in p for p in caught.value.problems), caught.value.problems
    assert str(caught.value).startswith("policy.yaml: ")


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = broken("default_role: pupil", "default_role: guest")
    text = text.replace("action: deny", "")
    text = text.replace("categories: [vpn], action", "categories: [vpn, gamez], action")
    text = text.replace('start: "10:30"', 'start: "half past ten"')
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="policy.yaml")
    assert len(caught.value.problems) == 3, caught.value.problems


def problems_of(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="policy.yaml", **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def test_structural_and_other_problems_are_reported_together() -> None:
    """Newcomer review finding 11: an unknown key hid a bad time and an unknown category
    until the key was fixed."""
    text = broken("default: allow", "defualt: allow")
    text = text.replace('start: "10:30"', 'start: "10:75"')
    text = text.replace("categories: [vpn], action", "categories: [vpn, socail], action")
    text = text.replace(
        "categories: [vpn, socail], action: block", "categories: [vpn, socail], action: alow"
    )
    problems = problems_of(text)
    assert problems == [
        "rule 2 'circumvention' (rules[1].action): 'alow' is not one of the choices: write "
        "'allow' or 'block' (did you mean 'allow'?)",
        "default: required, but missing",
        "defualt: unknown key (did you mean 'default'? see docs/policy.md for the keys allowed)",
        "calendar.periods[0].start: '10:75' is not a time of day: write it as HH:MM or HH:MM:SS "
        "in 24-hour form, like '10:30'",
        "rule 2 'circumvention' (rules[1].categories[1]): unknown category 'socail' (did you "
        "mean 'social'? known: bank, facebook, instagram, locked_cat, social, vpn, x)",
    ]


def test_a_key_in_a_rule_is_suggested_from_the_rule_s_keys() -> None:
    problems = problems_of(broken("when: [break]", "wehn: [break]"))
    assert problems == [
        "rule 4 'staff-social-media-at-break' (rules[3].wehn): unknown key (did you mean "
        "'when'? see docs/policy.md for the keys allowed)"
    ]


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("default: allow", "default: [allow]", "default: ['allow'] is not one of the choices"),
        ("{locked: true,", "{locked: maybe,", "locked: should be true or false (got 'maybe')"),
        ("name: staff-locked", "name: ''", "(rules[6].name): must not be empty (got '')"),
        (
            "school_day: {",
            "terms: [{name: t, start: soon}]\n  school_day: {",
            "calendar.terms[0].start: should be a date, written YYYY-MM-DD",
        ),
    ],
)
def test_schema_problems_are_in_plain_words(old: str, new: str, words: str) -> None:
    problems = problems_of(broken(old, new))
    assert any(words in p for p in problems), problems
    assert not any("Input should" in p for p in problems), problems


def test_a_missing_list_names_every_shipped_list_and_the_closest() -> None:
    text = broken(
        "{domains: [tiktok.com, reddit.com]}", "{lists: [socail.txt], domains: [tiktok.com]}"
    )
    problems = problems_of(text, known_lists=["facebook.txt", "social.txt", "x.txt"])
    assert problems == [
        "categories.social.lists[0]: list file 'socail.txt' was not found (did you mean "
        "'social.txt'? put it beside the policy file, or use a shipped list: facebook.txt, "
        "social.txt, x.txt)"
    ]


def test_times_stay_times_not_sexagesimal_numbers() -> None:
    # YAML 1.1 reads an unquoted 10:30 as the number 630; the policy reader must not.
    policy = parse_policy(
        POLICY_TEXT.replace('"10:30"', "10:30").replace('"10:45"', "10:45"), source="p.yaml"
    )
    first = policy.calendar.periods[0]
    assert (first.name, first.kind, first.start.hour, first.start.minute) == (
        "morning break",
        PeriodKind.BREAK,
        10,
        30,
    )


def test_parsed_policy_is_frozen() -> None:
    policy = parse_policy(POLICY_TEXT, source="p.yaml")
    assert policy.default is Verdict.ALLOW
    assert policy.rules[3].when.windows == ("break",)
    assert policy.categories["x"].not_unblockable_for == frozenset(policy.roles)
    with pytest.raises(AttributeError):
        policy.rules[0].name = "other"  # type: ignore[misc]


def test_list_files_named() -> None:
    text = "categories:\n  a: {lists: [a.txt, b.txt]}\n  b: {lists: [b.txt]}\n"
    assert list_files_named(text) == ("a.txt", "b.txt")
    assert list_files_named("roles: [") == ()
    assert yaml.safe_load(text)  # the text itself is fine YAML


def test_a_threshold_recommends_a_sanction_unless_the_policy_says_sanction() -> None:
    # The safe default (ops review L5): reaching the threshold proposes a sanction to the DSL;
    # one is placed automatically only when the school writes `on_threshold: sanction`.
    from schoolgate.policy.model import SanctionAction

    data = yaml.safe_load(POLICY_TEXT)
    data.setdefault("circumvention", {}).pop("on_threshold", None)
    policy = parse_policy(yaml.safe_dump(data), source="p.yaml")
    assert policy.circumvention.on_threshold is SanctionAction.RECOMMEND
    data["circumvention"]["on_threshold"] = "sanction"
    policy = parse_policy(yaml.safe_dump(data), source="p.yaml")
    assert policy.circumvention.on_threshold is SanctionAction.SANCTION


def test_the_model_default_is_to_recommend() -> None:
    from schoolgate.policy.model import CircumventionSettings, SanctionAction

    assert CircumventionSettings().on_threshold is SanctionAction.RECOMMEND
