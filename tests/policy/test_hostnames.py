"""Host normalisation, label-boundary matching, the domain index and proxy unwrapping."""

from __future__ import annotations

import copy
import ipaddress
import pickle
import string
from collections.abc import Iterator

import idna
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from schoolgate.policy import hostnames
from schoolgate.policy.hostnames import (
    DomainIndex,
    Host,
    HostError,
    is_subdomain_or_same,
    normalise_host,
    unwrap_rewriting_proxy,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


# --- normalisation: every spelling of one host gives one name -----------------------------

SPELLINGS = [
    # case, whitespace, one trailing dot
    ("x.com", "x.com"),
    ("X.COM", "x.com"),
    ("X.COM.", "x.com"),
    ("  x.com\t\r\n", "x.com"),
    ("Www.Example.Co.Uk", "www.example.co.uk"),
    # labels real hosts have: underscores, hyphens anywhere (YouTube's r3---sn-...)
    ("_dmarc.example.com", "_dmarc.example.com"),
    ("r3---sn-aigl6nek.googlevideo.com", "r3---sn-aigl6nek.googlevideo.com"),
    ("ab--cd.example", "ab--cd.example"),
    ("-x.com", "-x.com"),
    ("1.2.3.example", "1.2.3.example"),
    ("0x.com", "0x.com"),
    ("localhost", "localhost"),
    # UTS #46 mapping as browsers do it: fullwidth forms, other full stops
    ("ｘ.ｃｏｍ", "x.com"),
    ("ＷＷＷ．ＩＮＳＴＡＧＲＡＭ．ＣＯＭ", "www.instagram.com"),
    ("x\u3002com", "x.com"),  # ideographic full stop
    ("x\uff0ecom", "x.com"),  # fullwidth full stop
    ("x\uff61com", "x.com"),  # halfwidth ideographic full stop
    ("x\u3002com\u3002", "x.com"),  # a trailing ideographic full stop is a trailing dot
    ("\U0001d431.com", "x.com"),  # mathematical bold small x
    ("Ⅻ.com", "xii.com"),  # roman numeral twelve
    ("ｆａｃｅ－ｂｏｏｋ.com", "face-book.com"),  # fullwidth hyphen-minus
    # characters browsers ignore
    ("x\u200b.com", "x.com"),  # zero width space
    ("x\u2060.com", "x.com"),  # word joiner
    ("x\ufeff.com", "x.com"),  # zero width no-break space (BOM)
    ("x\u00ad.com", "x.com"),  # soft hyphen
    ("in\u00adsta\u200bgram.com", "instagram.com"),
    ("x\ufe00.com", "x.com"),  # variation selector
    ("x\u034f.com", "x.com"),  # combining grapheme joiner
    # internationalised names: Unicode labels become A-labels; A-labels stay
    ("bücher.de", "xn--bcher-kva.de"),
    ("BÜCHER.DE", "xn--bcher-kva.de"),
    ("bu\u0308cher.de", "xn--bcher-kva.de"),  # decomposed (NFD) ü
    ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ("XN--BCHER-KVA.DE.", "xn--bcher-kva.de"),
    ("faß.de", "xn--fa-hia.de"),  # non-transitional: ß is kept, as browsers now do
    ("ελληνικά.gr", "xn--hxargifdar.gr"),
    ("مثال.إختبار", "xn--mgbh0fb.xn--kgbechtv"),
    ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ("例え。テスト", "xn--r8jz45g.xn--zckzah"),
]


@pytest.mark.parametrize(("raw", "name"), SPELLINGS)
def test_spellings_of_a_host_normalise_to_one_name(raw: str, name: str) -> None:
    assert normalise_host(raw) == Host(name)


IP_LITERALS = [
    # IPv4 in every spelling the WHATWG URL host parser accepts
    ("127.0.0.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),  # one decimal number
    ("0177.0.0.1", "127.0.0.1"),  # octal part
    ("0x7f.0.0.1", "127.0.0.1"),  # hex part
    ("0X7F.0.0.1", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),  # one hex number
    ("017700000001", "127.0.0.1"),  # one octal number
    ("127.1", "127.0.0.1"),  # a.b: b fills 24 bits
    ("127.0.1", "127.0.0.1"),  # a.b.c: c fills 16 bits
    ("0x7f.1", "127.0.0.1"),
    ("0177.0x0.00.0x1", "127.0.0.1"),  # mixed
    ("0x", "0.0.0.0"),  # '0x' alone is hex zero
    ("0", "0.0.0.0"),
    ("4294967295", "255.255.255.255"),
    ("192.168.0x1.010", "192.168.1.8"),
    ("１２７．０．０．１", "127.0.0.1"),  # fullwidth digits and dots map first
    ("0000000000000000000000000000000000000000000000000000000000000000000177.1", "127.0.0.1"),
    # IPv6: brackets, zones, compressed canonical form; IPv4-mapped is IPv4
    ("::1", "::1"),
    ("[::1]", "::1"),
    ("[2001:DB8:0:0:0:0:0:1]", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
    ("fe80::1%eth0", "fe80::1"),
    ("[fe80::1%25eth0]", "fe80::1"),
    ("::ffff:127.0.0.1", "127.0.0.1"),
    ("[::ffff:7f00:1]", "127.0.0.1"),
    ("::ffff:192.0.2.1", "192.0.2.1"),
]


@pytest.mark.parametrize(("raw", "name"), IP_LITERALS)
def test_ip_literals_in_every_spelling(raw: str, name: str) -> None:
    host = normalise_host(raw)
    assert isinstance(host, Host)
    assert host.name == name
    assert host.ip == ipaddress.ip_address(name)
    assert type(host.ip) is (V6 if ":" in name else V4)


INVALID = [
    ("", "empty"),
    ("   ", "empty"),
    (".", "empty"),
    ("x..com", "empty label"),
    (".x.com", "empty label"),
    ("x.com..", "empty label"),
    ("a" * 64 + ".com", "64 characters long; the limit is 63"),
    (".".join(["a" * 63] * 4) + ".com", "the limit is 253"),
    ("x" * 2000, "no host name is longer"),
    ("exa mple.com", "U+0020 SPACE"),
    ("x.com/path", "not a URL"),
    ("http://x.com", "not a URL"),
    ("user@x.com", "not a URL or user@host"),
    ("x.com?q", "not a URL"),
    ("x\\com", "not a URL"),
    ("x.com:443", "remove ':port'"),
    ("example.org:8080", "remove ':port'"),
    ("1.2.3.4:80", "remove ':port'"),
    ("[::1", "must end with ']'"),
    ("[x.com]", "not an IPv6 address"),
    ("[::1]:443", "must end with ']'"),
    ("[1:2:3:4:5:6:7:8:9]", "not a valid IPv6 address"),
    ("fe80::1%", "zone"),
    ("x\x00.com", "U+0000 (a control character)"),
    ("x\x7f.com", "U+007F (a control character)"),
    ("x\u0085.com", "U+0085"),
    ("x%2ecom", "'%'"),
    ("x!.com", "'!'"),
    ("x,com", "','"),
    ("x*.com", "'*'"),
    ("x\uff0fcom", "stands for '/'"),  # fullwidth solidus maps to '/'
    ("x\uff1acom", "stands for ':'"),  # fullwidth colon
    ("\u3000x.com", "stands for U+0020 SPACE"),  # ideographic space maps to a space
    ("x\u2024com", "U+2024"),  # one dot leader: disallowed, not a dot
    ("\u2488com", "U+2488"),  # "1." digit full stop: disallowed
    ("\ud800.com", "lone surrogate"),
    ("x\U000e0001.com", "U+E0001"),  # language tag
    ("x\u200c.com", "U+200C"),  # a joiner outside its allowed context (CONTEXTJ)
    ("x\u200d.com", "U+200D"),
    ("💩.la", "U+1F4A9"),  # IDNA 2008 refuses symbols: stricter than browsers, fails closed
    ("xn--ls8h.la", "U+1F4A9"),
    ("xn--.com", "not a valid internationalised (xn--) label"),
    ("xn--bcher-.de", "not a valid internationalised (xn--) label"),
    ("xn--abc-.com", "not a valid internationalised (xn--) label"),  # decodes to ASCII
    ("xn---bcher-kva.de", "not a valid internationalised (xn--) label"),  # not canonical
    ("xn--zz-zz-zz.com", "not a valid internationalised (xn--) label"),
    ("ab--ü.de", "hyphens"),  # a U-label with '--' in 3rd and 4th places
    # the last label is numeric, so WHATWG insists on an IPv4 address
    ("example.123", "ends in a number"),
    ("x.0x", "ends in a number"),
    ("1.2.3.4.5", "5 parts"),
    ("09.1.1.1", "not a decimal, octal"),
    ("0x1g.1", "ends in a number"),  # 0x1g is not numeric, but .1 is
    ("256.1.1.1", "over 255"),
    ("1.2.3.256", "last part is too large"),
    ("1.2.65536", "last part is too large"),
    ("4294967296", "last part is too large"),
    ("1.2.3.4.", None),  # valid: listed here to pin that a trailing dot is fine
]


@pytest.mark.parametrize(("raw", "fragment"), INVALID)
def test_invalid_hosts_get_a_clear_error(raw: str, fragment: str | None) -> None:
    result = normalise_host(raw)
    if fragment is None:
        assert isinstance(result, Host)
        return
    assert isinstance(result, HostError), result
    assert result.raw == raw
    assert fragment in result.message


def test_a_non_string_is_an_error_not_an_exception() -> None:
    result = normalise_host(b"x.com")  # type: ignore[arg-type]
    assert result == HostError(raw="<bytes>", message="a host name must be text")


@pytest.fixture
def uncached() -> Iterator[None]:
    """Forget remembered answers, so a test sees the parsing code run."""
    hostnames._normalise_remembered.cache_clear()
    yield
    hostnames._normalise_remembered.cache_clear()


@pytest.mark.usefixtures("uncached")
def test_an_unexpected_failure_inside_is_an_error_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(hostnames, "uts46_remap", broken)
    result = normalise_host("bücher.de")
    assert isinstance(result, HostError)
    assert "boom" in result.message


@pytest.mark.usefixtures("uncached")
def test_only_short_input_is_remembered() -> None:
    long_input = "a" * 400
    for raw in ("x.com", long_input, "x.com", long_input):
        normalise_host(raw)
    info = hostnames._normalise_remembered.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 1, 1)


@pytest.mark.usefixtures("uncached")
def test_canonical_ascii_hosts_do_not_touch_the_idna_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*_args: object, **_kwargs: object) -> str:
        raise AssertionError("the fast path called the idna library")

    monkeypatch.setattr(hostnames, "uts46_remap", forbidden)
    monkeypatch.setattr(idna, "alabel", forbidden)
    monkeypatch.setattr(idna, "ulabel", forbidden)
    for raw in ("x.com", "WWW.X.COM.", "r3---sn-ab.googlevideo.com", "_srv.example.org"):
        assert isinstance(normalise_host(raw), Host)


# --- properties ---------------------------------------------------------------------------

HOSTILE = st.sampled_from(
    [
        *".-_:[]%/@ \t\x00\x7f0123456789abcxX",
        "xn--",
        "0x",
        "\u3002",
        "\uff0e",
        "\u200c",
        "\u200d",
        "\u00ad",
        "ß",
        "ü",
        "\u0308",
        "\u05d0",
        "\u0627",
        "\ud800",
        "\U0001f4a9",
    ]
)


@given(st.one_of(st.text(), st.lists(HOSTILE).map("".join)))
@example("x" * 5000)
@example("[" + "1:" * 600 + "]")
@example("1." * 400)
@settings(max_examples=400)
def test_normalise_never_raises_and_is_idempotent(raw: str) -> None:
    result = normalise_host(raw)
    assert isinstance(result, Host | HostError)
    if isinstance(result, HostError):
        assert result.message
        return
    assert normalise_host(result.name) == result  # normalising its output changes nothing
    assert result.name == result.name.lower()
    assert result.name.isascii()
    assert not result.name.endswith(".")
    assert len(result.name) <= 253


LABEL = st.text(alphabet=string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=12)
ASCII_NAME = st.lists(LABEL, min_size=1, max_size=5).map(".".join)


@given(
    st.one_of(
        ASCII_NAME, st.text(alphabet=string.ascii_letters + string.digits + "-_.x", max_size=40)
    )
)
@settings(max_examples=400)
def test_the_fast_path_agrees_with_the_slow_path(raw: str) -> None:
    fast = normalise_host(raw)
    try:
        slow: Host | HostError = hostnames._slow_path(raw.strip())
    except hostnames._Refused as refused:
        slow = HostError(raw=raw, message=str(refused))
    assert type(fast) is type(slow)
    if isinstance(fast, Host):
        assert fast == slow


FULLWIDTH = {c: chr(ord(c) - 0x21 + 0xFF01) for c in string.ascii_letters + string.digits + "-"}
DOTS = [".", "\u3002", "\uff0e", "\uff61"]
IGNORED = ["\u200b", "\u2060", "\ufeff", "\u00ad", "\u034f", "\ufe0f"]

LISTED = {
    "x": ["x.com", "twitter.com", "t.co", "twimg.com"],
    "instagram": ["instagram.com", "cdninstagram.com"],
    "facebook": ["facebook.com", "fbcdn.net", "fb.me"],
    "social": ["instagram.com", "tiktok.com", "xn--bcher-kva.de", "xn--r8jz45g.xn--zckzah"],
}
UNICODE_FORMS = {"xn--bcher-kva.de": "bücher.de", "xn--r8jz45g.xn--zckzah": "例え.テスト"}
INDEX = DomainIndex.build(LISTED)


@st.composite
def spelling(draw: st.DrawFn, name: str) -> str:
    """Some way a browser would accept of writing `name` (or a subdomain of it)."""
    if draw(st.booleans()):
        name = draw(st.sampled_from(["www", "api", "a-b", "m"])) + "." + name
    if name.endswith(tuple(UNICODE_FORMS)) and draw(st.booleans()):
        for ascii_form, unicode_form in UNICODE_FORMS.items():
            name = name.replace(ascii_form, unicode_form)
    out = []
    for char in name:
        if char == ".":
            out.append(draw(st.sampled_from(DOTS)))
        elif char in FULLWIDTH and draw(st.integers(0, 3)) == 0:
            out.append(FULLWIDTH[char.upper() if draw(st.booleans()) else char])
        else:
            out.append(char.upper() if draw(st.booleans()) else char)
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from(IGNORED)))
    text = "".join(out)
    if draw(st.booleans()):
        text += draw(st.sampled_from(DOTS))
    return draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", " "]))


@given(
    st.sampled_from(sorted({d for ds in LISTED.values() for d in ds})).flatmap(
        lambda name: st.tuples(st.just(name), spelling(name))
    )
)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_any_spelling_of_a_listed_host_gets_its_categories(case: tuple[str, str]) -> None:
    listed, raw = case
    host = normalise_host(raw)
    assert isinstance(host, Host), (raw, host)
    assert is_subdomain_or_same(host.name, listed)
    assert INDEX.categories(host.name) == INDEX.categories(listed) != ()


DOMAIN_LABEL = st.sampled_from(["x", "com", "net", "notx", "xbox", "a", "b-c", "1a", "_s"])
SMALL_NAME = st.lists(DOMAIN_LABEL, min_size=1, max_size=4).map(".".join)


@given(
    st.dictionaries(
        st.sampled_from(["c1", "c2", "c3", "c4"]), st.lists(SMALL_NAME, max_size=6), max_size=4
    ),
    SMALL_NAME,
)
@settings(max_examples=400)
def test_only_the_domain_itself_and_its_subdomains_match(
    lists: dict[str, list[str]], host: str
) -> None:
    index = DomainIndex.build(lists)
    expected: list[str] = []
    suffixes = [host.split(".", i)[-1] for i in range(host.count(".") + 1)]
    for suffix in suffixes:  # most specific first
        for category, domains in lists.items():
            if suffix in domains and category not in expected:
                expected.append(category)
    assert index.categories(host) == tuple(expected)
    for category in index.categories(host):
        assert any(host == d or host.endswith("." + d) for d in lists[category])


# --- label-boundary matching -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "domain", "covered"),
    [
        ("x.com", "x.com", True),
        ("api.x.com", "x.com", True),
        ("a.b.c.x.com", "x.com", True),
        ("xbox.com", "x.com", False),
        ("netx.com", "x.com", False),
        ("notx.com", "x.com", False),
        ("x.com.evil.example", "x.com", False),
        ("x.co", "x.com", False),
        ("com", "x.com", False),
        ("x.com", "", False),
        ("x.com", "com", True),
    ],
)
def test_is_subdomain_or_same(name: str, domain: str, covered: bool) -> None:
    assert is_subdomain_or_same(name, domain) is covered


@pytest.mark.parametrize(
    ("host", "categories"),
    [
        ("x.com", ("x",)),
        ("api.x.com", ("x",)),
        ("pbs.twimg.com", ("x",)),
        ("xbox.com", ()),
        ("netx.com", ()),
        ("notx.com", ()),
        ("x.co", ()),
        ("www.instagram.com", ("instagram", "social")),
        ("facebook.com.evil.example", ()),
        ("www.facebook.com", ("facebook",)),
        ("evil.example", ()),
        ("com", ()),
    ],
)
def test_index_matches_on_label_boundaries(host: str, categories: tuple[str, ...]) -> None:
    assert INDEX.categories(host) == categories


def test_a_host_under_a_listed_domain_only_gets_that_domains_categories() -> None:
    index = DomainIndex.build({"facebook": ["facebook.com"], "other": ["evil.example"]})
    assert index.categories("facebook.com.evil.example") == ("other",)


def test_categories_come_most_specific_suffix_first_without_duplicates() -> None:
    index = DomainIndex.build(
        {
            "broad": ["example.com"],
            "cdn": ["cdn.example.com", "example.com"],
            "deep": ["img.cdn.example.com"],
        }
    )
    assert index.categories("img.cdn.example.com") == ("deep", "cdn", "broad")
    assert index.categories("x.img.cdn.example.com") == ("deep", "cdn", "broad")
    assert index.categories("cdn.example.com") == ("cdn", "broad")
    assert index.categories("example.com") == ("broad", "cdn")
    assert index.categories("other.example.com") == ("broad", "cdn")


def test_ip_literals_can_be_listed_and_match_exactly() -> None:
    index = DomainIndex.build({"doh": ["1.1.1.1", "2606:4700:4700::1111", "dns.google"]})
    for raw in ("1.1.1.1", "0x01010101", "16843009", "[2606:4700:4700:0::1111]"):
        host = normalise_host(raw)
        assert isinstance(host, Host)
        assert index.categories(host.name) == ("doh",)
    assert index.categories("1.1.1.2") == ()
    assert index.categories("8.8.8.8") == ()
    assert index.categories("dns.google") == ("doh",)


def test_index_length_counts_distinct_domains() -> None:
    index = DomainIndex.build({"a": ["x.com", "y.com", "x.com"], "b": ["x.com"], "c": []})
    assert len(index) == 2
    assert len(INDEX) == 12  # instagram.com is in two categories, counted once
    assert "2 domains in 3 categories" in repr(index)


def test_the_empty_index_matches_nothing() -> None:
    empty = DomainIndex.empty()
    assert len(empty) == 0
    assert empty.categories("x.com") == ()
    assert DomainIndex.empty() is empty
    assert DomainIndex.build({}).categories("x.com") == ()
    assert DomainIndex.build({"a": []}).categories("x.com") == ()


@pytest.mark.parametrize(
    ("lists", "fragment"),
    [
        ({"x": ["X.com"]}, "'X.com' is not in canonical form; write it as 'x.com'"),
        ({"x": ["x.com."]}, "write it as 'x.com'"),
        ({"x": ["bücher.de"]}, "write it as 'xn--bcher-kva.de'"),
        ({"x": ["127.1"]}, "write it as '127.0.0.1'"),
        ({"x": ["[::1]"]}, "write it as '::1'"),
        ({"social": ["ok.com", "bad host.com"]}, "category 'social': 'bad host.com' is not a host"),
        ({"x": [""]}, "is empty"),
        ({"x": "x.com"}, "expected a list of domains"),
        ({"x": [3]}, "not text"),
        ({"": ["x.com"]}, "non-empty"),
    ],
)
def test_build_refuses_entries_that_are_not_canonical(
    lists: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValueError, match="category") as raised:
        DomainIndex.build(lists)  # type: ignore[arg-type]
    assert fragment in str(raised.value)


def test_build_accepts_any_iterable_of_domains() -> None:
    index = DomainIndex.build({"x": (d for d in ["x.com", "t.co"])})
    assert index.categories("t.co") == ("x",)


def test_remembered_answers_stay_right_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostnames, "_RECENT_LIMIT", 4)
    index = DomainIndex.build({"x": ["x.com"], "y": ["y.org"]})
    hosts = [f"h{i}.x.com" for i in range(10)] + [f"h{i}.y.org" for i in range(10)]
    for _ in range(2):
        for host in hosts:
            assert index.categories(host) == (("x",) if host.endswith("x.com") else ("y",))
            assert len(index._recent) <= 4
    assert index.categories("other.net") == ()


def test_the_index_cannot_be_sent_to_another_process() -> None:
    with pytest.raises(TypeError, match="build it there"):
        pickle.dumps(INDEX)
    assert copy.copy(INDEX) is INDEX
    assert copy.deepcopy({"index": INDEX})["index"] is INDEX


# --- page-rewriting proxies --------------------------------------------------------------------


def _amp_label(host: str) -> str:
    """How the AMP cache writes `host` into a label (amp-toolbox cache-url's algorithm)."""
    text = idna.decode(host).replace("-", "--").replace(".", "-")
    return text if text.isascii() else "xn--" + text.encode("punycode").decode("ascii")


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("www-instagram-com.translate.goog", "www.instagram.com"),
        ("www-bbc-co-uk.translate.goog", "www.bbc.co.uk"),
        ("x-com.translate.goog", "x.com"),
        ("my--site-example-com.translate.goog", "my-site.example.com"),
        ("a----b-example-org.translate.goog", "a--b.example.org"),
        ("www---instagram-com.translate.goog", "www-.instagram.com"),  # '---' reads as '-.'
        ("0-bcher--kva-de.translate.goog", "xn--bcher-kva.de"),  # IDN: "0-" stands for "xn--"
        ("0-example-com.translate.goog", "0.example.com"),  # not an A-label: read literally
        ("1-example-com.translate.goog", "1.example.com"),  # still under example.com
        ("xn--bcher-de-65a.translate.goog", "xn--bcher-kva.de"),  # a whole-label Unicode form
        ("www-example-com.cdn.ampproject.org", "www.example.com"),
        ("amp--cloud-de.cdn.ampproject.org", "amp-cloud.de"),
        (_amp_label("xn--bcher-kva.de") + ".cdn.ampproject.org", "xn--bcher-kva.de"),
        ("0-ab----cd-com-0.cdn.ampproject.org", "ab--cd.com"),
        ("www-example-com.www.bing-amp.com", "www.example.com"),
    ],
)
def test_unwrap_rewriting_proxy(name: str, target: str) -> None:
    assert normalise_host(name) == Host(name)  # the inputs are canonical names
    assert unwrap_rewriting_proxy(name) == target


@pytest.mark.parametrize(
    "name",
    [
        "translate.goog",
        "www.translate.goog",  # decodes to one label, not a host
        "a.b-com.translate.goog",  # deeper than the proxy's one-label scheme
        "nottranslate.goog",
        "translate.goog.evil.example",
        "www-instagram-com.translate.goog.evil.example",
        "www-instagram-com.example.com",
        "www.instagram.com",
        "x.com",
        "127.0.0.1",
        "::1",
        "example-123.translate.goog",  # "example.123" ends in a number and is not IPv4
        "xn--zz-zz-zz.translate.goog",  # not valid Punycode
        "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst.cdn.ampproject.org",  # hashed
        "cdn.ampproject.org",
    ],
)
def test_only_known_proxy_hosts_are_unwrapped(name: str) -> None:
    assert unwrap_rewriting_proxy(name) is None


@given(ASCII_NAME)
@settings(max_examples=300)
def test_unwrapped_targets_are_canonical_and_shorter(prefix_source: str) -> None:
    label = prefix_source.replace(".", "-")[:63]
    assume(label)
    for suffix in (".translate.goog", ".cdn.ampproject.org"):
        name = label + suffix
        host = normalise_host(name)
        assume(isinstance(host, Host))
        target = unwrap_rewriting_proxy(name)
        if target is not None:
            again = normalise_host(target)
            assert isinstance(again, Host)
            assert again.name == target
            assert len(target) < len(name)  # so unwrapping again always ends


# --- exact hosts in the index ("full:") ----------------------------------------------------------


def test_an_exact_host_matches_itself_only_and_comes_first() -> None:
    index = DomainIndex.build(
        {"cdn": ["fastly.example"], "x": ["full:twitter.map.fastly.example", "x.com"]}
    )
    assert index.categories("twitter.map.fastly.example") == ("x", "cdn")
    assert index.categories("a.twitter.map.fastly.example") == ("cdn",)
    assert index.categories("map.fastly.example") == ("cdn",)
    assert index.categories("api.x.com") == ("x",)


@pytest.mark.parametrize("host", ["twitter.map.fastly.net", "dualstack.twitter.map.fastly.net"])
def test_an_index_of_exact_hosts_alone_matches_nothing_else(host: str) -> None:
    index = DomainIndex.build({"cdn_host": [f"full:{host}"]})
    assert index.categories(host) == ("cdn_host",)
    for other in ("map.fastly.net", "fastly.net", f"www.{host}", "net", "other.map.fastly.net"):
        assert index.categories(other) == (), other


def test_the_index_adds_the_classes_a_name_shows_when_it_has_their_categories() -> None:
    # policy/hostclass.py: lookalikes, front-ends, .onion names, platform CDN names
    index = DomainIndex.build(
        {
            "facebook": ["facebook.com"],
            "x": ["x.com"],
            "tor": [],
            "lookalike": [],
            "platform_frontend": [],
        }
    )
    assert index.categories("faceb00k.com") == ("lookalike",)
    assert index.categories("nitter.net") == ("platform_frontend",)
    assert index.categories("abc.onion") == ("tor",)
    assert index.categories("www.twitter.map.fastly.net") == ("x",)
    assert index.categories("facebook.de") == ("facebook",)
    assert index.categories("www.facebook.com") == ("facebook",)
    assert index.categories("192.0.2.1") == ()
    plain = DomainIndex.build({"blocked": ["facebook.com"]})
    assert plain.categories("faceb00k.com") == ()
    assert plain.categories("nitter.net") == ()


def test_a_bad_exact_host_is_refused_with_the_category() -> None:
    with pytest.raises(ValueError, match=r"category 'x'.*'Twitter\.Map\.Fastly\.Net'"):
        DomainIndex.build({"x": ["full:Twitter.Map.Fastly.Net"]})
