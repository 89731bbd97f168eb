"""Small helpers the addons share about flows and connections (written once, here): a host's
canonical name, the client's address as events spell it, and answering or cutting a flow.
"""

from __future__ import annotations

from mitmproxy.connection import Address, Client

from policy.hostnames import HostError, normalise_host


def host_name(raw: str | None) -> str | None:
    """The canonical name of a host as a client wrote it; None if it is not a valid host."""
    if not raw:
        return None
    host = normalise_host(raw)
    return None if isinstance(host, HostError) else host.name


def address_ip(address: Address | None) -> str | None:
    """The IP of a peer address as events and detectors spell it: an IPv4-mapped IPv6 address
    (::ffff:10.0.0.5, from a dual-stack listener) as plain IPv4."""
    if not address:
        return None
    ip = str(address[0])
    return ip.removeprefix("::ffff:") if ip.startswith("::ffff:") and "." in ip else ip


def client_ip(client: Client) -> str | None:
    return address_ip(client.peername)
