"""Tests for policy/lists.py and for the category lists shipped in policy/data/lists/."""

from __future__ import annotations

from datetime import date
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schoolgate.policy.lists import (
    EXACT_PREFIX,
    DomainList,
    ListOverlap,
    ListProblem,
    find_overlaps,
    parents,
    parse_domain_list,
)

LISTS_DIR = Path(__file__).resolve().parents[2] / "schoolgate" / "policy" / "data" / "lists"
SHIPPED = (
    "x",
    "instagram",
    "facebook",
    "social",
    "web_proxy",
    "vpn",
    "tor",
    "doh",
    "banking",
    "health",
    "platform_frontend",
    "lookalike",
    "pinned_apps",
    "adult",
    "gambling",
    "malware_phishing",
    "piracy",
    "violence",
    "self_harm",
    "extremism",
    "discrimination",
    "drugs",
)

# Registrable domains that unrelated sites share: listing one would block half the web.
# A single platform-owned host under one of them (one S3 bucket, one Akamai name) is fine.
SHARED_INFRASTRUCTURE = frozenset(
    {
        "akamai.net",
        "akamaihd.net",
        "akamaized.net",
        "akamaiedge.net",
        "edgekey.net",
        "edgesuite.net",
        "cloudfront.net",
        "amazonaws.com",
        "amazon.com",
        "googleapis.com",
        "gstatic.com",
        "googleusercontent.com",
        "googlevideo.com",
        "google.com",
        "youtube.com",
        "ytimg.com",
        "fastly.net",
        "fastly.com",
        "fastlylb.net",
        "cloudflare.com",
        "cloudflare.net",
        "azureedge.net",
        "azurewebsites.net",
        "windows.net",
        "microsoft.com",
        "live.com",
        "github.io",
        "github.com",
        "githubusercontent.com",
        "appspot.com",
        "firebaseio.com",
        "herokuapp.com",
        "app.link",
        "synology.me",
        "zendesk.com",
        "apple.com",
        "icloud.com",
        "edgecastcdn.net",
        "llnwd.net",
        "b-cdn.net",
        "jsdelivr.net",
        "unpkg.com",
        "cdnjs.com",
        "sstatic.net",
        "wordpress.com",
        "blogspot.com",
        "eff.org",
        "mozilla.org",
        "proton.me",
        "translate.goog",
        "co.uk",
        "org.uk",
    }
)

HEADER = "# category: t\n# description: a test list\n# compiled: 2026-11-21\n# source: tests\n"


# --- the shipped lists -----------------------------------------------------------------------


@cache
def shipped(name: str) -> DomainList:
    parsed = parse_domain_list(
        (LISTS_DIR / f"{name}.txt").read_text(encoding="utf-8"), source=f"{name}.txt"
    )
    if not isinstance(parsed, DomainList):
        pytest.fail("\n".join(f"{p.where}: {p.message}" for p in parsed))
    return parsed


def all_shipped() -> list[DomainList]:
    return [shipped(name) for name in SHIPPED]


def covering(host: str) -> set[str]:
    """The categories whose list covers `host` (matched on label boundaries)."""
    names = set(parents(host)) | {EXACT_PREFIX + host}
    return {d.category for d in all_shipped() if names & set(d.domains)}


def test_exactly_the_expected_lists_are_shipped() -> None:
    assert sorted(p.stem for p in LISTS_DIR.glob("*.txt")) == sorted(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_list_parses_with_a_complete_header(name: str) -> None:
    parsed = shipped(name)
    assert parsed.category == name, f"{name}.txt says '# category: {parsed.category}'"
    assert parsed.description
    assert parsed.sources
    assert all(parsed.sources)
    assert parsed.compiled >= date(2026, 1, 1)
    assert len(parsed.domains) == len(set(parsed.domains))


def test_no_domain_is_in_two_lists() -> None:
    assert find_overlaps(all_shipped()) == []


@pytest.mark.parametrize("name", SHIPPED)
def test_no_list_names_shared_infrastructure(name: str) -> None:
    assert sorted(set(shipped(name).domains) & SHARED_INFRASTRUCTURE) == []


@pytest.mark.parametrize("name", SHIPPED)
def test_a_host_under_shared_infrastructure_is_listed_exactly_or_is_a_platform_bucket(
    name: str,
) -> None:
    # "full:" entries name one host; the parent they sit under is always shared infrastructure
    # or a domain of the platform's own, never a bare CDN name
    for entry in shipped(name).domains:
        if entry.startswith(EXACT_PREFIX):
            assert entry[len(EXACT_PREFIX) :] not in SHARED_INFRASTRUCTURE


@pytest.mark.parametrize(
    ("name", "domain"),
    [
        ("x", "x.com"),
        ("x", "twitter.com"),
        ("x", "t.co"),
        ("x", "twimg.com"),
        ("x", "twttr.com"),
        ("x", "tweetdeck.com"),
        ("x", "pscp.tv"),
        ("instagram", "instagram.com"),
        ("instagram", "instagr.am"),
        ("instagram", "cdninstagram.com"),
        ("instagram", "ig.me"),
        ("facebook", "facebook.com"),
        ("facebook", "fb.com"),
        ("facebook", "fb.me"),
        ("facebook", "fbcdn.net"),
        ("facebook", "fbsbx.com"),
        ("facebook", "facebook.net"),
        ("facebook", "messenger.com"),
        ("facebook", "m.me"),
        ("facebook", "fb.watch"),
        ("social", "tiktok.com"),
        ("social", "snapchat.com"),
        ("social", "whatsapp.com"),
        ("social", "discord.com"),
        ("social", "reddit.com"),
        ("social", "threads.net"),
        ("web_proxy", "croxyproxy.com"),
        ("vpn", "nordvpn.com"),
        ("tor", "torproject.org"),
        ("social", "byteoversea.com"),
        ("social", "ibytedtos.com"),
        ("social", "snssdk.com"),
        ("social", "full:reddit.map.fastly.net"),
        ("social", "full:bytedance.map.fastly.net"),
        ("x", "full:twitter.map.fastly.net"),
        ("facebook", "full:fbcdn-a.akamaihd.net"),
        ("instagram", "full:instagramstatic-a.akamaihd.net"),
        ("vpn", "prmsrvs.com"),
        ("vpn", "whiskergalaxy.com"),
        ("vpn", "holavpn.net"),
        ("platform_frontend", "xcancel.com"),
        ("platform_frontend", "picuki.com"),
        ("doh", "dns.google"),
        ("doh", "cloudflare-dns.com"),
        ("doh", "one.one.one.one"),
        ("doh", "dns0.eu"),  # kids.dns0.eu and open.dns0.eu were open (only zero. was listed)
        ("doh", "doh.dns4all.eu"),
        ("banking", "nationwide.co.uk"),
        ("health", "nhs.uk"),
    ],
)
def test_list_names_domain(name: str, domain: str) -> None:
    assert domain in shipped(name).domains


@pytest.mark.parametrize(
    ("name", "domain"),
    [
        ("instagram", "fbcdn.net"),  # shared Meta CDN: facebook.txt only (see docs/lists.md)
        ("social", "instagram.com"),
        ("social", "facebook.com"),
        ("social", "x.com"),
        ("social", "youtube.com"),
    ],
)
def test_list_leaves_out_domain(name: str, domain: str) -> None:
    assert domain not in shipped(name).domains


@pytest.mark.parametrize(
    ("host", "categories"),
    [
        ("api.x.com", {"x"}),
        ("pbs.twimg.com", {"x"}),
        ("xbox.com", set()),
        ("notx.com", set()),
        ("x.co", set()),  # GoDaddy's link shortener, not X
        ("x.ai", set()),  # xAI, not X
        ("scontent-lhr8-1.cdninstagram.com", {"instagram"}),
        ("instagram.flhr8-1.fna.fbcdn.net", {"facebook"}),  # Instagram media on Meta's CDN
        ("web.whatsapp.com", {"social"}),
        ("www.tiktok.com", {"social"}),
        ("www.threads.com", {"social"}),
        ("www.youtube.com", set()),
        ("dns.google", {"doh"}),
        ("mozilla.cloudflare-dns.com", {"doh"}),
        ("google.com", set()),
        ("www.google.com", set()),
        ("www.cloudflare.com", set()),
        ("dns.mullvad.net", {"vpn"}),
        ("vpn-api.proton.me", {"vpn"}),
        ("mail.proton.me", set()),
        ("bridges.torproject.org", {"tor"}),
        ("abcdefghijklmnop.onion.ly", {"tor"}),
        ("www.croxyproxy.rocks", {"web_proxy"}),
        ("bank.barclays.co.uk", {"banking"}),
        ("twitter.map.fastly.net", {"x"}),  # an exact host...
        ("www.twitter.map.fastly.net", set()),  # ...covers no subdomain
        ("map.fastly.net", set()),
        ("fbcdn-a.akamaihd.net", {"facebook"}),
        ("other-a.akamaihd.net", set()),
        ("www.marksandspencer.com", set()),
        ("111.nhs.uk", {"health"}),
    ],
)
def test_host_is_covered_by(host: str, categories: set[str]) -> None:
    assert covering(host) == categories


# --- the parser: success -----------------------------------------------------------------------


def test_parses_header_entries_and_comments() -> None:
    text = (
        "# category: x\n"
        "# description: X (formerly Twitter)\n"
        "# compiled: 2026-11-21\n"
        "# source: v2fly/domain-list-community data/twitter\n"
        "# source: checked by hand\n"
        "#\n"
        "# a plain comment: with a colon\n"
        "\n"
        "x.com\n"
        "  t.co   # short links\n"
        "twimg.com# no space before the comment\n"
        "_dmarc.x.com.example\n"
        "xn--bcher-kva.de\n"
    )
    parsed = parse_domain_list(text, source="x.txt")
    assert parsed == DomainList(
        category="x",
        description="X (formerly Twitter)",
        compiled=date(2026, 11, 21),
        sources=("v2fly/domain-list-community data/twitter", "checked by hand"),
        domains=("x.com", "t.co", "twimg.com", "_dmarc.x.com.example", "xn--bcher-kva.de"),
    )


def test_windows_line_endings_are_fine() -> None:
    parsed = parse_domain_list(HEADER.replace("\n", "\r\n") + "x.com\r\n", source="t.txt")
    assert isinstance(parsed, DomainList)
    assert parsed.domains == ("x.com",)


# --- the parser: problems, each with its line and its fix -------------------------------------


@pytest.mark.parametrize(
    ("entry", "fix"),
    [
        (
            "https://x.com/",
            "'https://x.com/' is not a domain: write just the host name, like 'x.com'",
        ),
        ("x.com/login", "write just the host name, like 'x.com'"),
        ("*.x.com", "write 'x.com' instead of '*.x.com': a domain already covers its subdomains"),
        (".x.com", "write 'x.com'"),
        ("x.*", "wildcard"),
        ("||x.com^", "filter syntax, not a domain: write just 'x.com'"),
        ("X.com", "write it in lowercase, 'x.com'"),
        ("x.com.", "ends with a dot: write 'x.com'"),
        ("bücher.de", "write the IDN as punycode: 'xn--bcher-kva.de'"),
        ("xn--zz.com", "is not valid punycode"),
        ("192.0.2.1", "is an IP address, not a domain"),
        ("2001:db8::1", "is an IP address, not a domain"),
        ("x.com:443", "has a port: write just 'x.com'"),
        ("localhost", "has only one label: write a full domain name, like 'example.com'"),
        ("x..com", "has an empty label"),
        ("-x.com", "starts or ends with '-'"),
        ("x-.com", "starts or ends with '-'"),
        ("x$y.com", "characters a domain cannot have: $"),
        ("a" * 64 + ".com", "at most 63 are allowed"),
        (".".join(["a" * 60] * 5), "a domain name has at most 253"),
        ("x.123", "all-digit label"),
        ("x.com twitter.com", "write one domain per line"),
    ],
)
def test_bad_entry_is_reported_with_line_and_fix(entry: str, fix: str) -> None:
    problems = parse_domain_list(HEADER + "ok.example\n" + entry + "\n", source="t.txt")
    assert isinstance(problems, list)
    assert [p.where for p in problems] == ["t.txt:6"]
    assert fix in problems[0].message


def test_duplicate_names_the_first_line() -> None:
    problems = parse_domain_list(HEADER + "x.com\nt.co\nx.com\n", source="t.txt")
    assert problems == [ListProblem("t.txt:7", "'x.com' is a duplicate of line 5: remove one")]


def test_subdomain_of_a_listed_domain_is_reported() -> None:
    problems = parse_domain_list(HEADER + "api.x.com\nx.com\n", source="t.txt")
    assert isinstance(problems, list)
    assert [p.where for p in problems] == ["t.txt:5"]
    assert "already covered by 'x.com' on line 6: remove it" in problems[0].message


@pytest.mark.parametrize(
    ("header", "where", "fix"),
    [
        (HEADER.replace("# category: t\n", ""), "t.txt:1", "missing header '# category: <name>'"),
        (
            HEADER.replace("# description: a test list\n", ""),
            "t.txt:1",
            "missing header '# description:",
        ),
        (
            HEADER.replace("# compiled: 2026-11-21\n", ""),
            "t.txt:1",
            "missing header '# compiled: YYYY-MM-DD'",
        ),
        (HEADER.replace("# source: tests\n", ""), "t.txt:1", "missing header '# source:"),
        (HEADER.replace("2026-11-21", "21/11/2026"), "t.txt:3", "write it as YYYY-MM-DD"),
        (HEADER.replace("2026-11-21", "2026-02-30"), "t.txt:3", "'2026-02-30' is not a date"),
        (HEADER.replace("2026-11-21", "20261121"), "t.txt:3", "'20261121' is not a date"),
        (
            HEADER.replace("# category: t", "# category: Social Media"),
            "t.txt:1",
            "use lowercase letters, digits and '_'",
        ),
        (HEADER.replace("# source: tests", "# source:"), "t.txt:4", "has no value"),
        (HEADER + "# category: u\n", "t.txt:5", "'# category:' appears twice (first on line 1)"),
    ],
)
def test_header_problem_is_reported_with_line_and_fix(header: str, where: str, fix: str) -> None:
    problems = parse_domain_list(header + "x.com\n", source="t.txt")
    assert isinstance(problems, list)
    matching = [p for p in problems if fix in p.message]
    assert [p.where for p in matching] == [where], problems


def test_header_line_after_the_first_domain_is_reported() -> None:
    problems = parse_domain_list(HEADER + "x.com\n# source: late\n", source="t.txt")
    assert isinstance(problems, list)
    assert [p.where for p in problems] == ["t.txt:6"]
    assert "move it up into the header" in problems[0].message


def test_empty_list_is_reported() -> None:
    problems = parse_domain_list(HEADER, source="t.txt")
    assert isinstance(problems, list)
    assert [p.message for p in problems] == [
        "the list has no domains: add one per line, like 'example.com'"
    ]


def test_every_problem_is_collected_in_line_order() -> None:
    text = "# category: x\n# compiled: soon\nX.COM\nx.com\n*.t.co\n"
    problems = parse_domain_list(text, source="x.txt")
    assert isinstance(problems, list)
    assert [p.where for p in problems] == ["x.txt:1", "x.txt:1", "x.txt:2", "x.txt:3", "x.txt:5"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_list_or_problems_never_an_exception(text: str) -> None:
    parsed = parse_domain_list(text, source="fuzz.txt")
    assert isinstance(parsed, DomainList | list)


# --- overlaps between lists --------------------------------------------------------------------


def _list(category: str, *domains: str) -> DomainList:
    return DomainList(category, "", date(2026, 11, 21), ("tests",), domains)


def test_overlap_of_a_domain_and_a_parent_is_found_both_ways_round() -> None:
    lists = [
        _list("instagram", "fbcdn.net", "instagram.com"),
        _list("facebook", "fbcdn.net"),
        _list("social", "static.instagram.com"),
    ]
    assert find_overlaps(lists) == [
        ListOverlap("fbcdn.net", "instagram", "fbcdn.net", "facebook"),
        ListOverlap("fbcdn.net", "facebook", "fbcdn.net", "instagram"),
        ListOverlap("static.instagram.com", "social", "instagram.com", "instagram"),
    ]


def test_overlap_is_on_label_boundaries() -> None:
    assert find_overlaps([_list("x", "x.com"), _list("other", "notx.com", "xbox.com")]) == []


# --- exact hosts ("full:") ---------------------------------------------------------------------


def test_an_exact_host_entry_is_parsed_and_kept_with_its_prefix() -> None:
    parsed = parse_domain_list(
        HEADER + "example.com\nfull:cdn.shared.net  # one host\n", source="t.txt"
    )
    assert isinstance(parsed, DomainList)
    assert parsed.domains == ("example.com", "full:cdn.shared.net")


@pytest.mark.parametrize(
    ("entry", "fix"),
    [
        ("full:Cdn.Shared.net", "lowercase"),
        ("full:*.shared.net", "instead of"),
        ("full:https://cdn.shared.net/", "not a domain"),
        ("full:", "one label"),
    ],
)
def test_a_bad_exact_host_is_reported_like_any_entry(entry: str, fix: str) -> None:
    problems = parse_domain_list(HEADER + entry + "\n", source="t.txt")
    assert isinstance(problems, list)
    assert any(fix in p.message for p in problems), problems


def test_an_exact_host_under_a_listed_domain_is_reported_as_covered() -> None:
    problems = parse_domain_list(HEADER + "shared.net\nfull:cdn.shared.net\n", source="t.txt")
    assert isinstance(problems, list)
    assert [p.where for p in problems] == ["t.txt:6"]
    assert "already covered by 'shared.net'" in problems[0].message


def test_an_exact_host_overlaps_a_domain_in_another_list_but_not_a_sibling() -> None:
    a = parse_domain_list(HEADER.replace("t\n", "a\n", 1) + "full:cdn.shared.net\n", source="a.txt")
    b = parse_domain_list(HEADER.replace("t\n", "b\n", 1) + "cdn.shared.net\n", source="b.txt")
    c = parse_domain_list(HEADER.replace("t\n", "c\n", 1) + "full:img.shared.net\n", source="c.txt")
    assert isinstance(a, DomainList)
    assert isinstance(b, DomainList)
    assert isinstance(c, DomainList)
    assert find_overlaps([a, b]) == [ListOverlap("full:cdn.shared.net", "a", "cdn.shared.net", "b")]
    assert find_overlaps([a, c]) == []
    assert list(parents("full:a.b.c")) == ["full:a.b.c", "a.b.c", "b.c"]
