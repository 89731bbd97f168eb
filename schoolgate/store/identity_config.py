"""The identity configuration file (identity.yaml): which directory to ask, how its groups and the
client subnets map to the policy's roles, which teachers' groups teach which pupils' groups
(`classes:`), and how long answers are cached.

`parse_identity_config(text, source=...)` is text -> frozen values and reports every problem with
its place (`identity.yaml: groups_to_roles[2].role: ...`); `load_identity_config(path)` reads the
file, resolves relative paths against its folder and checks that the files it names exist.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.dataclasses import dataclass

_STRICT = ConfigDict(extra="forbid")
_ROLE = re.compile(r"^[a-z][a-z0-9_]*$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _check_role(role: str) -> str:
    if not _ROLE.match(role):
        raise ValueError(f"{role!r} is not a role name (lower case letters, digits, underscores)")
    return role


def _check_cidr(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(cidr, strict=True))
    except ValueError as error:
        if "host bits" in str(error):
            fixed = ipaddress.ip_network(cidr, strict=False)
            raise ValueError(f"{cidr!r} has host bits set; did you mean {fixed}?") from None
        raise ValueError(f"{cidr!r} is not an IPv4 or IPv6 network") from None


RoleName = Annotated[str, AfterValidator(_check_role)]
Cidr = Annotated[str, AfterValidator(_check_cidr)]


class IdentityConfigError(ValueError):
    """The identity configuration (or a file it names) is wrong; `problems` lists each place."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class GroupMode(StrEnum):
    MEMBER_OF = "member_of"  # read the user's memberOf attribute (AD, OpenLDAP memberof overlay)
    SEARCH = "search"  # search groups whose member is the user's DN (groupOfNames)
    AD_NESTED = "ad_nested"  # AD only: nested membership through the in-chain matching rule


DEFAULT_GROUP_FILTERS = {
    GroupMode.SEARCH: "(&(objectClass=groupOfNames)(member={user_dn}))",
    GroupMode.AD_NESTED: "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:={user_dn}))",
}


@dataclass(frozen=True, config=_STRICT)
class Timeouts:
    connect_seconds: Annotated[float, Field(gt=0, le=60)] = 3.0
    receive_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    total_seconds: Annotated[float, Field(gt=0, le=120)] = 5.0  # one whole sign-in check


@dataclass(frozen=True, config=_STRICT)
class GroupLookup:
    mode: GroupMode = GroupMode.MEMBER_OF
    search_base: str | None = None  # needed by search and ad_nested
    filter: str | None = None  # with {user_dn}; default depends on the mode
    name_attribute: str = "cn"

    def __post_init__(self) -> None:
        if self.mode is not GroupMode.MEMBER_OF and not self.search_base:
            raise ValueError(f"search_base is needed when mode is {self.mode}")
        if self.filter is not None and "{user_dn}" not in self.filter:
            raise ValueError("filter must contain {user_dn}")

    @property
    def effective_filter(self) -> str:
        return self.filter or DEFAULT_GROUP_FILTERS.get(self.mode, "")


@dataclass(frozen=True, config=_STRICT)
class LdapSettings:
    kind: Literal["ldap"]
    url: str
    bind_dn: str
    bind_password_file: Path  # the service account's password lives in this file, never here
    user_search_base: str
    user_filter: str = "(uid={username})"
    username_attribute: str = "uid"  # AD: sAMAccountName
    display_name_attribute: str = "displayName"
    mail_attribute: str = "mail"  # the person's e-mail address, for the admin's notifications
    start_tls: bool = False
    ca_file: Path | None = None  # CA bundle for ldaps:// and StartTLS; else the system's CAs
    groups: GroupLookup = GroupLookup()
    timeouts: Timeouts = Timeouts()
    pool_size: Annotated[int, Field(ge=1, le=32)] = 4  # idle service connections kept open
    max_concurrent: Annotated[int, Field(ge=1, le=64)] = 8  # directory calls in flight

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.match(r"^ldaps?://[^/\s]+/?$", url):
            raise ValueError(f"{url!r} is not ldap://host[:port] or ldaps://host[:port]")
        return url.rstrip("/")

    @field_validator("user_filter")
    @classmethod
    def _user_filter(cls, value: str) -> str:
        if "{username}" not in value or not (value.startswith("(") and value.endswith(")")):
            raise ValueError(f"{value!r} must be an LDAP filter in parentheses with {{username}}")
        return value

    def __post_init__(self) -> None:
        if self.start_tls and self.url.startswith("ldaps://"):
            raise ValueError("start_tls is for ldap:// URLs; ldaps:// is already encrypted")


@dataclass(frozen=True, config=_STRICT)
class LocalSettings:
    kind: Literal["local"]
    users_file: Path


@dataclass(frozen=True, config=_STRICT)
class GroupRole:
    group: Annotated[str, Field(min_length=1)]
    role: RoleName


@dataclass(frozen=True, config=_STRICT)
class SubnetRole:
    cidr: Cidr
    role: RoleName
    without_auth: bool = False  # devices here browse with this role without proxy credentials

    @property
    def network(self) -> Network:
        return ipaddress.ip_network(self.cidr)


@dataclass(frozen=True, config=_STRICT)
class ClassGroup:
    """Members of the directory group `group` teach the pupils in the groups `teaches`."""

    group: Annotated[str, Field(min_length=1, max_length=256)]
    teaches: Annotated[
        tuple[Annotated[str, Field(min_length=1, max_length=256)], ...], Field(min_length=1)
    ]


@dataclass(frozen=True, config=_STRICT)
class CacheTtl:
    positive_seconds: Annotated[float, Field(ge=0, le=86400)] = 600.0
    negative_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0


@dataclass(frozen=True, config=_STRICT)
class IdentityConfig:
    directory: Annotated[LdapSettings | LocalSettings, Field(discriminator="kind")] | None = None
    groups_to_roles: tuple[GroupRole, ...] = ()  # first matching group wins
    subnets: tuple[SubnetRole, ...] = ()  # the most specific matching subnet wins
    cache: CacheTtl = CacheTtl()
    # Explicit proxy: answer 407 to clients without credentials outside unauthenticated subnets.
    auth_required: bool = True
    classes: tuple[ClassGroup, ...] = ()  # which teachers' groups teach which pupils' groups

    def classes_taught(self, groups: Iterable[str]) -> frozenset[str]:
        """The pupils' groups (case-folded) that a member of `groups` teaches."""
        held = {group.casefold() for group in groups}
        return frozenset(
            taught.casefold()
            for mapping in self.classes
            if mapping.group.casefold() in held
            for taught in mapping.teaches
        )

    def role_for_groups(self, groups: Iterable[str]) -> str | None:
        """The role of the first mapping whose group the user is in (names compare as AD does,
        ignoring case); None means the policy's default role."""
        held = {group.casefold() for group in groups}
        for mapping in self.groups_to_roles:
            if mapping.group.casefold() in held:
                return mapping.role
        return None

    def subnet_for(self, address: str) -> SubnetRole | None:
        """The most specific subnet containing `address` (IPv4-mapped IPv6 counts as IPv4)."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        matches = [subnet for subnet in self.subnets if ip in subnet.network]
        return max(matches, key=lambda subnet: subnet.network.prefixlen, default=None)


_ADAPTER = TypeAdapter(IdentityConfig)


def format_location(loc: Sequence[int | str]) -> str:
    """('groups_to_roles', 2, 'role') -> 'groups_to_roles[2].role'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def located_problems(
    error: ValidationError, *, source: str, skip: Iterable[str] = ("ldap", "local")
) -> list[str]:
    """One `source: place: message` line per pydantic error (union tags left out of the place)."""
    skipped = set(skip)
    problems = []
    for item in error.errors():
        loc = [part for part in item["loc"] if part not in skipped]
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] in {"unexpected_keyword_argument", "extra_forbidden"}:
            message = "unknown setting (check the spelling)"
        elif item["type"] in {"missing", "missing_argument"}:
            message = "required setting is missing"
        elif item["type"] == "union_tag_invalid":
            context = item.get("ctx", {})
            message = f"unknown kind {context.get('tag')!r} (known: {context.get('expected_tags')})"
        where = format_location(loc) or "(top level)"
        problems.append(f"{source}: {where}: {message}")
    return problems


def parse_identity_config(text: str, *, source: str = "identity.yaml") -> IdentityConfig:
    """Parse the YAML text; raise IdentityConfigError listing every problem with its place."""
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise IdentityConfigError([f"{source}: {where}: not valid YAML"]) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise IdentityConfigError([f"{source}: (top level): expected a mapping of settings"])
    try:
        config = _ADAPTER.validate_python(document)
    except ValidationError as error:
        raise IdentityConfigError(located_problems(error, source=source)) from None
    problems = []
    seen: set[str] = set()
    for index, subnet in enumerate(config.subnets):
        if subnet.cidr in seen:
            problems.append(f"{source}: subnets[{index}].cidr: {subnet.cidr} is listed twice")
        seen.add(subnet.cidr)
    if problems:
        raise IdentityConfigError(problems)
    return config


def load_identity_config(path: Path) -> IdentityConfig:
    """Read identity.yaml; relative paths in it are relative to its folder and must exist."""
    source = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise IdentityConfigError(
            [f"{path}: cannot read the identity configuration: {error.strerror or error}"]
        ) from None
    config = parse_identity_config(text, source=source)
    directory = config.directory
    base = path.parent
    if isinstance(directory, LocalSettings):
        directory = dataclasses.replace(directory, users_file=base / directory.users_file)
        files = {"directory.users_file": directory.users_file}
    elif isinstance(directory, LdapSettings):
        ca_file = base / directory.ca_file if directory.ca_file else None
        directory = dataclasses.replace(
            directory, ca_file=ca_file, bind_password_file=base / directory.bind_password_file
        )
        files = {"directory.bind_password_file": directory.bind_password_file}
        if ca_file is not None:
            files["directory.ca_file"] = ca_file
    else:
        return config
    problems = [
        f"{source}: {place}: cannot read {file}"
        for place, file in files.items()
        if not (file.is_file() and os.access(file, os.R_OK))
    ]
    if problems:
        raise IdentityConfigError(problems)
    return dataclasses.replace(config, directory=directory)
