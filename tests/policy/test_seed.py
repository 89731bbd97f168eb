"""The shipped seed policy says exactly what DESIGN.md section 2 says, with the real lists."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from policy.decide import decide
from policy.model import Policy, Reason, Request, Subject, Verdict
from store.policy_files import load_policy

LONDON = ZoneInfo("Europe/London")
LESSON = datetime(2026, 11, 23, 9, 15, tzinfo=LONDON)  # Monday
MORNING_BREAK = datetime(2026, 11, 23, 10, 30, tzinfo=LONDON)
LUNCH = datetime(2026, 11, 23, 12, 59, 59, tzinfo=LONDON)
EVENING = datetime(2026, 11, 23, 19, 0, tzinfo=LONDON)
SATURDAY = datetime(2026, 11, 28, 10, 35, tzinfo=LONDON)
SUMMER_BREAK = datetime(2027, 6, 14, 10, 40, tzinfo=LONDON)  # BST

PUPIL = Subject(role="pupil", user="pupil1")
STAFF = Subject(role="staff", user="teacher1")
OFFICIAL = Subject(role="social_media_manager", user="socialmedia1")
UNKNOWN = Subject(role="nobody-knows")
EVERYONE = [PUPIL, STAFF, OFFICIAL, UNKNOWN]
ALL_TIMES = [LESSON, MORNING_BREAK, LUNCH, EVENING, SATURDAY, SUMMER_BREAK]


@pytest.fixture(scope="module")
def seed() -> Policy:
    return load_policy()


X_AND_INSTAGRAM = ["x.com", "www.x.com", "api.x.com", "twitter.com", "mobile.twitter.com",
                   "t.co", "pbs.twimg.com", "abs.twimg.com", "video.twimg.com",
                   "instagram.com", "www.instagram.com", "i.instagram.com", "instagr.am",
                   "scontent-lhr8-1.cdninstagram.com", "ig.me"]


@pytest.mark.parametrize("host", X_AND_INSTAGRAM)
def test_x_and_instagram_blocked_for_everyone_at_all_times(seed: Policy, host: str) -> None:
    for subject in EVERYONE:
        for at in ALL_TIMES:
            decision = decide(seed, Request(host), subject, None, at)
            assert decision.verdict is Verdict.BLOCK, (host, subject, at)
            assert decision.rule == "x-and-instagram"


FACEBOOK = ["facebook.com", "www.facebook.com", "m.facebook.com", "fb.com", "fb.me",
            "static.xx.fbcdn.net", "scontent.fbcdn.net", "www.messenger.com", "fb.watch"]


@pytest.mark.parametrize("host", FACEBOOK)
def test_facebook_pupils_never_staff_at_break_official_accounts_always(seed: Policy,
                                                                       host: str) -> None:
    for at in ALL_TIMES:
        assert not decide(seed, Request(host), PUPIL, None, at).allowed
        assert not decide(seed, Request(host), UNKNOWN, None, at).allowed
        assert decide(seed, Request(host), OFFICIAL, None, at).allowed
    assert decide(seed, Request(host), STAFF, None, MORNING_BREAK).allowed
    assert decide(seed, Request(host), STAFF, None, LUNCH).allowed
    assert decide(seed, Request(host), STAFF, None, SUMMER_BREAK).allowed
    for at in (LESSON, EVENING, SATURDAY):
        decision = decide(seed, Request(host), STAFF, None, at)
        assert not decision.allowed
        assert decision.opens_at is not None


SOCIAL = ["www.tiktok.com", "web.snapchat.com", "web.whatsapp.com", "discord.com",
          "www.reddit.com", "www.threads.net", "bsky.app", "www.pinterest.co.uk"]


@pytest.mark.parametrize("host", SOCIAL)
def test_social_media_blocked_for_pupils_not_staff(seed: Policy, host: str) -> None:
    for at in ALL_TIMES:
        decision = decide(seed, Request(host), PUPIL, None, at)
        assert (decision.verdict, decision.category) == (Verdict.BLOCK, "social"), host
        assert decision.opens_at is None
    assert decide(seed, Request(host), STAFF, None, LESSON).allowed


CIRCUMVENTION = [("www.croxyproxy.com", "web_proxy"), ("nordvpn.com", "vpn"),
                 ("www.torproject.org", "tor"), ("dns.google", "doh"),
                 ("cloudflare-dns.com", "doh"), ("mozilla.cloudflare-dns.com", "doh")]


@pytest.mark.parametrize(("host", "technique"), CIRCUMVENTION)
def test_circumvention_blocked_for_everyone(seed: Policy, host: str, technique: str) -> None:
    for subject in EVERYONE:
        decision = decide(seed, Request(host), subject, None, LESSON)
        assert (decision.verdict, decision.reason, decision.technique) == (
            Verdict.BLOCK, Reason.CIRCUMVENTION, technique)


ALLOWED_FOR_PUPILS = ["www.bbc.co.uk", "www.google.com", "www.youtube.com", "xbox.com",
                      "netx.com", "facebook.com.evil.example", "www-bbc-co-uk.translate.goog",
                      "www.nhs.uk", "www.hsbc.co.uk"]


@pytest.mark.parametrize("host", ALLOWED_FOR_PUPILS)
def test_other_sites_stay_open(seed: Policy, host: str) -> None:
    assert decide(seed, Request(host), PUPIL, None, LESSON).allowed


def test_unknown_users_get_the_pupil_role(seed: Policy) -> None:
    assert seed.default_role == "pupil"


def test_sensitive_categories_are_marked(seed: Policy) -> None:
    assert seed.categories["banking"].sensitive
    assert seed.categories["health"].sensitive
    decision = decide(seed, Request("www.nhs.uk"), PUPIL, None, LESSON)
    assert decision.category == "health"


def test_translate_proxy_of_a_blocked_site_is_circumvention(seed: Policy) -> None:
    decision = decide(seed, Request("www-instagram-com.translate.goog"), STAFF, None, LUNCH)
    assert (decision.reason, decision.technique) == (Reason.CIRCUMVENTION, "rewriting_proxy")


def test_locked_slot_exists_and_is_locked(seed: Policy) -> None:
    assert seed.categories["illegal_content"].locked
