"""Who is signed in and what they may open: the roles of the admin and the signed-in user.

Everyone signed in is a pupil or a member of staff; directory groups add the admin roles
(business manager, DSL, IT technician). Role names are stable codes (the audit log keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
