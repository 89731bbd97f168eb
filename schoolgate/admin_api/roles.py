"""Who is signed in and what they may open: the roles of the admin and the signed-in user.

Everyone signed in is a pupil or a member of staff; directory groups add the admin roles
(business manager, DSL, IT technician). Role names are stable codes (the audit log keeps them).
With a trust file, a person belongs to one school and holds its roles through groups named
after it, or holds a role in every school through a `trust-` group (`place_in_trust`,
docs/trust.md "Roles scoped to a school").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from schoolgate.policy.attribution import AMBIGUOUS


class Role(StrEnum):
    PUPIL = "pupil"  # may submit requests and follow their own
    STAFF = "staff"  # also: explain, and requests for a class in advance
    BUSINESS_MANAGER = "business_manager"  # unblock requests, local lists, exceptions
    DSL = "dsl"  # monitoring, alerts, sanctions, incident notes, reports; the audit log
    IT_TECHNICIAN = "it_technician"  # policy view and validation, health, configuration, audit


ADMIN_ROLES = frozenset({Role.BUSINESS_MANAGER, Role.DSL, Role.IT_TECHNICIAN})
STAFF_SIDE = frozenset({Role.STAFF, *ADMIN_ROLES})
EVERYONE = frozenset(Role)


@dataclass(frozen=True, slots=True)
class SignedInUser:
    username: str
    display_name: str
    roles: frozenset[Role]
    policy_role: str  # the gateway's role for this person (identity file), for requests
    groups: frozenset[str] = frozenset()
    source: str = "directory"  # directory, admin accounts file or break-glass
    # With a trust file: the person's school (None: in none, or in more than one), and whether
    # a trust role lets them see every school's rows. Without one: neither, and everything.
    school: str | None = None
    every_school: bool = False

    def has(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_staff(self) -> bool:
        return self.has(*STAFF_SIDE)

    def same_person(self, username: str | None) -> bool:
        """User names compare as the directory does: ignoring case."""
        return username is not None and username.casefold() == self.username.casefold()


def roles_for(
    *, groups: frozenset[str], admin_groups: dict[str, Role], policy_role: str, default_role: str
) -> frozenset[Role]:
    """Admin roles from directory groups (ignoring case, as AD does); pupil or staff from the
    gateway role: the policy's default (most restrictive) role is a pupil's, any other staff."""
    held = {group.casefold() for group in groups}
    admin = {role for group, role in admin_groups.items() if group.casefold() in held}
    base = Role.STAFF if admin or policy_role != default_role else Role.PUPIL
    return frozenset({base, *admin})


TRUST_PREFIX = "trust"  # `trust-<admin group>`: that role in every school of the trust


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a trust places a person: their school, whether a trust role covers every school,
    and the admin groups (as `admin_groups` names them) whose roles they hold."""

    school: str | None
    every_school: bool
    admin_groups: frozenset[str]


def place_in_trust(
    *,
    groups: Iterable[str],
    schools: Iterable[str],
    admin_groups: Iterable[str],
    directory_school: str | None = None,
) -> Placement:
    """A person's school and roles in a trust, from their directory groups (ignoring case):
    group `<school>` or any `<school>-<admin group>` places them in that school, whose admin
    group `<school>-<admin group>` gives its role there (`oak-DSL`: Oak's DSL); `trust-<admin
    group>` gives the role in every school (`trust-DSL`: the trust's safeguarding lead). A plain
    admin group (`DSL`) names no school and gives nothing. `directory_school` is the school the
    trust file's `directory:` (a school's group or OU) gives the person, as at the gateway
    (`Attributor.by_directory`; AMBIGUOUS: two schools'). Groups or OUs of two schools place
    the person in neither: they see no school's rows (fail closed)."""
    held = {group.casefold() for group in groups}
    names = tuple(admin_groups)

    def holds(prefix: str, name: str) -> bool:
        return f"{prefix}-{name}".casefold() in held

    every = frozenset(name for name in names if holds(TRUST_PREFIX, name))
    found = {
        school
        for school in schools
        if school.casefold() in held or any(holds(school, name) for name in names)
    }
    if directory_school is not None:
        found.add(directory_school)  # AMBIGUOUS is no school's id: it makes two
    school = next(iter(found)) if len(found) == 1 and AMBIGUOUS not in found else None
    own = frozenset(name for name in names if school is not None and holds(school, name))
    return Placement(school, bool(every), every | own)
