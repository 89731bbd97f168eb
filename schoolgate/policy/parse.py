"""Parse a policy text (YAML) into a frozen `Policy`, reporting every problem with its place.

`parse_policy(text, source=..., lists=...)` is pure: the caller reads the policy file and the
domain-list files it names (`list_files_named`) and passes their texts in.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, time
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schoolgate.policy.addresses import InternalAllow, InternalSettings, IPNetwork, PortSettings
from schoolgate.policy.calendar import BankHolidayRegion, Calendar, calendar_problems
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.hostnames import DomainIndex, HostError, normalise_host
from schoolgate.policy.inspection import (
    InspectionSettings,
    InspectMode,
    RoleInspection,
    SearchSettings,
    SearchTerm,
    YouTubeMode,
    parse_term_list,
)
from schoolgate.policy.lists import DomainList, parse_domain_list
from schoolgate.policy.model import (
    Category,
    CircumventionSettings,
    DateRange,
    Period,
    PeriodKind,
    Policy,
    Role,
    Rule,
    SanctionAction,
    Verdict,
    When,
)

ALL_ROLES = "all"  # in a rule's roles: every role the policy defines
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


# --- YAML: safe, no sexagesimal numbers (10:30 stays a string), duplicate keys are errors ---


class _PolicyLoader(yaml.SafeLoader):
    """SafeLoader that keeps 10:30 a string (YAML 1.1 reads it as 630) and refuses duplicate
    keys (PyYAML silently keeps the last one, which would hide a mistake)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"the key {key!r} appears twice (first at line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_PolicyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyLoader.add_implicit_resolver(
    _INT, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
_PolicyLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_PolicyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        raise PolicyError(source, [f"{where}: not valid YAML: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"not valid YAML: {exc}"]) from None


# --- the schema (pydantic, extra keys forbidden) ---------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]


class _CategoryIn(_Strict):
    description: str = ""
    lists: list[str] = []
    domains: list[str] = []
    locked: bool = False
    not_unblockable_for: list[str] | Literal["all"] = []
    no_wide_grants_for: list[str] | Literal["all"] = []
    circumvention: bool = False
    sensitive: bool = False


class _DayIn(_Strict):
    start: str
    end: str


class _PeriodIn(_Strict):
    name: str = Field(min_length=1, max_length=64)
    kind: PeriodKind
    start: str
    end: str


class _DateRangeIn(_Strict):
    name: str = Field(min_length=1, max_length=100)
    start: date
    end: date | None = None  # a one-day closure may give only its start


class _CalendarIn(_Strict):
    timezone: str = "Europe/London"
    school_days: list[str] = list(WEEKDAYS[:5])
    school_day: _DayIn
    periods: list[_PeriodIn] = []
    terms: list[_DateRangeIn] = []
    closures: list[_DateRangeIn] = []
    bank_holidays: BankHolidayRegion | Literal["none"] = BankHolidayRegion.ENGLAND_AND_WALES


class _RuleIn(_Strict):
    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    roles: list[str] | Literal["all"]
    categories: list[str] = Field(min_length=1)
    when: list[str] = []
    action: Verdict


class _ThresholdIn(_Strict):
    attempts: int = Field(ge=1, le=1000)
    within_minutes: int = Field(ge=1, le=24 * 60)


class _CircumventionIn(_Strict):
    block_ip_literals: bool = True
    block_rewriting_proxies: bool = True
    threshold: _ThresholdIn = _ThresholdIn(attempts=3, within_minutes=10)
    on_threshold: SanctionAction = SanctionAction.RECOMMEND
    sanction_days: int = Field(default=14, ge=1, le=366)
    supervised_allowlist: list[str] = []


Port = Annotated[int, Field(ge=1, le=65535)]


class _InternalAllowIn(_Strict):
    hosts: list[str] = Field(min_length=1)
    roles: list[str] | Literal["all"]
    ports: list[Port] = []
    direct: bool = False
    note: str = ""


class _InternalIn(_Strict):
    allow: list[_InternalAllowIn] = []


class _PortsIn(_Strict):
    connect: list[Port] = Field(default=[443, 80], min_length=1)
    http: list[Port] = Field(default=[80], min_length=1)


class _RoleInspectionIn(_Strict):
    inspect: InspectMode = InspectMode.LISTED
    safe_search: bool = False
    youtube: YouTubeMode = YouTubeMode.OFF


class _SearchIn(_Strict):
    alert_terms: list[str] = []  # term list files (one term or phrase a line)


class _PolicyIn(_Strict):
    name: str = Field(min_length=1, max_length=200)
    roles: dict[Name, str] = Field(min_length=1)
    default_role: str
    categories: dict[Name, _CategoryIn] = {}
    calendar: _CalendarIn
    rules: list[_RuleIn] = []
    default: Verdict
    circumvention: _CircumventionIn = _CircumventionIn()
    internal: _InternalIn = _InternalIn()
    ports: _PortsIn = _PortsIn()
    inspection: dict[str, _RoleInspectionIn] = {}
    search: _SearchIn = _SearchIn()


# --- public functions ------------------------------------------------------------------------


def list_files_named(text: str) -> tuple[str, ...]:
    """The domain-list file names a policy text refers to (empty if it cannot be read yet:
    `parse_policy` will then report why)."""
    try:
        data = yaml.load(text, Loader=_PolicyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return ()
    names: list[str] = []
    categories = data.get("categories") if isinstance(data, dict) else None
    if isinstance(categories, dict):
        for spec in categories.values():
            lists = spec.get("lists") if isinstance(spec, dict) else None
            if isinstance(lists, list):
                names.extend(n for n in lists if isinstance(n, str) and n not in names)
    search = data.get("search") if isinstance(data, dict) else None
    terms = search.get("alert_terms") if isinstance(search, dict) else None
    if isinstance(terms, list):
        names.extend(n for n in terms if isinstance(n, str) and n not in names)
    return tuple(names)


def parse_policy(
    text: str,
    *,
    source: str,
    lists: Mapping[str, str] | None = None,
    index_key: str = "",
    known_lists: Iterable[str] = (),
) -> Policy:
    """Parse a policy text. `lists` maps each list file name the policy names to its text;
    `index_key` is the secret that keys the domain index's hashes (see DomainIndex);
    `known_lists` names the list files that could be used (the shipped ones), for the message
    about a list that was not found.

    Raises PolicyError listing every problem found, each with its place: when the structure
    has problems (an unknown key, a wrong kind of value), the rest of the policy is still
    checked with those parts left out, so one run shows everything."""
    return parse_policy_mapping(
        read_policy_yaml(text, source),
        source=source,
        lists=lists,
        index_key=index_key,
        known_lists=known_lists,
    )


def read_policy_yaml(text: str, source: str) -> Any:
    """The YAML of a policy-like text as plain data (10:30 stays a string, a key given twice
    is an error). Raises PolicyError with the line and column of a YAML mistake."""
    return _load_yaml(text, source)


def parse_policy_mapping(
    data: Any,
    *,
    source: str,
    lists: Mapping[str, str] | None = None,
    index_key: str = "",
    known_lists: Iterable[str] = (),
    same_domains_as: Policy | None = None,
) -> Policy:
    """`parse_policy` for a policy already read from YAML (the trust layer builds each school's
    policy as data: schoolgate/policy/trust.py).

    `same_domains_as`: a policy whose categories have the very same names, lists and domains
    (the caller makes sure); its domain index is shared instead of built again, so a hundred
    schools on one trust's lists hold the lists once."""
    _require_mapping(data, source, "the policy", "'roles:', 'categories:', 'rules:'")
    lists = lists or {}
    available = tuple(dict.fromkeys([*known_lists, *lists]))
    try:
        spec = _PolicyIn.model_validate(data)
    except ValidationError as exc:
        problems = _schema_problems(exc) + _problems_around(data, exc, lists, available)
        raise PolicyError(source, [_numbered(p, data) for p in problems]) from None
    try:
        return _Builder(spec, source, lists, index_key, available, same_domains_as).build()
    except PolicyError as error:
        raise PolicyError(source, [_numbered(p, data) for p in error.problems]) from None


def validated[M: BaseModel](model: type[M], data: Any, source: str, what: str, keys: str) -> M:
    """`data` read from YAML checked against the schema `model`; PolicyError listing every
    problem with its place otherwise (`what` and example `keys` say what the file should be)."""
    _require_mapping(data, source, what, keys)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(source, _schema_problems(exc)) from None


def _require_mapping(data: Any, source: str, what: str, keys: str) -> None:
    if not isinstance(data, dict):
        raise PolicyError(
            source, [f"{what} must be a YAML mapping (keys like {keys}), not {type(data).__name__}"]
        )


# --- problems in plain words -----------------------------------------------------------------

# pydantic's names for the branches of a union, and for a mapping's key: not places in the file
_BRANCHES = frozenset({"list[str]", "literal['all']", "function-after", "str", "date", "[key]"})


def _schema_problems(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors():
        where = _place(error["loc"])
        message = _plain_words(error)
        problem = f"{where}: {message}" if where else message
        if problem not in problems:
            problems.append(problem)
    return problems


def _plain_words(error: Any) -> str:
    """pydantic's message for one error, in words a technician reads without a manual."""
    kind, ctx = error["type"], error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        hint = _did_you_mean(str(error["loc"][-1]), _fields_at(error["loc"]))
        return (
            f"unknown key ({hint or 'check the spelling; '}see docs/policy.md for the keys allowed)"
        )
    if kind == "missing":
        return "required, but missing"
    if kind in ("enum", "literal_error"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = _did_you_mean(value, choices) if isinstance(value, str) else ""
        return f"{value!r} is not one of the choices: write {_either(choices)}" + (
            f" ({hint.strip()})" if hint else ""
        )
    date_words = "should be a date, written YYYY-MM-DD (like 2026-09-03)"
    words = {
        "string_type": "should be text",
        "bool_type": "should be true or false",
        "bool_parsing": "should be true or false",
        "int_type": "should be a whole number",
        "int_parsing": "should be a whole number",
        "int_from_float": "should be a whole number",
        "list_type": "should be a list, like [a, b]",
        "dict_type": "should be a set of 'key: value' lines",
        "model_type": "should be a set of 'key: value' lines",
        "date_type": date_words,
        "date_parsing": date_words,
        "date_from_datetime_parsing": date_words,
        "greater_than_equal": f"should be {ctx.get('ge')} or more",
        "less_than_equal": f"should be {ctx.get('le')} or less",
        "too_short": f"needs at least {ctx.get('min_length')} item(s)",
        "string_too_short": "must not be empty",
        "string_too_long": f"is too long: at most {ctx.get('max_length')} characters",
        "string_pattern_mismatch": "is not a name schoolgate can use: lower-case letters, "
        "digits and _, starting with a letter (like social_media)",
    }
    got = f" (got {value!r})" if kind not in ("model_type", "dict_type") else ""
    return words.get(kind, str(error["msg"])) + got


def _either(choices: Sequence[str]) -> str:
    quoted = [f"'{c}'" for c in choices]
    if len(quoted) < 2:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """ "did you mean 'social'? " for a close spelling among `known`, else ''."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close and close[0] != name else ""


def _fields_at(loc: Sequence[int | str]) -> list[str]:
    """The keys allowed where `loc` points (the fields of the model holding its last part)."""
    model: type[BaseModel] = _PolicyIn
    into_container = False
    for part in loc[:-1]:
        if part in _BRANCHES:
            continue
        if into_container:  # a list index, or a name in a mapping of models
            into_container = False
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        found = _model_in(field.annotation) if field is not None else None
        if found is None:
            return []
        model, into_container = found
    return list(model.model_fields)


def _model_in(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The schema model an annotation holds, and whether it is inside a list or mapping."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, True
        inner = _model_in(arg)
        if inner is not None:
            return inner
    return None


_RULE_PLACE = re.compile(r"rules\[(\d+)\]")


def _numbered(problem: str, data: Mapping[str, Any]) -> str:
    """Name a rule as people count, like the block page's "rule 5 of 6": 'rules[3].when[0]:
    ...' becomes "rule 4 'staff-at-break' (rules[3].when[0]): ..."."""
    found = _RULE_PLACE.match(problem)
    if found is None:
        return problem
    place, colon, message = problem.partition(": ")
    index = int(found[1])
    rules = data.get("rules")
    rule = rules[index] if isinstance(rules, list) and index < len(rules) else None
    name = rule.get("name") if isinstance(rule, dict) else None
    label = f"rule {index + 1}" + (f" {name!r}" if isinstance(name, str) and name else "")
    return f"{label} ({place}){colon}{message}"


# --- checking the rest when the structure has problems ---------------------------------------

# What stands in for a missing or wrong value so that the rest can still be checked; problems
# found at a stand-in's place are not reported (the structural one already is).
_STAND_INS: dict[str, Any] = {
    "name": "?",
    "default": "allow",
    "action": "block",
    "roles": "all",
    "categories": ["?"],
    "kind": "lesson",
    "hosts": ["stand-in.invalid"],
    "attempts": 3,
    "within_minutes": 10,
}


def _problems_around(
    data: dict[str, Any],
    exc: ValidationError,
    lists: Mapping[str, str],
    available: Sequence[str],
) -> list[str]:
    """The policy's other problems, found with the structural ones left out (an unknown key
    removed, a wrong or missing value stood in for); none when the rest cannot be built."""
    data = copy.deepcopy(data)
    patched: set[str] = set()
    for _ in range(4):
        for error in exc.errors():
            path = [part for part in error["loc"] if part not in _BRANCHES]
            if not _patch(data, path, error["type"]):
                return []
            patched.add(_place(error["loc"]))
        try:
            spec = _PolicyIn.model_validate(data)
        except ValidationError as again:
            exc = again
            continue
        try:
            _Builder(spec, "", lists, "", available).build()
        except PolicyError as error:
            return [p for p in error.problems if not any(_under(p, at) for at in patched)]
        return []
    return []


def _patch(data: dict[str, Any], path: Sequence[int | str], kind: str) -> bool:
    """Leave out or stand in for the value at `path`; False if that cannot be done."""
    parent: Any = data
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = path[-1] if path else None
    if isinstance(parent, dict) and isinstance(last, str):
        if kind == "extra_forbidden" or kind == "string_pattern_mismatch":
            parent.pop(last, None)  # an unknown key, or a name that cannot be used
        elif last == "default_role" and isinstance(data.get("roles"), dict) and data["roles"]:
            parent[last] = next(iter(data["roles"]))
        elif last in _STAND_INS:
            parent[last] = copy.deepcopy(_STAND_INS[last])
        elif kind != "missing" and last in parent:
            del parent[last]  # a wrong value where the schema has a default
        else:
            return False
        return True
    if isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        if isinstance(parent[last], dict | list):
            return False
        parent[last] = "?"
        return True
    return False


def _under(problem: str, place: str) -> bool:
    return problem.startswith(place) and problem[len(place) : len(place) + 1] in (".", "[", ":")


def _place(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _BRANCHES:
            continue  # pydantic's union branch names are not places in the file
        else:
            out += f".{part}" if out else str(part)
    return out


def _known(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none defined"


def _unknown(what: str, name: str, known: Iterable[str], extra: str = "") -> str:
    """The words for a name that is not one of `known`: "unknown category 'socail' (did you
    mean 'social'? known: ...)"."""
    known = list(known)
    return f"unknown {what} {name!r} ({_did_you_mean(name, known)}known: {_known(known)}{extra})"


def _parse_clock(value: str) -> time | None:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?", value)
    if not match:
        return None
    return time(int(match[1]), int(match[2]), int(match[3] or 0))


class _Builder:
    """Turns the validated schema into frozen policy objects, collecting semantic problems."""

    def __init__(
        self,
        spec: _PolicyIn,
        source: str,
        lists: Mapping[str, str],
        index_key: str = "",
        available: Sequence[str] = (),
        shared: Policy | None = None,
    ) -> None:
        self.index_key = index_key
        self.available = available
        self.shared = shared
        self.spec = spec
        self.source = source
        self.lists = lists
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def build(self) -> Policy:
        spec = self.spec
        roles = {name: Role(name, description) for name, description in spec.roles.items()}
        if spec.default_role not in roles:
            self.problem("default_role", _unknown("role", spec.default_role, roles))
        categories, domain_lists = self._categories(roles)
        calendar = self._calendar()
        rules = self._rules(roles, categories, calendar)
        circumvention = self._circumvention()
        internal = self._internal(roles)
        inspection = self._inspection(roles)
        search = self._search()
        domains = self.shared.domains if self.shared else self._index(domain_lists)
        if self.problems:
            raise PolicyError(self.source, self.problems)
        assert calendar is not None
        assert domains is not None
        return Policy(
            name=spec.name,
            source=self.source,
            roles=roles,
            default_role=spec.default_role,
            categories=categories,
            domains=domains,
            calendar=calendar,
            rules=rules,
            default=spec.default,
            circumvention=circumvention,
            internal=internal,
            ports=PortSettings(
                connect=frozenset(spec.ports.connect), http=frozenset(spec.ports.http)
            ),
            inspection=inspection,
            search=search,
        )

    def _role_names(
        self,
        value: list[str] | str,
        where: str,
        roles: Mapping[str, Role],
    ) -> frozenset[str]:
        if value == ALL_ROLES:
            return frozenset(roles)
        names: list[str] = []
        for i, name in enumerate(value):
            if name == ALL_ROLES:
                names.extend(roles)
            elif name not in roles:
                self.problem(f"{where}[{i}]", _unknown("role", name, roles, ", or 'all'"))
            else:
                names.append(name)
        return frozenset(names)

    def _categories(
        self,
        roles: Mapping[str, Role],
    ) -> tuple[dict[str, Category], dict[str, list[str]]]:
        categories: dict[str, Category] = {}
        domains: dict[str, list[str]] = {}
        for name, cat in self.spec.categories.items():
            where = f"categories.{name}"
            entries: list[str] = []
            shared = self.shared.categories.get(name) if self.shared else None
            for i, list_name in enumerate(() if shared else cat.lists):
                text = self.lists.get(list_name)
                if text is None:
                    shipped = [n for n in self.available if n.endswith(".txt")]
                    self.problem(
                        f"{where}.lists[{i}]",
                        f"list file {list_name!r} was not found "
                        f"({_did_you_mean(list_name, shipped)}put it beside the policy file, "
                        f"or use a shipped list: {_known(shipped)})",
                    )
                    continue
                parsed = parse_domain_list(text, source=list_name)
                if isinstance(parsed, DomainList):
                    entries.extend(parsed.domains)
                else:
                    self.problems.extend(
                        f"{where}.lists[{i}]: {p.where}: {p.message}" for p in parsed
                    )
            for i, raw in enumerate(() if shared else cat.domains):
                host = normalise_host(raw)
                if isinstance(host, HostError):
                    self.problem(
                        f"{where}.domains[{i}]", f"{raw!r} is not a host name: {host.message}"
                    )
                else:
                    entries.append(host.name)
            if cat.sensitive and cat.circumvention:
                self.problem(
                    where,
                    "a category cannot be both sensitive (never decrypted) and "
                    "circumvention (blocked as a trick): pick one",
                )
            unique = list(dict.fromkeys(entries))
            domains[name] = unique
            categories[name] = Category(
                name=name,
                description=cat.description,
                locked=cat.locked,
                not_unblockable_for=self._role_names(
                    cat.not_unblockable_for, f"{where}.not_unblockable_for", roles
                ),
                no_wide_grants_for=self._role_names(
                    cat.no_wide_grants_for, f"{where}.no_wide_grants_for", roles
                ),
                circumvention=cat.circumvention,
                sensitive=cat.sensitive,
                lists=tuple(cat.lists),
                domain_count=shared.domain_count if shared else len(unique),
                example_domain=shared.example_domain if shared else (unique[0] if unique else ""),
            )
        return categories, domains

    def _index(self, domain_lists: Mapping[str, list[str]]) -> DomainIndex | None:
        try:
            # every entry is canonical already: parse_domain_list or normalise_host made it so
            return DomainIndex.build(domain_lists, key=self.index_key, checked=True)
        except ValueError as exc:
            self.problem("categories", str(exc))
            return None

    def _clock(self, value: str, where: str) -> time:
        parsed = _parse_clock(value)
        if parsed is None:
            self.problem(
                where,
                f"{value!r} is not a time of day: write it as HH:MM or "
                "HH:MM:SS in 24-hour form, like '10:30'",
            )
            return time(0)
        return parsed

    def _calendar(self) -> Calendar | None:
        cal = self.spec.calendar
        where = "calendar"
        problems_before = len(self.problems)
        try:
            zone = ZoneInfo(cal.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(
                f"{where}.timezone",
                f"unknown time zone {cal.timezone!r} (use an IANA name like 'Europe/London')",
            )
            zone = ZoneInfo("UTC")
        days = []
        for i, day in enumerate(cal.school_days):
            if day.lower() not in WEEKDAYS:
                self.problem(
                    f"{where}.school_days[{i}]",
                    f"{day!r} is not a day of the week (known: {', '.join(WEEKDAYS)})",
                )
            else:
                days.append(WEEKDAYS.index(day.lower()))
        periods = tuple(
            Period(
                p.name,
                p.kind,
                self._clock(p.start, f"{where}.periods[{i}].start"),
                self._clock(p.end, f"{where}.periods[{i}].end"),
            )
            for i, p in enumerate(cal.periods)
        )
        calendar = Calendar(
            timezone=zone,
            school_days=frozenset(days),
            day_start=self._clock(cal.school_day.start, f"{where}.school_day.start"),
            day_end=self._clock(cal.school_day.end, f"{where}.school_day.end"),
            periods=tuple(sorted(periods, key=lambda p: p.start)),
            terms=tuple(DateRange(t.name, t.start, t.end or t.start) for t in cal.terms),
            closures=tuple(DateRange(c.name, c.start, c.end or c.start) for c in cal.closures),
            bank_holidays=None if cal.bank_holidays == "none" else cal.bank_holidays,
        )
        if len(self.problems) > problems_before:
            return calendar  # bad times were replaced by 00:00: more problems would mislead
        # calendar_problems names periods by their sorted place; map back to the file's order
        order = sorted(range(len(periods)), key=lambda i: periods[i].start)
        for place, message in calendar_problems(calendar):
            match = re.fullmatch(r"periods\[(\d+)\](.*)", place)
            if match and int(match[1]) < len(order):
                place = f"periods[{order[int(match[1])]}]{match[2]}"
            self.problem(f"{where}.{place}", message)
        return calendar

    def _rules(
        self,
        roles: Mapping[str, Role],
        categories: Mapping[str, Category],
        calendar: Calendar | None,
    ) -> tuple[Rule, ...]:
        rules = []
        seen: dict[str, int] = {}
        windows = calendar.window_names() if calendar else frozenset()
        for i, rule in enumerate(self.spec.rules):
            where = f"rules[{i}]"
            if rule.name in seen:
                self.problem(
                    f"{where}.name",
                    f"the name {rule.name!r} is already used by "
                    f"rule {seen[rule.name] + 1}: names must be unique",
                )
            seen.setdefault(rule.name, i)
            for j, cat in enumerate(rule.categories):
                if cat not in categories:
                    self.problem(f"{where}.categories[{j}]", _unknown("category", cat, categories))
            for j, window in enumerate(rule.when):
                if window not in windows and window != "always":
                    self.problem(
                        f"{where}.when[{j}]", _unknown("time window", window, windows, ", always")
                    )
            when = When(tuple(w for w in rule.when if w != "always"))
            if "always" in rule.when:
                when = When()
            rules.append(
                Rule(
                    name=rule.name,
                    roles=self._role_names(rule.roles, f"{where}.roles", roles),
                    categories=frozenset(rule.categories),
                    verdict=rule.action,
                    when=when,
                    description=rule.description,
                    index=i,
                )
            )
        return tuple(rules)

    def _circumvention(self) -> CircumventionSettings:
        spec = self.spec.circumvention
        allow = []
        for i, raw in enumerate(spec.supervised_allowlist):
            host = normalise_host(raw)
            if isinstance(host, HostError):
                self.problem(
                    f"circumvention.supervised_allowlist[{i}]",
                    f"{raw!r} is not a host name: {host.message}",
                )
            else:
                allow.append(host.name)
        return CircumventionSettings(
            block_ip_literals=spec.block_ip_literals,
            block_rewriting_proxies=spec.block_rewriting_proxies,
            threshold_attempts=spec.threshold.attempts,
            threshold_window_seconds=spec.threshold.within_minutes * 60,
            on_threshold=spec.on_threshold,
            sanction_days=spec.sanction_days,
            supervised_allowlist=tuple(allow),
        )

    def _inspection(self, roles: Mapping[str, Role]) -> InspectionSettings:
        by_role = {}
        for role, spec in self.spec.inspection.items():
            if role not in roles:
                self.problem(f"inspection.{role}", _unknown("role", role, roles))
                continue
            by_role[role] = RoleInspection(spec.inspect, spec.safe_search, spec.youtube)
        return InspectionSettings(by_role)

    def _search(self) -> SearchSettings:
        terms: list[SearchTerm] = []
        for i, name in enumerate(self.spec.search.alert_terms):
            text = self.lists.get(name)
            if text is None:
                self.problem(
                    f"search.alert_terms[{i}]",
                    f"the term list {name!r} was not found "
                    "(put it beside the policy file, or name a shipped one)",
                )
                continue
            found, problems = parse_term_list(text, source=name)
            terms.extend(found)
            for problem in problems:
                self.problem(f"search.alert_terms[{i}]", problem)
        return SearchSettings(tuple(terms), tuple(self.spec.search.alert_terms))

    def _internal(self, roles: Mapping[str, Role]) -> InternalSettings:
        entries = []
        for i, entry in enumerate(self.spec.internal.allow):
            where = f"internal.allow[{i}]"
            hosts: list[str] = []
            networks: list[IPNetwork] = []
            for j, raw in enumerate(entry.hosts):
                if "/" in raw:
                    try:
                        networks.append(ipaddress.ip_network(raw, strict=True))
                    except ValueError as exc:
                        self.problem(
                            f"{where}.hosts[{j}]",
                            f"{raw!r} is not an address range: "
                            f"{exc} (write it like 10.0.5.0/24 or fd00:1::/64)",
                        )
                    continue
                host = normalise_host(raw)
                if isinstance(host, HostError):
                    self.problem(
                        f"{where}.hosts[{j}]",
                        f"{raw!r} is not a host name, address or address range: {host.message}",
                    )
                elif host.ip is not None:
                    networks.append(ipaddress.ip_network(host.ip))
                else:
                    hosts.append(host.name)
            entries.append(
                InternalAllow(
                    hosts=tuple(hosts),
                    networks=tuple(networks),
                    roles=self._role_names(entry.roles, f"{where}.roles", roles),
                    ports=frozenset(entry.ports),
                    direct=entry.direct,
                    note=entry.note,
                )
            )
        return InternalSettings(allow=tuple(entries))
