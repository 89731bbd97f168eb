"""decide(): the precedence table, the seed rules at the times that matter, opens_at, tricks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schoolgate.policy.decide import CHECKS, decide, holds_until, unblockable
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
    SupervisedSession,
    TargetKind,
    Verdict,
)

LONDON = ZoneInfo("Europe/London")
# Monday 23 November 2026 (GMT), a school day with no terms configured.
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)
LESSON = MONDAY.replace(hour=9)
BREAK = MONDAY.replace(hour=10, minute=35)

PUPIL = Subject(role="pupil", user="pupil1", groups=frozenset({"Year5", "Pupils"}))
STAFF = Subject(role="staff", user="teacher1", groups=frozenset({"Staff"}))
SMM = Subject(role="social_media_manager", user="comms1")


def exc(
    scope: Scope,
    who: str | None,
    kind: TargetKind,
    target: str,
    *,
    starts: datetime = MONDAY - timedelta(days=1),
    ends: datetime | None = None,
    id: str = "ex-1",
) -> ApprovedException:
    return ApprovedException(
        id=id, scope=scope, who=who, target_kind=kind, target=target, starts=starts, ends=ends
    )


SANCTION_PUPIL = Sanction(id="sanction-1", user="pupil1", starts=MONDAY - timedelta(days=1))
SANCTION_STAFF = Sanction(id="sanction-2", user="teacher1", starts=MONDAY - timedelta(days=1))


def test_precedence_is_written_once_in_order() -> None:
    assert [name for name, _ in CHECKS] == [
        "locked",
        "internal",
        "sanction",
        "exception",
        # what was one `rules` step, its four sub-steps named (review 2026-12, 1.2 point 3)
        "local_block",
        "ip_literal",
        "rewriting_proxy",
        "rules",
        "default",
    ]


# Every precedence pair: the earlier check wins over the later one.
PRECEDENCE = [
    # (case, subject, host, overrides, at, verdict, reason)
    (
        "locked beats sanction",
        PUPIL,
        "locked.example",
        Overrides(sanctions=(SANCTION_PUPIL,)),
        LESSON,
        Verdict.BLOCK,
        Reason.LOCKED,
    ),
    (
        "locked beats exception",
        STAFF,
        "locked.example",
        Overrides(exceptions=(exc(Scope.EVERYONE, None, TargetKind.HOST, "locked.example"),)),
        LESSON,
        Verdict.BLOCK,
        Reason.LOCKED,
    ),
    (
        "locked beats local allow",
        STAFF,
        "www.locked.example",
        Overrides(local_list=(LocalListEntry("locked.example", Verdict.ALLOW),)),
        LESSON,
        Verdict.BLOCK,
        Reason.LOCKED,
    ),
    (
        "locked beats an allowing rule",
        STAFF,
        "locked.example",
        None,
        LESSON,
        Verdict.BLOCK,
        Reason.LOCKED,
    ),
    (
        "sanction beats exception",
        PUPIL,
        "tiktok.com",
        Overrides(
            sanctions=(SANCTION_PUPIL,),
            exceptions=(exc(Scope.USER, "pupil1", TargetKind.HOST, "tiktok.com"),),
        ),
        LESSON,
        Verdict.BLOCK,
        Reason.SUPERVISED_ONLY,
    ),
    (
        "sanction beats an allowing rule",
        SMM.__class__(role="social_media_manager", user="pupil1"),
        "facebook.com",
        Overrides(sanctions=(SANCTION_PUPIL,)),
        LESSON,
        Verdict.BLOCK,
        Reason.SUPERVISED_ONLY,
    ),
    (
        "sanction beats default",
        STAFF,
        "example.org",
        Overrides(sanctions=(SANCTION_STAFF,)),
        LESSON,
        Verdict.BLOCK,
        Reason.SUPERVISED_ONLY,
    ),
    (
        "exception beats a blocking rule",
        PUPIL,
        "www.tiktok.com",
        Overrides(exceptions=(exc(Scope.GROUP, "Year5", TargetKind.CATEGORY, "social"),)),
        LESSON,
        Verdict.ALLOW,
        Reason.EXCEPTION,
    ),
    (
        "exception beats local block",
        PUPIL,
        "news.example",
        Overrides(
            local_list=(LocalListEntry("news.example", Verdict.BLOCK),),
            exceptions=(exc(Scope.ROLE, "pupil", TargetKind.HOST, "news.example"),),
        ),
        LESSON,
        Verdict.ALLOW,
        Reason.EXCEPTION,
    ),
    (
        "exception beats default block",
        STAFF,
        "facebook.com",
        Overrides(exceptions=(exc(Scope.USER, "teacher1", TargetKind.HOST, "facebook.com"),)),
        LESSON,
        Verdict.ALLOW,
        Reason.EXCEPTION,
    ),
    (
        "local block beats an allowing rule",
        SMM,
        "facebook.com",
        Overrides(local_list=(LocalListEntry("facebook.com", Verdict.BLOCK),)),
        LESSON,
        Verdict.BLOCK,
        Reason.LOCAL_BLOCK,
    ),
    ("rule beats default", PUPIL, "tiktok.com", None, LESSON, Verdict.BLOCK, Reason.RULE_BLOCK),
    (
        "default when no rule matches",
        PUPIL,
        "example.org",
        None,
        LESSON,
        Verdict.ALLOW,
        Reason.DEFAULT_ALLOW,
    ),
]


@pytest.mark.parametrize(
    ("case", "subject", "host", "overrides", "at", "verdict", "reason"),
    PRECEDENCE,
    ids=[row[0] for row in PRECEDENCE],
)
def test_precedence(
    policy: Policy,
    case: str,
    subject: Subject,
    host: str,
    overrides: Overrides | None,
    at: datetime,
    verdict: Verdict,
    reason: Reason,
) -> None:
    decision = decide(policy, Request(host), subject, overrides, at)
    assert (decision.verdict, decision.reason) == (verdict, reason), case


# The seed's rules, for each role, at the times that matter.
SEED_RULES = [
    # (subject, host, at, verdict, rule)
    (STAFF, "x.com", BREAK, Verdict.BLOCK, "x-and-instagram"),
    (SMM, "api.x.com", BREAK, Verdict.BLOCK, "x-and-instagram"),
    (SMM, "pbs.twimg.com", LESSON, Verdict.BLOCK, "x-and-instagram"),
    (PUPIL, "t.co", LESSON, Verdict.BLOCK, "x-and-instagram"),
    (STAFF, "www.instagram.com", BREAK, Verdict.BLOCK, "x-and-instagram"),
    (SMM, "facebook.com", LESSON, Verdict.ALLOW, "official-accounts"),
    (SMM, "facebook.com", MONDAY.replace(hour=20), Verdict.ALLOW, "official-accounts"),
    (STAFF, "www.facebook.com", LESSON, Verdict.BLOCK, "staff-social-media-otherwise"),
    (STAFF, "www.facebook.com", BREAK, Verdict.ALLOW, "staff-social-media-at-break"),
    (
        STAFF,
        "scontent.fbcdn.net",
        MONDAY.replace(hour=12, minute=30),
        Verdict.ALLOW,
        "staff-social-media-at-break",
    ),
    (PUPIL, "facebook.com", BREAK, Verdict.BLOCK, "pupils-social-media"),
    (PUPIL, "www.tiktok.com", BREAK, Verdict.BLOCK, "pupils-social-media"),
    (STAFF, "www.tiktok.com", LESSON, Verdict.BLOCK, "staff-social-media-otherwise"),
    (STAFF, "www.tiktok.com", BREAK, Verdict.ALLOW, "staff-social-media-at-break"),
    (SMM, "www.reddit.com", LESSON, Verdict.ALLOW, "official-accounts"),
    (PUPIL, "nordvpn.com", LESSON, Verdict.BLOCK, "circumvention"),
    (STAFF, "xbox.com", LESSON, Verdict.ALLOW, None),
    (PUPIL, "notx.com", LESSON, Verdict.ALLOW, None),
    (PUPIL, "facebook.com.evil.example", LESSON, Verdict.ALLOW, None),
]


@pytest.mark.parametrize(("subject", "host", "at", "verdict", "rule"), SEED_RULES)
def test_seed_rules(
    policy: Policy, subject: Subject, host: str, at: datetime, verdict: Verdict, rule: str | None
) -> None:
    decision = decide(policy, Request(host), subject, None, at)
    assert decision.verdict is verdict
    assert decision.rule == rule


def at_london(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


# Staff Facebook to the second, across both daylight-saving changes and holidays.
STAFF_FACEBOOK = [
    # (at, allowed, opens_at)
    (at_london("2026-11-23T10:29:59"), False, at_london("2026-11-23T10:30:00")),
    (at_london("2026-11-23T10:30:00"), True, None),
    (at_london("2026-11-23T10:44:59"), True, None),
    (at_london("2026-11-23T10:45:00"), False, at_london("2026-11-23T12:00:00")),
    (at_london("2026-11-23T12:59:59"), True, None),
    (at_london("2026-11-23T13:00:00"), False, at_london("2026-11-24T10:30:00")),
    (at_london("2026-11-27T15:00:00"), False, at_london("2026-11-30T10:30:00")),  # Fri -> Mon
    (at_london("2026-11-28T10:35:00"), False, at_london("2026-11-30T10:30:00")),  # Saturday
    # Christmas Day (Fri), Boxing Day substitute (Mon 28th): next break is Tuesday 29th
    (at_london("2026-12-24T13:00:00"), False, at_london("2026-12-29T10:30:00")),
    # DST: 10:30 local stays the break in summer time (09:30 UTC) and winter time (10:30 UTC)
    (datetime(2026, 3, 30, 9, 30, tzinfo=UTC), True, None),
    (datetime(2026, 3, 30, 9, 29, 59, tzinfo=UTC), False, datetime(2026, 3, 30, 9, 30, tzinfo=UTC)),
    (datetime(2026, 10, 26, 10, 30, tzinfo=UTC), True, None),
    (datetime(2026, 10, 26, 9, 30, tzinfo=UTC), False, datetime(2026, 10, 26, 10, 30, tzinfo=UTC)),
    (datetime(2027, 3, 30, 11, 0, tzinfo=UTC), True, None),  # 12:00 BST, lunch
    (
        datetime(2027, 3, 29, 11, 0, tzinfo=UTC),
        False,  # Easter Monday 2027: no school
        datetime(2027, 3, 30, 9, 30, tzinfo=UTC),
    ),
    (datetime(2027, 11, 1, 12, 0, tzinfo=UTC), True, None),  # 12:00 GMT, lunch
    (datetime(2027, 11, 1, 11, 59, 59, tzinfo=UTC), False, datetime(2027, 11, 1, 12, tzinfo=UTC)),
]


@pytest.mark.parametrize(("at", "allowed", "opens_at"), STAFF_FACEBOOK)
def test_staff_facebook_to_the_second(
    policy: Policy, at: datetime, allowed: bool, opens_at: datetime | None
) -> None:
    decision = decide(policy, Request("www.facebook.com"), STAFF, None, at)
    assert decision.allowed is allowed
    assert decision.opens_at == opens_at


def test_pupil_social_block_never_opens_by_itself(policy: Policy) -> None:
    decision = decide(policy, Request("tiktok.com"), PUPIL, None, LESSON)
    assert decision.opens_at is None


def test_opens_at_a_future_exception(policy: Policy) -> None:
    starts = MONDAY.replace(hour=13, minute=30)
    grant = exc(
        Scope.GROUP,
        "Year5",
        TargetKind.CATEGORY,
        "social",
        starts=starts,
        ends=starts + timedelta(hours=1),
    )
    decision = decide(policy, Request("tiktok.com"), PUPIL, Overrides(exceptions=(grant,)), LESSON)
    assert decision.verdict is Verdict.BLOCK
    assert decision.opens_at == starts


EXCEPTION_TIMES = [
    (MONDAY.replace(hour=13, minute=59, second=59), False),  # not started
    (MONDAY.replace(hour=14), True),  # start is inclusive
    (MONDAY.replace(hour=14, minute=59, second=59), True),
    (MONDAY.replace(hour=15), False),  # end is exclusive: expired
]


@pytest.mark.parametrize(("at", "allowed"), EXCEPTION_TIMES)
def test_exception_window_is_checked_against_at(
    policy: Policy, at: datetime, allowed: bool
) -> None:
    grant = exc(
        Scope.USER,
        "pupil1",
        TargetKind.HOST,
        "tiktok.com",
        starts=MONDAY.replace(hour=14),
        ends=MONDAY.replace(hour=15),
    )
    decision = decide(policy, Request("vm.tiktok.com"), PUPIL, Overrides(exceptions=(grant,)), at)
    assert decision.allowed is allowed


SCOPES = [
    (Scope.USER, "pupil1", True),
    (Scope.USER, "pupil2", False),
    (Scope.GROUP, "Year5", True),
    (Scope.GROUP, "Year6", False),
    (Scope.ROLE, "pupil", True),
    (Scope.ROLE, "staff", False),
    (Scope.EVERYONE, None, True),
]


@pytest.mark.parametrize(("scope", "who", "applies"), SCOPES)
def test_exception_scopes(policy: Policy, scope: Scope, who: str | None, applies: bool) -> None:
    grant = exc(scope, who, TargetKind.HOST, "reddit.com")
    decision = decide(
        policy, Request("old.reddit.com"), PUPIL, Overrides(exceptions=(grant,)), LESSON
    )
    assert decision.allowed is applies


def test_exception_never_opens_a_category_not_unblockable_for_the_role(policy: Policy) -> None:
    overrides = Overrides(
        exceptions=(
            exc(Scope.EVERYONE, None, TargetKind.HOST, "x.com"),
            exc(Scope.ROLE, "pupil", TargetKind.CATEGORY, "vpn", id="ex-2"),
        ),
        local_list=(LocalListEntry("instagram.com", Verdict.ALLOW),),
    )
    for subject, host in [(STAFF, "x.com"), (PUPIL, "nordvpn.com"), (SMM, "instagram.com")]:
        assert decide(policy, Request(host), subject, overrides, LESSON).verdict is Verdict.BLOCK


def test_supervised_only(policy: Policy) -> None:
    sanctions = (SANCTION_PUPIL,)
    blocked = decide(policy, Request("example.org"), PUPIL, Overrides(sanctions=sanctions), LESSON)
    assert blocked.reason is Reason.SUPERVISED_ONLY
    allowlisted = decide(
        policy, Request("www.learning.example"), PUPIL, Overrides(sanctions=sanctions), LESSON
    )
    assert allowlisted.reason is Reason.DEFAULT_ALLOW
    still_rules = decide(
        policy,
        Request("tiktok.com"),
        PUPIL,
        Overrides(
            sanctions=sanctions,
            supervised_sessions=(SupervisedSession("pupil1", LESSON, LESSON + timedelta(hours=1)),),
        ),
        LESSON,
    )
    assert still_rules.reason is Reason.RULE_BLOCK  # supervision lifts the sanction, not rules
    supervised = decide(
        policy,
        Request("example.org"),
        PUPIL,
        Overrides(
            sanctions=sanctions,
            supervised_sessions=(SupervisedSession("pupil1", LESSON, LESSON + timedelta(hours=1)),),
        ),
        LESSON,
    )
    assert supervised.allowed
    ended = Sanction(
        id="s", user="pupil1", starts=LESSON - timedelta(days=2), ends=LESSON - timedelta(seconds=1)
    )
    assert decide(
        policy, Request("example.org"), PUPIL, Overrides(sanctions=(ended,)), LESSON
    ).allowed


def test_sanction_opens_when_it_ends(policy: Policy) -> None:
    ends = LESSON + timedelta(days=3)
    sanction = Sanction(id="s", user="pupil1", starts=LESSON - timedelta(days=1), ends=ends)
    decision = decide(
        policy, Request("example.org"), PUPIL, Overrides(sanctions=(sanction,)), LESSON
    )
    assert decision.opens_at == ends


TRICKS = [
    # (host, verdict, reason, technique)
    ("www-instagram-com.translate.goog", Verdict.BLOCK, Reason.CIRCUMVENTION, "rewriting_proxy"),
    ("www-bbc-co-uk.translate.goog", Verdict.ALLOW, Reason.DEFAULT_ALLOW, None),
    ("8.8.8.8", Verdict.BLOCK, Reason.CIRCUMVENTION, "ip_literal"),
    ("134744072", Verdict.BLOCK, Reason.CIRCUMVENTION, "ip_literal"),
    ("0x8.0x8.0x8.0x8", Verdict.BLOCK, Reason.CIRCUMVENTION, "ip_literal"),
    ("[2001:4860:4860::8888]", Verdict.BLOCK, Reason.CIRCUMVENTION, "ip_literal"),
    ("10.1.2.3", Verdict.BLOCK, Reason.INTERNAL_ADDRESS, None),
    ("127.0.0.1", Verdict.BLOCK, Reason.INTERNAL_ADDRESS, None),
    ("nordvpn.com", Verdict.BLOCK, Reason.CIRCUMVENTION, "vpn"),
    ("X.COM.", Verdict.BLOCK, Reason.RULE_BLOCK, None),
    ("ｘ.ｃｏｍ", Verdict.BLOCK, Reason.RULE_BLOCK, None),
    ("x。com", Verdict.BLOCK, Reason.RULE_BLOCK, None),
    ("x\u200b.com", Verdict.BLOCK, Reason.RULE_BLOCK, None),
    ("exa mple.com", Verdict.BLOCK, Reason.INVALID_HOST, None),
    ("", Verdict.BLOCK, Reason.INVALID_HOST, None),
]


@pytest.mark.parametrize(("host", "verdict", "reason", "technique"), TRICKS)
def test_tricks_with_host_names(
    policy: Policy, host: str, verdict: Verdict, reason: Reason, technique: str | None
) -> None:
    decision = decide(policy, Request(host), PUPIL, None, LESSON)
    assert (decision.verdict, decision.reason, decision.technique) == (verdict, reason, technique)


def test_unknown_role_gets_the_default_role(policy: Policy) -> None:
    decision = decide(policy, Request("tiktok.com"), Subject(role="governor"), None, LESSON)
    assert decision.reason is Reason.RULE_BLOCK


def test_naive_time_is_refused(policy: Policy) -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        decide(policy, Request("x.com"), PUPIL, None, datetime(2026, 11, 23, 10, 0))


@pytest.mark.parametrize(
    ("host", "role", "expected"),
    [
        ("tiktok.com", "pupil", True),
        ("facebook.com", "pupil", True),
        ("x.com", "staff", False),  # not unblockable for anyone
        ("www.locked.example", "staff", False),  # locked
        ("nordvpn.com", "pupil", False),
        ("nordvpn.com", "staff", True),
        ("example.org", "pupil", True),
        ("exa mple", "pupil", False),  # cannot be read: nothing to grant
    ],
)
def test_unblockable(policy: Policy, host: str, role: str, expected: bool) -> None:
    assert unblockable(policy, host, role) is expected


# holds_until: how long an answer may be reused. At every instant before it, decide() answers
# the same as at `at`; at it, the answer may change (and in these cases does).
TIKTOK_14_TO_15 = Overrides(
    exceptions=(
        exc(
            Scope.USER,
            "pupil1",
            TargetKind.HOST,
            "tiktok.com",
            starts=MONDAY.replace(hour=14),
            ends=MONDAY.replace(hour=15),
        ),
    )
)
HOLDS = [
    # (subject, host, at, overrides, until)
    (STAFF, "www.facebook.com", at_london("2026-11-23T10:29:59"), None, "2026-11-23T10:30:00"),
    (STAFF, "www.facebook.com", at_london("2026-11-23T10:35:00"), None, "2026-11-23T10:45:00"),
    (STAFF, "www.facebook.com", at_london("2026-11-23T12:59:59"), None, "2026-11-23T13:00:00"),
    (
        PUPIL,
        "tiktok.com",
        MONDAY.replace(hour=14, minute=30),
        TIKTOK_14_TO_15,
        "2026-11-23T15:00:00",  # the exception's expiry
    ),
    (
        PUPIL,
        "tiktok.com",
        LESSON,
        TIKTOK_14_TO_15,
        "2026-11-23T14:00:00",  # the exception's start
    ),
    (
        PUPIL,
        "example.org",
        LESSON,
        Overrides(
            sanctions=(
                Sanction("s", "pupil1", LESSON - timedelta(days=1), LESSON + timedelta(hours=2)),
            )
        ),
        "2026-11-23T11:00:00",  # the sanction's end
    ),
]


@pytest.mark.parametrize(("subject", "host", "at", "overrides", "until"), HOLDS)
def test_holds_until_the_next_change_and_not_a_microsecond_longer(
    policy: Policy,
    subject: Subject,
    host: str,
    at: datetime,
    overrides: Overrides | None,
    until: str,
) -> None:
    held = holds_until(policy, Request(host), subject, overrides, at)
    assert held == at_london(until)
    before = decide(policy, Request(host), subject, overrides, at)
    last = decide(policy, Request(host), subject, overrides, held - timedelta(microseconds=1))
    assert last == before
    assert decide(policy, Request(host), subject, overrides, held).verdict is not before.verdict


def test_holds_until_an_uncategorised_host_changes_only_with_the_overrides(
    policy: Policy,
) -> None:
    assert holds_until(policy, Request("example.org"), STAFF, None, LESSON) >= LESSON + timedelta(
        days=365
    )
    grant = exc(Scope.EVERYONE, None, TargetKind.CATEGORY, "social", starts=BREAK)
    assert (
        holds_until(policy, Request("example.org"), STAFF, Overrides(exceptions=(grant,)), LESSON)
        == BREAK
    )


def test_holds_until_gives_nothing_to_reuse_for_a_rewriting_proxy(policy: Policy) -> None:
    host = "www-tiktok-com.translate.goog"
    assert holds_until(policy, Request(host), STAFF, None, LESSON) == LESSON
