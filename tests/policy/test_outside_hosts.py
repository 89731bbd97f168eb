"""The outside checker's host and clock table, against the shipped seed policy and lists.

What an inspector tries from outside: the real host names X, Instagram, Facebook, Threads,
TikTok and Snapchat use (site, API, CDN, media, short links), the ways a pupil can spell a host
(case, trailing dot, full-width letters, Punycode, IPv4 in decimal/octal/hex/short forms, IPv6
and IPv4-mapped IPv6), mirrors and proxies, and the break's first and last second on ordinary
days, weekends, bank holidays, INSET days, holidays and the days the clocks change. The
gateway-level tricks (Host against CONNECT and SNI, userinfo, h2c ...) are in
tests/e2e/test_outside_checks.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from schoolgate.policy.decide import decide
from schoolgate.policy.model import Policy, Reason, Request, Subject, Verdict
from schoolgate.policy.parse import parse_policy
from schoolgate.store.policy_files import load_policy

SEED = Path(__file__).resolve().parents[2] / "schoolgate" / "policy" / "data" / "seed.yaml"
SHIPPED_LISTS = {
    path.name: path.read_text("utf-8") for path in (SEED.parent / "lists").glob("*.t*")
}

LONDON = ZoneInfo("Europe/London")
LESSON = datetime(2026, 11, 23, 9, 15, tzinfo=LONDON)  # Monday
BREAK = datetime(2026, 11, 23, 10, 35, tzinfo=LONDON)
PUPIL = Subject(role="pupil", user="pupil1")
STAFF = Subject(role="staff", user="teacher1")


@pytest.fixture(scope="module")
def seed() -> Policy:
    return load_policy()


def _verdict(policy: Policy, host: str, who: Subject, at: datetime) -> tuple[Verdict, str | None]:
    decision = decide(policy, Request(host), who, None, at)
    return decision.verdict, decision.category


# --- the platforms' real host names ----------------------------------------------------------


def _each(category: str, hosts: str) -> list[tuple[str, str]]:
    return [(host, category) for host in hosts.split()]


# (host, category): every one blocked for pupils always; x and instagram for staff at break too.
PLATFORM_HOSTS = [
    *_each(
        "x",
        "x.com api.x.com mobile.x.com pro.x.com upload.x.com twitter.com api.twitter.com "
        "mobile.twitter.com tweetdeck.twitter.com platform.twitter.com "
        "syndication.twitter.com cdn.syndication.twimg.com pbs.twimg.com video.twimg.com "
        "abs.twimg.com ton.twimg.com t.co twttr.com ads-twitter.com tweetdeck.com "
        "periscope.tv pscp.tv twitter.eu twitter.com.mx",
    ),
    *_each(
        "instagram",
        "instagram.com www.instagram.com i.instagram.com graph.instagram.com "
        "api.instagram.com b.i.instagram.com help.instagram.com l.instagram.com "
        "scontent.cdninstagram.com static.cdninstagram.com scontent-lhr8-1.cdninstagram.com "
        "instagram.flhr8-1.fna.fbcdn.net ig.me instagr.am instagram.com.au",
    ),
    *_each(
        "facebook",
        "facebook.com www.facebook.com m.facebook.com mbasic.facebook.com "
        "touch.facebook.com graph.facebook.com edge-chat.facebook.com web.facebook.com "
        "free.facebook.com l.facebook.com lm.facebook.com upload.facebook.com "
        "connect.facebook.net static.xx.fbcdn.net scontent.xx.fbcdn.net "
        "scontent-lhr8-1.xx.fbcdn.net video.xx.fbcdn.net fb.com fb.me fb.watch fb.gg "
        "messenger.com www.messenger.com m.me fbsbx.com business.facebook.com "
        "facebook.com.au fburl.com",
    ),
    *_each(
        "social",
        # Threads
        "threads.net www.threads.net threads.com www.threads.com "
        # TikTok: site, short links, live, CDN, API, logging, ByteDance hosts
        "tiktok.com www.tiktok.com m.tiktok.com vm.tiktok.com vt.tiktok.com "
        "webcast.tiktok.com tiktokcdn.com p16-sign-va.tiktokcdn.com "
        "p16-tiktokcdn-com.akamaized.net v16-webapp-prime.tiktok.com tiktokv.com "
        "api16-normal-c-useast1a.tiktokv.com mon.tiktokv.com tiktokcdn-us.com "
        "lf16-tiktok-web.tiktokcdn-us.com tiktokcdn-eu.com ttwstatic.com byteoversea.com "
        "ibytedtos.com p16-tiktok-va.ibyteimg.com musical.ly tiktok.co.uk "
        # Snapchat: site, web app, CDN, static, kit, ads, avatars, its old API host
        "snapchat.com web.snapchat.com accounts.snapchat.com story.snapchat.com "
        "sc-cdn.net cf-st.sc-cdn.net sc-static.net snap.com snapkit.co bitmoji.com "
        "snapads.com feelinsonice-hrd.appspot.com snapchat.co.uk "
        # and the rest of the category
        "whatsapp.com web.whatsapp.com wa.me discord.com discord.gg cdn.discordapp.com "
        "reddit.com old.reddit.com i.redd.it bsky.app t.me web.telegram.org",
    ),
]


@pytest.mark.parametrize(("host", "category"), PLATFORM_HOSTS)
def test_platform_hosts_are_blocked_for_pupils_in_lesson_and_at_break(
    seed: Policy, host: str, category: str
) -> None:
    for at in (LESSON, BREAK):
        assert _verdict(seed, host, PUPIL, at) == (Verdict.BLOCK, category), (host, at)
    staff = _verdict(seed, host, STAFF, BREAK)
    assert staff == ((Verdict.BLOCK if category in ("x", "instagram") else Verdict.ALLOW), category)


# Sites that show TikTok's videos and profiles on a site of their own (viewers, "anonymous"
# story watchers, downloaders): a pupil reached TikTok through them (found by this file).
TIKTOK_VIEWERS = ["urlebird.com", "www.tikwm.com", "snaptik.app", "ssstik.io", "tokview.com"]


# ...and the ones no list names yet, by the brand inside their name.
TIKTOK_VIEWERS_BY_NAME = ["tiktokviewer.net", "www.tiktok-downloader.io", "savetiktok.example"]


@pytest.mark.parametrize("host", [*TIKTOK_VIEWERS, *TIKTOK_VIEWERS_BY_NAME])
def test_tiktok_viewers_count_as_tiktok(seed: Policy, host: str) -> None:
    assert _verdict(seed, host, PUPIL, LESSON) == (Verdict.BLOCK, "social")
    assert _verdict(seed, host, STAFF, LESSON) == (Verdict.BLOCK, "social")
    assert _verdict(seed, host, STAFF, BREAK) == (Verdict.ALLOW, "social")


# --- spellings of a host ---------------------------------------------------------------------

SPELLINGS = [
    # (as typed or sent, the category it must land in)
    ("X.COM", "x"),
    ("x.com.", "x"),
    ("Www.InstaGram.Com.", "instagram"),
    ("\uff58.com", "x"),  # full-width 'x'
    ("x\u3002com", "x"),  # ideographic full stop
    ("FACEBOOK.COM.", "facebook"),
    ("xn--fcebook-8va.com", "lookalike"),  # "fàcebook.com" in Punycode
    ("f\u0430cebook.com", "lookalike"),  # Cyrillic 'а'
    ("\u0456nstagram.com", "lookalike"),  # Cyrillic 'і'
    ("\u03c7.com", "lookalike"),  # Greek 'χ', which confusables.txt does not pair with 'x'
    ("\uab53.com", "lookalike"),  # Latin small chi
    ("xn--z4a.com", "lookalike"),  # Cyrillic 'ҳ' in Punycode
    ("www-instagram-com.translate.goog", "instagram"),
    ("x-com.translate.goog", "x"),
    ("www-facebook-com.translate.goog", "facebook"),
    ("tiktokcdn--us-com.translate.goog", "social"),
    ("www-instagram-com.cdn.ampproject.org", "instagram"),
    ("facebookwkhpilnemxj7asaniu7vnjjbiltxjqhye3mhbshg7kx5tfyd.onion", "tor"),
    ("facebookcorewwwi.onion.ws", "tor"),
    # a suffix proxy: the blocked site's whole name in front of the proxy's own
    ("www.instagram.com.evil.example", "platform_frontend"),
    ("x.com.evil.example", "platform_frontend"),
    ("mobile.twitter.com.some-mirror.example.org", "platform_frontend"),
    ("facebook.com.evil.example", "platform_frontend"),
    ("m.facebook.com.mirror.example.org", "platform_frontend"),
    ("www.tiktok.com.proxy.example.net", "platform_frontend"),
]


@pytest.mark.parametrize(("host", "category"), SPELLINGS)
def test_spellings_of_a_platform_land_in_its_category(
    seed: Policy, host: str, category: str
) -> None:
    assert _verdict(seed, host, PUPIL, LESSON) == (Verdict.BLOCK, category)


# Facebook's own addresses (157.240.0.0/16, 2a03:2880::/32) in every spelling browsers accept:
# all are IP literals, blocked as circumvention, never let through as "no category".
IP_SPELLINGS = [
    "157.240.1.35",
    "2649751843",  # one decimal number
    "0x9df00123",  # one hex number
    "0x9d.0xf0.0x1.0x23",
    "0235.0360.01.043",  # octal
    "157.15728931",  # two parts
    "157.240.291",  # three parts
    "[::ffff:157.240.1.35]",  # IPv4-mapped IPv6
    "::ffff:9df0:123",
    "[2a03:2880:f10c:83:face:b00c:0:25de]",
]


@pytest.mark.parametrize("host", IP_SPELLINGS)
@pytest.mark.parametrize("who", [PUPIL, STAFF])
def test_ip_literals_in_every_spelling_are_blocked(seed: Policy, host: str, who: Subject) -> None:
    decision = decide(seed, Request(host), who, None, BREAK)
    assert (decision.verdict, decision.reason) == (Verdict.BLOCK, Reason.CIRCUMVENTION)


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "[::127.0.0.1]", "0.0.0.0", "0", "[::]"],
)
def test_loopback_in_every_spelling_is_internal(seed: Policy, host: str) -> None:
    decision = decide(seed, Request(host), STAFF, None, BREAK)
    assert (decision.verdict, decision.reason) == (Verdict.BLOCK, Reason.INTERNAL_ADDRESS)


@pytest.mark.parametrize(
    "host",
    ["x.com:443", "[x.com]", ".x.com", "x.com..", "facebook%2ecom", "face%62ook.com", "", " "],
)
def test_hosts_that_are_not_host_names_are_refused(seed: Policy, host: str) -> None:
    # Staff at break: a Facebook spelling that slipped through unread would be allowed.
    decision = decide(seed, Request(host), STAFF, None, BREAK)
    assert (decision.verdict, decision.reason) == (Verdict.BLOCK, Reason.INVALID_HOST)


# --- the clock -------------------------------------------------------------------------------


def _london(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=LONDON)


# (instant, staff may use Facebook): the seed's breaks are 10:30-10:45 and 12:00-13:00,
# start included, end not.
CLOCK = [
    (_london(2026, 11, 23, 10, 29, 59), False),
    (_london(2026, 11, 23, 10, 30, 0), True),
    (_london(2026, 11, 23, 10, 44, 59), True),
    (_london(2026, 11, 23, 10, 45, 0), False),
    (_london(2026, 11, 23, 11, 59, 59), False),
    (_london(2026, 11, 23, 12, 0, 0), True),
    (_london(2026, 11, 23, 12, 59, 59), True),
    (_london(2026, 11, 23, 13, 0, 0), False),
    (_london(2026, 11, 28, 12, 30), False),  # Saturday
    (_london(2026, 11, 29, 12, 30), False),  # Sunday
    (_london(2026, 12, 25, 12, 30), False),  # Christmas Day (a Friday)
    (_london(2026, 12, 28, 12, 30), False),  # Boxing Day's substitute (Monday)
    (_london(2027, 3, 26, 12, 30), False),  # Good Friday
    (_london(2027, 3, 29, 12, 30), False),  # Easter Monday, the day after the clocks go forward
    (_london(2027, 5, 3, 12, 30), False),  # Early May bank holiday
    # Clocks go forward on Sunday 28 March 2027: the break stays at 10:30 on the wall clock.
    (datetime(2027, 3, 25, 10, 30, tzinfo=UTC), True),  # Thursday before, GMT
    (datetime(2027, 3, 30, 9, 30, tzinfo=UTC), True),  # Tuesday after: 10:30 BST
    (datetime(2027, 3, 30, 9, 29, 59, tzinfo=UTC), False),
    (datetime(2027, 3, 30, 10, 30, tzinfo=UTC), False),  # 11:30 BST: lesson
    # Clocks go back on Sunday 25 October 2026.
    (datetime(2026, 10, 23, 9, 30, tzinfo=UTC), True),  # Friday before: 10:30 BST
    (datetime(2026, 10, 23, 10, 30, tzinfo=UTC), False),  # 11:30 BST
    (datetime(2026, 10, 26, 10, 30, tzinfo=UTC), True),  # Monday after: 10:30 GMT
    (datetime(2026, 10, 26, 9, 30, tzinfo=UTC), False),  # 09:30 GMT
]


@pytest.mark.parametrize(("at", "allowed"), CLOCK)
def test_staff_facebook_follows_the_seed_breaks_to_the_second(
    seed: Policy, at: datetime, allowed: bool
) -> None:
    verdict, _ = _verdict(seed, "www.facebook.com", STAFF, at)
    assert (verdict is Verdict.ALLOW) is allowed, at.astimezone(LONDON)
    assert _verdict(seed, "www.facebook.com", PUPIL, at)[0] is Verdict.BLOCK


def _seed_with(**calendar: object) -> Policy:
    spec = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    spec["calendar"].update(calendar)
    return parse_policy(
        yaml.safe_dump(spec, sort_keys=False), source="seed.yaml", lists=SHIPPED_LISTS
    )


def test_a_school_open_on_the_days_the_clocks_change_keeps_its_break_on_the_wall_clock() -> None:
    policy = _seed_with(school_days=["saturday", "sunday"])
    for day in (_london(2027, 3, 28), _london(2026, 10, 25)):  # forward, back (both Sundays)
        for (h, m, s), allowed in [
            ((10, 29, 59), False),
            ((10, 30, 0), True),
            ((10, 45, 0), False),
        ]:
            at = day.replace(hour=h, minute=m, second=s)
            verdict, _ = _verdict(policy, "facebook.com", STAFF, at)
            assert (verdict is Verdict.ALLOW) is allowed, at


# The seed's own example of terms and closures (the comment in seed.yaml), switched on.
TERMS = [
    {"name": "Autumn term 2026", "start": "2026-09-03", "end": "2026-12-18"},
    {"name": "Spring term 2027", "start": "2027-01-05", "end": "2027-03-26"},
]
CLOSURES = [
    {"name": "INSET day", "start": "2026-09-02"},
    {"name": "Autumn half term", "start": "2026-10-26", "end": "2026-10-30"},
    {"name": "INSET day", "start": "2027-01-04"},
]


@pytest.mark.parametrize(
    ("day", "allowed"),
    [
        ((2026, 9, 2), False),  # INSET day
        ((2026, 9, 3), True),  # first day of term
        ((2026, 10, 27), False),  # half term
        ((2026, 12, 18), True),  # last day of term
        ((2026, 12, 21), False),  # Christmas holiday
        ((2027, 1, 4), False),  # INSET day
        ((2027, 1, 5), True),  # first day of the spring term
    ],
)
def test_breaks_only_on_term_days(day: tuple[int, int, int], allowed: bool) -> None:
    policy = _seed_with(terms=TERMS, closures=CLOSURES)
    at = _london(day[0], day[1], day[2], 12, 30)
    verdict, _ = _verdict(policy, "facebook.com", STAFF, at)
    assert (verdict is Verdict.ALLOW) is allowed, at
