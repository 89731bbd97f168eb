"""The trust layer (policy/trust.py): the trust file, attributing a client address to a school,
each school's policy from the base and its override, and the trust's locks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schoolgate.policy.decide import decide
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.model import (
    ApprovedException,
    LocalListEntry,
    Overrides,
    Policy,
    Reason,
    Request,
    Sanction,
    Scope,
    Subject,
    TargetKind,
    Verdict,
)
from schoolgate.policy.trust import (
    SchoolSource,
    Trust,
    TrustFile,
    compile_trust,
    parse_trust_file,
)
from schoolgate.proxy_addons.policy_source import PolicySource
from tests.policy.test_decide import BREAK, LESSON, PUPIL, STAFF
from tests.support.policies import POLICY_TEXT
from tests.support.trusts import list_text

TRUST_TEXT = """
name: Oak Learning Trust
base: trust-policy.yaml
locks:
  categories: [social, vpn]
  default: true
  inspection: true
  ports: true
  internal: true
unmatched: refuse
schools:
  oak:
    name: Oak Primary
    subnets: [10.1.0.0/16, 127.0.0.2/32]
    policy: oak.yaml
  elm:
    name: Elm Primary
    subnets: [10.2.0.0/16, 127.0.0.3/32]
    policy: elm.yaml
  ash:
    name: Ash Infants
    subnets: [10.0.0.0/8]
"""

# Elm's breaks are half an hour later than the trust's: 11:00 to 11:15, lunch 12:30 to 13:30.
ELM_CALENDAR = """
calendar:
  timezone: Europe/London
  school_day: {start: "09:00", end: "15:30"}
  periods:
    - {name: morning break, kind: break, start: "11:00", end: "11:15"}
    - {name: lunch, kind: break, start: "12:30", end: "13:30"}
"""

BASE_WITH_INSPECTION = (
    POLICY_TEXT.replace("[tiktok.com, reddit.com]", "[tiktok.com, reddit.com, chat.example.org]")
    + """
inspection:
  pupil: {inspect: all, safe_search: true, youtube: strict}
ports: {connect: [443, 80], http: [80]}
"""
)


def trust_file(text: str = TRUST_TEXT) -> TrustFile:
    return parse_trust_file(text, source="trust.yaml")


def compile_with(
    trust: TrustFile | None = None,
    *,
    base: str = BASE_WITH_INSPECTION,
    schools: dict[str, SchoolSource] | None = None,
    **overrides: str,
) -> Trust:
    """The trust (default: TRUST_TEXT) compiled over `base`; `overrides` maps a school's id to
    the text of its override file (<id>.yaml)."""
    sources = dict(schools or {})
    sources.update({sid: SchoolSource(text, f"{sid}.yaml") for sid, text in overrides.items()})
    return compile_trust(
        trust or trust_file(),
        base_text=base,
        base_source="trust-policy.yaml",
        base_lists={},
        schools=sources,
    )


def compiled(oak: str | None = None, elm: str | None = ELM_CALENDAR, **lists: str) -> Trust:
    schools = {}
    if oak is not None:
        schools["oak"] = SchoolSource(oak, "oak.yaml", lists)
    if elm is not None:
        schools["elm"] = SchoolSource(elm, "elm.yaml", lists)
    return compile_with(schools=schools)


def problems_of(oak: str, **lists: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        compiled(oak=oak, **lists)
    assert caught.value.source == "trust.yaml"
    return caught.value.problems


# --- the trust file ---------------------------------------------------------------------------


def test_trust_file_lists_its_schools_and_locks() -> None:
    trust = trust_file()
    assert list(trust.schools) == ["oak", "elm", "ash"]
    assert trust.schools["oak"].name == "Oak Primary"
    assert [str(n) for n in trust.schools["oak"].subnets] == ["10.1.0.0/16", "127.0.0.2/32"]
    assert trust.schools["ash"].policy is None
    assert trust.locks.categories == {"social", "vpn"}
    assert trust.locks.default
    assert trust.locks.inspection
    assert trust.locks.ports
    assert trust.unmatched is None


def test_trust_file_reports_every_problem_with_its_place() -> None:
    text = """
name: T
base: b.yaml
unmatched: birch
schools:
  oak: {name: Oak, subnets: [10.1.0.1/16, not-a-range]}
  elm: {name: Elm, subnets: [10.1.0.0/16, 10.1.0.0/16]}
  ash: {name: Ash}
"""
    with pytest.raises(PolicyError) as caught:
        trust_file(text)
    problems = caught.value.problems
    assert problems[0].startswith("schools.oak.subnets[0]: '10.1.0.1/16' is not an address range")
    assert "has host bits set" in problems[0]
    assert problems[1].startswith("schools.oak.subnets[1]: 'not-a-range' is not an address range")
    assert problems[2] == (
        "schools.elm.subnets[1]: 10.1.0.0/16 is already given to the school 'elm': "
        "a client address must belong to one school"
    )
    assert problems[3].startswith("unmatched: 'birch' is neither 'refuse' nor one of the schools")
    assert problems[4].startswith("schools.ash: no subnets, listeners or directory, so no client")
    assert "its people's group under 'directory:'" in problems[4]
    assert len(problems) == 5


def test_trust_file_schema_problems_name_the_key() -> None:
    text = "name: T\nbase: b.yaml\nschools:\n  Oak School: {name: Oak, subnet: [10.0.0.0/8]}\n"
    with pytest.raises(PolicyError) as caught:
        trust_file(text)
    joined = "\n".join(caught.value.problems)
    assert "schools.Oak School" in joined
    assert "schools.Oak School.subnet: unknown key" in joined


def test_trust_file_must_be_a_mapping() -> None:
    with pytest.raises(PolicyError, match="must be a YAML mapping"):
        trust_file("- oak\n- elm\n")


def test_a_school_with_no_subnets_may_be_the_default() -> None:
    text = "name: T\nbase: b.yaml\nunmatched: oak\nschools:\n  oak: {name: Oak}\n"
    trust = trust_file(text)
    school = trust.school_for("192.0.2.7")
    assert school is not None
    assert school.id == "oak"


# --- attribution: which school a client address belongs to -------------------------------


@pytest.mark.parametrize(
    ("address", "school"),
    [
        ("10.1.2.3", "oak"),  # 10.1/16 is longer than ash's 10/8: the longest prefix wins
        ("10.2.255.255", "elm"),
        ("10.3.0.1", "ash"),  # only ash's 10/8 matches
        ("10.0.0.0", "ash"),
        ("127.0.0.2", "oak"),
        ("127.0.0.3", "elm"),
        ("::ffff:127.0.0.3", "elm"),  # a dual-stack listener's spelling of an IPv4 client
        ("::ffff:10.1.0.9", "oak"),
        ("127.0.0.4", None),  # in no school's subnet, and unmatched is refuse
        ("11.0.0.1", None),
        ("fd00::1", None),
        ("not an address", None),
        ("", None),
    ],
)
def test_longest_prefix_attributes_a_client(address: str, school: str | None) -> None:
    found = trust_file().school_for(address)
    assert (found.id if found else None) == school


def test_unmatched_clients_go_to_the_default_school_when_the_trust_says_so() -> None:
    trust = trust_file(TRUST_TEXT.replace("unmatched: refuse", "unmatched: ash"))
    found = trust.school_for("192.0.2.1")
    assert found is not None
    assert found.id == "ash"
    also = trust.school_for("rubbish")
    assert also is not None
    assert also.id == "ash"


def test_ipv6_subnets_attribute_too() -> None:
    text = TRUST_TEXT.replace("[10.2.0.0/16, 127.0.0.3/32]", "[10.2.0.0/16, 'fd00:2::/48']")
    trust = trust_file(text)
    found = trust.school_for("fd00:2:0:1::5")
    assert found is not None
    assert found.id == "elm"
    assert trust.school_for("fd00:3::1") is None


# --- each school's policy --------------------------------------------------------------------


def test_each_school_gets_its_own_break_times() -> None:
    trust = compiled()
    facebook = Request("www.facebook.com")
    oak_break = BREAK  # 10:35: the trust's morning break, which oak keeps
    elm_break = BREAK.replace(hour=11, minute=5)  # 11:05: elm's morning break
    oak = trust.policies["oak"]
    elm = trust.policies["elm"]
    assert decide(oak, facebook, STAFF, None, oak_break).verdict is Verdict.ALLOW
    assert decide(elm, facebook, STAFF, None, oak_break).verdict is Verdict.BLOCK
    assert decide(oak, facebook, STAFF, None, elm_break).verdict is Verdict.BLOCK
    assert decide(elm, facebook, STAFF, None, elm_break).verdict is Verdict.ALLOW
    found = trust.file.attribute(address="127.0.0.3").school
    assert found is not None
    assert trust.policies[found.id] is elm
    assert trust.file.attribute(address="127.0.0.9").school is None


def test_a_school_without_an_override_runs_the_base_and_shares_its_lists() -> None:
    trust = compiled()
    ash = trust.policies["ash"]
    assert ash.name == "test policy: Ash Infants"
    assert ash.rules == trust.base.rules
    assert ash.calendar == trust.base.calendar
    # one domain index for every school that adds no category of its own
    assert ash.domains is trust.base.domains
    assert trust.policies["elm"].domains is trust.base.domains


def test_a_school_may_tighten_a_locked_category() -> None:
    oak = (
        "rules:\n  - {name: no-social-for-staff, roles: [staff], categories: [social, facebook], "
        "action: block}\n"
    )
    policy = compiled(oak=oak).policies["oak"]
    assert policy.rules[0].name == "no-social-for-staff"  # the school's rules come first
    decision = decide(policy, Request("www.facebook.com"), STAFF, None, BREAK)
    assert decision.verdict is Verdict.BLOCK
    assert decision.rule == "no-social-for-staff"


def test_a_school_may_add_its_own_category_and_block_it() -> None:
    oak = """
categories:
  games: {description: Games, domains: [games.example], lists: [games.txt]}
rules:
  - {name: no-games, roles: all, categories: [games], action: block}
"""
    trust = compiled(oak=oak, **{"games.txt": list_text("games", "moregames.example")})
    policy = trust.policies["oak"]
    assert policy.domains is not trust.base.domains
    for host in ("games.example", "www.moregames.example"):
        assert decide(policy, Request(host), STAFF, None, LESSON).rule == "no-games"
    # the trust's categories still work in the school's own index
    assert decide(policy, Request("x.com"), STAFF, None, LESSON).rule == "x-and-instagram"
    # and the other schools are untouched
    elm = trust.policies["elm"]
    assert decide(elm, Request("games.example"), STAFF, None, LESSON).verdict is Verdict.ALLOW


def pupils_may_use(category: str) -> Overrides:
    """A school's grant opening `category` for every pupil, from an hour before LESSON."""
    grant = ApprovedException(
        id=f"grant-{category}",
        scope=Scope.ROLE,
        target_kind=TargetKind.CATEGORY,
        target=category,
        starts=LESSON - timedelta(hours=1),
        who="pupil",
    )
    return Overrides(exceptions=(grant,))


def test_a_locked_category_cannot_be_opened_by_a_schools_exception() -> None:
    school = compiled().policies["oak"]
    assert school.categories["social"].not_unblockable_for == frozenset(school.roles)
    decision = decide(school, Request("tiktok.com"), PUPIL, pupils_may_use("social"), LESSON)
    assert decision.verdict is Verdict.BLOCK
    # facebook is not locked by the trust: the same kind of grant opens it
    opened = decide(school, Request("facebook.com"), PUPIL, pupils_may_use("facebook"), LESSON)
    assert opened.reason is Reason.EXCEPTION


# --- locks: a school may tighten, never loosen ------------------------------------------------


def test_allowing_a_locked_category_is_refused_naming_school_and_rule() -> None:
    oak = "rules:\n  - {name: tiktok-club, roles: [pupil], categories: [social], action: allow}\n"
    assert problems_of(oak) == [
        "school 'oak' (oak.yaml): rule 1 'tiktok-club' (rules[0]): the trust locks 'social': a school "
        "may not allow it (a school may block more; ask the trust to change its policy)"
    ]


def test_a_category_the_base_locks_itself_is_locked_too() -> None:
    oak = "rules:\n  - {name: open-it, roles: [staff], categories: [locked_cat], action: allow}\n"
    (problem,) = problems_of(oak)
    assert "the trust locks 'locked_cat': a school may not allow it" in problem


@pytest.mark.parametrize(
    ("listed", "site", "category"),
    [
        ("www.tiktok.com", "www.tiktok.com", "social"),  # a site inside a locked domain
        ("tiktok.com", "tiktok.com", "social"),
        ("example.org", "example.org", "social"),  # a domain that covers a locked one
        ("full:nordvpn.com", "nordvpn.com", "vpn"),
    ],
)
def test_allowing_a_schools_category_that_holds_a_locked_site_is_refused(
    listed: str, site: str, category: str
) -> None:
    oak = """
categories:
  clubs: {lists: [clubs.txt]}
rules:
  - {name: clubs, roles: all, categories: [clubs], action: allow}
"""
    (problem,) = problems_of(oak, **{"clubs.txt": list_text("clubs", listed)})
    assert problem == (
        f"school 'oak' (oak.yaml): rule 1 'clubs' (rules[0]): allows 'clubs', which lists {site!r}, "
        f"a site of {category!r} that the trust locks: a school may not allow it"
    )


def test_allowing_a_schools_category_clear_of_locked_sites_is_fine() -> None:
    oak = """
categories:
  clubs: {domains: [clubs.example], lists: [clubs.txt]}
rules:
  - {name: clubs, roles: all, categories: [clubs], action: allow}
"""
    clubs = list_text("clubs", "full:cdn.nordvpn.com.example", "chess.club.example")
    policy = compiled(oak=oak, **{"clubs.txt": clubs}).policies["oak"]
    assert decide(policy, Request("clubs.example"), PUPIL, None, LESSON).rule == "clubs"


def test_an_unlocked_category_may_be_loosened_by_a_school() -> None:
    oak = "rules:\n  - {name: fb-club, roles: [pupil], categories: [facebook], action: allow}\n"
    policy = compiled(oak=oak).policies["oak"]
    decision = decide(policy, Request("facebook.com"), PUPIL, None, LESSON)
    assert (decision.verdict, decision.rule) == (Verdict.ALLOW, "fb-club")


@pytest.mark.parametrize(
    ("oak", "expected"),
    [
        (
            "inspection:\n  pupil: {inspect: listed, safe_search: false, youtube: moderate}\n",
            "inspection.pupil.inspect: the trust locks inspection and decrypts all for 'pupil': "
            "a school may not make it 'listed'",
        ),
        (
            "ports: {connect: [443, 8443], http: [80]}\n",
            "ports.connect: the trust locks ports: a school may not open 8443 (the trust's: "
            "80, 443)",
        ),
        (
            "internal:\n  allow:\n    - {hosts: [mis.school.lan], roles: [staff]}\n",
            "internal.allow: the trust locks internal destinations: a school may not open any "
            "(ask the trust to add it to its base policy)",
        ),
        (
            "roles: {pupil: P}\n",
            "roles: set by the trust for every school; a school's policy may not change it "
            "(see docs/trust.md)",
        ),
        (
            "categories:\n  facebook: {domains: [facebook.com]}\n",
            "categories.facebook: the trust defines 'facebook'; a school may add categories "
            "of its own, never change the trust's (to block more, add a category of your own "
            "and a rule that blocks it)",
        ),
        (
            "rules:\n  - {name: circumvention, roles: all, categories: [x], action: block}\n",
            "rule 1 'circumvention' (rules[0]): the trust's policy already has a rule named "
            "'circumvention': give the school's rule another name",
        ),
    ],
)
def test_what_a_school_may_not_change(oak: str, expected: str) -> None:
    problems = problems_of(oak)
    assert problems[0] == f"school 'oak' (oak.yaml): {expected}"


def test_the_default_verdict_lock() -> None:
    base = BASE_WITH_INSPECTION.replace("default: allow", "default: block")
    sources = {"oak": SchoolSource("default: allow\n", "oak.yaml")}
    with pytest.raises(PolicyError) as caught:
        compile_with(base=base, schools=sources)
    assert caught.value.problems == [
        "school 'oak' (oak.yaml): default: the trust locks the default verdict ('block'): "
        "a school may not make it 'allow'"
    ]
    unlocked = trust_file(TRUST_TEXT.replace("  default: true\n", ""))
    trust = compile_with(unlocked, base=base, schools=sources)
    assert trust.policies["oak"].default is Verdict.ALLOW
    assert trust.policies["elm"].default is Verdict.BLOCK


def test_inspection_lock_names_every_loosened_setting() -> None:
    oak = "inspection:\n  pupil: {inspect: listed, safe_search: false, youtube: moderate}\n"
    problems = problems_of(oak)
    assert len(problems) == 3
    assert "inspection.pupil.safe_search: the trust locks inspection" in problems[1]
    assert "a school may not make it 'moderate'" in problems[2]


def test_a_school_may_tighten_what_the_trust_locks() -> None:
    oak = """
default: block
inspection:
  pupil: {inspect: all, safe_search: true, youtube: strict}
  staff: {inspect: all, safe_search: true}
ports: {connect: [443], http: [80]}
"""
    policy = compiled(oak=oak).policies["oak"]
    assert policy.default is Verdict.BLOCK
    assert policy.ports.connect == {443}
    assert policy.inspection.for_role("staff").safe_search


def test_without_locks_a_school_may_loosen() -> None:
    unlocked = TRUST_TEXT.replace("  default: true\n", "").replace("  ports: true\n", "")
    trust = compile_with(trust_file(unlocked), oak="ports: {connect: [443, 8443]}\n")
    assert trust.policies["oak"].ports.connect == {443, 8443}


def test_a_schools_calendar_must_keep_the_periods_the_trusts_rules_name() -> None:
    base = BASE_WITH_INSPECTION.replace("when: [break]", "when: [lunch]")
    oak = """
calendar:
  school_day: {start: "09:00", end: "15:30"}
  periods:
    - {name: dinner, kind: break, start: "12:00", end: "13:00"}
"""
    with pytest.raises(PolicyError) as caught:
        compile_with(base=base, oak=oak)
    assert caught.value.problems == [
        "school 'oak' (oak.yaml): the trust's rule 4 'staff-social-media-at-break' "
        "(rules[3].when[0]): unknown time window 'lunch' "
        "(known: break, dinner, lesson, outside_school_day, school_day, always) "
        "(a school's calendar must have the periods the trust's rules name)"
    ]


def test_problems_of_every_school_are_listed_together() -> None:
    bad = "rules:\n  - {name: r, roles: [pupil], categories: [social], action: allow}\n"
    with pytest.raises(PolicyError) as caught:
        compiled(oak=bad, elm=bad + "colour: blue\n")
    problems = caught.value.problems
    assert problems[0].startswith("school 'oak' (oak.yaml): rule 1 'r' (rules[0]): the trust locks")
    assert problems[1] == (
        "school 'elm' (elm.yaml): colour: unknown key (check the spelling; see "
        "docs/policy.md for the keys allowed)"
    )


def test_a_schools_own_mistakes_are_placed_in_its_file() -> None:
    oak = "rules:\n  - {name: r, roles: [pupil], categories: [gamez], action: block}\n"
    (problem,) = problems_of(oak)
    assert problem.startswith(
        "school 'oak' (oak.yaml): rule 1 'r' (rules[0].categories[0]): unknown category"
    )


def test_locks_must_name_categories_of_the_base() -> None:
    with pytest.raises(PolicyError) as caught:
        compile_with(trust_file(TRUST_TEXT.replace("[social, vpn]", "[social, gamez]")))
    (problem,) = caught.value.problems
    assert problem.startswith("locks.categories: 'gamez' is not a category of the base policy")


def test_problems_of_the_base_name_it() -> None:
    with pytest.raises(PolicyError) as caught:
        compile_with(base=POLICY_TEXT.replace("default: allow", "default: maybe"))
    assert caught.value.problems[0].startswith("the base policy (trust-policy.yaml): default:")


def test_an_empty_override_is_the_base() -> None:
    trust = compiled(oak="", elm="# nothing yet\n")
    assert trust.policies["oak"].rules == trust.base.rules


def test_a_locked_category_keeps_the_trusts_default_when_a_school_changes_its_own() -> None:
    # No rule of the base names 'bank': the base blocks it by its default verdict. A school may
    # make its default 'allow' (the default is not locked here), but not for what is locked.
    base = BASE_WITH_INSPECTION.replace("default: allow", "default: block")
    unlocked = TRUST_TEXT.replace("  default: true\n", "").replace("[social, vpn]", "[bank]")
    trust = compile_with(trust_file(unlocked), base=base, oak="default: allow\n")
    oak, elm = trust.policies["oak"], trust.policies["elm"]
    assert decide(trust.base, Request("bank.example"), STAFF, None, LESSON).reason is (
        Reason.DEFAULT_BLOCK
    )
    decision = decide(oak, Request("bank.example"), STAFF, None, LESSON)
    assert (decision.verdict, decision.rule) == (Verdict.BLOCK, "trust-default-for-locked")
    assert decide(oak, Request("learning.example"), STAFF, None, LESSON).verdict is Verdict.ALLOW
    assert elm.rules == trust.base.rules  # a school that keeps the default gets no extra rule


def test_twenty_schools_each_with_its_own_lunch() -> None:
    """Twenty schools, each with its lunch at its own hour; a client of each school, at each
    school's lunch, gets Facebook (staff) only at its own school's lunch."""
    lines = ["name: Twenty", "base: b.yaml", "schools:"]
    sources = {}
    for i in range(20):
        lines.append(f"  s{i}: {{name: School {i}, subnets: [10.{i}.0.0/16], policy: s{i}.yaml}}")
        minute = f"{i * 3:02d}"
        sources[f"s{i}"] = SchoolSource(
            'calendar:\n  school_day: {start: "08:00", end: "16:00"}\n  periods:\n'
            f'    - {{name: lunch, kind: break, start: "12:{minute}", end: "12:{minute}:59"}}\n',
            f"s{i}.yaml",
        )
    trust = compile_with(
        parse_trust_file("\n".join(lines) + "\n", source="t"), base=POLICY_TEXT, schools=sources
    )
    facebook = Request("facebook.com")
    for i in range(20):
        at_lunch = LESSON.replace(hour=12, minute=i * 3, second=30)
        for j in range(20):
            found = trust.file.attribute(address=f"10.{j}.1.1").school
            assert found is not None
            assert found.id == f"s{j}"
            policy = trust.policies[found.id]
            allowed = decide(policy, facebook, STAFF, None, at_lunch).verdict is Verdict.ALLOW
            assert allowed == (i == j), (i, j)


def test_an_exception_applies_only_in_the_school_it_was_granted_in() -> None:
    grant = {
        school: ApprovedException(
            f"e-{school}",
            Scope.ROLE,
            TargetKind.HOST,
            "www.tiktok.com",
            LESSON,
            None,
            "pupil",
            school=school,
        )
        for school in ("oak", "elm", None)
    }
    both = Overrides(exceptions=(grant["oak"], grant["elm"]))
    assert both.for_school("oak").exceptions == (grant["oak"],)
    assert both.for_school("elm").exceptions == (grant["elm"],)
    assert both.for_school(None).exceptions == ()  # a client in no school: none of them
    everyone = Overrides(exceptions=(grant[None],), sanctions=(Sanction("s", "pupil1", LESSON),))
    assert everyone.for_school("oak") is everyone  # nothing to leave out: the same snapshot


def test_the_gateway_works_out_each_schools_overrides_once_per_refresh() -> None:
    source = PolicySource()
    oak = ApprovedException(
        "e", Scope.ROLE, TargetKind.HOST, "www.tiktok.com", LESSON, None, "pupil", school="oak"
    )
    source.overrides = Overrides(exceptions=(oak,))
    first = source.overrides_for("elm")
    assert first.exceptions == ()
    assert source.overrides_for("elm") is first
    assert source.overrides_for("oak").exceptions == (oak,)
    source.overrides = Overrides()  # read again: worked out afresh
    assert source.overrides_for("oak").exceptions == ()


# --- each school's local lists ----------------------------------------------------------------


def _entry(host: str, verdict: str, school: str | None) -> LocalListEntry:
    return LocalListEntry(host, Verdict(verdict), school=school)


def test_a_schools_local_lists_apply_only_in_that_school() -> None:
    trust = compiled()
    lists = Overrides(
        local_list=(
            _entry("www.facebook.com", "allow", "oak"),  # pupils: blocked by the trust's rules
            _entry("news.example", "block", "elm"),  # allowed by the default
        )
    )
    oak, elm = trust.policies["oak"], trust.policies["elm"]
    facebook, news = Request("www.facebook.com"), Request("news.example")

    def verdict(policy: Policy, school: str | None, request: Request) -> Verdict:
        return decide(policy, request, PUPIL, lists.for_school(school), LESSON).verdict

    assert verdict(oak, "oak", facebook) is Verdict.ALLOW
    assert verdict(elm, "elm", facebook) is Verdict.BLOCK
    assert verdict(elm, "elm", news) is Verdict.BLOCK
    assert verdict(oak, "oak", news) is Verdict.ALLOW
    assert lists.for_school(None).local_list == ()  # a client in no school: neither school's


@pytest.mark.parametrize("subject", [PUPIL, STAFF], ids=["pupil", "staff"])
@pytest.mark.parametrize("host", ["tiktok.com", "www.tiktok.com", "m.reddit.com"])
def test_a_trust_locked_category_is_never_opened_by_a_schools_local_allow(
    subject: Subject, host: str
) -> None:
    oak = compiled().policies["oak"]
    assert oak.categories["social"].not_unblockable_for == frozenset(oak.roles)
    for allowed in (host, "tiktok.com", "reddit.com"):
        lists = Overrides(local_list=(_entry(allowed, "allow", "oak"),)).for_school("oak")
        decision = decide(oak, Request(host), subject, lists, LESSON)
        assert decision.verdict is Verdict.BLOCK, allowed
        assert decision.reason is not Reason.EXCEPTION


# (the trust's entries, Oak's entries, the site an Oak client asks for) -> Oak's verdict.
# Between two lists a block wins whatever either covers (fail closed); on one list, an allow
# of the blocked site itself or a part of it is that list's deliberate choice (as before).
TRUST, OAK = None, "oak"
CROSS_LISTS = [
    ([("news.example", "block", TRUST), ("news.example", "allow", OAK)], "news.example", "block"),
    (
        [("news.example", "block", TRUST), ("www.news.example", "allow", OAK)],
        "www.news.example",
        "block",
    ),
    ([("news.example", "allow", TRUST), ("news.example", "block", OAK)], "news.example", "block"),
    (
        [("www.news.example", "allow", TRUST), ("news.example", "block", OAK)],
        "www.news.example",
        "block",
    ),
    (
        [("news.example", "block", OAK), ("www.news.example", "allow", OAK)],
        "www.news.example",
        "allow",
    ),
    (
        [("news.example", "block", TRUST), ("www.news.example", "allow", TRUST)],
        "www.news.example",
        "allow",
    ),
    ([("news.example", "block", TRUST)], "sport.example", "allow"),
]


@pytest.mark.parametrize(("entries", "host", "expected"), CROSS_LISTS)
def test_between_the_trusts_list_and_a_schools_a_block_wins(
    entries: list[tuple[str, str, str | None]], host: str, expected: str
) -> None:
    oak = compiled().policies["oak"]
    lists = Overrides(local_list=tuple(_entry(*e) for e in entries)).for_school("oak")
    assert decide(oak, Request(host), STAFF, lists, LESSON).verdict is Verdict(expected)


@pytest.mark.parametrize(
    ("block_school", "grant_school", "expected"),
    [(TRUST, OAK, "block"), (OAK, TRUST, "block"), (OAK, OAK, "allow"), (TRUST, TRUST, "allow")],
)
def test_a_block_on_another_list_wins_over_an_exception(
    block_school: str | None, grant_school: str | None, expected: str
) -> None:
    """A grant for www.news.example, narrower than a block of news.example: it opens the site
    only when the block is on the grant's own list (the school's, or the trust's)."""
    oak = compiled().policies["oak"]
    grant = ApprovedException(
        "g",
        Scope.ROLE,
        TargetKind.HOST,
        "www.news.example",
        LESSON,
        None,
        "staff",
        school=grant_school,
    )
    lists = Overrides(
        exceptions=(grant,), local_list=(_entry("news.example", "block", block_school),)
    ).for_school("oak")
    decision = decide(oak, Request("www.news.example"), STAFF, lists, LESSON)
    assert decision.verdict is Verdict(expected)
