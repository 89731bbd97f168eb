"""Hold-out checks for the classes the outside checks found open (issue 11): for each class,
host names that were NOT used to write its rule or its list (the test first proves that: the
name is in no shipped list, in no rule's source and in no other test), decided through the
shipped seed policy. A rule that only knew its own examples would fail here."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest

from schoolgate.policy.decide import decide
from schoolgate.policy.hostnames import normalise_host
from schoolgate.policy.model import Policy, Request, Subject, Verdict
from schoolgate.store.policy_files import load_policy

ROOT = Path(__file__).resolve().parents[2]
LESSON = datetime(2026, 12, 3, 11, 15, tzinfo=UTC)  # a Thursday, lesson time
LUNCH = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)  # the lunch break

# class -> (host, category it must get); none of these names appears anywhere else.
HOLDOUT: dict[str, list[tuple[str, str]]] = {
    "front-ends, mirrors and viewers of X and Instagram": [
        ("nitter.moomoo.me", "platform_frontend"),
        ("nitter.tiekoetter.com", "platform_frontend"),
        ("bibliogram.pussthecat.org", "platform_frontend"),
        ("proxitok.pabloferreiro.es", "platform_frontend"),
        ("vxinstagram.com", "platform_frontend"),
        ("twitterviewer.net", "platform_frontend"),
        ("instasaved.net", "platform_frontend"),
        ("insta-stories-online.com", "platform_frontend"),
    ],
    "regional and legacy domains": [
        ("facebook.com.mx", "facebook"),
        ("instagram.co.jp", "instagram"),
        ("twitter.com.ar", "x"),
        ("tiktok.com.au", "social"),
        ("snapchat.fr", "social"),
        ("reddit.de", "social"),
        ("discord.com.br", "social"),
        ("whatsapp.it", "social"),
    ],
    "lookalikes": [
        ("faceb\u043eok.co.uk", "lookalike"),
        ("wh\u0430tsapp.com", "lookalike"),
        ("disc\u043erd.gg", "lookalike"),
        ("\u0456nstagram.net", "lookalike"),
        ("redd\u0456t.net", "lookalike"),
        ("facebuuk.com", "lookalike"),
        ("snapchaat.com", "lookalike"),
        ("whatsaap.com", "lookalike"),
        ("twltter.com", "lookalike"),
        ("dlscord.com", "lookalike"),
    ],
    "special-use names": [
        ("examplehiddenservice.onion", "tor"),
        ("www.someforum.i2p", "tor"),
        ("service.loki", "tor"),
        ("relay.exit", "tor"),
    ],
    "VPN names": [
        ("freevpnplanet.com", "vpn"),
        ("ultravpn.com", "vpn"),
        ("vpnly.net", "vpn"),
    ],
    "Instagram on Meta's CDN": [
        ("instagram.fyvr3-1.fna.fbcdn.net", "instagram"),
        ("instagram.fbcn7-2.fna.fbcdn.net", "instagram"),
    ],
    "a platform's exact host on a shared CDN": [
        ("discordapp.global.ssl.fastly.net", "social"),
        ("snapchat-media.akamaized.net", "social"),
        ("whatsapp-cdn.akamaihd.net", "social"),
        ("twitter-video.akamaized.net", "x"),
    ],
    "sites under adult top-level domains": [
        ("anything.xxx", "adult"),
        ("www.somesite.porn", "adult"),
    ],
}
# the same classes, names that must stay open (ordinary sites that look a little alike)
LEFT_ALONE = [
    "scontent.fman2-1.fna.fbcdn.net",
    "bbcnews.map.fastly.net",
    "reddish.com",
    "xxx.example.com",
    "instantpot.com",
    "lg.com",
    "torquaylibrary.org.uk",
]


@cache
def seed() -> Policy:
    return load_policy()


@cache
def known_text() -> str:
    """Everything a rule or a list was written from: the lists, the manifest and hand-added
    file, the rule's source, the docs and the other tests."""
    package = ROOT / "schoolgate" / "policy"
    files = [
        *sorted((package / "data").rglob("*.txt")),
        *sorted((package / "data").rglob("*.yaml")),
        package / "hostclass.py",
        *sorted((ROOT / "docs").glob("*.md")),
        *[p for p in sorted((ROOT / "tests").rglob("*.py")) if p.name != Path(__file__).name],
    ]
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files).lower()


CASES = [(cls, host, category) for cls, hosts in HOLDOUT.items() for host, category in hosts]


@pytest.mark.parametrize(("cls", "host", "category"), CASES)
def test_a_held_out_name_of_each_class_is_caught(cls: str, host: str, category: str) -> None:
    name = normalise_host(host)
    assert not isinstance(name, type(None))
    canonical = getattr(name, "name", host)
    for spelling in {host, canonical}:
        assert spelling.lower() not in known_text(), f"{spelling} is not held out ({cls})"
    for role in ("pupil", "staff"):
        decision = decide(seed(), Request(host, 443), Subject(role), None, LESSON)
        assert decision.verdict is Verdict.BLOCK, (cls, host, role, decision)
        assert decision.category == category, (cls, host, role, decision)
    if category not in ("facebook", "social"):  # those open at break and for official accounts
        for role, at in (("staff", LUNCH), ("social_media_manager", LESSON)):
            decision = decide(seed(), Request(host, 443), Subject(role), None, at)
            assert decision.verdict is Verdict.BLOCK, (host, role, decision)


@pytest.mark.parametrize("host", LEFT_ALONE)
def test_ordinary_names_near_the_classes_stay_open_or_stay_facebook(host: str) -> None:
    decision = decide(seed(), Request(host, 443), Subject("staff"), None, LUNCH)
    assert decision.verdict is Verdict.ALLOW, (host, decision)
