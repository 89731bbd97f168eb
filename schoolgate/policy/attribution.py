"""Attributing a request to a school besides its client subnet (docs/trust.md, "How a request is
attributed to a school"): by the gateway listener the client connected to, and by the directory
group or OU of the person signed in. The trust file's `listeners:` and `directory:` keys are
checked here (every problem with its place), and `Attributor` answers from them.

Pure, like the rest of `policy/`: socket addresses, group names and DNs in, school ids out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Listener = tuple[IPAddress, int]  # a local address and port of the gateway
OU = tuple[str, ...]  # a DN's RDNs, each "attr=value" casefolded, leaf first

AMBIGUOUS = "?"  # by_directory: the person is in more than one school's group or OU
_MEMO_LIMIT = 16_384  # people (groups and DN) remembered per trust file
_LISTENER = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<v4>[^:\[\]]+)):(?P<port>\d{1,5})$")
_RDN_SPLIT = re.compile(r"(?<!\\),")


@dataclass(frozen=True, slots=True)
class DirectoryMatch:
    """Who in the directory belongs to a school: members of `group` (compared ignoring case, as
    Active Directory does), and people whose entry is under the OU `ou`."""

    group: str | None = None
    ou: str | None = None  # as written in the trust file


def listener_of(sockname: Any) -> Listener | None:
    """The gateway listener of a socket's local address ((host, port) or IPv6's 4-tuple); an
    IPv4 client on a dual-stack listener (::ffff:10.9.0.1) counts as the IPv4 address. None if
    it is not an IP address and port."""
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        return None
    host, port = sockname[0], sockname[1]
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip, port) if isinstance(port, int) else None


def parse_listener(raw: str) -> Listener | str:
    """A listener as the trust file writes it ("10.9.0.1:3128", "[fd00::1]:3128"), or what is
    wrong with it."""
    hint = "write it like 10.9.0.1:3128 or [fd00::1]:3128"
    match = _LISTENER.match(raw.strip())
    if match is None:
        return f"{raw!r} is not an address and port ({hint})"
    try:
        ip = ipaddress.ip_address(match["v6"] or match["v4"])
    except ValueError:
        return f"{raw!r}: {match['v6'] or match['v4']!r} is not an IP address ({hint})"
    if match["v6"] and ip.version == 4:
        return f"{raw!r}: only an IPv6 address goes in brackets ({hint})"
    port = int(match["port"])
    if not 1 <= port <= 65535:
        return f"{raw!r}: {port} is not a port (1-65535)"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return (
            f"{raw!r} is every address of the gateway, which no client connects to: name the "
            "address the school's clients connect to"
        )
    return (ip, port)


def parse_ou(raw: str) -> OU | None:
    """An OU's DN as RDNs compared ignoring case and spaces around ',' and '='; None if it is not
    a DN ("ou=Oak,dc=trust,dc=org")."""
    parts = []
    for rdn in _RDN_SPLIT.split(raw):
        attr, equals, value = rdn.partition("=")
        if not equals or not attr.strip() or not value.strip():
            return None
        parts.append(f"{attr.strip().casefold()}={value.strip().casefold()}")
    return tuple(parts)


def show_listener(listener: Listener) -> str:
    ip, port = listener
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


@dataclass(frozen=True, slots=True)
class Attributor:
    """Which school a listener or a signed-in person belongs to, by the trust file's
    `listeners:` and `directory:` keys. Built by `check_attribution`."""

    listeners: Mapping[Listener, str] = field(default_factory=dict)
    groups: Mapping[str, str] = field(default_factory=dict)  # casefolded group -> school id
    ous: tuple[tuple[OU, str], ...] = ()
    _memo: dict[tuple[frozenset[str], str | None], str | None] = field(
        default_factory=dict, compare=False, repr=False
    )
    _sockets: dict[Any, str | None] = field(default_factory=dict, compare=False, repr=False)

    def by_listener(self, sockname: Any) -> str | None:
        """The school whose listener the client connected to; None: no school names it."""
        if not self.listeners:
            return None
        try:
            return self._sockets[sockname]  # a gateway has few local addresses: remembered
        except (KeyError, TypeError):  # TypeError: not hashable, so not a socket address
            found = listener_of(sockname)
            school = self.listeners.get(found) if found is not None else None
            if isinstance(sockname, tuple) and len(self._sockets) < _MEMO_LIMIT:
                self._sockets[sockname] = school
            return school

    def by_directory(self, groups: frozenset[str], dn: str | None) -> str | None:
        """The school of a signed-in person by their groups and DN; None: no school's group or
        OU; AMBIGUOUS: more than one school's (never one of them by chance)."""
        if not self.groups and not self.ous:
            return None
        key = (groups, dn)
        try:
            return self._memo[key]
        except KeyError:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            found = self._memo[key] = self._directory(groups, dn)
            return found

    def _directory(self, groups: Iterable[str], dn: str | None) -> str | None:
        schools = {self.groups[g.casefold()] for g in groups if g.casefold() in self.groups}
        person = parse_ou(dn) if dn else None
        if person is not None:
            schools |= {
                school
                for ou, school in self.ous
                if len(person) > len(ou) and person[len(person) - len(ou) :] == ou
            }
        if len(schools) > 1:
            return AMBIGUOUS
        return next(iter(schools), None)


@dataclass(frozen=True, slots=True)
class SchoolKeys:
    """One school's `listeners:` and `directory:` as the trust file gives them."""

    listeners: Sequence[str] = ()
    directory: DirectoryMatch | None = None


def check_attribution(
    schools: Mapping[str, SchoolKeys],
) -> tuple[Attributor, dict[str, tuple[Listener, ...]], list[str]]:
    """The attributor of every school's listeners and directory match, each school's listeners
    parsed, and every problem with its place (a listener or group given to two schools, an OU
    inside another school's: a request must belong to one school)."""
    problems: list[str] = []
    listeners: dict[Listener, str] = {}
    mine: dict[str, tuple[Listener, ...]] = {}
    groups: dict[str, str] = {}
    ous: list[tuple[OU, str, str]] = []
    for school_id, keys in schools.items():
        own: list[Listener] = []
        for i, raw in enumerate(keys.listeners):
            where = f"schools.{school_id}.listeners[{i}]"
            parsed = parse_listener(raw)
            if isinstance(parsed, str):
                problems.append(f"{where}: {parsed}")
            elif parsed in listeners:
                problems.append(
                    f"{where}: {show_listener(parsed)} is already given to the school "
                    f"{listeners[parsed]!r}: a gateway listener must belong to one school"
                )
            else:
                listeners[parsed] = school_id
                own.append(parsed)
        mine[school_id] = tuple(own)
        directory = keys.directory
        if directory is None:
            continue
        where = f"schools.{school_id}.directory"
        if directory.group is None and directory.ou is None:
            problems.append(
                f"{where}: give a group ({{group: OakPupils}}) or an OU "
                "({ou: 'ou=Oak,dc=trust,dc=org'}), or leave 'directory:' out"
            )
        if directory.group is not None:
            group = directory.group.strip()
            if group.casefold() in groups:
                problems.append(
                    f"{where}.group: {group!r} is already given to the school "
                    f"{groups[group.casefold()]!r}: a person must belong to one school"
                )
            else:
                groups[group.casefold()] = school_id
        if directory.ou is not None:
            ou = parse_ou(directory.ou)
            if ou is None:
                problems.append(
                    f"{where}.ou: {directory.ou!r} is not an OU's distinguished name (write it "
                    "like 'ou=Oak,dc=trust,dc=org')"
                )
                continue
            for other, other_id, written in ous:
                inner, outer = (ou, other) if len(ou) >= len(other) else (other, ou)
                if inner[len(inner) - len(outer) :] == outer:
                    problems.append(
                        f"{where}.ou: {directory.ou!r} and the school {other_id!r}'s OU "
                        f"{written!r} are the same or one is inside the other: a person must "
                        "belong to one school (give each school an OU of its own)"
                    )
                    break
            else:
                ous.append((ou, school_id, directory.ou))
    attributor = Attributor(listeners, groups, tuple((ou, sid) for ou, sid, _ in ous))
    return attributor, mine, problems
