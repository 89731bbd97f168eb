"""What the gateway's addons tell each other about a flow, through `flow.metadata`.

Addons never import each other; they agree on these keys and this value type instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IdentitySource(StrEnum):
    DIRECTORY = "directory"  # proxy authentication checked against LDAP / AD
    LOCAL = "local"  # proxy authentication checked against the local users file
    SUBNET = "subnet"  # the client address is in a mapped subnet
    DEFAULT = "default"  # nothing known: the policy's default (most restrictive) role


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is behind a connection. Never holds a password. `role` None means the policy's
    default (most restrictive) role: nothing mapped this person or device to a role."""

    role: str | None
    source: IdentitySource
    user: str | None = None
    groups: frozenset[str] = frozenset()


# flow.metadata keys
IDENTITY = "schoolgate.identity"  # Identity
DECISION = "schoolgate.decision"  # policy.model.Decision of the request
TECHNIQUE = "schoolgate.technique"  # circumvention technique name, when one was seen
