"""Building events from what the gateway saw (pure): the event for a decision, with secrets
redacted from its path and query, the evidence of a decided technique, the device names file,
and one act of many requests (docs/monitoring.md, "What counts as one attempt").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import yaml
from mitmproxy import http

from schoolgate.policy.hostclass import registrable_domain
from schoolgate.policy.model import Decision
from schoolgate.policy.techniques import counted
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.flows import pretty_host
from schoolgate.proxy_addons.search_terms import search_terms
from schoolgate.store.events import AttemptEvidence, Event

MAX_TEXT = 2000  # characters of a path or query kept
# Query parameters whose values are never recorded (credentials and tokens in URLs).
_SECRET_PARAM = re.compile(
    r"pass|pwd|secret|token|auth|key|session|sid|code|sig|cred|otp|"
    r"ticket|jwt|bearer|saml|nonce",
    re.IGNORECASE,
)
# An e-mail address, also percent-encoded (@ as %40): replaced wherever it appears.
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+\-]+(?:@|%40)[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}", re.IGNORECASE
)
# A JSON Web Token (header.payload.signature), whatever the parameter is called.
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
# Path segments after which the next segment is a secret (/reset/<token>, /invite/<code>).
_SECRET_BEFORE = frozenset(
    {
        "reset",
        "reset-password",
        "password-reset",
        "resetpassword",
        "password",
        "verify",
        "verify-email",
        "verification",
        "confirm",
        "confirmation",
        "activate",
        "activation",
        "invite",
        "invitation",
        "magic",
        "magic-link",
        "magiclink",
        "token",
        "tokens",
        "unsubscribe",
        "share",
        "otp",
        "recover",
        "recovery",
    }
)
# A token-like run inside a segment: 20+ letters and digits mixed, or 32+ hex digits.
_TOKEN_RUN = re.compile(
    r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{20,}|"
    r"[0-9a-fA-F]{32,}"
)
REDACTED = "[redacted]"


def redact_query(query: str) -> str:
    """The query string with the values of credential-like parameters replaced, and e-mail
    addresses and tokens (JWTs) in any value."""
    if not query:
        return query
    parts = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq and _SECRET_PARAM.search(name):
            parts.append(f"{name}={REDACTED}")
            continue
        value = _JWT.sub(REDACTED, _EMAIL.sub("[email]", value))
        name = _EMAIL.sub("[email]", name)
        parts.append(f"{name}{eq}{value}")
    return "&".join(parts)[:MAX_TEXT]


def redact_path(path: str) -> str:
    """The path with secrets taken out: the segment after /reset/, /invite/, /verify/ ...,
    token-like runs (long mixed letters and digits, long hex, JWTs) and e-mail addresses."""
    if not path:
        return path
    segments = path.split("/")
    kept = []
    secret_next = False
    for segment in segments:
        if secret_next and len(segment) >= 6:
            kept.append(REDACTED)
        else:
            segment = _EMAIL.sub("[email]", segment)
            kept.append(_TOKEN_RUN.sub(REDACTED, _JWT.sub(REDACTED, segment)))
        secret_next = segment.lower() in _SECRET_BEFORE
    return "/".join(kept)


def make_event(
    *,
    decision: Decision,
    at: datetime,
    host: str,
    identity: object,
    role: str | None,
    ip: str | None,
    device: str | None,
    method: str | None,
    scheme: str | None,
    port: int | None,
    target: str | None,
    intercepted: bool,
    technique: str | None,
    evidence: Mapping[str, Any] | None,
    school: str | None = None,
) -> Event:
    """One event (of `school`, with a trust file). `target` is the request path with its
    query; it is kept (redacted) only for intercepted traffic. A technique makes it a
    circumvention attempt."""
    path = query = terms = None
    if intercepted and target is not None:
        raw_path, _, raw_query = target.partition("?")
        path, query = redact_path(raw_path[:MAX_TEXT]), redact_query(raw_query) or None
        terms = search_terms(host, raw_path, raw_query)
        terms = _EMAIL.sub("[email]", terms) if terms else terms
    user = source = None
    if isinstance(identity, context.Identity):
        user, source = identity.user, str(identity.source)
        role = role or identity.role
    attempt = None
    if technique:
        attempt = AttemptEvidence(
            evidence={str(k): _scalar(v) for k, v in (evidence or {}).items()},
            counted=counted(technique),
        )
    return Event(
        at=at,
        host=host[:300],
        verdict=decision.verdict,
        reason=decision.reason,
        user=user,
        role=role,
        identity_source=source,
        client_ip=ip,
        device=device,
        method=method,
        scheme=scheme,
        port=port,
        path=path,
        query=query,
        search_terms=terms,
        category=decision.category,
        rule=decision.rule,
        technique=technique,
        intercepted=intercepted,
        attempt=attempt,
        school=school,
    )


def _scalar(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def parse_devices(text: str, *, source: str) -> dict[str, str]:
    """A YAML mapping of client IP address -> device name; ValueError lists every problem."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a mapping of IP address -> device name")
    devices, problems = {}, []
    for ip, name in raw.items():
        try:
            parsed = ipaddress.ip_address(str(ip))
            mapped = getattr(parsed, "ipv4_mapped", None)  # as client_ip() reports it
            address = str(mapped or parsed)
        except ValueError:
            problems.append(f"{ip!r}: not an IP address")
            continue
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{ip}: the device name must be text")
            continue
        devices[address] = name.strip()[:200]
    if problems:
        raise ValueError("\n  ".join([f"{source}: {len(problems)} problem(s)", *problems]))
    return devices


# --- one act, many requests ----------------------------------------------------------------------


class ActWindow:
    """The acts in progress: (who, registrable site, technique) -> (first request's time, its
    event id). `first_of` says whether an event is a follow-up of an act (the first event's id)
    or starts a new one (None). Bounded: a flood of keys forgets finished acts first."""

    def __init__(self, seconds: float, *, max_keys: int = 50_000) -> None:
        self.seconds = seconds
        self.max_keys = max_keys
        self._acts: dict[tuple[str, str, str], tuple[datetime, str]] = {}

    def first_of(self, event: Event) -> str | None:
        who = event.user or event.client_ip or "unknown"
        key = (who, act_site(event.host), event.technique or "")
        window = timedelta(seconds=self.seconds)
        found = self._acts.get(key)
        if found is not None and timedelta(0) <= event.at - found[0] < window:
            return found[1]
        if len(self._acts) >= self.max_keys:
            self._acts = {k: v for k, v in self._acts.items() if event.at - v[0] < window}
            if len(self._acts) >= self.max_keys:
                self._acts.clear()
        self._acts[key] = (event.at, event.id)
        return None


def act_key(event: Event) -> str:
    """The act an attempt belongs to, as the shared count names it: its site and technique."""
    return f"{act_site(event.host)}|{event.technique or ''}"


def act_site(host: str) -> str:
    """The site an act is about: the registrable domain (www.vpn.example and cdn.vpn.example
    are one site); for a name under no public suffix (a local .test name) its last two labels;
    an IP address or a single label as it is."""
    name = host.lower().rstrip(".").strip("[]")
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    try:
        found = registrable_domain(name)
    except Exception:
        found = None
    return found or ".".join(name.split(".")[-2:])


def decided_evidence(
    decision: Decision, request: http.Request | None = None, sni: str | None = None
) -> dict[str, str]:
    """Evidence for techniques decided from the host name: what was asked and what matched."""
    evidence = {
        "host": decision.host or "",
        "rule": decision.rule or "",
        "category": decision.category or "",
    }
    if request is not None:
        evidence["host_header"] = pretty_host(request)
        if request.method == "CONNECT" or sni:
            evidence["connect"] = request.host
        if sni:
            evidence["sni"] = sni
    return {k: v for k, v in evidence.items() if v}
