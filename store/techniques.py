"""The names of the ways people try to get round the filter, in one place: the gateway records
them, the admin shows them, alerts grade them. The strings are a contract (events, the API).
"""

from __future__ import annotations

from enum import StrEnum


class Technique(StrEnum):
    """A circumvention signal. The first group is decided by the host name alone (policy/decide
    and the Enforce addon); the rest need more than the host (the Detect addon)."""

    # decided from the host name (policy/decide.py, proxy_addons/enforce.py)
    IP_LITERAL = "ip_literal"  # a public IP address instead of a name
    REWRITING_PROXY = "rewriting_proxy"  # a rewriting proxy (translate.goog) of a blocked site
    HOST_MISMATCH = "host_mismatch"  # CONNECT target, TLS SNI and Host disagree (rule says which)
    # the circumvention categories of the seed policy: the technique is the category's name
    WEB_PROXY = "web_proxy"
    VPN = "vpn"
    TOR = "tor"
    DOH = "doh"  # a known DNS-over-HTTPS resolver by name
    # needs more than the host name (proxy_addons/detect.py)
    DOH_CONTENT = "doh_content"  # DNS-over-HTTPS to any host: content type, /dns-query, ?dns=
    ARCHIVE_VIEWER = "archive_viewer"  # an archive or cache viewer of a blocked page
    ECH = "ech"  # TLS Encrypted ClientHello: the real destination is hidden
    UNUSUAL_PORT = "unusual_port"  # CONNECT to a port other than the allowed ones
    TUNNEL_PROTOCOL = "tunnel_protocol"  # neither TLS nor HTTP inside a tunnel (VPN, SSH...)
    REPEATED_ATTEMPTS = "repeated_attempts"  # the same blocked platform again and again
    EMBEDDED_WIDGET = "embedded_widget"  # a blocked platform's widget on an allowed page
    MALFORMED_REQUEST = "malformed_request"  # refused by mitmproxy before any rule could run
    PROTOCOL_UPGRADE = "protocol_upgrade"  # Upgrade: h2c, TLS, connect-udp... (not websocket)


# Blocked, recorded, but never counted towards a sanction: nobody chose to load them.
NOT_COUNTED: frozenset[str] = frozenset({Technique.EMBEDDED_WIDGET})

# Signals that suggest a determined attempt: their alert is high severity at once.
HIGH_SEVERITY: frozenset[str] = frozenset({Technique.ECH, Technique.VPN, Technique.TOR,
                                           Technique.TUNNEL_PROTOCOL})


def counted(technique: str) -> bool:
    """Does an attempt with this technique count towards the sanction threshold?"""
    return technique not in NOT_COUNTED
