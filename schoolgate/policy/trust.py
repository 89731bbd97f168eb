"""Many schools, one service: the trust file (its schools, their client subnets and policy
files, the trust's locks), and each school's policy compiled from the trust's base policy and
the school's own override, refusing an override that loosens what the trust locks.

Pure, like the rest of `policy/`: the caller reads the files (store/trust_files.py) and passes
their texts in. The design is docs/trust.md.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, ValidationError

from schoolgate.policy.addresses import IPNetwork
from schoolgate.policy.attribution import (
    AMBIGUOUS,
    Attributor,
    DirectoryMatch,
    Listener,
    SchoolKeys,
    check_attribution,
)
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.hostnames import HostError, normalise_host
from schoolgate.policy.inspection import InspectMode, YouTubeMode
from schoolgate.policy.lists import DomainList, parse_domain_list
from schoolgate.policy.model import Policy, Verdict
from schoolgate.policy.parse import (
    Name,
    _CalendarIn,
    _CategoryIn,
    _InternalIn,
    _PortsIn,
    _RoleInspectionIn,
    _RuleIn,
    _schema_problems,
    _SearchIn,
    _Strict,
    parse_policy_mapping,
    read_policy_yaml,
    validated,
)

LOCKED_DEFAULT_RULE = "trust-default-for-locked"  # see _merge
REFUSE = "refuse"  # `unmatched: refuse`: a client in no school's subnet is turned away
TRUST_ONLY_KEYS = ("roles", "default_role", "circumvention")  # one for every school
_MEMO_LIMIT = 65_536  # client addresses remembered per trust file
_YOUTUBE_STRICTNESS = {YouTubeMode.OFF: 0, YouTubeMode.MODERATE: 1, YouTubeMode.STRICT: 2}

SchoolId = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$")]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- the schemas: the trust file, and a school's override -----------------------------------


class _LocksIn(_Strict):
    categories: list[str] = Field(default_factory=list)
    default: bool = False
    inspection: bool = False
    ports: bool = False
    internal: bool = False


class _DirectoryIn(_Strict):
    group: str | None = Field(default=None, min_length=1, max_length=256)
    ou: str | None = Field(default=None, min_length=1, max_length=1000)


class _SchoolIn(_Strict):
    name: str = Field(min_length=1, max_length=200)
    subnets: list[str] = Field(default_factory=list)
    policy: str | None = None
    listeners: list[str] = Field(default_factory=list)  # policy/attribution.py
    directory: _DirectoryIn | None = None


class _TrustIn(_Strict):
    name: str = Field(min_length=1, max_length=200)
    base: str = Field(min_length=1)
    locks: _LocksIn = _LocksIn()
    unmatched: str = REFUSE
    schools: dict[SchoolId, _SchoolIn] = Field(min_length=1)


class _OverrideIn(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    calendar: _CalendarIn | None = None
    categories: dict[Name, _CategoryIn] = Field(default_factory=dict)
    rules: list[_RuleIn] = Field(default_factory=list)
    default: Verdict | None = None
    inspection: dict[str, _RoleInspectionIn] = Field(default_factory=dict)
    internal: _InternalIn | None = None
    ports: _PortsIn | None = None
    search: _SearchIn | None = None


# --- the parsed trust file ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustLocks:
    """What a school may tighten but never loosen (docs/trust.md, "Locks")."""

    categories: frozenset[str] = frozenset()  # never allowed by a school's rule or exception
    default: bool = False  # a trust default of block stays block
    inspection: bool = False  # no less decryption, safe search or YouTube restriction
    ports: bool = False  # no port the trust does not open
    internal: bool = False  # no internal destination the trust does not open


@dataclass(frozen=True, slots=True)
class School:
    id: str  # short, stable: what the school's data will be kept under
    name: str
    subnets: tuple[IPNetwork, ...] = ()
    policy: str | None = None  # its override file, relative to the trust file; None: the base
    listeners: tuple[Listener, ...] = ()  # gateway addresses its clients connect to
    directory: DirectoryMatch | None = None  # the group or OU of its signed-in people


class By(StrEnum):
    """How a request was attributed to its school (docs/trust.md): the first that applies."""

    LISTENER = "listener"
    SUBNET = "subnet"
    DIRECTORY = "directory"
    UNMATCHED = "unmatched"  # none applied: the `unmatched` school, or refused
    AMBIGUOUS = "ambiguous"  # the person is in two schools' groups: as unmatched


@dataclass(frozen=True, slots=True)
class Attribution:
    school: School | None  # None: refuse the request
    by: By


@dataclass(frozen=True, slots=True)
class TrustFile:
    """A trust file, checked. `school_for(address)` attributes a client address to a school:
    the longest matching subnet wins; no match gives the `unmatched` school, or None (refuse)."""

    name: str
    source: str
    base: str  # the trust's base policy file, relative to the trust file
    locks: TrustLocks
    unmatched: str | None  # a school id, or None: refuse clients in no school's subnet
    schools: Mapping[str, School]
    # longest prefix first: (prefix length, IP version, {network as int: school id})
    _table: tuple[tuple[int, int, dict[int, str]], ...] = field(
        default=(), compare=False, repr=False
    )
    _memo: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)
    attributor: Attributor = field(default_factory=Attributor, compare=False, repr=False)

    def __post_init__(self) -> None:
        table: dict[tuple[int, int], dict[int, str]] = {}
        for school in self.schools.values():
            for net in school.subnets:
                table.setdefault((net.prefixlen, net.version), {})[int(net.network_address)] = (
                    school.id
                )
        rows = tuple((p, v, nets) for (p, v), nets in sorted(table.items(), reverse=True))
        object.__setattr__(self, "_table", rows)

    def school_for(self, address: str | IPAddress) -> School | None:
        """The school a client at `address` belongs to by its subnet (None: refuse it)."""
        found = self._match(address)
        if found is None and self.unmatched is not None:
            found = self.unmatched
        return self.schools[found] if found is not None else None

    def attribute(
        self,
        *,
        listener: object = None,
        address: str | IPAddress | None = None,
        groups: frozenset[str] = frozenset(),
        dn: str | None = None,
    ) -> Attribution:
        """The school of a request, in order of trust, the first that applies: the gateway
        listener the client connected to (its socket's local address), the client's subnet,
        the signed-in person's directory group or OU; else `unmatched`. A person in two
        schools' groups counts as unmatched, never one of them by chance."""
        found = self.attributor.by_listener(listener)
        if found is not None:
            return Attribution(self.schools[found], By.LISTENER)
        found = self._match(address) if address is not None else None
        if found is not None:
            return Attribution(self.schools[found], By.SUBNET)
        how = By.UNMATCHED
        if groups or dn:
            found = self.attributor.by_directory(groups, dn)
            if found == AMBIGUOUS:
                how = By.AMBIGUOUS
            elif found is not None:
                return Attribution(self.schools[found], By.DIRECTORY)
        return Attribution(self.schools.get(self.unmatched or ""), how)

    def _match(self, address: str | IPAddress) -> str | None:
        if isinstance(address, str):
            try:
                return self._memo[address]
            except KeyError:
                if len(self._memo) >= _MEMO_LIMIT:
                    self._memo.clear()  # bounded; a miss costs only the look-up below
                found = self._memo[address] = self._lookup(address)
                return found
        return self._lookup(address)

    def _lookup(self, address: str | IPAddress) -> str | None:
        try:
            ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack listener shows IPv4 clients as ::ffff:a.b.c.d
        value, bits = int(ip), ip.max_prefixlen
        for prefix, version, nets in self._table:
            if version == ip.version:
                school = nets.get(value >> (bits - prefix) << (bits - prefix))
                if school is not None:
                    return school
        return None


def parse_trust_file(text: str, *, source: str) -> TrustFile:
    """Parse a trust file. Raises PolicyError listing every problem with its place."""
    data = read_policy_yaml(text, source)
    spec = validated(_TrustIn, data, source, "the trust file", "'name:', 'base:', 'schools:'")
    problems: list[str] = []
    schools: dict[str, School] = {}
    owner: dict[IPNetwork, str] = {}
    for school_id, school in spec.schools.items():
        subnets: list[IPNetwork] = []
        for i, raw in enumerate(school.subnets):
            where = f"schools.{school_id}.subnets[{i}]"
            try:
                net = ipaddress.ip_network(raw, strict=True)
            except ValueError as exc:
                problems.append(
                    f"{where}: {raw!r} is not an address range: {exc} "
                    "(write it like 10.1.0.0/16 or fd00:1::/48)"
                )
                continue
            if net in owner:
                problems.append(
                    f"{where}: {net} is already given to the school {owner[net]!r}: "
                    "a client address must belong to one school"
                )
                continue
            owner[net] = school_id
            subnets.append(net)
        schools[school_id] = School(school_id, school.name, tuple(subnets), school.policy)
    keys = {
        sid: SchoolKeys(s.listeners, DirectoryMatch(s.directory.group, s.directory.ou))
        if s.directory
        else SchoolKeys(s.listeners)
        for sid, s in spec.schools.items()
    }
    attributor, listeners, found = check_attribution(keys)
    problems += found
    for sid, school_keys in keys.items():
        schools[sid] = replace(
            schools[sid], listeners=listeners[sid], directory=school_keys.directory
        )
    unmatched: str | None = None
    if spec.unmatched != REFUSE:
        if spec.unmatched in schools:
            unmatched = spec.unmatched
        else:
            problems.append(
                f"unmatched: {spec.unmatched!r} is neither 'refuse' nor one of the schools "
                f"({', '.join(schools)})"
            )
    for school_id, given in spec.schools.items():
        if not (given.subnets or given.listeners or given.directory) and school_id != unmatched:
            problems.append(
                f"schools.{school_id}: no subnets, listeners or directory, so no client could "
                "ever be attributed to it (list its client address ranges under 'subnets:', "
                "the gateway addresses its clients use under 'listeners:', or its people's "
                "group under 'directory:')"
            )
    if problems:
        raise PolicyError(source, problems)
    locks = spec.locks
    return TrustFile(
        name=spec.name,
        source=source,
        base=spec.base,
        locks=TrustLocks(
            frozenset(locks.categories),
            locks.default,
            locks.inspection,
            locks.ports,
            locks.internal,
        ),
        unmatched=unmatched,
        schools=schools,
        attributor=attributor,
    )


# --- compiling: the base and each school's override into one policy per school --------------


@dataclass(frozen=True, slots=True)
class SchoolSource:
    """One school's override as text (None: the school runs the base policy as it is), with the
    list files it names (looked up beside the override first)."""

    text: str | None
    source: str
    lists: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trust:
    """A trust ready to serve: its file, its base policy, and each school's own policy."""

    file: TrustFile
    base: Policy
    policies: Mapping[str, Policy]  # by school id; a request's school: TrustFile.attribute


def compile_trust(
    trust: TrustFile,
    *,
    base_text: str,
    base_source: str,
    base_lists: Mapping[str, str],
    schools: Mapping[str, SchoolSource],
    index_key: str = "",
) -> Trust:
    """Each school's policy, from the trust's base policy and the school's override.

    Raises PolicyError (source: the trust file) listing every problem of the base policy and
    of every school, each school's named: `school 'oak' (oak.yaml): rule 1 'x' (rules[0]): ...`."""
    base_data = read_policy_yaml(base_text, base_source)
    try:
        base = parse_policy_mapping(
            base_data, source=base_source, lists=base_lists, index_key=index_key
        )
    except PolicyError as exc:
        raise PolicyError(
            trust.source, [f"the base policy ({base_source}): {p}" for p in exc.problems]
        ) from None
    unknown = sorted(trust.locks.categories - set(base.categories))
    if unknown:
        raise PolicyError(
            trust.source,
            [
                f"locks.categories: {name!r} is not a category of the base policy "
                f"(known: {', '.join(sorted(base.categories))})"
                for name in unknown
            ],
        )
    locked = trust.locks.categories | {c.name for c in base.categories.values() if c.locked}
    context = _BaseContext(base, base_data, base_lists, locked, trust.locks)
    problems: list[str] = []
    policies: dict[str, Policy] = {}
    for school in trust.schools.values():
        given = schools.get(school.id, SchoolSource(None, f"school {school.id!r}"))
        try:
            policies[school.id] = _school_policy(context, school, given, index_key)
        except PolicyError as exc:
            problems.extend(f"school {school.id!r} ({given.source}): {p}" for p in exc.problems)
    if problems:
        raise PolicyError(trust.source, problems)
    return Trust(trust, base, policies)


@dataclass(frozen=True, slots=True)
class _BaseContext:
    policy: Policy
    data: dict[str, Any]
    lists: Mapping[str, str]
    locked: frozenset[str]
    locks: TrustLocks


def _school_policy(
    base: _BaseContext, school: School, given: SchoolSource, index_key: str
) -> Policy:
    source = f"{school.name} ({given.source})"
    data = read_policy_yaml(given.text, given.source) if given.text is not None else {}
    if data is None:
        data = {}  # an empty override file: the base as it is
    if not isinstance(data, dict):
        raise PolicyError(
            given.source,
            [f"a school's policy must be a YAML mapping of keys, not {type(data).__name__}"],
        )
    problems = [
        f"{key}: set by the trust for every school; a school's policy may not change it "
        "(see docs/trust.md)"
        for key in TRUST_ONLY_KEYS
        if key in data
    ]
    data = {k: v for k, v in data.items() if k not in TRUST_ONLY_KEYS}
    try:
        spec = _OverrideIn.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(given.source, problems + _schema_problems(exc)) from None
    problems += _lock_problems(base, spec, given.lists)
    if problems:
        raise PolicyError(given.source, problems)
    merged = _merge(base, school, data)
    try:
        return parse_policy_mapping(
            merged,
            source=source,
            lists={**given.lists, **base.lists},  # a list the trust names is the trust's
            index_key=index_key,
            same_domains_as=None if spec.categories else base.policy,
        )
    except PolicyError as exc:
        raise PolicyError(
            given.source, [_trust_place(p, len(spec.rules)) for p in exc.problems]
        ) from None


def _merge(base: _BaseContext, school: School, data: Mapping[str, Any]) -> dict[str, Any]:
    """The school's policy as data: the base, with the school's keys laid over it."""
    merged = dict(base.data)
    merged["name"] = data.get("name") or f"{base.policy.name}: {school.name}"
    categories = {name: dict(spec) for name, spec in (base.data.get("categories") or {}).items()}
    for name in base.locks.categories:
        categories[name]["not_unblockable_for"] = "all"  # no school's exception opens it
    merged["categories"] = {**categories, **(data.get("categories") or {})}
    merged["rules"] = [*(data.get("rules") or []), *(base.data.get("rules") or [])]
    base_default = base.data.get("default")
    if data.get("default", base_default) != base_default and base.locked:
        # A locked category the trust leaves to its default verdict keeps that verdict.
        merged["rules"].append(
            {
                "name": LOCKED_DEFAULT_RULE,
                "description": "The trust's default verdict, for the categories it locks",
                "roles": "all",
                "categories": sorted(base.locked),
                "action": base_default,
            }
        )
    for key in ("calendar", "default", "ports"):
        if key in data:
            merged[key] = data[key]
    merged["inspection"] = {**(base.data.get("inspection") or {}), **data.get("inspection", {})}
    base_internal = (base.data.get("internal") or {}).get("allow") or []
    school_internal = (data.get("internal") or {}).get("allow") or []
    merged["internal"] = {"allow": [*base_internal, *school_internal]}
    base_terms = (base.data.get("search") or {}).get("alert_terms") or []
    school_terms = (data.get("search") or {}).get("alert_terms") or []
    merged["search"] = {"alert_terms": list(dict.fromkeys([*base_terms, *school_terms]))}
    return merged


def _trust_place(problem: str, school_rules: int) -> str:
    """A problem of the merged policy, placed where a person can find it: the school's rules
    come first, so rules[N] beyond them is the trust's rule N - school_rules. The parser names
    a rule as people count ("rule 4 'name' (rules[3].when[0]): ..."); the trust's are renumbered
    the same way."""
    match = _MERGED_RULE.match(problem)
    if match is None or int(match["index"]) < school_rules:
        return problem
    index = int(match["index"]) - school_rules
    name = f" {match['name']}" if match["name"] else ""
    hint = ""
    if ".when[" in match["rest"]:
        hint = " (a school's calendar must have the periods the trust's rules name)"
    return f"the trust's rule {index + 1}{name} (rules[{index}]{match['rest']}){match['message']}{hint}"


_MERGED_RULE = re.compile(
    r"rule \d+(?: (?P<name>'[^']*'))? \(rules\[(?P<index>\d+)\](?P<rest>[^)]*)\)(?P<message>.*)",
    re.DOTALL,
)


# --- locks: a school may tighten, never loosen ---------------------------------------------


def _lock_problems(base: _BaseContext, spec: _OverrideIn, lists: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    policy = base.policy
    for name in spec.categories:
        if name in policy.categories:
            problems.append(
                f"categories.{name}: the trust defines {name!r}; a school may add categories "
                "of its own, never change the trust's (to block more, add a category of "
                "your own and a rule that blocks it)"
            )
    rule_names = {rule.name for rule in policy.rules} | {LOCKED_DEFAULT_RULE}
    overlaps: dict[str, tuple[str, str] | None] = {}
    for i, rule in enumerate(spec.rules):
        where = f"rule {i + 1} {rule.name!r} (rules[{i}])"
        if rule.name in rule_names:
            problems.append(
                f"{where}: the trust's policy already has a rule named {rule.name!r}: "
                "give the school's rule another name"
            )
        if rule.action is not Verdict.ALLOW:
            continue
        for category in rule.categories:
            if category in base.locked:
                problems.append(
                    f"{where}: the trust locks {category!r}: a school may not allow it "
                    "(a school may block more; ask the trust to change its policy)"
                )
            elif category in spec.categories:
                if category not in overlaps:
                    overlaps[category] = _locked_overlap(base, spec.categories[category], lists)
                found = overlaps[category]
                if found is not None:
                    problems.append(
                        f"{where}: allows {category!r}, which lists {found[0]!r}, a site of "
                        f"{found[1]!r} that the trust locks: a school may not allow it"
                    )
    locks = base.locks
    if locks.default and spec.default is Verdict.ALLOW and policy.default is Verdict.BLOCK:
        problems.append(
            "default: the trust locks the default verdict ('block'): a school may not make "
            "it 'allow'"
        )
    if locks.inspection:
        problems += _inspection_problems(policy, spec)
    if locks.ports and spec.ports is not None:
        for kind, given, trusts in (
            ("connect", spec.ports.connect, policy.ports.connect),
            ("http", spec.ports.http, policy.ports.http),
        ):
            extra = sorted(set(given) - trusts)
            if extra:
                problems.append(
                    f"ports.{kind}: the trust locks ports: a school may not open "
                    f"{', '.join(map(str, extra))} (the trust's: "
                    f"{', '.join(map(str, sorted(trusts)))})"
                )
    if locks.internal and spec.internal is not None and spec.internal.allow:
        problems.append(
            "internal.allow: the trust locks internal destinations: a school may not open "
            "any (ask the trust to add it to its base policy)"
        )
    return problems


def _inspection_problems(policy: Policy, spec: _OverrideIn) -> list[str]:
    problems = []
    for role, wanted in spec.inspection.items():
        trusts = policy.inspection.for_role(role)
        where = f"inspection.{role}"
        if trusts.inspect is InspectMode.ALL and wanted.inspect is not InspectMode.ALL:
            problems.append(
                f"{where}.inspect: the trust locks inspection and decrypts all for "
                f"{role!r}: a school may not make it {wanted.inspect.value!r}"
            )
        if trusts.safe_search and not wanted.safe_search:
            problems.append(
                f"{where}.safe_search: the trust locks inspection and forces safe search for "
                f"{role!r}: a school may not turn it off"
            )
        if _YOUTUBE_STRICTNESS[wanted.youtube] < _YOUTUBE_STRICTNESS[trusts.youtube]:
            problems.append(
                f"{where}.youtube: the trust locks inspection with YouTube "
                f"{trusts.youtube.value!r} for {role!r}: a school may not make it "
                f"{wanted.youtube.value!r}"
            )
    return problems


def _locked_overlap(
    base: _BaseContext, category: _CategoryIn, lists: Mapping[str, str]
) -> tuple[str, str] | None:
    """(a site, the locked category it falls in) if a school's category lists a site of a
    locked category, or a domain that covers one; None if it lists none."""
    own: dict[str, bool] = {}  # domain -> exact host only ("full:")
    for name in category.lists:
        parsed = parse_domain_list(lists.get(name) or base.lists.get(name) or "", source=name)
        if isinstance(parsed, DomainList):
            for entry in parsed.domains:
                own[entry.removeprefix("full:")] = entry.startswith("full:")
    for raw in category.domains:
        host = normalise_host(raw)
        if not isinstance(host, HostError):
            own[host.name] = False
    for domain in own:
        hits = [c for c in base.policy.domains.categories(domain) if c in base.locked]
        if hits:
            return domain, hits[0]
    for locked_name, domain in _locked_domains(base):
        parts = domain.split(".")
        for start in range(len(parts)):
            suffix = ".".join(parts[start:])
            only_itself = own.get(suffix)
            if only_itself is not None and (not only_itself or start == 0):
                return suffix, locked_name
    return None


def _locked_domains(base: _BaseContext) -> list[tuple[str, str]]:
    """(category, domain) of every domain the locked categories list by name."""
    found = []
    for name in sorted(base.locked):
        spec = (base.data.get("categories") or {}).get(name) or {}
        for list_name in spec.get("lists") or []:
            parsed = parse_domain_list(base.lists.get(list_name, ""), source=list_name)
            if isinstance(parsed, DomainList):
                found += [(name, d.removeprefix("full:")) for d in parsed.domains]
        for raw in spec.get("domains") or []:
            host = normalise_host(str(raw))
            if not isinstance(host, HostError):
                found.append((name, host.name))
    return found
