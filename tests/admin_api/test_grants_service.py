"""admin_api/services/grants.py on its own, against the seed policy: how long a grant lasts (some
hours, until a time, a period of the school day, permanently; across the clock changes), which
grants the policy refuses and why, and the words that tell a reviewer how far a grant reaches.
The routes that use it are tested in test_safe_grants.py and test_requests.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schoolgate.admin_api.errors import InvalidInput, PolicyForbids
from schoolgate.admin_api.services.grants import (
    Duration,
    Grant,
    check_grant,
    is_rewriting_proxy,
    judged_hosts,
    period_choices,
    period_times,
    period_words,
    reach_words,
    resolve_period,
    resolve_times,
    widenings,
)
from schoolgate.policy.model import Policy, Scope, TargetKind
from schoolgate.store.policy_files import load_policy

LONDON = ZoneInfo("Europe/London")
# Monday 23 November 2026 (GMT), a school day of the seed calendar.
MONDAY = datetime(2026, 11, 23, 11, 0, tzinfo=LONDON)
SUMMER_MONDAY = datetime(2026, 6, 15, 8, 0, tzinfo=LONDON)  # BST
SEED_DAY = [
    ("08:45-10:30", "lesson (morning), 08:45–10:30"),
    ("10:30-10:45", "morning break, 10:30–10:45"),
    ("10:45-12:00", "lesson (morning), 10:45–12:00"),
    ("12:00-13:00", "lunch, 12:00–13:00"),
    ("13:00-15:15", "lesson (afternoon), 13:00–15:15"),
]


@pytest.fixture(scope="module")
def seed() -> Policy:
    return load_policy()


def grant(
    scope: Scope = Scope.USER,
    who: str | None = "pupil1",
    kind: TargetKind = TargetKind.HOST,
    target: str = "www.tiktok.com",
    *,
    starts: datetime = MONDAY,
    ends: datetime | None = MONDAY + timedelta(hours=1),
) -> Grant:
    return Grant(scope, who, kind, target, starts, ends)


def problems(caught: pytest.ExceptionInfo[InvalidInput]) -> str:
    return " ".join(caught.value.problems.values())


# --- how long: resolve_times ------------------------------------------------------------------


@pytest.mark.parametrize(("hours", "words"), [(1, "for 1 hour"), (3, "for 3 hours")])
def test_some_hours_start_now(seed: Policy, hours: int, words: str) -> None:
    assert resolve_times(
        seed, duration=Duration.HOURS, now=MONDAY, hours=hours, until=None, period=None
    ) == (MONDAY, MONDAY + timedelta(hours=hours), words)


def test_permanently_has_no_end(seed: Policy) -> None:
    assert resolve_times(
        seed, duration=Duration.PERMANENT, now=MONDAY, hours=1, until=None, period=None
    ) == (MONDAY, None, "permanently")


@pytest.mark.parametrize(
    ("now", "typed", "utc"),
    [
        (MONDAY, datetime(2026, 11, 23, 15, 0), datetime(2026, 11, 23, 15, 0, tzinfo=UTC)),
        # British Summer Time: 15:00 at school is 14:00 UTC
        (SUMMER_MONDAY, datetime(2026, 6, 15, 15, 0), datetime(2026, 6, 15, 14, 0, tzinfo=UTC)),
    ],
)
def test_a_typed_end_without_a_zone_is_school_time(
    seed: Policy, now: datetime, typed: datetime, utc: datetime
) -> None:
    starts, ends, _ = resolve_times(
        seed, duration=Duration.UNTIL, now=now, hours=1, until=typed, period=None
    )
    assert starts == now
    assert ends == utc


@pytest.mark.parametrize(
    ("until", "field", "words"),
    [
        (None, "until", "give the date and time"),
        (MONDAY - timedelta(minutes=1), "until", "that time has passed"),
        (MONDAY, "until", "that time has passed"),
        (MONDAY + timedelta(days=367), "until", "more than a year ahead"),
    ],
)
def test_a_bad_end_time_is_refused_saying_why(
    seed: Policy, until: datetime | None, field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_times(seed, duration=Duration.UNTIL, now=MONDAY, hours=1, until=until, period=None)
    assert field in caught.value.problems
    assert words.lower() in problems(caught).lower()  # a problem starts with a capital


def test_a_period_must_be_chosen(seed: Policy) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_times(seed, duration=Duration.PERIOD, now=MONDAY, hours=1, until=None, period="")
    assert "Choose a period from the list" in problems(caught)


# --- a period of the school day: resolve_period --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "starts", "ends", "words"),
    [
        (
            "2026-11-23 12:00-13:00",
            datetime(2026, 11, 23, 12, tzinfo=UTC),
            datetime(2026, 11, 23, 13, tzinfo=UTC),
            "Monday 23 November: lunch, 12:00–13:00",
        ),
        (
            "2026-11-24 13:00-15:15",
            datetime(2026, 11, 24, 13, tzinfo=UTC),
            datetime(2026, 11, 24, 15, 15, tzinfo=UTC),
            "Tuesday 24 November: lesson (afternoon), 13:00–15:15",
        ),
        # the period in progress may still be chosen (its end is to come)
        (
            "2026-11-23 10:45-12:00",
            datetime(2026, 11, 23, 10, 45, tzinfo=UTC),
            datetime(2026, 11, 23, 12, tzinfo=UTC),
            "Monday 23 November: lesson (morning), 10:45–12:00",
        ),
        # after the clocks went back (25 October): GMT; before them, in June: BST (UTC+1)
        (
            "2026-10-26 10:30-10:45",
            datetime(2026, 10, 26, 10, 30, tzinfo=UTC),
            datetime(2026, 10, 26, 10, 45, tzinfo=UTC),
            "Monday 26 October: morning break, 10:30–10:45",
        ),
        (
            "2027-06-14 10:30-10:45",
            datetime(2027, 6, 14, 9, 30, tzinfo=UTC),
            datetime(2027, 6, 14, 9, 45, tzinfo=UTC),
            "Monday 14 June: morning break, 10:30–10:45",
        ),
    ],
)
def test_a_period_is_that_school_days_wall_clock_times(
    seed: Policy, value: str, starts: datetime, ends: datetime, words: str
) -> None:
    now = MONDAY if value >= "2026-11" else datetime(2026, 10, 20, 9, tzinfo=UTC)
    assert resolve_period(seed, value, now=now) == (starts, ends, words)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("tomorrow afternoon", "choose a period from the list"),
        ("2026-13-40 10:30-10:45", "choose a period from the list"),
        ("2026-11-23 25:00-26:00", "choose a period from the list"),
        ("2026-11-28 10:30-10:45", "2026-11-28 is not a school day"),  # a Saturday
        ("2026-12-25 10:30-10:45", "2026-12-25 is not a school day"),  # Christmas Day
        ("2026-11-23 10:00-11:00", "there is no period 10:00-11:00 on 2026-11-23"),
        ("2026-11-23 08:45-10:30", "that period is over"),
        ("2026-11-22 12:00-13:00", "is not a school day"),  # yesterday, a Sunday
        ("2026-11-20 12:00-13:00", "within the next year"),  # last Friday: too far back
        ("2027-12-06 12:00-13:00", "within the next year"),
    ],
)
def test_a_period_that_is_not_in_the_calendar_or_over_is_refused(
    seed: Policy, value: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_period(seed, value, now=MONDAY)
    assert list(caught.value.problems) == ["period"]
    assert words.lower() in problems(caught).lower()  # a problem starts with a capital


def test_the_field_named_in_the_error_is_the_callers(seed: Policy) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_period(seed, "soon", now=MONDAY, field="ends_period")
    assert list(caught.value.problems) == ["ends_period"]


# --- the choices offered -----------------------------------------------------------------------


def test_the_choices_are_the_periods_still_to_come_on_school_days(seed: Policy) -> None:
    choices = period_choices(seed, now=MONDAY)  # Monday 11:00: two periods are over
    assert [c.value for c in choices[:3]] == [
        "2026-11-23 10:45-12:00",
        "2026-11-23 12:00-13:00",
        "2026-11-23 13:00-15:15",
    ]
    assert {c.day_label for c in choices[:3]} == {"Today"}
    assert choices[3].day_label == "Tuesday 24 November"
    days = {c.value.split(" ")[0] for c in choices}
    assert days == {"2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"}
    assert len(choices) == 3 + 4 * len(SEED_DAY)  # no Saturday, no Sunday


def test_after_school_on_friday_the_choices_start_on_monday(seed: Policy) -> None:
    friday_evening = datetime(2026, 11, 27, 16, 0, tzinfo=LONDON)
    choices = period_choices(seed, now=friday_evening, days=4)
    assert [c.value.split(" ")[0] for c in choices] == ["2026-11-30"] * len(SEED_DAY)
    assert choices[0].day_label == "Monday 30 November"


def test_the_times_of_the_school_day_are_listed_once_each(seed: Policy) -> None:
    late_friday = datetime(2026, 11, 27, 15, 0, tzinfo=LONDON)
    assert period_times(seed, now=late_friday) == SEED_DAY


@pytest.mark.parametrize(
    ("name", "start", "end", "words"),
    [
        ("lesson", "08:45", "10:30", "lesson (morning), 08:45–10:30"),
        ("lesson", "13:00", "15:15", "lesson (afternoon), 13:00–15:15"),
        ("lunch", "12:00", "13:00", "lunch, 12:00–13:00"),
    ],
)
def test_period_words(name: str, start: str, end: str, words: str) -> None:
    from datetime import time

    assert period_words(name, time.fromisoformat(start), time.fromisoformat(end)) == words


# --- what the policy refuses: check_grant ------------------------------------------------------


@pytest.mark.parametrize(
    ("made", "roles"),
    [
        (grant(), frozenset({"pupil"})),  # one pupil, one social-media site
        (grant(target="www.facebook.com"), frozenset({"pupil"})),
        (grant(Scope.GROUP, "Year5"), frozenset()),  # a class, one site
        (grant(Scope.ROLE, "staff", TargetKind.CATEGORY, "social"), frozenset()),
        (grant(target="www.croxyproxy.com"), frozenset({"staff"})),  # a web proxy, for staff
    ],
)
def test_grants_the_policy_allows(seed: Policy, made: Grant, roles: frozenset[str]) -> None:
    check_grant(seed, made, user_roles=roles)  # no error


@pytest.mark.parametrize(
    ("made", "roles", "field", "words"),
    [
        (
            grant(kind=TargetKind.CATEGORY, target="illegal_content"),
            frozenset({"staff"}),
            "target",
            "locked category 'illegal_content'",
        ),
        (
            grant(target="x.com"),
            frozenset({"staff"}),
            "scope",
            "the category 'x' cannot be unblocked for staff",
        ),
        (
            grant(Scope.ROLE, "social_media_manager", target="www.instagram.com"),
            frozenset(),
            "scope",
            "cannot be unblocked for social_media_manager",
        ),
        # a page-rewriting proxy of a blocked site is judged by the site inside
        (
            grant(target="www-instagram-com.translate.goog"),
            frozenset({"staff"}),
            "scope",
            "cannot be unblocked for staff",
        ),
        # ... and the proxy itself would open everything
        (grant(target="translate.goog"), frozenset({"staff"}), "target", "page-rewriting proxy"),
        (
            grant(target="www.croxyproxy.com"),
            frozenset({"pupil"}),
            "scope",
            "'web_proxy' cannot be unblocked for pupil",
        ),
        # a user with no known role is judged as the default role (pupil)
        (grant(target="www.croxyproxy.com"), frozenset(), "scope", "cannot be unblocked for pupil"),
        # wide openings of social media for pupils: a whole category, a role, or everyone
        (
            grant(kind=TargetKind.CATEGORY, target="social"),
            frozenset({"pupil"}),
            "scope",
            "does not allow opening 'social' for all pupils",
        ),
        (grant(Scope.ROLE, "pupil"), frozenset(), "scope", "for all pupils"),
        (grant(Scope.EVERYONE, None), frozenset(), "scope", "for all pupils"),
    ],
)
def test_grants_the_policy_forbids_say_why(
    seed: Policy, made: Grant, roles: frozenset[str], field: str, words: str
) -> None:
    with pytest.raises(PolicyForbids) as caught:
        check_grant(seed, made, user_roles=roles)
    assert field in caught.value.problems
    assert words.lower() in problems(caught).lower()  # a problem starts with a capital


@pytest.mark.parametrize(
    ("made", "field", "words"),
    [
        (grant(kind=TargetKind.CATEGORY, target="gamez"), "target_kind", "in no category"),
        (grant(Scope.ROLE, "governor"), "who", "choose a role of the policy"),
        (grant(target="bad host name!"), "target", ""),
    ],
)
def test_a_grant_naming_something_unknown_is_bad_input(
    seed: Policy, made: Grant, field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_grant(seed, made, user_roles=frozenset({"staff"}))
    assert not isinstance(caught.value, PolicyForbids)
    assert field in caught.value.problems
    assert words.lower() in problems(caught).lower()  # a problem starts with a capital


def test_the_hosts_judged_for_a_page_rewriting_proxy_address() -> None:
    assert judged_hosts("www.bbc.co.uk") == ("www.bbc.co.uk",)
    assert judged_hosts("www-instagram-com.translate.goog") == (
        "www-instagram-com.translate.goog",
        "www.instagram.com",
    )
    assert is_rewriting_proxy("translate.goog")
    assert not is_rewriting_proxy("www.bbc.co.uk")


# --- how far a grant reaches: widenings and reach_words -----------------------------------------


@pytest.mark.parametrize(
    ("made", "asked_for_group", "wider"),
    [
        (grant(), None, []),
        (grant(Scope.GROUP, "Year5"), "year5", []),  # the class that asked, in any case
        (grant(Scope.GROUP, "Year6"), "Year5", ["the whole group Year6"]),
        (grant(Scope.ROLE, "pupil"), None, ["everyone with the role pupil"]),
        (grant(Scope.EVERYONE, None), None, ["everyone"]),
        (
            grant(kind=TargetKind.CATEGORY, target="social"),
            None,
            ["every site in social media"],
        ),
        (grant(ends=None), None, ["permanently"]),
        (grant(ends=MONDAY + timedelta(days=1)), None, []),  # a day exactly is not longer
        (grant(ends=MONDAY + timedelta(days=1, seconds=1)), None, ["for longer than a day"]),
        (
            grant(Scope.EVERYONE, None, TargetKind.CATEGORY, "social", ends=None),
            None,
            ["everyone", "every site in social media", "permanently"],
        ),
    ],
)
def test_widenings_list_every_way_a_grant_is_wider_than_asked(
    made: Grant, asked_for_group: str | None, wider: list[str]
) -> None:
    assert widenings(made, asked_for_group=asked_for_group) == wider


FRIDAY_2PM = datetime(2026, 12, 18, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("made", "people", "words"),
    [
        (
            grant(ends=FRIDAY_2PM),
            None,
            "This lets pupil1 use www.tiktok.com (and its subdomains) until Friday 18 December, 14:00.",
        ),
        (
            grant(Scope.GROUP, "Year5", ends=FRIDAY_2PM),
            28,
            "This lets all 28 people in Year5 use www.tiktok.com (and its subdomains) until Friday "
            "18 December, 14:00.",
        ),
        (
            grant(Scope.GROUP, "Year5", ends=FRIDAY_2PM),
            1,
            "This lets the 1 person in Year5 use www.tiktok.com (and its subdomains) until Friday "
            "18 December, 14:00.",
        ),
        (
            grant(Scope.ROLE, "pupil", ends=None),
            312,
            "This lets all 312 pupils use www.tiktok.com (and its subdomains) permanently, until "
            "someone removes it.",
        ),
        (
            grant(Scope.ROLE, "staff", ends=None),
            None,
            "This lets all people with the role staff use www.tiktok.com (and its subdomains) "
            "permanently, until someone removes it.",
        ),
        (
            grant(Scope.EVERYONE, None, ends=None),
            400,
            "This lets all 400 people at school (everyone) use www.tiktok.com (and its subdomains) "
            "permanently, until someone removes it.",
        ),
        # in summer the end is told in British Summer Time
        (
            grant(ends=datetime(2027, 6, 18, 13, 0, tzinfo=UTC)),
            None,
            "This lets pupil1 use www.tiktok.com (and its subdomains) until Friday 18 June, 14:00.",
        ),
    ],
)
def test_the_reach_in_words(seed: Policy, made: Grant, people: int | None, words: str) -> None:
    assert reach_words(seed, made, people=people) == words


def test_a_category_grant_counts_its_sites(seed: Policy) -> None:
    words = reach_words(
        seed, grant(kind=TargetKind.CATEGORY, target="social", ends=None), people=None
    )
    sites = seed.categories["social"].domain_count
    assert sites > 10
    assert f"use {sites} sites in social media" in words


# --- the grant value -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("made", "local"),
    [
        (grant(Scope.EVERYONE, None, ends=None), True),
        (grant(Scope.EVERYONE, None), False),  # it ends
        (grant(Scope.ROLE, "staff", ends=None), False),  # not everyone
        (grant(Scope.EVERYONE, None, TargetKind.CATEGORY, "social", ends=None), False),
    ],
)
def test_only_a_permanent_opening_of_one_host_for_everyone_is_a_local_allow(
    made: Grant, local: bool
) -> None:
    assert made.local_allow is local


def test_a_grant_as_json() -> None:
    assert grant(ends=None).as_json() == {
        "scope": "user",
        "who": "pupil1",
        "target_kind": "host",
        "target": "www.tiktok.com",
        "starts": "2026-11-23T11:00:00+00:00",
        "ends": None,
        "label": "",
    }
