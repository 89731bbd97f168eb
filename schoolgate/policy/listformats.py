"""Read the list formats other people publish into canonical host names: plain domain lists,
hosts files, AdGuard/ABP domain rules, the squidGuard/UT1 `domains`/`urls` files, v2fly's
domain-list-community files (with `include:` and attributes) and the IWF/CTIRU URL lists.

Pure: the caller reads the files. Every problem is kept with its `file:line`; work is bounded
(long lines are refused, at most `MAX_PROBLEMS` problems are kept, includes are followed to a
fixed depth), so a hostile file costs little. `format_list_file` writes the result in the
project's own list format (docs/lists.md), which `schoolgate.policy.lists.parse_domain_list` reads back.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from schoolgate.policy.hostnames import HostError, normalise_host
from schoolgate.policy.lists import DOMAIN_RE, EXACT_PREFIX, parents

MAX_LINE_LENGTH = 4096  # no real list line is longer; longer ones are refused unread
MAX_PROBLEMS = 200  # problems kept per file (all are counted)
MAX_INCLUDE_DEPTH = 16  # v2fly include chains deeper than this are refused

# Names a hosts file maps for the machine itself, not sites: never list entries.
_HOSTS_HOUSEKEEPING = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
    }
)
_V2FLY_PREFIXES = ("domain", "full", "keyword", "regexp", "regex", "include")
_ABP_DOMAIN_RULE = re.compile(r"\|\|([^/^$|*]+)\^?(?:\$(.*))?")
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")


class ListFormat(StrEnum):
    """The formats `parse_list` reads (the `format:` values of lists.yaml)."""

    DOMAINS = "domains"  # one host name per line, '#' comments
    HOSTS = "hosts"  # '0.0.0.0 example.com' (hosts file)
    ADBLOCK = "adblock"  # AdGuard / Adblock Plus: '||example.com^'
    V2FLY = "v2fly"  # v2fly domain-list-community (one file; includes need resolve_v2fly)
    UT1_DOMAINS = "ut1-domains"  # squidGuard / UT1 'category/domains'
    UT1_URLS = "ut1-urls"  # squidGuard / UT1 'category/urls'
    IWF = "iwf"  # IWF / CTIRU URL list: one URL per line


@dataclass(frozen=True, slots=True)
class FormatProblem:
    where: str  # "file:line"
    message: str  # what is wrong and how to fix it


@dataclass(frozen=True, slots=True)
class ParsedList:
    """What a file gave: canonical host names (each also covers its subdomains once listed),
    how many lines were skipped and why, notes on what was read in a particular way, and the
    problems (lines that should have been a host name and were not)."""

    hosts: tuple[str, ...]  # canonical, in first-seen order, no duplicates
    skipped: tuple[tuple[str, int], ...] = ()  # (reason, count)
    notes: tuple[tuple[str, int], ...] = ()  # (what was done, count)
    problems: tuple[FormatProblem, ...] = ()  # at most MAX_PROBLEMS
    problem_count: int = 0  # all of them


class _Reader:
    """Collects hosts, skips, notes and problems for one file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.hosts: dict[str, None] = {}
        self.skipped: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        self.problems: list[FormatProblem] = []
        self.problem_count = 0

    def problem(self, line_no: int, message: str, *, file: str | None = None) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(FormatProblem(f"{file or self.source}:{line_no}", message))

    def host(
        self,
        line_no: int,
        raw: str,
        *,
        what: str = "entry",
        file: str | None = None,
        prefix: str = "",
    ) -> str | None:
        """Add `raw` as a host name (with `prefix`, such as "full:"), or note the problem.
        Returns the canonical name."""
        name = canonical_host(raw)
        if isinstance(name, FormatProblem):
            self.problem(line_no, f"{what} {raw[:80]!r}: {name.message}", file=file)
            return None
        self.hosts.setdefault(prefix + name, None)
        return name

    def lines(self, text: str) -> Iterable[tuple[int, str]]:
        """(line number, stripped line) of every line that is short enough to read."""
        for line_no, raw in enumerate(text.splitlines(), start=1):
            if len(raw) > MAX_LINE_LENGTH:
                self.problem(
                    line_no,
                    f"the line is {len(raw)} characters long (at most "
                    f"{MAX_LINE_LENGTH}): it was not read",
                )
                continue
            line = raw.strip().lstrip("\ufeff")
            if line:
                yield line_no, line

    def result(self) -> ParsedList:
        return ParsedList(
            tuple(self.hosts),
            tuple(sorted(self.skipped.items())),
            tuple(sorted(self.notes.items())),
            tuple(self.problems),
            self.problem_count,
        )


def canonical_host(raw: str) -> str | FormatProblem:
    """The canonical list entry for `raw`, or a problem (with an empty place) saying why not.

    IP addresses and one-label names are refused: lists hold registrable names and hosts.
    """
    if len(raw) <= 253 and DOMAIN_RE.fullmatch(raw) is not None and "xn--" not in raw:
        last = raw.rpartition(".")[2]
        if not last.isdigit() and not last.startswith("0x"):
            return raw  # already canonical: the common case in big lists, kept cheap
    host = normalise_host(raw)
    if isinstance(host, HostError):
        return FormatProblem("", host.message)
    if host.ip is not None:
        return FormatProblem(
            "",
            "is an IP address: lists hold host names (the gateway's "
            "IP-literal rule handles addresses)",
        )
    name = host.name
    if "." not in name:
        return FormatProblem(
            "", "has only one label: a list entry is a full name like 'example.com'"
        )
    if DOMAIN_RE.fullmatch(name) is None:
        return FormatProblem("", f"{name!r} is not a host name a list can hold")
    return name


def _is_ip(raw: str) -> bool:
    host = normalise_host(raw)
    return not isinstance(host, HostError) and host.ip is not None


def parse_domains(text: str, *, source: str) -> ParsedList:
    """One host name per line; '#' (and, as squidGuard allows, ';' at the start) comments."""
    reader = _Reader(source)
    for line_no, line in reader.lines(text):
        if line.startswith(("#", ";", "!")):
            continue
        entry = line.partition("#")[0].strip()
        if entry.startswith("*."):
            entry = entry[2:]
            reader.notes["'*.' wildcards read as the domain (it covers its subdomains)"] += 1
        if not entry:
            continue
        if _is_ip(entry):
            reader.skipped["IP addresses (lists hold host names)"] += 1
            continue
        reader.host(line_no, entry)
    return reader.result()


def parse_hosts(text: str, *, source: str) -> ParsedList:
    """A hosts file: 'ADDRESS NAME [NAME ...]'; the address is ignored (every name is listed)."""
    reader = _Reader(source)
    for line_no, line in reader.lines(text):
        fields = line.partition("#")[0].split()
        if not fields:
            continue
        if len(fields) == 1:
            reader.problem(
                line_no,
                f"{fields[0][:80]!r} has no address before it: write "
                "'0.0.0.0 example.com' (or use format 'domains')",
            )
            continue
        if not _is_ip(fields[0]):
            reader.problem(
                line_no,
                f"{fields[0][:80]!r} is not an IP address: a hosts file "
                "line starts with one, like '0.0.0.0 example.com'",
            )
            continue
        for name in fields[1:]:
            if name.lower() in _HOSTS_HOUSEKEEPING:
                reader.skipped["names for the machine itself (localhost, ...)"] += 1
            else:
                reader.host(line_no, name)
    return reader.result()


def parse_adblock(text: str, *, source: str) -> ParsedList:
    """AdGuard / Adblock Plus rules: only whole-domain blocking rules ('||example.com^', with
    no path) are read; exception, cosmetic and other rules are counted and skipped."""
    reader = _Reader(source)
    for line_no, line in reader.lines(text):
        if (
            line.startswith("!")
            or (line.startswith("#") and not line.startswith("##"))
            or line.startswith("[")
        ):
            continue  # a comment, or the '[Adblock Plus 2.0]' header
        if line.startswith("@@"):
            reader.skipped["exception rules (@@): an allow list is kept by the school"] += 1
            continue
        if "##" in line or "#@#" in line or "#?#" in line or "#$#" in line or "#%#" in line:
            reader.skipped["cosmetic rules (##): they hide parts of pages"] += 1
            continue
        match = _ABP_DOMAIN_RULE.fullmatch(line)
        if match is None:
            if line.startswith("/") and line.endswith("/"):
                reader.skipped["regular-expression rules: not a host name"] += 1
            else:
                reader.skipped["rules for addresses or parts of pages, not whole domains"] += 1
            continue
        host, options = match.group(1), match.group(2)
        if options and any(
            opt.strip() not in ("important", "all", "document", "third-party", "3p", "")
            for opt in options.split(",")
        ):
            reader.skipped["rules limited by options ($...): not a whole-domain block"] += 1
            continue
        if _is_ip(host):
            reader.skipped["IP addresses (lists hold host names)"] += 1
            continue
        reader.host(line_no, host, what="rule host")
    return reader.result()


def parse_ut1_domains(text: str, *, source: str) -> ParsedList:
    """A squidGuard/UT1 `domains` file: plain domains; IP addresses in it are skipped."""
    return parse_domains(text, source=source)


def parse_ut1_urls(text: str, *, source: str) -> ParsedList:
    """A squidGuard/UT1 `urls` file ('example.com/path'): the gateway decides by host name, so a
    URL with a path is left out (listing its host would block the whole site); a URL with no
    path is the host."""
    return _parse_urls(text, source=source, whole_host_for_paths=False)


def parse_iwf(text: str, *, source: str) -> ParsedList:
    """An IWF (or CTIRU) URL list, one URL per line, with or without a scheme.

    Assumption (docs/list-updates.md): the gateway decides by host name, usually at CONNECT
    before any path is seen, so for the locked illegal-content slot a URL with a path blocks
    its whole host (fail closed). Each such line is counted in `notes`.
    """
    return _parse_urls(text, source=source, whole_host_for_paths=True)


def _parse_urls(text: str, *, source: str, whole_host_for_paths: bool) -> ParsedList:
    reader = _Reader(source)
    for line_no, line in reader.lines(text):
        if line.startswith(("#", ";")):
            continue
        url = line.split()[0]
        rest = _SCHEME.sub("", url, count=1)
        cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        authority, path = rest[:cut], rest[cut:]
        host = authority.rpartition("@")[2]
        if host.startswith("["):
            reader.skipped["IP addresses (lists hold host names)"] += 1
            continue
        host = host.partition(":")[0]
        if _is_ip(host):
            reader.skipped["IP addresses (lists hold host names)"] += 1
            continue
        if path.strip("/"):
            if not whole_host_for_paths:
                reader.skipped[
                    "URLs with a path (the gateway cannot block one page without "
                    "blocking the whole site)"
                ] += 1
                continue
            if reader.host(line_no, host, what="URL host") is not None:
                reader.notes["URLs with a path: their whole host is blocked"] += 1
            continue
        reader.host(line_no, host, what="URL host")
    return reader.result()


# --- v2fly domain-list-community --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class V2flyRule:
    kind: str  # domain | full | keyword | regexp
    value: str
    attrs: frozenset[str]
    line: int


@dataclass(frozen=True, slots=True)
class V2flyInclude:
    name: str
    wanted: frozenset[str]  # '@attr': only included entries that carry all of these
    unwanted: frozenset[str]  # '@-attr': included entries that carry none of these
    line: int


@dataclass(frozen=True, slots=True)
class V2flyFile:
    name: str
    rules: tuple[V2flyRule, ...]
    includes: tuple[V2flyInclude, ...]
    problems: tuple[FormatProblem, ...] = ()
    problem_count: int = 0


def parse_v2fly_file(text: str, *, name: str, source: str | None = None) -> V2flyFile:
    """One file of v2fly's `data/` directory: `[domain:|full:|keyword:|regexp:]VALUE @attr...`
    and `include:NAME [@attr] [@-attr]`, '#' comments anywhere on a line."""
    reader = _Reader(source or name)
    rules: list[V2flyRule] = []
    includes: list[V2flyInclude] = []
    for line_no, line in reader.lines(text):
        body = line.partition("#")[0].strip()
        if not body:
            continue
        words = body.split()
        head, attrs = words[0], words[1:]
        bad = [a for a in attrs if not (a.startswith(("@", "&")) and len(a) > 1)]
        if bad:
            reader.problem(
                line_no,
                f"{bad[0][:40]!r} is not an attribute: attributes are "
                "written '@name' after the value",
            )
            continue
        kind, sep, value = head.partition(":")
        if not sep:
            kind, value = "domain", head
        elif kind not in _V2FLY_PREFIXES:
            reader.problem(
                line_no,
                f"unknown rule type {kind[:20]!r}: use domain:, full:, "
                "keyword:, regexp: or include:",
            )
            continue
        tags = [a[1:] for a in attrs if a.startswith("@")]  # '&affiliation' tags are not ours
        if kind == "include":
            includes.append(
                V2flyInclude(
                    value,
                    frozenset(t for t in tags if not t.startswith("-")),
                    frozenset(t[1:] for t in tags if t.startswith("-")),
                    line_no,
                )
            )
            continue
        rules.append(
            V2flyRule("regexp" if kind == "regex" else kind, value, frozenset(tags), line_no)
        )
    return V2flyFile(
        name, tuple(rules), tuple(includes), tuple(reader.problems), reader.problem_count
    )


def resolve_v2fly(
    files: Mapping[str, str],
    root: str,
    *,
    data_dir: str = "data",
    exclude_attrs: Iterable[str] = (),
    exact_hosts: bool = False,
) -> ParsedList:
    """The host names of v2fly list `root`, following its `include:` lines through `files`
    (file name -> text, the `data/` directory). `keyword:` and `regexp:` rules are counted and
    skipped (they are not host names); entries carrying any of `exclude_attrs` are left out.
    With `exact_hosts`, a `full:` rule gives "full:<host>" (that one host, as the project's
    list format writes it); without, the host and its subdomains. A one-label `domain:` rule
    (a whole top-level domain: `.adult`) is counted and skipped. Cycles, missing files and
    chains deeper than MAX_INCLUDE_DEPTH are problems."""
    reader = _Reader(_in(data_dir, root))
    excluded = frozenset(exclude_attrs)
    parsed: dict[str, V2flyFile] = {}
    done: set[tuple[str, frozenset[str], frozenset[str]]] = set()

    def visit(
        name: str,
        wanted: frozenset[str],
        unwanted: frozenset[str],
        chain: tuple[str, ...],
        where: str,
    ) -> None:
        def problem(message: str) -> None:
            reader.problem(_line(where), message, file=_file(where))

        if name in chain:
            problem(f"include cycle: {' -> '.join((*chain, name))}: remove one include")
            return
        if len(chain) >= MAX_INCLUDE_DEPTH:
            problem(
                f"includes nested more than {MAX_INCLUDE_DEPTH} deep ({' -> '.join(chain[:4])} ...)"
            )
            return
        key = (name, wanted, unwanted)
        if key in done:
            return
        done.add(key)
        if name not in files:
            problem(
                f"include:{name[:60]} names no file in {data_dir}/ (check the spelling, "
                "or fetch that file too)"
            )
            return
        file = parsed.get(name)
        if file is None:
            file = parsed[name] = parse_v2fly_file(
                files[name], name=name, source=_in(data_dir, name)
            )
            for found in file.problems:
                reader.problem(_line(found.where), found.message, file=_file(found.where))
            reader.problem_count += file.problem_count - len(file.problems)
        for rule in file.rules:
            if wanted and not wanted <= rule.attrs:
                continue
            if rule.attrs & unwanted:
                continue
            if rule.attrs & excluded:
                reader.skipped[
                    f"entries with attribute @{min(rule.attrs & excluded)} "
                    "(left out by exclude_attrs)"
                ] += 1
                continue
            if rule.kind in ("keyword", "regexp"):
                reader.skipped[f"{rule.kind}: rules (they match patterns, not host names)"] += 1
                continue
            if rule.kind == "domain" and "." not in rule.value.strip("."):
                reader.skipped[
                    "whole top-level domains (a list holds names, not '.adult' or '.hsbc')"
                ] += 1
                continue
            exact = EXACT_PREFIX if exact_hosts and rule.kind == "full" else ""
            reader.host(rule.line, rule.value, file=_in(data_dir, name), prefix=exact)
        for inc in file.includes:
            visit(
                inc.name,
                wanted | inc.wanted,
                unwanted | inc.unwanted,
                (*chain, name),
                f"{_in(data_dir, name)}:{inc.line}",
            )

    visit(root, frozenset(), frozenset(), (), f"{_in(data_dir, root)}:1")
    return reader.result()


def _in(data_dir: str, name: str) -> str:
    return f"{data_dir}/{name}" if data_dir else name


def _file(where: str) -> str:
    return where.rpartition(":")[0]


def _line(where: str) -> int:
    tail = where.rpartition(":")[2]
    return int(tail) if tail.isdigit() else 1


def parse_list(fmt: ListFormat, text: str, *, source: str) -> ParsedList:
    """Read one file in `fmt` (a v2fly file on its own: its includes are not followed)."""
    if fmt is ListFormat.V2FLY:
        return resolve_v2fly({source: text}, source, data_dir="")
    reader = {
        ListFormat.DOMAINS: parse_domains,
        ListFormat.HOSTS: parse_hosts,
        ListFormat.ADBLOCK: parse_adblock,
        ListFormat.UT1_DOMAINS: parse_ut1_domains,
        ListFormat.UT1_URLS: parse_ut1_urls,
        ListFormat.IWF: parse_iwf,
    }[fmt]
    return reader(text, source=source)


# --- writing the project's own list format ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListEntry:
    host: str
    comment: str = ""  # where it came from, or why it was added


@dataclass(frozen=True, slots=True)
class ListFile:
    category: str
    description: str
    compiled: date
    sources: tuple[str, ...]
    entries: tuple[ListEntry, ...] = field(default=())
    remarks: tuple[str, ...] = ()  # comment lines written after the header


def compact(entries: Iterable[ListEntry]) -> tuple[ListEntry, ...]:
    """Sorted by name, each host once (the first comment wins), and no host that a listed
    parent already covers: the form `parse_domain_list` accepts."""
    first: dict[str, ListEntry] = {}
    for entry in entries:
        first.setdefault(entry.host, entry)
    kept = [e for name, e in first.items() if not any(p in first for p in list(parents(name))[1:])]
    return tuple(sorted(kept, key=lambda e: e.host))


def format_list_file(lst: ListFile) -> str:
    """The text of a list file in the project's format (docs/lists.md); entries are written
    as given, so pass them through `compact` first."""
    lines = [
        f"# category: {lst.category}",
        f"# description: {_one_line(lst.description)}",
        f"# compiled: {lst.compiled.isoformat()}",
    ]
    lines.extend(f"# source: {_one_line(s)}" for s in lst.sources)
    lines.extend(f"# {_one_line(r)}" for r in lst.remarks)
    for entry in lst.entries:
        comment = _one_line(entry.comment)
        lines.append(f"{entry.host}  # {comment}" if comment else entry.host)
    return "\n".join(lines) + "\n"


def summarise(parsed: ParsedList) -> list[str]:
    """Readable lines about what was skipped, noted and wrong (for a command's output)."""
    out = [f"skipped {count}: {reason}" for reason, count in parsed.skipped]
    out.extend(f"note {count}: {what}" for what, count in parsed.notes)
    out.extend(f"{p.where}: {p.message}" for p in parsed.problems)
    if parsed.problem_count > len(parsed.problems):
        out.append(f"... and {parsed.problem_count - len(parsed.problems)} more problems")
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


__all__: Sequence[str] = (
    "FormatProblem",
    "ListEntry",
    "ListFile",
    "ListFormat",
    "ParsedList",
    "V2flyFile",
    "V2flyInclude",
    "V2flyRule",
    "canonical_host",
    "compact",
    "format_list_file",
    "parse_adblock",
    "parse_domains",
    "parse_hosts",
    "parse_iwf",
    "parse_list",
    "parse_ut1_domains",
    "parse_ut1_urls",
    "parse_v2fly_file",
    "resolve_v2fly",
    "summarise",
)
