"""Host names, read the way a browser reads them, and matched by domain suffix.

`normalise_host` turns any spelling of a host (case, trailing dot, IDNA/UTS #46 forms, IPv4 in
every WHATWG spelling, bracketed IPv6 with zones) into one canonical `Host`, or a `HostError`
that says what was wrong; it never raises. `DomainIndex` maps canonical domains to categories
on label boundaries, and `unwrap_rewriting_proxy` reads the target out of proxy host names.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NoReturn, Self

import idna
from idna.core import uts46_remap

from schoolgate.policy.hostclass import DERIVED_CATEGORIES, name_categories

__all__ = [
    "EXACT_PREFIX",
    "DomainIndex",
    "Host",
    "HostError",
    "is_subdomain_or_same",
    "normalise_host",
    "unwrap_rewriting_proxy",
]

# A list entry "full:<host>" covers that host only, not its subdomains (v2fly's spelling).
EXACT_PREFIX = "full:"
MAX_NAME_LENGTH = 253  # RFC 1035 limit on a name's text form, without the trailing dot
MAX_LABEL_LENGTH = 63
# Longer input is refused before any Unicode work, so hostile headers cost little.
MAX_INPUT_LENGTH = 1024
_REMEMBER_UP_TO = 300  # longer input is read afresh each time, so the cache stays small

# Only ASCII whitespace is forgiven around a host; a browser would refuse anything else.
_SURROUNDING_SPACE = " \t\n\r\f\v"
# The fast path: lowercase LDH labels plus '_' (real hosts use it), at most one trailing dot,
# and a last label that is not a number (WHATWG reads those as IPv4). Names with an 'xn--'
# label take the slow path, where the A-label is checked.
_CANONICAL_ASCII = re.compile(
    r"(?:[a-z0-9_-]{1,63}\.)*(?!(?:[0-9]+|0x[0-9a-f]*)\.?\Z)[a-z0-9_-]{1,63}\.?"
)
_ASCII_LABEL = re.compile(r"[a-z0-9_-]+")
_ALLOWED_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
# WHATWG "ends in a number": the last label is decimal digits, or 0x and hex digits.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
_DECIMAL = re.compile(r"[0-9]+")
_OCTAL = re.compile(r"[0-7]+")
_HEX = re.compile(r"[0-9a-fA-F]*")
_IPV6_TEXT = re.compile(r"[0-9A-Fa-f:.]+")
_URL_PART = re.compile(r"[/?#@\\]")
_PORT_HINT = (
    "':' is only allowed in an IPv6 address, and this is not one; a host name never "
    "carries a port (remove ':port')"
)


@dataclass(frozen=True, slots=True)
class Host:
    """A canonical host: lowercase ASCII, IDN labels as A-labels, no trailing dot.

    For an IP literal `name` is the address's canonical text ("192.0.2.1", "2001:db8::1": no
    brackets, no zone) and `ip` the address; an IPv4-mapped IPv6 address is its IPv4 address.
    """

    name: str
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None


@dataclass(frozen=True, slots=True)
class HostError:
    """A host that could not be understood; `message` says why, for a technician."""

    raw: str
    message: str


class _Refused(Exception):
    """Internal: carries a HostError message out of the parsing helpers."""


def _refuse(message: str) -> NoReturn:
    raise _Refused(message)


def normalise_host(raw: str) -> Host | HostError:
    """The canonical `Host` for `raw` as received (Host header, SNI, CONNECT), or why not.

    Never raises: anything that cannot be understood is a HostError, so callers fail closed.
    Recent answers are remembered (a bounded LRU), so a host seen before costs one lookup.
    """
    if not isinstance(raw, str):
        return HostError(raw=f"<{type(raw).__name__}>", message="a host name must be text")
    return _normalise_remembered(raw)


def _read_host(raw: str) -> Host | HostError:
    try:
        return _normalise(raw)
    except _Refused as refused:
        return HostError(raw=raw, message=str(refused))
    except Exception as exc:  # the contract is "never raises": a crash here would fail open
        return HostError(raw=raw, message=f"could not be read as a host name ({exc!r})")


class ShortNameMemo[K: str | bytes, T]:
    """`function(name)`, remembered in a bounded LRU for names of at most `longest` characters:
    the same few thousand hosts come back all day. A longer name (never a real host) is
    answered afresh and not remembered, so a flood of made-up or huge names costs no memory."""

    def __init__(self, function: Callable[[K], T], *, longest: int, size: int) -> None:
        self._function: Callable[[K], T] = function
        self._longest = longest
        self._remembered: functools._lru_cache_wrapper[T] = functools.lru_cache(maxsize=size)(
            function
        )

    def __call__(self, name: K) -> T:
        if len(name) > self._longest:
            return self._function(name)
        return self._remembered(name)

    def cache_info(self) -> functools._CacheInfo:
        return self._remembered.cache_info()

    def cache_clear(self) -> None:
        self._remembered.cache_clear()


# Building even a frozen Host costs more than a cache hit. (Building an index reads its
# entries with _read_host, so a reload does not flush this.)
_normalise_remembered = ShortNameMemo(_read_host, longest=_REMEMBER_UP_TO, size=16384)


def _normalise(raw: str) -> Host:
    text = raw.strip(_SURROUNDING_SPACE)
    if len(text) <= MAX_NAME_LENGTH + 1 and text.isascii():
        name = text.lower()
        if _CANONICAL_ASCII.fullmatch(name) is not None and "xn--" not in name:
            if name[-1] == ".":
                name = name[:-1]
            if len(name) <= MAX_NAME_LENGTH:
                return Host(name)
    return _slow_path(text)


def _slow_path(text: str) -> Host:
    if not text:
        _refuse("the host name is empty")
    if len(text) > MAX_INPUT_LENGTH:
        _refuse(
            f"the host name is {len(text)} characters long; no host name is longer than "
            f"{MAX_NAME_LENGTH}"
        )
    if text.startswith("["):
        if not text.endswith("]"):
            _refuse(
                "an IPv6 address in brackets must end with ']' (and a port is not part of "
                "a host: remove ':port')"
            )
        return _ipv6(text[1:-1], bracketed=True)
    url_part = _URL_PART.search(text)
    if url_part is not None:
        _refuse(
            f"contains {_describe(url_part.group())} at position {url_part.start() + 1}: "
            "give the host name alone, not a URL or user@host"
        )
    if ":" in text:
        if _IPV6_TEXT.fullmatch(text.partition("%")[0]):
            return _ipv6(text, bracketed=False)
        _refuse(_PORT_HINT)
    _check_characters(text, text)
    try:
        mapped = uts46_remap(text, std3_rules=False)
    except idna.IDNAError as exc:
        # idna >= 3.11 says which code point and where; older versions only in the text
        codepoint: int | None = getattr(exc, "codepoint", None)
        position: int | None = getattr(exc, "position", None)
        if codepoint is None:
            _refuse(f"cannot be read as an internationalised name: {exc}")
        where = f" at position {position}" if position else ""
        _refuse(
            f"contains {_describe(chr(codepoint))}{where}, which browsers do not allow "
            "in a host name"
        )
    if mapped != text.lower():
        _check_characters(mapped, text, mapped_from=True)
    if mapped.endswith("."):
        mapped = mapped[:-1]
    if not mapped:
        _refuse("the host name is empty")
    labels = mapped.split(".")
    if "" in labels:
        _refuse("has an empty label (a leading dot, or two dots in a row)")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return _ipv4(labels)
    name = ".".join(_to_ascii_label(label) for label in labels)
    if len(name) > MAX_NAME_LENGTH:
        _refuse(f"the host name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    return Host(name)


def _check_characters(text: str, raw: str, *, mapped_from: bool = False) -> None:
    """Refuse ASCII that is never part of a host name (STD3 letters, digits, '-', '_', '.')."""
    for position, char in enumerate(text, start=1):
        if char.isascii() and char not in _ALLOWED_ASCII:
            if mapped_from:
                _refuse(
                    f"a character in {raw!r} stands for {_describe(char)}, which is not "
                    "allowed in a host name"
                )
            _refuse(
                f"contains {_describe(char)} at position {position}, which is not allowed "
                "in a host name"
            )


def _describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    name = unicodedata.name(char, "")
    if not name:
        category = unicodedata.category(char)
        kind = {
            "Cc": "a control character",
            "Cs": "a lone surrogate",
            "Co": "a private-use character",
            "Cn": "an unassigned code point",
        }
        return f"{code} ({kind.get(category, 'an unnamed character')})"
    if char.isprintable() and not char.isspace():
        return f"{char!r} ({code} {name})"
    return f"{code} {name}"


def _to_ascii_label(label: str) -> str:
    if label.isascii():
        if label.startswith("xn--"):
            try:
                idna.ulabel(label)  # checks the Punycode and that it is the canonical A-label
            except (idna.IDNAError, UnicodeError) as exc:
                _refuse(f"the label {label!r} is not a valid internationalised (xn--) label: {exc}")
        elif not _ASCII_LABEL.fullmatch(label):  # pragma: no cover - _check_characters did
            _refuse(f"the label {label!r} has characters not allowed in a host name")
        ascii_label = label
    else:
        try:
            ascii_label = idna.alabel(label).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            _refuse(f"the label {label!r} is not a valid internationalised label: {exc}")
    if len(ascii_label) > MAX_LABEL_LENGTH:
        _refuse(
            f"the label {ascii_label[:20]!r}... is {len(ascii_label)} characters long; "
            f"the limit is {MAX_LABEL_LENGTH}"
        )
    return ascii_label


def _ipv4(labels: list[str]) -> Host:
    """The WHATWG URL IPv4 parser: 1 to 4 parts, each decimal, octal (0...) or hex (0x...)."""
    shown = ".".join(labels)
    if len(labels) > 4:
        _refuse(
            f"{shown!r} ends in a number, so it must be an IPv4 address, but it has "
            f"{len(labels)} parts (at most 4)"
        )
    numbers = [_ipv4_number(part, shown) for part in labels]
    *leading, last = numbers
    for number in leading:
        if number > 255:
            _refuse(f"{shown!r} is not a valid IPv4 address: {number} is over 255")
    if last >= 256 ** (5 - len(numbers)):
        _refuse(f"{shown!r} is not a valid IPv4 address: its last part is too large")
    value = last + sum(n << (8 * (3 - i)) for i, n in enumerate(leading))
    address = ipaddress.IPv4Address(value)
    return Host(str(address), address)


def _ipv4_number(part: str, shown: str) -> int:
    if part[:2] in ("0x", "0X"):
        digits, base, pattern = part[2:], 16, _HEX
    elif len(part) > 1 and part.startswith("0"):
        digits, base, pattern = part[1:], 8, _OCTAL
    else:
        digits, base, pattern = part, 10, _DECIMAL
    if pattern.fullmatch(digits) is None:
        _refuse(
            f"{shown!r} ends in a number, so it must be an IPv4 address, but {part!r} is "
            "not a decimal, octal (0...) or hex (0x...) number"
        )
    return int(digits, base) if digits else 0


def _ipv6(text: str, *, bracketed: bool) -> Host:
    address_text, has_zone, zone = text.partition("%")
    if has_zone and not zone:
        _refuse("an IPv6 zone ('%...') must not be empty")
    if not _IPV6_TEXT.fullmatch(address_text):
        _refuse(f"{address_text!r} is not an IPv6 address (hex digits, ':' and '.' only)")
    try:
        address = ipaddress.IPv6Address(address_text)
    except ValueError as exc:
        if not bracketed:
            _refuse(_PORT_HINT)
        _refuse(f"{address_text!r} is not a valid IPv6 address: {exc}")
    mapped = address.ipv4_mapped
    if mapped is not None:
        return Host(str(mapped), mapped)
    return Host(address.compressed, address)


def is_subdomain_or_same(name: str, domain: str) -> bool:
    """Whether canonical `name` is `domain` or below it on a label boundary.

    ("api.x.com", "x.com") -> True; ("xbox.com", "x.com") and ("notx.com", "x.com") -> False.
    """
    if not domain:
        return False
    return name == domain or name.endswith("." + domain)


# --- the domain index ----------------------------------------------------------------------


class DomainIndex:
    """Maps canonical domains to categories; a domain covers itself and all its subdomains.

    Memory is kept small by storing, per domain, only `hash(key + domain)` (Python's 64-bit
    SipHash of the text behind the index's own secret `key`) and a bitmask of its categories;
    the domain text itself is not kept. A lookup walks the host's suffixes from the most
    specific.

    The trade-off: two different names with the same hash would be confused. For a name that
    is listed nothing can go wrong (its own entry is always found, so a listed domain is never
    missed); an unlisted name could, with probability about n / 2**64 per suffix looked up (five
    in a million million at a million domains), pick up the categories of a listed one. Such a
    name cannot be searched for by a pupil because the hash is keyed by a secret that changes
    with each process: the `key` the caller gives (store/policy_files.py makes a random one per
    process), hashed in front of every name, so that an interpreter whose own hash seed is
    pinned (PYTHONHASHSEED) keeps the index's key secret all the same; with no key, Python's
    per-process seed is the only secret. Because a collision only ever *adds* categories, with
    block lists it fails closed. The index is only valid in the process that built it, so
    copying it between processes (pickle) is refused; rebuild it from the lists instead.
    """

    __slots__ = (
        "_by_mask",
        "_classify",
        "_exact",
        "_key",
        "_masks",
        "_max_dots",
        "_min_dots",
        "_names",
        "_recent",
    )

    _masks: dict[int, int]
    _names: tuple[str, ...]
    _by_mask: dict[int, tuple[str, ...]]
    _min_dots: int
    _max_dots: int
    _recent: dict[str, tuple[str, ...]]
    _exact: bool
    _classify: frozenset[str]
    _key: str

    def __init__(
        self,
        masks: dict[int, int],
        names: tuple[str, ...],
        *,
        min_dots: int,
        max_dots: int,
        exact: bool = False,
        key: str = "",
    ) -> None:
        """Use `DomainIndex.build` or `DomainIndex.empty()`."""
        self._masks = masks
        self._key = key
        self._exact = exact  # whether any entry is an exact host ("full:name")
        # the categories the name-shape classes (policy/hostclass.py) may add, if any
        self._classify = frozenset(names) & DERIVED_CATEGORIES
        self._names = names
        self._by_mask = {mask: self._names_of(mask) for mask in set(masks.values())}
        self._min_dots = min_dots  # the fewest and most dots in any listed entry
        self._max_dots = max_dots
        self._recent = {}  # a memo of recent answers: the index itself never changes

    @classmethod
    def build(
        cls, lists: Mapping[str, Iterable[str]], *, key: str = "", checked: bool = False
    ) -> Self:
        """An index of category -> canonical domains (or IP literals, matched exactly), its
        hashes keyed by the secret `key` (see the class docstring).

        An entry written `full:<host>` (EXACT_PREFIX) covers that one host and no subdomain:
        for CDN names such as `twitter.map.fastly.net`, where the parent is shared.
        Raises ValueError naming the category and the entry if an entry is not canonical,
        unless `checked`: the caller has already made every entry canonical (the policy
        parser has, through `parse_domain_list` and `normalise_host`), so with millions of
        entries they are not checked a second time.
        """
        names = tuple(lists)
        masks: dict[int, int] = {}
        interned: dict[int, int] = {}
        depths: set[int] = set()
        exact = False
        for bit, category in enumerate(names):
            entries = lists[category]
            if not isinstance(category, str) or not category:
                raise ValueError(f"category {category!r}: a category name must be non-empty text")
            if isinstance(entries, str):
                raise ValueError(
                    f"category {category!r}: expected a list of domains, got the "
                    f"single string {entries[:40]!r}"
                )
            flag = 1 << bit
            for entry in entries:
                if isinstance(entry, str) and entry.startswith(EXACT_PREFIX):
                    # stored under its own spelling, which no suffix walk ever hashes
                    if not checked:
                        _check_canonical(category, entry[len(EXACT_PREFIX) :])
                    exact = True
                else:
                    if not checked:
                        _check_canonical(category, entry)
                    depths.add(entry.count("."))
                stored = hash(key + entry)
                mask = masks.get(stored, 0) | flag
                masks[stored] = interned.setdefault(mask, mask)  # a few ints shared by all
        if not depths:
            return cls(masks, names, min_dots=_NO_DEPTH, max_dots=-1, exact=exact, key=key)
        return cls(masks, names, min_dots=min(depths), max_dots=max(depths), exact=exact, key=key)

    @classmethod
    def empty(cls) -> DomainIndex:
        """The index with no domains (every lookup gives no categories)."""
        return _EMPTY_INDEX

    def categories(self, name: str) -> tuple[str, ...]:
        """The categories of every listed suffix of canonical `name` on a label boundary.

        Most specific suffix first, each category once; within one suffix, in the order the
        categories were given to `build`. `name` must be canonical (see `normalise_host`).
        Categories the name's shape shows (a lookalike, a front-end, an .onion name ...: see
        policy/hostclass.py) come with them, most specific first, where the index has them.
        """
        found = self._recent.get(name)
        if found is None:
            found = self._lookup(name)
            if self._classify and not _is_ip_text(name):
                found = name_categories(self._classify, name, found)
            if len(self._recent) >= _RECENT_LIMIT:
                self._recent.clear()  # crude but bounded, and cheap: a miss is only a lookup
            self._recent[name] = found
        return found

    def _lookup(self, name: str) -> tuple[str, ...]:
        get = self._masks.get
        key = self._key
        dots = name.count(".")
        # Only suffixes with as many labels as some listed domain can match: skip the rest.
        skip = dots - self._max_dots
        last = dots - self._min_dots
        seen = 0
        result: tuple[str, ...] = ()
        if self._exact:  # an exact host is more specific than any suffix
            found = get(hash(key + EXACT_PREFIX + name))
            if found is not None:
                result = self._by_mask.get(found) or self._names_of(found)
                seen = found
        stripped = 0
        start = 0
        while stripped <= last:
            if stripped >= skip:
                found = get(hash(key + (name[start:] if start else name)))
                if found is not None and found & ~seen:
                    new = found & ~seen
                    result += self._by_mask.get(new) or self._names_of(new)
                    seen |= found
            start = name.find(".", start) + 1
            stripped += 1
        return result

    def _names_of(self, mask: int) -> tuple[str, ...]:
        return tuple(name for bit, name in enumerate(self._names) if mask >> bit & 1)

    def __len__(self) -> int:
        return len(self._masks)

    def __repr__(self) -> str:
        return f"<DomainIndex: {len(self)} domains in {len(self._names)} categories>"

    def __copy__(self) -> Self:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a DomainIndex holds per-process string hashes and cannot be copied to "
            "another process; build it there from the domain lists"
        )


def _check_canonical(category: str, entry: object) -> None:
    if not isinstance(entry, str):
        raise ValueError(f"category {category!r}: {entry!r} is not a domain name (not text)")
    found = _read_host(entry)
    if isinstance(found, HostError):
        raise ValueError(f"category {category!r}: {entry!r} is not a host name: {found.message}")
    if found.name != entry:
        raise ValueError(
            f"category {category!r}: {entry!r} is not in canonical form; write it as {found.name!r}"
        )


def _is_ip_text(name: str) -> bool:
    # canonical IP literals: IPv6 has ':', IPv4 ends in a digit (no host name's last label is
    # all digits, and none of the classes applies to a name whose top label ends in one)
    return ":" in name or name[-1:].isdigit()


_RECENT_LIMIT = 16384
_NO_DEPTH = 1 << 30  # an empty index looks nothing up
_EMPTY_INDEX = DomainIndex({}, (), min_dots=_NO_DEPTH, max_dots=-1)


# --- page-rewriting proxies ----------------------------------------------------------------


def unwrap_rewriting_proxy(name: str) -> str | None:
    """The canonical host that a page-rewriting proxy host stands for, else None.

    Known proxies write their target into the first label:
    "www-instagram-com.translate.goog" -> "www.instagram.com". Returns None for every other
    host, and for proxy hosts whose label does not decode to a valid host with a dot.
    """
    for suffix, decode in _REWRITING_PROXIES:
        if name.endswith(suffix):
            label = name[: -len(suffix)]
            if not label or "." in label:
                return None  # the proxy itself, or deeper than its one-label scheme
            return decode(label)
    return None


def _split_hyphens(text: str) -> str:
    """'--' is a literal '-', a lone '-' was a '.'; read left to right, so '---' is '-.'.

    Reading '---' as '-.' keeps the right-hand labels whole ("www---x-com" -> "www-.x.com"),
    so an ambiguous name still falls under the domain it ends with.
    """
    return _HYPHEN_RUN.sub(lambda m: "-" if m.group() == "--" else ".", text)


_HYPHEN_RUN = re.compile(r"--|-")


def _as_target(text: str) -> str | None:
    found = normalise_host(text)
    if isinstance(found, HostError) or "." not in found.name:
        return None
    return found.name


def _punycode_label(label: str) -> str | None:
    """A whole proxy label written as Punycode ("xn--..."): its Unicode text, else None."""
    try:
        return label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return None


def _decode_translate_goog(label: str) -> str | None:
    # Google's "decode the publisher's hostname" steps (developers.google.com/search/docs/
    # appearance/ad-network-and-translation): a "0-" prefix marks a host whose first label was
    # an A-label, its "xn--" dropped; then lone '-' -> '.', '--' -> '-'. A "1-" prefix is
    # flagged only in the _x_tr_enc query parameter, which a host check cannot see, so it is
    # kept: "1.example.com" still falls under example.com and cannot open a blocked site. For
    # the same reason a long host whose leading labels went into the _x_tr_hp parameter
    # decodes to a parent domain of the target, which still has the parent's categories.
    if label.startswith("xn--"):
        text = _punycode_label(label)
        return None if text is None else _as_target(_split_hyphens(text))
    if label.startswith("0-"):
        target = _as_target("xn--" + _split_hyphens(label[2:]))
        if target is not None:
            return target
    return _as_target(_split_hyphens(label))


def _decode_amp_cache(label: str) -> str | None:
    # AMP cache "curls" subdomains (amp.dev "AMP Cache URL format"; ampproject/amp-toolbox
    # cache-url): the Unicode host with '-' -> '--' and '.' -> '-', then Punycode again. Long or
    # mixed-direction hosts get a SHA-256 label instead, which cannot be reversed (None).
    if label.startswith("xn--"):
        text = _punycode_label(label)
        if text is None:
            return None
        label = text
    target = _as_target(_split_hyphens(label))
    if target is None and label.startswith("0-") and label.endswith("-0"):
        # tolerate a "0-...-0" wrapper (for labels that would have '--' in their 3rd and 4th
        # places), which the plain reading refuses: its last label "0" is not IPv4
        target = _as_target(_split_hyphens(label[2:-2]))
    return target


_REWRITING_PROXIES: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    (".translate.goog", _decode_translate_goog),  # Google Translate's website proxy
    (".cdn.ampproject.org", _decode_amp_cache),  # Google AMP cache
    (".www.bing-amp.com", _decode_amp_cache),  # Bing AMP cache (amphtml caches.json)
)
