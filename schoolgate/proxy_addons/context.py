"""What the gateway's addons tell each other about a flow, through `flow.metadata`, and about a
TLS ClientHello (which has no flow) through a small per-connection notice board.

Addons never import each other; they agree on these keys and these value types instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from schoolgate.policy.model import Decision, Overrides, Policy, Subject
from schoolgate.proxy_addons.blockpage import BlockPageSettings


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
    dn: str | None = None  # the person's entry in the directory (LDAP), for a school's OU


# flow.metadata keys
IDENTITY = "schoolgate.identity"  # Identity
DECISION = "schoolgate.decision"  # policy.model.Decision of the request
TECHNIQUE = "schoolgate.technique"  # circumvention technique name, when one was seen
INPUTS = "schoolgate.inputs"  # DecisionInputs the flow's decision was made from
EVIDENCE = "schoolgate.evidence"  # Mapping[str, str]: what a detector saw (never bodies,
#                                   cookies or passwords)
LATE = "schoolgate.late"  # True: the decision changed after the request was recorded (a page
#                           checked when its response arrived); RecordEvents records it again


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """What Enforce decided a flow from, so a later addon can decide another host (an archived
    page's target, a Referer) for the same person at the same instant, with policy.decide."""

    policy: Policy
    subject: Subject
    overrides: Overrides
    at: datetime
    page: BlockPageSettings  # how Enforce renders block pages, for a later addon's blocks
    school: str | None = None  # with a trust: the request's school (None: no school's)


@dataclass(frozen=True, slots=True)
class HelloNote:
    """What was decided at a connection's TLS ClientHello, where no flow exists to carry it:
    Enforce writes the decision, Detect may add a technique, RecordEvents reads it once."""

    decision: Decision
    passthrough: bool  # the bytes were relayed without decryption
    sni: str | None
    evidence: Mapping[str, str] | None = None
    never_decrypt: bool = False  # a sensitive host (banking, health): never intercepted
    school: str | None = None  # with a trust: the connection's school, as Enforce found it


# The one option two addons declare (Enforce reads overrides from it, RecordEvents writes to
# it); mitmproxy accepts a second declaration only if it is identical, so it is spelt once here.
DATABASE_URL_OPTION = (
    "schoolgate_database_url",
    str,
    "",
    "The shared database (sqlite:///file or postgresql+psycopg://user@host/db): overrides "
    "(exceptions, sanctions, sessions, local lists) are read from it instead of the "
    "schoolgate_overrides file, and events, attempts, alerts and sanctions are written to it. "
    "Empty: no database.",
)

# client connection id -> its ClientHello note; removed when the connection ends.
hello_notes: dict[str, HelloNote] = {}
