"""The names of the ways people try to get round the filter, and their words, in one place:
`decide()` and the gateway make them, events record them, the admin and `explain` describe
them, alerts grade them. The strings are a contract (events, the API).
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
    # (a school's own circumvention category is recorded under its own name too)
    WEB_PROXY = "web_proxy"
    VPN = "vpn"
    TOR = "tor"
    DOH = "doh"  # a known DNS-over-HTTPS resolver by name
    PLATFORM_FRONTEND = "platform_frontend"  # a front-end or mirror of X or Instagram
    LOOKALIKE = "lookalike"  # a name made to look like a platform's own
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


# In words, for staff and the block page (policy/explain.py); a technique without words here is
# shown as its name with spaces.
WORDS: dict[str, str] = {
    Technique.IP_LITERAL: "a public IP address typed instead of a site's name",
    Technique.REWRITING_PROXY: "a page-rewriting proxy (such as a translate proxy) showing a "
    "blocked site",
    Technique.HOST_MISMATCH: "a connection whose address, certificate name and site name disagree",
    Technique.WEB_PROXY: "a web proxy or unblocker site",
    Technique.VPN: "a VPN service",
    Technique.TOR: "Tor",
    Technique.DOH: "DNS-over-HTTPS, which hides look-ups from the school's filter",
    Technique.PLATFORM_FRONTEND: "a front-end, mirror or viewer site that shows X or Instagram "
    "another way",
    Technique.LOOKALIKE: "a name made to look like a social-media site's own, with lookalike "
    "letters",
    Technique.DOH_CONTENT: "DNS-over-HTTPS sent to a site that is not a known resolver",
    Technique.ARCHIVE_VIEWER: "an archive, cache or translation viewer showing a blocked page",
    Technique.ECH: "an encrypted hello that hides which site is being visited",
    Technique.UNUSUAL_PORT: "a connection to an unusual port",
    Technique.TUNNEL_PROTOCOL: "a tunnel that is not web traffic (such as a VPN or SSH)",
    Technique.REPEATED_ATTEMPTS: "the same blocked site asked for again and again",
    Technique.EMBEDDED_WIDGET: "a blocked site's widget on an allowed page",
    Technique.MALFORMED_REQUEST: "a request the filter could not read",
    Technique.PROTOCOL_UPGRADE: "a request to switch to another protocol",
}


def describe_technique(technique: str) -> str:
    return WORDS.get(technique, technique.replace("_", " "))


# Blocked, recorded, but never counted towards a sanction: nobody chose to load them.
NOT_COUNTED: frozenset[str] = frozenset({Technique.EMBEDDED_WIDGET})

# Signals that suggest a determined attempt: their alert is high severity at once.
HIGH_SEVERITY: frozenset[str] = frozenset(
    {Technique.ECH, Technique.VPN, Technique.TOR, Technique.TUNNEL_PROTOCOL}
)


def counted(technique: str) -> bool:
    """Does an attempt with this technique count towards the sanction threshold?"""
    return technique not in NOT_COUNTED
