"""Which destinations are inside the school (or the gateway's own machine), and which of them the
school lets people reach through the gateway: the `internal:` and `ports:` settings.

Pure: names and addresses in, answers out. A destination is internal if its name is a local
one (localhost, a single label such as a compose service `postgres`, `*.internal`, cloud
metadata names) or its address is not a public one (loopback, private, shared/CGNAT, link-local,
unique-local, unspecified, multicast, reserved, cloud metadata), judging an IPv4 address carried
inside an IPv6 one (mapped, NAT64, 6to4, Teredo) as that IPv4 address too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from schoolgate.policy.hostnames import is_subdomain_or_same

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class InternalKind(StrEnum):
    """Why a destination counts as internal (shown to technicians in the decision's rule)."""

    LOOPBACK = "loopback"
    UNSPECIFIED = "unspecified"
    PRIVATE = "private"  # RFC 1918, unique-local fc00::/7
    SHARED = "shared"  # carrier-grade NAT 100.64.0.0/10
    LINK_LOCAL = "link_local"
    METADATA = "metadata"  # cloud instance metadata (credentials live there)
    MULTICAST = "multicast"
    RESERVED = "reserved"  # any other address that is not a public one
    LOCAL_NAME = "local_name"  # localhost, *.localhost, *.internal, *.local, *.home.arpa ...
    SINGLE_LABEL = "single_label"  # a name with no dot: a compose or Kubernetes service


METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, Azure, GCP, OpenStack, DigitalOcean ...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    }
)
METADATA_NAMES = ("metadata.google.internal", "metadata.goog", "instance-data.ec2.internal")
# Special-use and private-use top-level names: never public websites.
# (".test" and ".example" are left out: they never resolve, and tests use them as stand-ins.)
LOCAL_SUFFIXES = (
    "localhost",
    "internal",
    "local",
    "localdomain",
    "home.arpa",
    "home",
    "lan",
    "intranet",
    "corp",
    "private",
    "invalid",
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPAT = ipaddress.ip_network("::/96")


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_kind(ip: IPAddress) -> InternalKind | None:
    """Why `ip` is internal, or None for a public address."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        found = address_kind(inner)
        if found is not None:
            return found
    if ip in METADATA_ADDRESSES:
        return InternalKind.METADATA
    if ip.is_loopback:
        return InternalKind.LOOPBACK
    if ip.is_unspecified:
        return InternalKind.UNSPECIFIED
    if ip.is_link_local:
        return InternalKind.LINK_LOCAL
    if ip.is_multicast:
        return InternalKind.MULTICAST
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return InternalKind.SHARED
    if ip.is_private:
        return InternalKind.PRIVATE
    if not ip.is_global or ip.is_reserved:
        return InternalKind.RESERVED
    return None


def name_kind(name: str) -> InternalKind | None:
    """Why the canonical host name `name` is internal by its name alone, or None."""
    if name in METADATA_NAMES or any(is_subdomain_or_same(name, m) for m in METADATA_NAMES):
        return InternalKind.METADATA
    if "." not in name:
        return InternalKind.LOOPBACK if name == "localhost" else InternalKind.SINGLE_LABEL
    if any(is_subdomain_or_same(name, suffix) for suffix in LOCAL_SUFFIXES):
        return InternalKind.LOOPBACK if name.endswith(".localhost") else InternalKind.LOCAL_NAME
    return None


def host_kind(name: str, ip: IPAddress | None) -> InternalKind | None:
    """Why a destination (canonical name, and its address if it is an IP literal) is internal."""
    return address_kind(ip) if ip is not None else name_kind(name)


# --- what the school allows ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InternalAllow:
    """One `internal.allow` entry: these hosts (and their subdomains) or networks, for these
    roles, on these ports (empty: the ports the policy allows anyway). `direct`: the PAC file
    sends them DIRECT, round the gateway."""

    hosts: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    roles: frozenset[str] = frozenset()
    ports: frozenset[int] = frozenset()
    direct: bool = False
    note: str = ""

    def covers(self, name: str, ip: IPAddress | None, role: str, port: int | None) -> bool:
        if role not in self.roles:
            return False
        if self.ports and port is not None and port not in self.ports:
            return False
        if ip is not None:
            inner = embedded_ipv4(ip)
            return any(ip in net or (inner is not None and inner in net) for net in self.networks)
        return any(is_subdomain_or_same(name, host) for host in self.hosts)

    @property
    def label(self) -> str:
        return ",".join([*self.hosts, *(str(n) for n in self.networks)])


@dataclass(frozen=True, slots=True)
class InternalSettings:
    """The `internal:` key: everything internal is blocked except what `allow` lists."""

    allow: tuple[InternalAllow, ...] = ()

    def allowed(
        self, name: str, ip: IPAddress | None, role: str, port: int | None
    ) -> InternalAllow | None:
        return next((a for a in self.allow if a.covers(name, ip, role, port)), None)


@dataclass(frozen=True, slots=True)
class PortSettings:
    """The `ports:` key: where a CONNECT tunnel (`connect`) and a plain-HTTP request or
    websocket (`http`) may go, for every role and every host."""

    connect: frozenset[int] = frozenset({443, 80})  # 80: ws:// through a proxy is a CONNECT
    http: frozenset[int] = frozenset({80})
