"""Tables for every list format policy/listformats.py reads, and its bounds on hostile input."""

from __future__ import annotations

import time
from datetime import date

import pytest

from schoolgate.policy.listformats import (
    MAX_INCLUDE_DEPTH,
    MAX_LINE_LENGTH,
    MAX_PROBLEMS,
    ListEntry,
    ListFile,
    ListFormat,
    compact,
    format_list_file,
    parse_list,
    resolve_v2fly,
)
from schoolgate.policy.lists import DomainList, parse_domain_list

# (format, text, hosts, skipped reasons (substrings), problem places)
TABLE: list[tuple[ListFormat, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = [
    (
        ListFormat.DOMAINS,
        "# c\nExample.COM\nwww.example.org.  # trailing dot\n\n*.wild.net\n",
        ("example.com", "www.example.org", "wild.net"),
        (),
        (),
    ),
    (
        ListFormat.DOMAINS,
        "bücher.de\n192.0.2.1\nlocalhost\nbad_host!.com\n",
        ("xn--bcher-kva.de",),
        ("IP addresses",),
        ("f:3", "f:4"),
    ),
    (ListFormat.DOMAINS, "example.com\nexample.com\n", ("example.com",), (), ()),
    (
        ListFormat.HOSTS,
        "127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n"
        "0.0.0.0 ads.example.com tracker.example.net # two\n",
        ("ads.example.com", "tracker.example.net"),
        ("machine itself",),
        (),
    ),
    (ListFormat.HOSTS, "example.com\nnot-an-ip example.org\n", (), (), ("f:1", "f:2")),
    (
        ListFormat.ADBLOCK,
        "[Adblock Plus 2.0]\n! comment\n||x.com^\n||t.co^$important\n"
        "@@||ok.example^\nexample.com##.banner\n/ads[0-9]+/\n"
        "||cdn.example.com/path^\n||y.com^$script\n||1.2.3.4^\n",
        ("x.com", "t.co"),
        (
            "exception rules",
            "cosmetic rules",
            "regular-expression",
            "parts of pages",
            "options",
            "IP addresses",
        ),
        (),
    ),
    (
        ListFormat.V2FLY,
        "# twitter\ndomain:twitter.com @ads\nfull:api.x.com\nx.com # c\n"
        "keyword:twitter\nregexp:^tw.*\\.com$\nbogus:thing\n",
        ("twitter.com", "api.x.com", "x.com"),
        ("keyword:", "regexp:"),
        ("f:7",),
    ),
    (
        ListFormat.UT1_DOMAINS,
        "porn.example\n10.0.0.1\nsub.adult.example\n",
        ("porn.example", "sub.adult.example"),
        ("IP addresses",),
        (),
    ),
    (
        ListFormat.UT1_URLS,
        "site.example/page.html\nwhole.example/\nwhole2.example\n",
        ("whole.example", "whole2.example"),
        ("URLs with a path",),
        (),
    ),
    (
        ListFormat.IWF,
        "http://bad.example/abc/def.jpg\nhttps://user@Other.example:8443/x?y\n"
        "plain.example\nhttps://[2001:db8::1]/x\nhttp://192.0.2.7/a\n",
        ("bad.example", "other.example", "plain.example"),
        ("IP addresses",),
        (),
    ),
]


@pytest.mark.parametrize(("fmt", "text", "hosts", "skipped", "problems"), TABLE)
def test_formats(
    fmt: ListFormat,
    text: str,
    hosts: tuple[str, ...],
    skipped: tuple[str, ...],
    problems: tuple[str, ...],
) -> None:
    parsed = parse_list(fmt, text, source="f")
    assert parsed.hosts == hosts
    reasons = " | ".join(reason for reason, _ in parsed.skipped)
    for expected in skipped:
        assert expected in reasons
    assert len(parsed.skipped) == len(skipped), reasons
    assert tuple(p.where for p in parsed.problems) == problems
    assert parsed.problem_count == len(problems)
    assert all(p.message for p in parsed.problems)


def test_iwf_notes_whole_host_blocks() -> None:
    parsed = parse_list(ListFormat.IWF, "a.example/x\nb.example/y\nc.example\n", source="iwf")
    assert dict(parsed.notes) == {"URLs with a path: their whole host is blocked": 2}


def test_problem_says_place_and_fix() -> None:
    parsed = parse_list(ListFormat.HOSTS, "example.com\n", source="hosts.txt")
    assert parsed.problems[0].where == "hosts.txt:1"
    assert "0.0.0.0 example.com" in parsed.problems[0].message


V2FLY = {
    "twitter": "include:twitter-ads\ninclude:periscope @-cn\ndomain:twitter.com\nt.co @short\n",
    "twitter-ads": "ads-twitter.com @ads\n",
    "periscope": "periscope.tv\npscp.cn @cn\n",
    "loop-a": "include:loop-b\na.example\n",
    "loop-b": "include:loop-a\nb.example\n",
    "only-cn": "include:china @cn\n",
    "china": "cn.example @cn\nglobal.example\n",
    "missing": "include:nowhere\n",
}


def test_v2fly_include_and_attributes() -> None:
    parsed = resolve_v2fly(V2FLY, "twitter")
    assert set(parsed.hosts) == {"ads-twitter.com", "periscope.tv", "twitter.com", "t.co"}
    assert parsed.problems == ()
    only_cn = resolve_v2fly(V2FLY, "only-cn")
    assert only_cn.hosts == ("cn.example",)
    without = resolve_v2fly(V2FLY, "twitter", exclude_attrs=["ads"])
    assert "ads-twitter.com" not in without.hosts
    assert dict(without.skipped) == {"entries with attribute @ads (left out by exclude_attrs)": 1}


def test_v2fly_cycle_and_missing_include_are_located() -> None:
    loop = resolve_v2fly(V2FLY, "loop-a")
    assert set(loop.hosts) == {"a.example", "b.example"}
    assert [p.where for p in loop.problems] == ["data/loop-b:1"]
    assert "loop-a -> loop-b -> loop-a" in loop.problems[0].message
    missing = resolve_v2fly(V2FLY, "missing")
    assert [p.where for p in missing.problems] == ["data/missing:1"]
    assert "nowhere" in missing.problems[0].message


def test_v2fly_problem_located_in_included_file() -> None:
    files = {"root": "include:child\n", "child": "ok.example\nfull:bad host\n"}
    parsed = resolve_v2fly(files, "root")
    assert [p.where for p in parsed.problems] == ["data/child:2"]


def test_v2fly_deep_include_chain_is_bounded() -> None:
    files = {f"l{i}": f"include:l{i + 1}\nh{i}.example\n" for i in range(100)}
    parsed = resolve_v2fly(files, "l0")
    assert len(parsed.hosts) == MAX_INCLUDE_DEPTH
    assert parsed.problem_count == 1
    assert "nested more than" in parsed.problems[0].message


def test_v2fly_diamond_includes_are_read_once() -> None:
    # 2**30 paths through a diamond lattice: must finish fast, each file read once
    files = {f"d{i}": f"include:d{i + 1}\ninclude:d{i + 1}\nx{i}.example\n" for i in range(15)}
    files["d15"] = "end.example\n"
    started = time.monotonic()
    parsed = resolve_v2fly(files, "d0")
    assert time.monotonic() - started < 2
    assert len(parsed.hosts) == 16


def test_hostile_input_is_bounded() -> None:
    text = (
        "a" * (MAX_LINE_LENGTH + 1)
        + "\n"
        + "\n".join(f"bad!{i}" for i in range(5000))
        + "\n\x00\ngood.example\n"
    )
    started = time.monotonic()
    parsed = parse_list(ListFormat.DOMAINS, text, source="evil")
    assert time.monotonic() - started < 5
    assert parsed.hosts == ("good.example",)
    assert len(parsed.problems) == MAX_PROBLEMS
    assert parsed.problem_count == 5002
    assert "characters long" in parsed.problems[0].message


def test_compact_and_format_round_trip() -> None:
    entries = [
        ListEntry("www.example.com", "from a"),
        ListEntry("example.com", "from b"),
        ListEntry("zeta.example", ""),
        ListEntry("example.com", "dup"),
    ]
    kept = compact(entries)
    assert kept == (ListEntry("example.com", "from b"), ListEntry("zeta.example", ""))
    text = format_list_file(
        ListFile(
            "adult", "Adult sites\nmultiline", date(2026, 12, 3), ("UT1 adult (2026-12-03)",), kept
        )
    )
    parsed = parse_domain_list(text, source="adult.txt")
    assert isinstance(parsed, DomainList), parsed
    assert parsed.domains == ("example.com", "zeta.example")
    assert parsed.description == "Adult sites multiline"
    assert "example.com  # from b" in text
