"""Circumvention signals that need more than the host name: DNS-over-HTTPS to any host, archive,
cache and translation viewers of blocked pages, TLS Encrypted ClientHello, CONNECT and plain HTTP
to ports the policy does not allow (`ports:`), non-HTTP protocols inside a tunnel, the same
blocked platform again and again, and (blocked but never counted) a blocked platform's widgets
on an allowed page.

Runs after Enforce and reads what it decided (flow.metadata DECISION and INPUTS). A finding sets
flow.metadata TECHNIQUE and EVIDENCE (what was seen: never bodies, cookies or passwords); a new
block also replaces DECISION and the response. Any error blocks (fail closed).
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from urllib.parse import parse_qs, unquote, urlsplit

from mitmproxy import ctx, http, tcp
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Client
from mitmproxy.net.http.url import parse_authority
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.tls import ClientHelloData, TlsData

from schoolgate.policy.decide import decide
from schoolgate.policy.hostnames import (
    HostError,
    ShortNameMemo,
    is_subdomain_or_same,
    normalise_host,
)
from schoolgate.policy.model import Decision, Reason, Request, Verdict
from schoolgate.policy.techniques import Technique
from schoolgate.proxy_addons import context, mitm_internals
from schoolgate.proxy_addons.blockpage import make_plain_block
from schoolgate.proxy_addons.errors import options_error
from schoolgate.proxy_addons.flows import (
    block_response,
    client_ip,
    fail_closed,
    header_value,
    host_name,
    pretty_host,
    same_host,
)
from schoolgate.proxy_addons.proxy_scripts import proxy_script_evidence, tunnel_upgrade_evidence
from schoolgate.proxy_addons.stats import GatewayStats

logger = logging.getLogger(__name__)

DOH_TYPES = ("application/dns-message", "application/dns-json")
ECH_EXTENSION = 0xFE0D  # TLS Encrypted ClientHello (draft-ietf-tls-esni; IANA registry)
ECH_RULE = "encrypted-client-hello"
# How a client's "ech_required" alert (121) reads in the TLS library's error text.
_ECH_REFUSAL = re.compile(r"\bech\b|ech_required|\b121\b")
Evidence = dict[str, str]

# --- pure detection helpers ----------------------------------------------------------------


def doh_evidence(path: str, query: str, content_type: str, accept: str) -> Evidence | None:
    """What marks a request as DNS-over-HTTPS (RFC 8484 and the JSON API), else None."""
    for header, value in (("content-type", content_type), ("accept", accept)):
        lowered = value.lower()
        for kind in DOH_TYPES:
            if kind in lowered:
                return {"signal": header, "value": kind}
    if path.rstrip("/").lower().endswith("/dns-query"):
        return {"signal": "path", "value": "/dns-query"}
    try:
        if "dns" in parse_qs(query, keep_blank_values=True, max_num_fields=100):
            return {"signal": "query", "value": "dns="}
    except ValueError:
        return None
    return None


def url_host(text: str) -> str | None:
    """The normalised host of a URL, or of a bare "host/path" as archives write it; None if
    there is none. Percent-encoding and Wayback's "https:/x.com" are undone first."""
    text = unquote(text.strip())
    # a scheme is followed by a slash ("https://", Wayback's "https:/"), or is weserv's "ssl:";
    # "x.com:443/..." is a host and port
    text = re.sub(r"^(?:[a-z][a-z0-9+.-]*:/+|ssl:)", "", text, flags=re.IGNORECASE)
    text = text.lstrip("/")
    host = re.split(r"[/?#\\]", text, maxsplit=1)[0]
    host = host.rpartition("@")[2]
    host = host.partition("]")[0] + "]" if host.startswith("[") else host.partition(":")[0]
    host = host.removeprefix("*.").rstrip("*")  # Wayback wildcards: *.x.com, x.com*
    if not host or "*" in host:
        return None
    found = normalise_host(host)
    if isinstance(found, HostError) or ("." not in found.name and found.ip is None):
        return None
    return found.name


_WAYBACK_HOSTS = ("web.archive.org", "wayback.archive.org")
_WAYBACK_PATH = re.compile(r"^/(?:web|save)/(?:[0-9*]{1,14}[a-z_*]*/)?(.+)$", re.IGNORECASE)
_ARCHIVE_TODAY = (
    "archive.today",
    "archive.ph",
    "archive.is",
    "archive.li",
    "archive.vn",
    "archive.md",
    "archive.fo",
)
_ARCHIVE_TODAY_PATH = re.compile(
    r"^/(?:(?:newest|oldest|timegate|timemap(?:/\w+)?)/|[0-9.\-]{8,}/|o/\w+/)?(.+)$"
)
_GOOGLE_TRANSLATE = re.compile(r"^translate\.google(\.com?)?(\.[a-z]{2,3})?$")
# Yandex's page translation: translate.yandex.<tld>/translate?url=..., then the page itself
# through translated.turbopages.org/proxy_u/<languages and key>/<scheme>/<host>/<path>.
_YANDEX_TRANSLATE = re.compile(r"^translate\.yandex(\.com?)?(\.[a-z]{2,3})?$")
_TURBOPAGES = ("translated.turbopages.org",)
_TURBOPAGES_PATH = re.compile(r"^/proxy_u/[^/]+/(?:https?/)?([^/?#]+)", re.IGNORECASE)
# A reader proxy fetches any page for you and returns its text: r.jina.ai/https://x.com/...
_READER_PROXIES = ("r.jina.ai",)
# An image proxy fetches any picture by its address: i0.wp.com/<host>/<path> (WordPress's Jetpack),
# wsrv.nl/?url=<url> (images.weserv.nl), cdn.statically.io/img/<host>/<path>, and Google's
# gadget proxy (images1-focus-opensocial.googleusercontent.com/gadgets/proxy?url=<url>). A
# blocked platform's pictures through one are that platform's pictures.
_PATH_IMAGE_PROXY = re.compile(r"^i[0-3]\.wp\.com$")
_QUERY_IMAGE_PROXIES = ("wsrv.nl", "images.weserv.nl")
_STATICALLY = ("cdn.statically.io",)
_STATICALLY_PATH = re.compile(r"^/(?:img|screenshot)/(?:https?://)?([^/?#]+)", re.IGNORECASE)
_GADGET_PROXY = re.compile(r"^images\d*-focus-opensocial\.googleusercontent\.com$")


def fronted_host(authority: str, asked: str) -> str | None:
    """The site a request line's absolute-form URL names (`authority`, as in "GET https://x.com/
    HTTP/1.1" inside a tunnel to another site) when it is not the site asked for and decided
    (`asked`: the Host header, else the tunnel's). Servers route by that URL, not by Host (RFC
    9112, 3.2.2), so a shared front would serve the URL's site. None when there is no URL or it
    names the same site."""
    if not authority:
        return None
    host, _ = parse_authority(authority, check=False)
    if same_host(host, asked):
        return None
    return host_name(host) or host[:100]


# Headers a front or an application behind it may route by instead of Host. Browsers never send
# them; a client that names a blocked site in one is asking the allowed site's front for it.
_FORWARDED_HOST_HEADERS = ("x-forwarded-host", "x-host", "x-original-host", "x-forwarded-server")
_FORWARDED_HOST_FIELDS = tuple(name.encode() for name in _FORWARDED_HOST_HEADERS)
_FORWARDING_FIELDS = frozenset((*_FORWARDED_HOST_FIELDS, b"forwarded"))
_FORWARDED_HOST = re.compile(r"(?:^|[;,\s])host\s*=\s*\"?([^\";,\s]+)", re.IGNORECASE)


def forwarding_values(headers: http.Headers) -> list[str]:
    """What a request's forwarding headers say a site is, in order: each X-Forwarded-Host, X-Host,
    X-Original-Host and X-Forwarded-Server value (by name, then as sent), then each `host=` of
    Forwarded. One pass over the fields: the usual request has none of them."""
    named: dict[bytes, list[str]] = {}
    for field, raw in headers.fields:
        name = field.lower()
        if name in _FORWARDING_FIELDS:
            named.setdefault(name, []).append(raw.decode("utf-8", "surrogateescape"))
    if not named:
        return []
    values = [value for name in _FORWARDED_HOST_FIELDS for value in named.get(name, ())]
    for value in named.get(b"forwarded", ()):
        values += _FORWARDED_HOST.findall(value)
    return values


def forwarded_hosts(headers: http.Headers, asked: str) -> list[str]:
    """The other sites a request's forwarding headers name (X-Forwarded-Host, X-Host,
    X-Original-Host, X-Forwarded-Server, `Forwarded: host=`), each once, leaving out the site
    asked for (`asked`)."""
    found: list[str] = []
    for value in forwarding_values(headers):
        for part in value.split(","):
            host = url_host(part)
            if host is not None and not same_host(host, asked) and host not in found:
                found.append(host)
    return found[:8]


_Viewed = tuple[Technique, str] | None  # what a viewer shows, by technique, or None


def _wayback(path: str, params: dict[str, str]) -> _Viewed:
    match = _WAYBACK_PATH.match(path)
    return _found(Technique.ARCHIVE_VIEWER, match.group(1) if match else params.get("url"))


def _archive_today(path: str, params: dict[str, str]) -> _Viewed:
    target = params.get("url") or (params.get("q") if path.startswith("/search") else None)
    if target:
        return _found(Technique.ARCHIVE_VIEWER, target)
    match = _ARCHIVE_TODAY_PATH.match(path)
    text = match.group(1) if match else ""
    # a bare short id (/AbC12) names no site; only something with a dot does
    return _found(Technique.ARCHIVE_VIEWER, text) if "." in text else None


def _google_cache(path: str, params: dict[str, str]) -> _Viewed:
    cached = params.get("q", "")
    if not cached.startswith("cache:"):
        return None
    rest = cached[len("cache:") :]
    # "cache:<id>:<url>" or "cache:<url>"
    head, sep, tail = rest.partition(":")
    if sep and re.fullmatch(r"[A-Za-z0-9_-]{6,}", head) and not tail.startswith("//"):
        rest = tail
    return _found(Technique.ARCHIVE_VIEWER, rest)


def _in_path(pattern: re.Pattern[str]) -> Callable[[str, dict[str, str]], _Viewed]:
    """A rewriting proxy naming the site in its path, as `pattern`'s first group."""

    def target(path: str, params: dict[str, str]) -> _Viewed:
        match = pattern.match(path)
        return _found(Technique.REWRITING_PROXY, match.group(1) if match else None)

    return target


def _in_query(name: str) -> Callable[[str, dict[str, str]], _Viewed]:
    """A rewriting proxy naming the site in its query's parameter `name`."""
    return lambda path, params: _found(Technique.REWRITING_PROXY, params.get(name))


# Each host that shows other sites' pages by URL, and how to read the site it shows: one table
# for `viewed_target` and `is_viewer_host`, so a viewer is never known to one and not the other.
_VIEWERS: tuple[tuple[Callable[[str], bool], Callable[[str, dict[str, str]], _Viewed]], ...] = (
    (lambda h: h in _WAYBACK_HOSTS or h.endswith(".web.archive.org"), _wayback),
    (lambda h: h in _ARCHIVE_TODAY, _archive_today),
    (lambda h: h == "webcache.googleusercontent.com", _google_cache),
    (
        lambda h: bool(_GOOGLE_TRANSLATE.match(h)) or h == "translate.googleusercontent.com",
        _in_query("u"),
    ),
    (lambda h: h in ("translatetheweb.com", "www.translatetheweb.com"), _in_query("a")),
    (lambda h: bool(_YANDEX_TRANSLATE.match(h)), _in_query("url")),
    (lambda h: h in _TURBOPAGES, _in_path(_TURBOPAGES_PATH)),
    (
        lambda h: h in _READER_PROXIES or bool(_PATH_IMAGE_PROXY.match(h)),
        lambda path, params: _found(Technique.REWRITING_PROXY, path.lstrip("/")),
    ),
    (
        lambda h: h in _QUERY_IMAGE_PROXIES or bool(_GADGET_PROXY.match(h)),
        _in_query("url"),
    ),
    (lambda h: h in _STATICALLY, _in_path(_STATICALLY_PATH)),
)


def viewed_target(host: str, path: str, query: str) -> tuple[Technique, str] | None:
    """If `host` + `path` + `query` shows another site's page (an archive, a cache, a
    translation proxy), that site's host and the technique; else None."""
    for shows, target in _VIEWERS:
        if shows(host):
            return target(path, _params(query))
    return None


def _shows_other_sites(host: str) -> bool:
    return any(shows(host) for shows, _ in _VIEWERS)


# Does this host show other sites' pages by URL (so its traffic must be decrypted for
# `viewed_target` to read the path)? Remembered per host (the table is fixed in code; asked
# twice on every new tunnel); no name longer than a host can be is kept.
is_viewer_host = ShortNameMemo(_shows_other_sites, longest=255, size=4096)


def _params(query: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=False, max_num_fields=100)
    except ValueError:
        return {}
    return {name: values[0] for name, values in parsed.items()}


def _found(technique: Technique, text: str | None) -> tuple[Technique, str] | None:
    target = url_host(text) if text else None
    return (technique, target) if target else None


def ech_refused(error: str) -> bool:
    """Does a failed client handshake's error say the client wanted its ECH accepted?"""
    return _ECH_REFUSAL.search(error.lower()) is not None


def has_ech(extensions: Iterable[tuple[int, bytes]]) -> bool:
    for kind, _ in extensions:  # noqa: SIM110 - a loop, not any(): twice on every new tunnel
        if kind == ECH_EXTENSION:
            return True
    return False


# Protocols a request may ask to switch to: websockets are how web apps talk; anything else (h2c,
# TLS by RFC 2817, connect-udp over HTTP/1.1, ...) would take the connection past the filter's
# HTTP inspection, so it is refused and recorded.
ALLOWED_UPGRADES = frozenset({"websocket"})


def refused_upgrade(header: str) -> str | None:
    """The Upgrade header's value if it asks for a protocol other than websocket, else None."""
    tokens = [t.strip().split("/")[0].lower() for t in header.split(",") if t.strip()]
    return header.strip() if any(t not in ALLOWED_UPGRADES for t in tokens) else None


def looks_embedded(headers: Mapping[str, str]) -> bool:
    """Was this request made by a page for one of its parts (a script, an iframe, an image, a
    fetch) rather than by the person going to the site? Judged by Sec-Fetch-* when the browser
    sends them, else by a Referer with an Accept that does not ask for a page."""
    dest = headers.get("sec-fetch-dest", "").lower()
    site = headers.get("sec-fetch-site", "").lower()
    if site in ("none", "same-origin", "same-site"):
        return False  # typed or bookmarked, or the blocked site's own page
    if dest:
        return dest != "document"
    if not headers.get("referer"):
        return False
    return "text/html" not in headers.get("accept", "").lower()


def referer_host(headers: Mapping[str, str]) -> str | None:
    referer = headers.get("referer", "")
    if not referer:
        return None
    try:
        name = urlsplit(referer).hostname
    except ValueError:
        return None
    return url_host(name) if name else None


class RepeatCounter:
    """Blocked requests per (who, platform) in a sliding window; says when one reaches the
    threshold, then starts that count again. Bounded: idle keys are dropped."""

    def __init__(self, threshold: int, window_seconds: float, *, max_keys: int = 50_000) -> None:
        self.threshold = threshold
        self.window = window_seconds
        self.max_keys = max_keys
        self._seen: dict[tuple[str, str], deque[float]] = {}

    def add(self, who: str, platform: str, now: float) -> int | None:
        """Count one; the count if it reached the threshold (the count restarts), else None."""
        key = (who, platform)
        times = self._seen.get(key)
        if times is None:
            if len(self._seen) >= self.max_keys:
                self._prune(now)
            times = self._seen[key] = deque()
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.threshold:
            count = len(times)
            del self._seen[key]
            return count
        return None

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._seen.items() if not t or t[-1] <= now - self.window]:
            del self._seen[key]
        if len(self._seen) >= self.max_keys:
            self._seen.clear()  # a flood of distinct keys: forget rather than grow


def parse_ports(values: Sequence[str]) -> frozenset[int]:
    """Port numbers from option values; each may be a comma-separated list ("80,443,8443"),
    since `schoolgate gateway -- --set` passes one value per option."""
    ports = set()
    for value in (v.strip() for item in values for v in item.split(",")):
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise ValueError(f"{value!r} is not a port number (1-65535)")
        ports.add(int(value))
    return frozenset(ports)


# Blocks that count towards "the same platform again and again": the person chose the site.
_REPEATABLE = frozenset({Reason.RULE_BLOCK, Reason.LOCKED, Reason.LOCAL_BLOCK})

# --- the addon -------------------------------------------------------------------------------


class Detect:
    def __init__(self, stats: GatewayStats | None = None) -> None:
        self._ports: frozenset[int] = frozenset()  # the option; empty: the policy's ports
        self._repeats = RepeatCounter(5, 120.0)
        self._refuse: set[str] = set()  # client ids to close before they reach a server
        self._ech_clients: set[str] = set()  # client ids whose ClientHello carried ECH
        self.stats = stats or GatewayStats()

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_connect_ports",
            Sequence[str],
            [],
            "Overrides the policy's ports.connect (say it in the policy instead): "
            "ports a CONNECT tunnel may go to (each value may be a comma-separated "
            "list); any other port is refused at the CONNECT, for every host, as a "
            "circumvention attempt (technique unusual_port). Empty: the policy's.",
        )
        loader.add_option(
            "schoolgate_repeat_count",
            int,
            5,
            "Blocked requests by one person to one blocked platform within "
            "schoolgate_repeat_window_seconds that count as one circumvention "
            "attempt (technique repeated_attempts).",
        )
        loader.add_option(
            "schoolgate_repeat_window_seconds",
            int,
            120,
            "The window for schoolgate_repeat_count, in seconds.",
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "schoolgate_connect_ports" in updated:
            try:
                self._ports = parse_ports(opts.schoolgate_connect_ports)
            except ValueError as exc:
                raise options_error(f"schoolgate_connect_ports: {exc}") from None
        if updated & {"schoolgate_repeat_count", "schoolgate_repeat_window_seconds"}:
            if opts.schoolgate_repeat_count < 2 or opts.schoolgate_repeat_window_seconds < 1:
                raise options_error(
                    "schoolgate_repeat_count must be at least 2 and "
                    "schoolgate_repeat_window_seconds at least 1"
                )
            self._repeats = RepeatCounter(
                opts.schoolgate_repeat_count, opts.schoolgate_repeat_window_seconds
            )

    # --- CONNECT: unusual ports --------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """A CONNECT to a port the policy does not allow is refused here, whatever the host's
        verdict: a blocked host too (it would otherwise be answered 200 for its block page)."""
        if flow.response or flow.error or not flow.live:
            return
        try:
            decision = flow.metadata.get(context.DECISION)
            inputs = flow.metadata.get(context.INPUTS)
            if not isinstance(decision, Decision) or not isinstance(inputs, context.DecisionInputs):
                return  # not decided by Enforce: a gateway page, or a 407
            port = flow.request.port
            if port not in (self._ports or inputs.policy.ports.connect):
                blocked = _unusual_port(decision)
                self._found(flow, blocked, {"port": str(port), "kind": "connect"})
                flow.response = make_plain_block(blocked)
        except Exception:
            self._error(flow, "http_connect")

    # --- TLS ClientHello: Encrypted ClientHello ----------------------------------------------

    def tls_clienthello(self, data: ClientHelloData) -> None:
        server = data.context.server
        if server.address is None:
            return  # TLS to the gateway itself (secure web proxy)
        try:
            if not has_ech(data.client_hello.extensions):
                self._inspect_viewers(data)
                return
            self._encrypted_hello(data)
        except Exception:
            self.stats.detect_errors += 1
            logger.exception("checking the TLS ClientHello failed; refusing the connection")
            self._refuse_hello(data, Decision(Verdict.BLOCK, Reason.ENGINE_ERROR), None)

    def _encrypted_hello(self, data: ClientHelloData) -> None:
        """A ClientHello carrying Encrypted ClientHello. Browsers send a dummy one ("GREASE")
        in every handshake, and by design it looks exactly like real ECH, so it is never a
        reason to refuse. It is never relayed unread either (a real one could hide any host
        behind an allowed outer name): the gateway answers the handshake itself and does not
        accept ECH. A dummy carries on as usual; a client really hiding its destination must
        retry without ECH (then its real destination is decided) or give up, which
        tls_failed_client records as an attempt. An outer name that disagrees with the CONNECT
        target was already blocked by Enforce: it is named an ECH attempt here."""
        client = data.context.client
        sni = data.client_hello.sni
        note = context.hello_notes.get(client.id)
        evidence = {"outer_sni": sni or "", "extension": hex(ECH_EXTENSION)}
        self.stats.ech_seen += 1
        if note is not None and note.decision.technique == Technique.HOST_MISMATCH:
            decision = note.decision._replace(rule=ECH_RULE, technique=Technique.ECH)
            context.hello_notes[client.id] = replace(note, decision=decision, evidence=evidence)
            return
        self._ech_clients.add(client.id)
        if data.ignore_connection and not (note is not None and note.never_decrypt):
            data.ignore_connection = False
            self.stats.ech_intercepted += 1
            if note is not None:
                context.hello_notes[client.id] = replace(note, passthrough=False)

    def tls_failed_client(self, data: TlsData) -> None:
        """A client that sent ECH and then gave up on our handshake because we did not accept
        its ECH (alert ech_required): it was hiding its destination."""
        client = data.context.client
        if client.id not in self._ech_clients:
            return
        error = client.error or ""
        if not ech_refused(error):
            return  # some other failure (an untrusted CA, a closed tab): not an attempt
        try:
            note = context.hello_notes.get(client.id)
            sni = note.sni if note is not None else client.sni
            host = note.decision.host if note is not None else host_name(sni or "")
            decision = _circumvention(ECH_RULE, Technique.ECH, host=host)
            self.stats.detect_blocked += 1
            context.hello_notes[client.id] = context.HelloNote(
                decision,
                passthrough=False,
                sni=sni,
                evidence={
                    "outer_sni": sni or "",
                    "extension": hex(ECH_EXTENSION),
                    "client_error": error[:200],
                },
                school=note.school if note is not None else None,
            )
        except Exception:
            self.stats.detect_errors += 1
            logger.exception("recording an encrypted ClientHello attempt failed")

    def _inspect_viewers(self, data: ClientHelloData) -> None:
        """An allowed archive or translation viewer would be relayed unread: decrypt it, so
        each request's target is decided (every request inside is decided again)."""
        client = data.context.client
        note = context.hello_notes.get(client.id)
        if (
            data.ignore_connection
            and note is not None
            and note.passthrough
            and note.decision.allowed
            and is_viewer_host(note.decision.host or "")
        ):
            data.ignore_connection = False
            context.hello_notes[client.id] = replace(note, passthrough=False)
            self.stats.viewers_intercepted += 1

    def _refuse_hello(
        self, data: ClientHelloData, decision: Decision, evidence: Evidence | None
    ) -> None:
        self.stats.detect_blocked += 1
        client = data.context.client
        data.ignore_connection = True  # relayed to nowhere: server_connect refuses it
        self._refuse.add(client.id)
        note = context.hello_notes.get(client.id)  # Enforce's, with the connection's school
        context.hello_notes[client.id] = context.HelloNote(
            decision,
            passthrough=False,
            sni=data.client_hello.sni,
            evidence=evidence,
            school=note.school if note is not None else None,
        )

    def server_connect(self, data: ServerConnectionHookData) -> None:
        if data.client.id in self._refuse:
            data.server.error = "blocked by the school's web filter"

    # --- inside a tunnel: not HTTP at all ----------------------------------------------------

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        try:
            address = flow.server_conn.address
            host = flow.client_conn.sni or (str(address[0]) if address else "")
            decision = _circumvention(
                "tunnel-protocol", Technique.TUNNEL_PROTOCOL, host=host_name(host) if host else None
            )
            evidence = {
                "port": str(address[1]) if address else "",
                "inside_tls": "yes" if flow.client_conn.tls_established else "no",
            }
        except Exception:
            logger.exception("describing a TCP tunnel failed; blocking it")
            self.stats.detect_errors += 1
            decision, evidence = Decision(Verdict.BLOCK, Reason.ENGINE_ERROR), {}
        self._found(flow, decision, evidence)
        self._refuse.add(flow.client_conn.id)  # the relay's server connection is refused
        if flow.server_conn.timestamp_start is not None:
            mitm_internals.close_client_now(
                flow.client_conn
            )  # already connected (eager): close it now

    # --- every intercepted request -----------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.error or not flow.live:
            return
        decision = flow.metadata.get(context.DECISION)
        inputs = flow.metadata.get(context.INPUTS)
        if not isinstance(decision, Decision) or not isinstance(inputs, context.DecisionInputs):
            return  # not decided by Enforce: a gateway page, or a 407
        try:
            if decision.allowed:
                if flow.response is None:
                    self._look_deeper(flow, decision, inputs)
            elif decision.technique is None:
                self._classify_block(flow, decision, inputs)
        except Exception:
            self._error(flow, "requestheaders")

    def _look_deeper(
        self, flow: http.HTTPFlow, decision: Decision, inputs: context.DecisionInputs
    ) -> None:
        request = flow.request
        asked = pretty_host(request)
        fronted = fronted_host(request.authority, asked)
        if fronted is not None:
            self._block(
                flow,
                inputs,
                _circumvention("host-mismatch", Technique.HOST_MISMATCH, host=fronted),
                {"request_line": request.authority[:100], "host": asked[:100]},
            )
            return
        for named in forwarded_hosts(request.headers, asked):
            inner = decide(
                inputs.policy, Request(named), inputs.subject, inputs.overrides, inputs.at
            )
            if not inner.allowed:
                self._block(
                    flow,
                    inputs,
                    _circumvention("host-mismatch", Technique.HOST_MISMATCH, host=named),
                    {"forwarded_host": named[:100], "host": asked[:100]},
                )
                return
        ports = (
            inputs.policy.ports.http
            if request.scheme == "http"
            else (self._ports or inputs.policy.ports.connect)
        )
        if request.port not in ports:
            self._block(
                flow,
                inputs,
                _unusual_port(decision),
                {"port": str(request.port), "kind": request.scheme},
            )
            return
        headers = request.headers
        upgrade = refused_upgrade(header_value(headers, b"upgrade") or "")
        if upgrade is not None:
            self._block(
                flow,
                inputs,
                _circumvention(
                    "protocol-upgrade",
                    Technique.PROTOCOL_UPGRADE,
                    host=decision.host,
                    category=decision.category,
                ),
                {"upgrade": upgrade[:100]},
            )
            return
        path, _, query = request.path.partition("?")
        evidence = doh_evidence(
            path,
            query,
            header_value(headers, b"content-type") or "",
            header_value(headers, b"accept") or "",
        )
        if evidence is not None:
            self._block(
                flow,
                inputs,
                _circumvention(
                    "dns-over-https",
                    Technique.DOH_CONTENT,
                    host=decision.host,
                    category=decision.category,
                ),
                evidence,
            )
            return
        found = self._proxy_or_tunnel(request, path, query)
        if found is not None:
            self._block(
                flow,
                inputs,
                _circumvention(found[0], found[1], host=decision.host, category=decision.category),
                found[2],
            )
            return
        viewed = viewed_target(decision.host or "", path, query)
        if viewed is None:
            return
        technique, target = viewed
        inner = decide(inputs.policy, Request(target), inputs.subject, inputs.overrides, inputs.at)
        if inner.allowed:
            return
        self._block(
            flow,
            inputs,
            _circumvention(inner.rule, technique, host=decision.host, category=inner.category),
            {"viewer": decision.host or "", "target": target, "target_reason": inner.reason},
        )

    @staticmethod
    def _proxy_or_tunnel(
        request: http.Request, path: str, query: str
    ) -> tuple[str, Technique, Evidence] | None:
        """A web-proxy script on any host, or a request asking to become a tunnel (MASQUE)."""
        tunnel = tunnel_upgrade_evidence(path, header_value(request.headers, b"upgrade") or "")
        if tunnel is not None:
            return "tunnel-upgrade", Technique.TUNNEL_PROTOCOL, tunnel
        script = proxy_script_evidence(path, query)
        if script is not None:
            return "web-proxy-script", Technique.WEB_PROXY, script
        return None

    def _classify_block(
        self, flow: http.HTTPFlow, decision: Decision, inputs: context.DecisionInputs
    ) -> None:
        """A plain block by Enforce: a widget on an allowed page (recorded, never counted), or
        the same platform once too often (an attempt)."""
        headers = flow.request.headers
        if looks_embedded(headers):
            page = referer_host(headers)
            if (
                page is not None
                and decision.host is not None
                and not is_subdomain_or_same(page, decision.host)
            ):
                on_page = decide(
                    inputs.policy, Request(page), inputs.subject, inputs.overrides, inputs.at
                )
                if on_page.allowed and on_page.category != decision.category:
                    self._found(
                        flow,
                        None,
                        {
                            "page": page,
                            "dest": headers.get("sec-fetch-dest", ""),
                            "platform": decision.category or "",
                        },
                        technique=Technique.EMBEDDED_WIDGET,
                    )
                    return
        if decision.reason not in _REPEATABLE or decision.category is None:
            return
        if headers.get("sec-fetch-dest", "document").lower() != "document":
            return  # a favicon or a part of the block page: not the person asking again
        who = inputs.subject.user or client_ip(flow.client_conn) or "unknown"
        count = self._repeats.add(who, decision.category, time.monotonic())
        if count is not None:
            self._found(
                flow,
                None,
                {
                    "platform": decision.category,
                    "count": str(count),
                    "window_seconds": f"{self._repeats.window:g}",
                },
                technique=Technique.REPEATED_ATTEMPTS,
            )

    # --- helpers ----------------------------------------------------------------------------

    def _block(
        self,
        flow: http.HTTPFlow,
        inputs: context.DecisionInputs,
        decision: Decision,
        evidence: Evidence,
    ) -> None:
        self._found(flow, decision, evidence)
        flow.response = block_response(
            flow, decision, inputs.subject, at=inputs.at, policy=inputs.policy, page=inputs.page
        )

    def _found(
        self,
        flow: http.HTTPFlow | tcp.TCPFlow,
        decision: Decision | None,
        evidence: Evidence,
        *,
        technique: str | None = None,
    ) -> None:
        """Mark a finding on the flow; `decision` None keeps the flow's (already a block)."""
        if decision is not None:
            flow.metadata[context.DECISION] = decision
            technique = decision.technique
            self.stats.detect_blocked += 1
        flow.metadata[context.TECHNIQUE] = technique
        flow.metadata[context.EVIDENCE] = evidence

    def _error(self, flow: http.HTTPFlow, where: str) -> None:
        self.stats.detect_errors += 1
        fail_closed(flow, "circumvention detection", where)

    def client_disconnected(self, client: Client) -> None:
        self._refuse.discard(client.id)
        self._ech_clients.discard(client.id)


def _unusual_port(decision: Decision) -> Decision:
    return _circumvention(
        "unusual-port", Technique.UNUSUAL_PORT, host=decision.host, category=decision.category
    )


def _circumvention(
    rule: str | None, technique: Technique, *, host: str | None, category: str | None = None
) -> Decision:
    """A block for an attempt to get round the filter, by `technique`."""
    return Decision(
        Verdict.BLOCK,
        Reason.CIRCUMVENTION,
        rule=rule,
        category=category,
        host=host,
        technique=technique,
    )
