"""Parse one category domain list (policy/data/lists/*.txt) from its text into a `DomainList`.

Pure: the caller reads the file. Every problem is collected with its line and a fix, so an IT
technician editing a list sees all of them at once. The format is described in docs/lists.md.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import idna

HEADER_KEYS = ("category", "description", "compiled", "source")
# "full:<host>" lists that one host only, not its subdomains: for a platform's own name under a
# CDN that thousands of sites share (twitter.map.fastly.net). The spelling is v2fly's.
EXACT_PREFIX = "full:"

# A canonical DNS name: lowercase labels of 1-63 characters from a-z 0-9 - _, none starting or
# ending with '-', at least two labels, no trailing dot. Underscore is allowed because real
# service names use it (_dmarc, some CDN hosts); the 253-character total is checked apart.
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")

_HEADER_RE = re.compile(r"#\s*([a-z][a-z_-]*)\s*:\s*(.*?)\s*$")
_CATEGORY_RE = re.compile(r"[a-z][a-z0-9_]*")
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EXAMPLE = "'example.com'"


@dataclass(frozen=True, slots=True)
class DomainList:
    """One category's list: its header and its domains (each covers itself and subdomains)."""

    category: str
    description: str
    compiled: date
    sources: tuple[str, ...]
    domains: tuple[str, ...]  # in file order, no duplicates; exact hosts as "full:<host>"


@dataclass(frozen=True, slots=True)
class ListProblem:
    where: str  # f"{source}:{line_number}"
    message: str  # what is wrong and how to fix it


@dataclass(frozen=True, slots=True)
class ListOverlap:
    """A domain in one list that is the same as, or under, a domain in another list."""

    domain: str
    category: str
    covered_by: str
    other_category: str


def parse_domain_list(text: str, *, source: str) -> DomainList | list[ListProblem]:
    """Parse a list file's text; return the list, or every problem found (never just the first)."""
    problems: list[ListProblem] = []
    headers: dict[str, tuple[str, int]] = {}
    sources: list[str] = []
    seen: dict[str, int] = {}  # domain -> line number
    in_header = True

    def problem(line_no: int, message: str) -> None:
        problems.append(ListProblem(f"{source}:{line_no}", message))

    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            match = _HEADER_RE.fullmatch(line)
            key = match.group(1) if match else None
            if match is None or key not in HEADER_KEYS:
                continue  # a plain comment
            value = match.group(2)
            if not in_header:
                problem(
                    line_no,
                    f"the header line '# {key}:' comes after the first domain: "
                    "move it up into the header at the top of the file",
                )
            elif not value:
                problem(line_no, f"'# {key}:' has no value: write one after the colon")
            elif key == "source":
                sources.append(value)
            elif key in headers:
                problem(
                    line_no, f"'# {key}:' appears twice (first on line {headers[key][1]}): keep one"
                )
            else:
                headers[key] = (value, line_no)
            continue
        in_header = False
        entry = line.partition("#")[0].strip()
        exact = entry.startswith(EXACT_PREFIX)
        message = _entry_problem(entry[len(EXACT_PREFIX) :] if exact else entry)
        if message is not None:
            problem(line_no, message)
            continue
        if entry in seen:
            problem(line_no, f"'{entry}' is a duplicate of line {seen[entry]}: remove one")
            continue
        seen[entry] = line_no

    _check_coverage(seen, problem)
    category, description, compiled = _check_header(headers, sources, source, problems)
    if not seen:
        problems.append(
            ListProblem(
                f"{source}:1", f"the list has no domains: add one per line, like {_EXAMPLE}"
            )
        )
    if problems or category is None or description is None or compiled is None:
        return sorted(problems, key=_line_number)
    return DomainList(
        category=category,
        description=description,
        compiled=compiled,
        sources=tuple(sources),
        domains=tuple(seen),
    )


def parents(domain: str) -> Iterable[str]:
    """`domain` itself and each parent that still has two labels: a.b.c.d -> a.b.c.d, b.c.d, c.d.

    For an exact host ("full:a.b.c") the first is the entry itself, then the parents that cover
    the host (a.b.c, b.c): an exact host is covered by a listed domain, never the other way."""
    if domain.startswith(EXACT_PREFIX):
        yield domain
        domain = domain[len(EXACT_PREFIX) :]
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        yield ".".join(labels[i:])


def find_overlaps(lists: Sequence[DomainList]) -> list[ListOverlap]:
    """Every domain that another list also covers (the same domain or one of its parents)."""
    owners: dict[str, list[str]] = {}
    for domain_list in lists:
        for domain in domain_list.domains:
            owners.setdefault(domain, []).append(domain_list.category)
    overlaps: list[ListOverlap] = []
    for domain_list in lists:
        for domain in domain_list.domains:
            mine = domain_list.category
            for parent in parents(domain):
                overlaps.extend(
                    ListOverlap(domain, mine, parent, other)
                    for other in owners.get(parent, ())
                    if other != mine
                )
    return overlaps


def _check_coverage(seen: dict[str, int], problem: Callable[[int, str], None]) -> None:
    # A domain already covers its subdomains, so a listed subdomain of a listed domain is dead
    # weight that misleads the next reader into thinking it is needed.
    for domain, line_no in seen.items():
        name = domain.removeprefix(EXACT_PREFIX)
        if len(name) != len(domain) and name in seen:  # "full:a.b" under a listed "a.b"
            parent: str | None = name
        else:
            parent = None
            dot = name.find(".")
            while parent is None and name.find(".", dot + 1) != -1:
                candidate = name[dot + 1 :]  # each parent with two labels or more
                parent = candidate if candidate in seen else None
                dot = name.find(".", dot + 1)
        if parent is not None:
            problem(
                line_no,
                f"'{domain}' is already covered by '{parent}' on line "
                f"{seen[parent]}: remove it (or make it a comment)",
            )


def _check_header(
    headers: dict[str, tuple[str, int]],
    sources: list[str],
    source: str,
    problems: list[ListProblem],
) -> tuple[str | None, str | None, date | None]:
    top = f"{source}:1"
    hints = {
        "category": "'# category: <name>' (the file's name without .txt)",
        "description": "'# description: <what the list covers>'",
        "compiled": "'# compiled: YYYY-MM-DD' (the day the list was last checked)",
    }
    for key, hint in hints.items():
        if key not in headers:
            problems.append(ListProblem(top, f"missing header {hint}: add it at the top"))
    if not sources:
        problems.append(
            ListProblem(
                top,
                "missing header '# source: <where the domains came "
                "from, with a date or commit>': add at least one",
            )
        )
    category = headers.get("category")
    if category is not None and not _CATEGORY_RE.fullmatch(category[0]):
        problems.append(
            ListProblem(
                f"{source}:{category[1]}",
                f"category {category[0]!r} is not a valid name: use lowercase "
                "letters, digits and '_', starting with a letter",
            )
        )
        category = None
    compiled: date | None = None
    if "compiled" in headers:
        value, line_no = headers["compiled"]
        compiled = _iso_date(value)
        if compiled is None:
            problems.append(
                ListProblem(
                    f"{source}:{line_no}",
                    f"compiled date {value!r} is not a date: write it as "
                    "YYYY-MM-DD, like '2026-11-21'",
                )
            )
    description = headers.get("description")
    return (category[0] if category else None, description[0] if description else None, compiled)


def _line_number(problem: ListProblem) -> int:
    return int(problem.where.rsplit(":", 1)[1])


def _iso_date(value: str) -> date | None:
    if not _ISO_DATE_RE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _entry_problem(entry: str) -> str | None:
    """Why `entry` is not a canonical domain (and how to write it), or None if it is one."""
    if DOMAIN_RE.fullmatch(entry) and len(entry) <= 253 and not entry.rsplit(".", 1)[1].isdigit():
        return _punycode_problem(entry) if "xn--" in entry else None
    shown = f"'{entry}'"
    if any(ch.isspace() for ch in entry):
        return f"{shown} has spaces: write one domain per line"
    if "://" in entry or "/" in entry:
        host = entry.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].split(":")[0]
        return (
            f"{shown} is not a domain: write just the host name, like "
            f"'{host.lower() or 'example.com'}'"
        )
    if entry.startswith("||") or entry.endswith("^"):
        host = entry.strip("|^").lower()
        return f"{shown} is filter syntax, not a domain: write just '{host}'"
    if entry.startswith(("*.", ".")):
        host = entry.lstrip("*.").lower()
        return f"write '{host}' instead of {shown}: a domain already covers its subdomains"
    if "*" in entry:
        return f"{shown} has a wildcard: list the domain that covers the names you mean"
    if _is_ip(entry):
        return (
            f"{shown} is an IP address, not a domain: these lists hold host names only "
            "(IP literals are blocked by the circumvention settings)"
        )
    if ":" in entry:
        host = entry.rsplit(":", 1)[0]
        return f"{shown} has a port: write just '{host.lower()}'"
    if entry.endswith("."):
        return f"{shown} ends with a dot: write '{entry.rstrip('.').lower()}'"
    if not entry.isascii():
        return f"{shown} is not ASCII: write the IDN as punycode: {_to_punycode(entry)}"
    if entry != entry.lower():
        return f"{shown} has capitals: write it in lowercase, '{entry.lower()}'"
    return _label_problem(entry)


def _label_problem(entry: str) -> str:
    shown = f"'{entry}'"
    labels = entry.split(".")
    if len(labels) < 2:
        return f"{shown} has only one label: write a full domain name, like {_EXAMPLE}"
    if len(entry) > 253:
        return f"{shown} is {len(entry)} characters long: a domain name has at most 253"
    for label in labels:
        if not label:
            return f"{shown} has an empty label (two dots together, or a dot at the start)"
        if len(label) > 63:
            return f"{shown} has a label of {len(label)} characters: at most 63 are allowed"
        if label.startswith("-") or label.endswith("-"):
            return f"{shown}: the label '{label}' starts or ends with '-', which DNS does not allow"
        bad = sorted({ch for ch in label if not (ch.isalnum() or ch in "-_")})
        if bad:
            return f"{shown} has characters a domain cannot have: {' '.join(bad)}"
    if labels[-1].isdigit():
        return f"{shown} ends in an all-digit label: that is not a domain name"
    return f"{shown} is not a valid domain name: write it like {_EXAMPLE}"


def _punycode_problem(entry: str) -> str | None:
    for label in entry.split("."):
        if label.startswith("xn--"):
            try:
                label[4:].encode("ascii").decode("punycode")
            except UnicodeError:
                return (
                    f"'{entry}': the label '{label}' is not valid punycode: copy the "
                    "A-label from a converter, or write the name in Unicode to see it"
                )
    return None


def _to_punycode(entry: str) -> str:
    try:
        return f"'{idna.encode(entry.rstrip('.'), uts46=True).decode('ascii')}'"
    except idna.IDNAError:
        return "its 'xn--' A-label form"


def _is_ip(entry: str) -> bool:
    try:
        ipaddress.ip_address(entry.strip("[]"))
    except ValueError:
        return False
    return True
