"""Small helpers the addons share about flows and connections (written once, here): a host's
canonical name, the client's address as events spell it, and answering or cutting a flow.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mitmproxy import http
from mitmproxy.connection import Address, Client
from mitmproxy.net.http import url

from schoolgate.policy.hostnames import HostError, ShortNameMemo, normalise_host
from schoolgate.policy.model import Decision, Policy, Reason, Subject, Verdict
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.blockpage import BlockPageSettings, make_block_page, make_plain_block

logger = logging.getLogger(__name__)


def host_name(raw: str | None) -> str | None:
    """The canonical name of a host as a client wrote it; None if it is not a valid host."""
    if not raw:
        return None
    host = normalise_host(raw)
    return None if isinstance(host, HostError) else host.name


def _authority_host(authority: str) -> str:
    return url.parse_authority(authority, check=False)[0]


# A Host header's value, host[:port]: at most 253 + 2 (brackets) + 6 (":port") characters.
_authority_hosts = ShortNameMemo(_authority_host, longest=261, size=4096)


def pretty_host(request: http.Request) -> str:
    """`request.pretty_host` (the Host header's host, else the request's own), with the header's
    reading remembered per value: mitmproxy parses and IDNA-checks it on every read, and the
    addons read it several times a request (about a tenth of a plain HTTP request's CPU)."""
    data = request.data
    if data.http_version in (b"HTTP/2.0", b"HTTP/3"):
        authority = request.host_header
    else:  # HTTP/1: the Host header, as `host_header` reads it (found without a KeyError)
        authority = header_value(data.headers, b"host")
    if authority:
        return _authority_hosts(authority)
    return request.host


def same_host(a: str, b: str) -> bool:
    """Whether two host names are one host, however spelt (case, a trailing dot, IDNA)."""
    if a == b:  # the usual case: a ClientHello naming its CONNECT's host as it was written
        return host_name(a) is not None
    na, nb = host_name(a), host_name(b)
    return na is not None and na == nb


def has_header(headers: http.Headers, name: bytes) -> bool:
    """Does `headers` hold the header `name` (lower case)? As `name in headers`, without the
    KeyError mitmproxy raises and catches for each header that is absent (on every CONNECT)."""
    for field, _ in headers.fields:  # noqa: SIM110 - a loop, cheaper than any() here
        if field.lower() == name:
            return True
    return False


def header_value(headers: http.Headers, name: bytes) -> str | None:
    """`headers.get(name)` (values joined as mitmproxy joins them), None when it is absent: read
    from the fields in one pass, without mitmproxy's Mapping machinery."""
    values = [value for field, value in headers.fields if field.lower() == name]
    if not values:
        return None
    if len(values) == 1:
        return values[0].decode("utf-8", "surrogateescape")
    return ", ".join(value.decode("utf-8", "surrogateescape") for value in values)


def address_ip(address: Address | None) -> str | None:
    """The IP of a peer address as events and detectors spell it: an IPv4-mapped IPv6 address
    (::ffff:10.0.0.5, from a dual-stack listener) as plain IPv4."""
    if not address:
        return None
    ip = str(address[0])
    return ip.removeprefix("::ffff:") if ip.startswith("::ffff:") and "." in ip else ip


def client_ip(client: Client) -> str | None:
    return address_ip(client.peername)


def block_response(
    flow: http.HTTPFlow,
    decision: Decision,
    subject: Subject,
    *,
    at: datetime,
    policy: Policy,
    page: BlockPageSettings,
) -> http.Response:
    """The block page for a blocked request, or a plain 403 if it cannot be rendered."""
    inputs = flow.metadata.get(context.INPUTS)
    try:
        return make_block_page(
            decision,
            subject,
            site=pretty_host(flow.request),
            at=at,
            policy=policy,
            settings=page,
            school=inputs.school if isinstance(inputs, context.DecisionInputs) else None,
        )
    except Exception:
        logger.exception("rendering the block page failed; sending a plain one")
        return make_plain_block(decision)


def fail_closed(flow: http.HTTPFlow, addon: str, where: str) -> None:
    """Block a flow because deciding it failed (fail closed); the caller counts the error."""
    logger.exception("%s failed in %s; blocking (fail closed)", addon, where)
    decision = Decision(Verdict.BLOCK, Reason.ENGINE_ERROR)
    flow.metadata[context.DECISION] = decision
    flow.response = make_plain_block(decision)
