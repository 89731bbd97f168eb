"""What a host is by the shape of its name, where no list can keep up: the classes of docs/lists.md.

`name_categories(known, name, listed)` adds, to the categories the lists gave a canonical host
name, those its name alone shows: a lookalike (a Unicode confusable or typo-squat) of a
protected platform's domain, a front-end, mirror or viewer of X or Instagram, an anonymity
network's special-use name (.onion ...), Instagram served from Meta's shared CDN, a platform's
own name under a shared CDN, a name that advertises a proxy or VPN, a platform's brand under
another country's suffix, and a name under a top-level domain made for adult content. Pure:
the Public Suffix List and the Unicode confusables come from the data the `publicsuffixlist`
and `confusable-homoglyphs` packages ship, read once at import.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Container, Iterable
from importlib import resources

from publicsuffixlist import PublicSuffixList

__all__ = [
    "ADULT_TLDS",
    "BUILT_AROUND",
    "DERIVED_CATEGORIES",
    "FRONTEND",
    "LOOKALIKE",
    "PROTECTED_DOMAINS",
    "cdn_platform",
    "circumvention_word",
    "name_categories",
    "registrable_domain",
    "skeleton",
    "special_use",
]

LOOKALIKE = "lookalike"  # the category (and circumvention technique) of a lookalike domain
FRONTEND = "platform_frontend"  # ... of a third-party front-end, mirror or viewer
_TOR = "tor"

# The registrable domains of the protected platforms, with the category each belongs to. A
# host whose registrable domain is confusable with one of these (but is not one of them) is a
# lookalike. Kept to the names people type and click; the lists hold the rest.
PROTECTED_DOMAINS: dict[str, str] = {
    "x.com": "x",
    "twitter.com": "x",
    "t.co": "x",
    "twimg.com": "x",
    "instagram.com": "instagram",
    "cdninstagram.com": "instagram",
    "instagr.am": "instagram",
    "ig.me": "instagram",
    "facebook.com": "facebook",
    "fb.com": "facebook",
    "fb.me": "facebook",
    "fbcdn.net": "facebook",
    "facebook.net": "facebook",
    "messenger.com": "facebook",
    "m.me": "facebook",
    "fb.watch": "facebook",
    "tiktok.com": "social",
    "tiktokv.com": "social",
    "tiktokcdn.com": "social",
    "snapchat.com": "social",
    "whatsapp.com": "social",
    "whatsapp.net": "social",
    "wa.me": "social",
    "discord.com": "social",
    "discord.gg": "social",
    "discordapp.com": "social",
    "reddit.com": "social",
    "redd.it": "social",
    "threads.net": "social",
    "threads.com": "social",
    "telegram.org": "social",
    "t.me": "social",
}

# Brand names that are the platform's own under any public suffix (facebook.de,
# instagram.co.uk, twitter.jp): Meta, X, ByteDance, Snap, Discord and Reddit hold their
# country-code variants defensively and redirect them to the main site. Only distinctive
# names: short or ordinary words (x, threads, signal, messenger) are never matched this way.
BRANDS: dict[str, str] = {
    "twitter": "x",
    "instagram": "instagram",
    "facebook": "facebook",
    "tiktok": "social",
    "snapchat": "social",
    "whatsapp": "social",
    "discord": "social",
    "reddit": "social",
    "musically": "social",
    "douyin": "social",
}

# Long brand names whose typo-squats (within this many edits or swaps: faceboook, instgram,
# imtagram) and names built around them (wwwfacebook, facebook-login, snapchat-hack) are
# lookalikes unless the platform's own list names them. Shorter names (twitter ~ twister,
# discord ~ discard, reddit ~ redditch) would catch ordinary words, so they are not here;
# labels containing "twitter" or "instagram" are front-ends (below).
TYPO_BRANDS: dict[str, tuple[int, str]] = {
    "facebook": (2, "facebook"),
    "instagram": (2, "instagram"),
    "snapchat": (1, "social"),
    "whatsapp": (1, "social"),
}
# Ordinary names within those distances, never lookalikes.
NOT_TYPOS = frozenset(
    {
        "casebook",
        "facebank",
        "racebook",
        "pacebook",
        "notebook",
        "whatsup",
        "snapchap",
        "snapcat",
        "instagrab",
    }
)

# Brands whose name inside a longer registrable name (tiktokviewer, tiktok-downloader,
# savetiktok) marks a viewer or downloader of that platform: it shows the platform's videos on a
# site of its own, so it counts as the platform (social: never for pupils, staff at break). X
# and Instagram have the front-end rule below instead; Facebook and Snapchat the lookalike rule.
BUILT_AROUND: dict[str, str] = {"tiktok": "social"}

# Words in a registrable domain's own name that advertise a way round the filter: proxy and
# unblocker sites (croxyproxy, proxysite, unblockit, "unblocked games"), VPN providers
# (nordvpn, hotspotvpn, vpnbook), Tor2web gateways (onion.ly, onion.ws, tor2web.org). Only
# the registrable name is read, never a subdomain: vpn.trust.org.uk or proxy.school.uk are a
# school's own services. Applied only to hosts no list names.
CIRCUMVENTION_WORDS: dict[str, str] = {
    "proxy": "web_proxy",
    "unblock": "web_proxy",
    "vpn": "vpn",
    "tor2web": _TOR,
}
# ...and the whole-name Tor2web gateway brand
TOR2WEB_NAMES = frozenset({"onion", "tor2web"})
# Names that carry such a word for an ordinary reason.
NOT_CIRCUMVENTION = frozenset({"proxyvote", "proxymity"})

# Special-use and alternative-root top-level names (RFC 7686 .onion; Tor's .exit; I2P's .i2p;
# Lokinet's .loki; RFC 9476 .alt, the namespace for names outside the DNS such as GNS):
# only an anonymity network or another name system resolves them, so asking for one is using
# it. Local names (.local, .localhost, .internal, .home.arpa, .test) are not a way round the
# filter and are left to the gateway's address checks.
ANONYMITY_TLDS = frozenset({"onion", "exit", "i2p", "loki", "alt"})

# Top-level domains ICANN delegated for adult content (.xxx, sponsored, 2011; .porn, .adult and
# .sex, 2015): every name under them is pornography's (v2fly's category-porn lists .adult and
# .porn whole; a list file can only hold names under a TLD, so the rule does it).
ADULT = "adult"
ADULT_TLDS = frozenset({"xxx", "porn", "adult", "sex"})

# Front-end and viewer software named in a host's labels (a whole '-'-separated token, or the
# token followed by digits: nitter.net, nitter.poast.org, nitter-2.example.org), per
# zedeus/nitter's instance wiki, Bibliogram's and Proxigram's, Redlib's and ProxiTok's docs.
FRONTEND_SOFTWARE = (
    "nitter",
    "bibliogram",
    "proxigram",
    "libreddit",
    "redlib",
    "teddit",
    "proxitok",
    "xcancel",
    "twiiit",
)
# A label carrying the platform's name inside a longer word is a fixer, mirror or viewer:
# fxtwitter, vxtwitter, ddinstagram, kkinstagram, instagramez, twitterviewer ...
FRONTEND_INFIXES = ("twitter", "instagram")
# "insta" + a viewer word (saveinsta, instastories, instadp, snapinsta, insta-stalker ...);
# "insta" followed by n or l is the start of an ordinary word (instant, install, instance).
_INSTA = re.compile(r"insta(?![nl])")
_VIEWER_WORDS = re.compile(
    r"view|stalk|stor(?:y|ies)|save|download|dl|dp|anon|reel|gram|navigat|snap|fix|zoom|"
    r"follow|profile|pic|photo|video|ssss?|fetch|look|hunt|peek|spy|highlight"
)

# Hosts under Meta's shared CDN and edge whose labels name Instagram or WhatsApp are those
# apps, not Facebook: instagram.flhr8-1.fna.fbcdn.net, z-p42-instagram.c10r.facebook.com,
# whatsapp-cdn-shv-01-lhr8.fbcdn.net (cdninstagram.com is in the Instagram list whole).
_META_CDNS = ("fbcdn.net", "facebook.com", "facebook.net")
_META_APPS = (("instagram", "instagram"), ("whatsapp", "social"))
_PLATFORM_CATEGORIES = frozenset({"x", "instagram", "facebook"})

# CDNs that thousands of sites share, whose customers' host names carry the customer's name:
# twitter.map.fastly.net, dualstack.reddit.map.fastly.net, instagramstatic-a.akamaihd.net,
# p16-tiktokcdn-com.akamaized.net. A host under one of them whose label (or a '-'-separated
# part of one) starts with a platform's name is that platform's; the CDN itself never is.
SHARED_CDNS = (
    "map.fastly.net",
    "global.ssl.fastly.net",
    "akamaihd.net",
    "akamaized.net",
    "edgekey.net",
    "edgesuite.net",
    "akamaiedge.net",
)
CDN_NAMES: dict[str, str] = {
    "twitter": "x",
    "twimg": "x",
    "instagram": "instagram",
    "fbcdn": "facebook",
    "fbexternal": "facebook",
    "fbstatic": "facebook",
    "facebook": "facebook",
    "tiktok": "social",
    "bytedance": "social",
    "snapchat": "social",
    "reddit": "social",
    "discord": "social",
    "whatsapp": "social",
}

# Every category name_categories can add: an index without any of them skips the work.
DERIVED_CATEGORIES = frozenset(
    {
        LOOKALIKE,
        FRONTEND,
        _TOR,
        ADULT,
        *PROTECTED_DOMAINS.values(),
        *BRANDS.values(),
        *CDN_NAMES.values(),
        *CIRCUMVENTION_WORDS.values(),
        *BUILT_AROUND.values(),
    }
)

_PSL = PublicSuffixList(only_icann=True)  # ICANN section only: github.io is not a suffix


def registrable_domain(name: str) -> str | None:
    """The registrable domain ("eTLD+1") of canonical `name`, from the ICANN section of the
    Public Suffix List; None for a public suffix itself or a single label."""
    found = _PSL.privatesuffix(name)
    return found if isinstance(found, str) else None


def special_use(name: str) -> str | None:
    """The category of an anonymity network's special-use name (`tor`), else None."""
    last = name.rpartition(".")[2]
    return _TOR if last in ANONYMITY_TLDS else None


def _load_confusables() -> dict[str, str]:
    """Each character confusable with an ASCII letter or digit -> that letter or digit.

    confusable-homoglyphs ships Unicode's confusables.txt as char -> its homoglyphs, in both
    directions; the prototype of a pair is the ASCII side, so this keeps what maps to ASCII."""
    text = (
        resources.files("confusable_homoglyphs")
        .joinpath("confusables.json")
        .read_text(encoding="utf-8")
    )
    data: dict[str, list[dict[str, str]]] = json.loads(text)
    to_ascii: dict[str, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1:
            continue
        targets = [g["c"] for g in glyphs]
        if char.isascii():
            if not char.isalnum():
                continue
            for glyph in targets:  # e.g. 'a' lists Cyrillic 'а' among its homoglyphs
                if len(glyph) == 1 and not glyph.isascii():
                    to_ascii.setdefault(glyph, char.lower())
            continue
        ascii_targets = [g for g in targets if len(g) == 1 and g.isascii() and g.isalnum()]
        if ascii_targets:
            # prefer a lowercase letter, then a digit, then a capital (lowered)
            best = min(ascii_targets, key=lambda g: (not g.islower(), not g.isdigit()))
            to_ascii[char] = best.lower()
    return to_ascii


_TO_ASCII = _load_confusables()
# Letters that look like 'x' in a browser's address bar but that confusables.txt does not pair
# with it (Greek chi, Latin chi, Cyrillic ha with descender or hook, x with a palatal hook):
# each spells X's own name (χ.com) with nothing to catch it otherwise.
_TO_ASCII.update(dict.fromkeys("\u03c7\uab53\u04b3\u04fd\u04ff\u1d8d", "x"))
# ASCII that UTS #39 itself reads as other ASCII (confusables.txt: 0 -> O, 1 -> l, rn -> m,
# vv -> w, cl -> d), applied after lowercasing.
_ASCII_DIGITS = str.maketrans({"0": "o", "1": "l"})
_ASCII_SEQUENCES = (("rn", "m"), ("vv", "w"), ("cl", "d"))


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of `text`, folded to lowercase ASCII where Unicode says a character
    is confusable with one; combining marks are dropped as well (fácebook reads as facebook,
    as browsers' spoof checks do). A-labels ("xn--...") are read as their Unicode first."""
    if "xn--" in text:
        text = ".".join(_ulabel(label) for label in text.split("."))
    if text.isascii():  # the common case: only UTS #39's ASCII-to-ASCII pairs apply
        folded = text.lower().translate(_ASCII_DIGITS)
        for sequence, replacement in _ASCII_SEQUENCES:
            folded = folded.replace(sequence, replacement)
        return folded
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    chars = [_TO_ASCII.get(c, c) for c in decomposed if unicodedata.category(c) != "Mn"]
    folded = "".join(chars).casefold().translate(_ASCII_DIGITS)
    for sequence, replacement in _ASCII_SEQUENCES:
        folded = folded.replace(sequence, replacement)
    return unicodedata.normalize("NFC", folded)


def _ulabel(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        return label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return label


_PROTECTED_SKELETONS: dict[str, str] = {skeleton(d): d for d in PROTECTED_DOMAINS}
_BRAND_SKELETONS: dict[str, str] = {skeleton(b): b for b in BRANDS}
# The same with 'l' read as 'i' (twltter, redd1t, whatsapp with a capital I shown as l): UTS #39
# does not call them confusable, but in most fonts they are. Only for whole brand labels, which
# are long and distinctive; never for short domains (lg.me is not ig.me).
_BRAND_LOOSE: dict[str, str] = {skeleton(b).replace("l", "i"): b for b in BRANDS}


def _lookalike_of(registrable: str, listed: tuple[str, ...]) -> str | None:
    """The protected domain or brand `registrable` imitates, if it is a confusable, a typo-squat
    or a name built around the brand, and not the platform's own (listed) name."""
    if registrable in PROTECTED_DOMAINS:
        return None
    shape = skeleton(registrable)
    imitated = _PROTECTED_SKELETONS.get(shape)
    if imitated is not None:
        return imitated
    label = shape.partition(".")[0]
    own = registrable.partition(".")[0]
    brand = _BRAND_SKELETONS.get(label) or _BRAND_LOOSE.get(label.replace("l", "i"))
    if brand is not None:
        return brand if own != brand else None  # f\u0430cebook.de, faceb00k.co.uk
    if any(infix in label for infix in FRONTEND_INFIXES):
        return None  # fxtwitter, ddinstagram, instagramez: front-ends, found below
    for brand, (distance, category) in TYPO_BRANDS.items():
        if category in listed or own == brand or label in NOT_TYPOS:
            continue  # the platform's own names (facebookmail.com) are in its list
        if brand in label or _within(label, brand, distance):
            return brand  # faceboook.com, instgram.com, wwwfacebook.com, facebook-login.com
    return None


def _within(text: str, target: str, limit: int) -> bool:
    """Whether the optimal-string-alignment distance (edits, adjacent swaps) is <= limit."""
    if abs(len(text) - len(target)) > limit or len(set(target) - set(text)) > limit:
        return False  # each letter of the target that `text` lacks costs at least one edit
    previous2: list[int] = []
    previous = list(range(len(target) + 1))
    for i, char in enumerate(text, start=1):
        current = [i]
        for j, wanted in enumerate(target, start=1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != wanted))
            if i > 1 and j > 1 and char == target[j - 2] and text[i - 2] == wanted:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        if min(current) > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


def circumvention_word(label: str) -> str | None:
    """The circumvention category a registrable name's own label advertises, else None:
    'croxyproxy' -> web_proxy, 'nordvpn' -> vpn, 'onion' (onion.ly) -> tor."""
    if label in NOT_CIRCUMVENTION:
        return None
    if label in TOR2WEB_NAMES:
        return _TOR
    for word, category in CIRCUMVENTION_WORDS.items():
        if word in label:
            return category
    return None


def _meta_app(name: str) -> str | None:
    """Instagram's or WhatsApp's category for their hosts on Meta's CDN and edge, else None."""
    if not _under(name, _META_CDNS):
        return None
    labels = name.split(".")[:-2]
    for word, category in _META_APPS:
        if any(word in label for label in labels):
            return category
    return None


def _under(name: str, domains: tuple[str, ...]) -> bool:
    return any(name == d or name.endswith("." + d) for d in domains)


def cdn_platform(name: str) -> str | None:
    """The category of a platform's own host under a shared CDN (twitter.map.fastly.net ->
    x), else None; the CDN's own names and its other customers' are None."""
    for cdn in SHARED_CDNS:
        if name.endswith("." + cdn):
            for label in name[: -len(cdn) - 1].split("."):
                for token in label.split("-"):
                    for brand, category in CDN_NAMES.items():
                        if token.startswith(brand):
                            return category
            return None
    return None


_SOFTWARE_TOKEN = re.compile(rf"(?:^|-)(?:{'|'.join(FRONTEND_SOFTWARE)})[0-9]*(?:-|$)")


def _is_frontend(labels: Iterable[str]) -> bool:
    for label in labels:
        if _SOFTWARE_TOKEN.search(label):
            return True
        if label in FRONTEND_INFIXES:
            continue  # the platform's own name: a regional domain, not a front-end
        if any(infix in label for infix in FRONTEND_INFIXES):
            return True
        if _INSTA.search(label) and _VIEWER_WORDS.search(_INSTA.sub("", label)):
            return True
    return False


# The protected platforms' own web domains: carried whole in front of another registrable
# domain (www.instagram.com.proxy.example, facebook.com.mirror.example.org) they are the shape of
# a suffix proxy, which shows the site under its own name (a proxy for everyone, even for staff
# at break: they have the site itself). Short links (t.co, fb.me, wa.me) are left out: two
# letters in front of another name are as likely a coincidence as a proxy.
_FRONTED_DOMAINS = tuple(d for d in PROTECTED_DOMAINS if d.endswith((".com", ".net")))


def _embeds_platform(inner: str) -> bool:
    padded = f".{inner}."
    return any(f".{domain}." in padded for domain in _FRONTED_DOMAINS)


def name_categories(
    known: Container[str],
    name: str,
    listed: tuple[str, ...],
) -> tuple[str, ...]:
    """The categories of canonical host `name`: `listed` (what the lists said, most specific
    first) with what the name itself shows, most specific first. Only categories in `known`
    (the policy's) are added. `name` is a host name, never an IP literal."""
    found: list[str] = []
    last = name.rpartition(".")[2]
    if last in ANONYMITY_TLDS:
        found.append(_TOR)
    elif last in ADULT_TLDS:
        found.append(ADULT)
    registrable = registrable_domain(name)
    if registrable is not None and LOOKALIKE in known and _lookalike_of(registrable, listed):
        found.append(LOOKALIKE)
    cdn = cdn_platform(name)
    if cdn is not None:
        found.append(cdn)  # the platform's own name under a shared CDN: not a front-end
    elif (app := _meta_app(name)) is not None:
        found.append(app)  # Instagram on Meta's CDN: more specific than Facebook
    elif FRONTEND in known and not _PLATFORM_CATEGORIES.intersection(listed):
        inner = name[: -len(registrable) - 1] if registrable and registrable != name else ""
        labels = [*inner.split(".")] if inner else []
        if registrable is not None:
            labels.append(registrable.partition(".")[0])
        if _is_frontend(labels) or (inner and _embeds_platform(inner)):
            found.append(FRONTEND)
    if not listed and not found and registrable is not None:
        word = circumvention_word(registrable.partition(".")[0])
        if word is not None:
            found.append(word)
    if registrable is not None and LOOKALIKE not in found:
        label = registrable.partition(".")[0]
        brand = BRANDS.get(label)
        if brand is not None and brand in known and brand not in listed:
            found.append(brand)  # facebook.de, twitter.co.uk: a regional domain
        elif brand is None and not listed:
            found.extend(c for infix, c in BUILT_AROUND.items() if infix in label)  # tiktokviewer
    if not found:
        return listed
    extra = [c for c in dict.fromkeys(found) if c in known and c not in listed]
    return (*extra, *listed) if extra else listed
