"""Record every decision as an event: intercepted traffic per request, relayed (passed-through or
refused) traffic per connection. Hooks only build an `Event` and hand it to the `EventWriter`
(never waiting on the database); circumvention attempts also feed the sanction threshold and
raise alerts, written and pushed by a background task.

An attempt is an act, not a request (docs/monitoring.md, "What counts as one attempt"): the
requests one person's device makes to the same registrable site with the same technique within
`schoolgate_act_seconds` of the act's first request are one act. Every request is still recorded;
only the act's first is `counted`, the others name it (`same_act_as`). Only counted acts raise an
alert and count towards the sanction threshold, which is kept in the database (shared by every
worker and replica).

Last in the addon list, so it sees the final decision (Enforce's, or Detect's on top of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from mitmproxy import ctx, http, tcp
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Address, Client
from mitmproxy.tls import ClientHelloData, TlsData
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from policy.hostclass import registrable_domain
from policy.model import CircumventionSettings, Decision, Reason, Verdict
from proxy_addons import context
from proxy_addons.errors import options_error
from proxy_addons.search_terms import search_terms
from proxy_addons.stats import GatewayStats
from store.alerts import (
    NO_PUSH,
    Alert,
    AlertKind,
    PushSettings,
    attempt_severity,
    load_push_settings,
    mark_pushed,
    push_alert,
    raise_alert,
)
from store.db import SchemaOutOfDate, display_url, make_engine, require_current_schema
from store.events import AttemptEvidence, Event, EventWriter
from store.sanctions import count_act, on_threshold
from store.techniques import Technique, counted

logger = logging.getLogger(__name__)

MAX_TEXT = 2000  # characters of a path or query kept
ACT_SECONDS = 30  # default of schoolgate_act_seconds: one act's follow-up requests
# Query parameters whose values are never recorded (credentials and tokens in URLs).
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|auth|key|session|sid|code|sig|cred|otp|"
                           r"ticket|jwt|bearer|saml|nonce", re.IGNORECASE)
# An e-mail address, also percent-encoded (@ as %40): replaced wherever it appears.
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+(?:@|%40)[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
                    re.IGNORECASE)
# A JSON Web Token (header.payload.signature), whatever the parameter is called.
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
# Path segments after which the next segment is a secret (/reset/<token>, /invite/<code>).
_SECRET_BEFORE = frozenset({
    "reset", "reset-password", "password-reset", "resetpassword", "password", "verify",
    "verify-email", "verification", "confirm", "confirmation", "activate", "activation",
    "invite", "invitation", "magic", "magic-link", "magiclink", "token", "tokens",
    "unsubscribe", "share", "otp", "recover", "recovery"})
# A token-like run inside a segment: 20+ letters and digits mixed, or 32+ hex digits.
_TOKEN_RUN = re.compile(r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{20,}|"
                        r"[0-9a-fA-F]{32,}")
REDACTED = "[redacted]"
_STATIC_OPTIONS = ("schoolgate_database_url", "schoolgate_spool_dir", "schoolgate_siem")

# --- building events (pure) ----------------------------------------------------------------


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


def client_ip(client: Client) -> str | None:
    if not client.peername:
        return None
    ip = str(client.peername[0])
    return ip.removeprefix("::ffff:") if ip.startswith("::ffff:") and "." in ip else ip


def make_event(*, decision: Decision, at: datetime, host: str, identity: object,
               role: str | None, ip: str | None, device: str | None, method: str | None,
               scheme: str | None, port: int | None, target: str | None, intercepted: bool,
               technique: str | None, evidence: Mapping[str, Any] | None) -> Event:
    """One event. `target` is the request path with its query; it is kept (redacted) only for
    intercepted traffic. A technique makes it a circumvention attempt."""
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
        attempt = AttemptEvidence(evidence={str(k): _scalar(v) for k, v in
                                            (evidence or {}).items()},
                                  counted=counted(technique))
    return Event(at=at, host=host[:300], verdict=decision.verdict, reason=decision.reason,
                 user=user, role=role, identity_source=source, client_ip=ip, device=device,
                 method=method, scheme=scheme, port=port, path=path, query=query,
                 search_terms=terms, category=decision.category, rule=decision.rule,
                 technique=technique, intercepted=intercepted, attempt=attempt)


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


# --- without a database: JSON lines only ---------------------------------------------------------


class SiemLines:
    """Events as JSON lines to a file or stdout, written from a worker thread (no database)."""

    def __init__(self, path: str, *, limit: int = 100_000) -> None:
        self.path = path
        self._pending: deque[str] = deque(maxlen=limit)  # the oldest go first if it stalls
        self._task: asyncio.Task[None] | None = None

    def submit(self, event: Event) -> None:
        record = asdict(event)
        record["at"] = event.at.isoformat()
        self._pending.append(json.dumps(record, default=str, separators=(",", ":")))

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            await self._flush()

    async def _flush(self) -> None:
        lines = [self._pending.popleft() for _ in range(len(self._pending))]
        if lines:
            await asyncio.to_thread(self._write, "\n".join(lines) + "\n")

    def _write(self, text: str) -> None:
        import sys
        if self.path == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(text)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._flush()


# --- what mitmproxy refuses before any addon sees it ---------------------------------------------

REFUSAL_LOGGER = "mitmproxy.proxy.server"  # where mitmproxy logs a request it could not read
MAX_SENT = 300  # characters of an unreadable request line kept
# "<peer>: Bad HTTP request line: b'...'" and the like (mitmproxy/net/http/http1/read.py)
_REFUSED = re.compile(r": (Bad HTTP request line|Invalid header line|Invalid headers|"
                      r"Unknown HTTP version|Bad HTTP request|Invalid HTTP/2 request headers|"
                      r"HTTP/2 protocol error|Invalid HTTP)(?:: (.*))?$", re.DOTALL)
_USERINFO = re.compile(r"(//)[^/@\s'\\]*@")  # user:password@ in a URL: never recorded
_SENT_HOST = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://(?:\[redacted\]@)?"
                        r"([A-Za-z0-9._-]{1,253})(?=[:/ ?#']|$)")


class RefusalLog(logging.Filter):
    """A filter on mitmproxy's proxy server logger: a request that mitmproxy refused before any
    hook (it logs the client's address and the error at INFO) becomes a recorded attempt.

    The logger is set to INFO so that those records are made even when the gateway logs only
    warnings; the filter then lets through (to the terminal and to addons) only the records the
    root logger's level would have let through, so nothing else changes."""

    def __init__(self, record: RecordEvents) -> None:
        super().__init__()
        self.record = record
        self._level: int | None = None

    def install(self) -> None:
        logger = logging.getLogger(REFUSAL_LOGGER)
        if self._level is None:
            self._level = logger.level
            logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
            logger.addFilter(self)

    def remove(self) -> None:
        if self._level is not None:
            logger = logging.getLogger(REFUSAL_LOGGER)
            logger.removeFilter(self)
            logger.setLevel(self._level)
            self._level = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            with contextlib.suppress(Exception):
                self._note(record)
        return record.levelno >= logging.getLogger().getEffectiveLevel()

    def _note(self, record: logging.LogRecord) -> None:
        found = _REFUSED.search(record.getMessage())
        if found is None:
            return
        peer = getattr(record, "client", None)
        self.record.refused_by_mitmproxy(peer if isinstance(peer, tuple) else None,
                                         found.group(1), (found.group(2) or "").strip())


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


# --- background work: alerts and sanctions ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    """A database write off the request path; returns the alert it raised (to push)."""

    what: str
    run: Callable[[Session], Alert | None]


@dataclass(frozen=True, slots=True)
class _Tunnel:
    identity: object
    role: str | None


class RecordEvents:
    def __init__(self, stats: GatewayStats | None = None) -> None:
        self._sink: EventWriter | SiemLines | None = None  # see `writer`
        self._engine: Engine | None = None
        self._enabled = True
        self._devices: dict[str, str] = {}
        self._push: PushSettings = NO_PUSH
        self._tunnels: dict[str, _Tunnel] = {}
        # Blocked tunnels with nothing recorded yet: recorded once if the client goes away
        # without a request (a handshake cut short); dropped when a request is recorded.
        self._unanswered: dict[str, Event] = {}
        self._refusals = RefusalLog(self)
        self._acts = ActWindow(ACT_SECONDS)
        self._settings = CircumventionSettings()  # the running policy's (seen on each flow)
        self._alerted: dict[tuple[str, str], float] = {}  # (who, technique) -> last alert
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue(maxsize=10_000)
        self._tasks: list[asyncio.Task[None]] = []
        self._starting: asyncio.Task[None] | None = None
        self._started = False
        self.job_retries = 30
        self.job_retry_seconds = 2.0
        self.stats = stats or GatewayStats()

    @property
    def writer(self) -> EventWriter | SiemLines | None:
        """Where events go (read by the Metrics addon at scrape time)."""
        return self._sink

    def load(self, loader: Loader) -> None:
        loader.add_option("schoolgate_recording", bool, True,
                          "Record every decision as an event (database and/or SIEM lines).")
        loader.add_option(*context.DATABASE_URL_OPTION)
        loader.add_option("schoolgate_spool_dir", str, "",
                          "Where events wait on disk while the database is unavailable. Empty: "
                          "'spool' next to the CA directory (confdir).")
        loader.add_option("schoolgate_siem", str, "",
                          "Also write events as JSON lines to this file, or '-' for stdout.")
        loader.add_option("schoolgate_devices", str, "",
                          "YAML file mapping client IP addresses to device names, recorded "
                          "with each event.")
        loader.add_option("schoolgate_act_seconds", int, ACT_SECONDS,
                          "Requests from one person or device to the same site with the same "
                          "technique within this many seconds of the first are one attempt "
                          "(favicons, retries, reloads); see docs/monitoring.md.")
        loader.add_option("schoolgate_alert_push", str, "",
                          "YAML file saying where urgent alerts are pushed at once (email via "
                          "SMTP, a webhook); see docs/monitoring.md. Empty: nothing pushed.")

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if self._started and updated & set(_STATIC_OPTIONS):
            raise options_error(f"{', '.join(sorted(updated & set(_STATIC_OPTIONS)))} cannot "
                                 "change while the gateway runs; restart it")
        self._enabled = opts.schoolgate_recording
        if opts.schoolgate_act_seconds < 0:
            raise options_error("schoolgate_act_seconds must be 0 or more (0: every request "
                                "is its own attempt)")
        self._acts.seconds = opts.schoolgate_act_seconds
        if "schoolgate_devices" in updated:
            self._devices = _load(opts.schoolgate_devices, parse_devices, "schoolgate_devices")
        if "schoolgate_alert_push" in updated:
            path = opts.schoolgate_alert_push
            try:
                self._push = load_push_settings(Path(path).expanduser()) if path else NO_PUSH
            except ValueError as exc:
                raise options_error(f"schoolgate_alert_push: {exc}") from None
        if "schoolgate_database_url" in updated:
            self._engine = _engine(opts.schoolgate_database_url)

    # --- life cycle ------------------------------------------------------------------------

    def running(self) -> None:
        if self._started:
            return
        self._started = True
        opts = ctx.options
        if not self._enabled:
            return
        self._refusals.install()
        if self._engine is not None:
            spool = opts.schoolgate_spool_dir or str(Path(opts.confdir).expanduser().parent
                                                     / "spool")
            writer = EventWriter(self._engine, spool_dir=Path(spool),
                                 siem_path=opts.schoolgate_siem or None)
            self._sink = writer
            self.stats.event_writer = lambda: writer.stats
        elif opts.schoolgate_siem:
            self._sink = SiemLines(opts.schoolgate_siem)
        loop = asyncio.get_running_loop()
        if self._sink is not None:
            self._starting = loop.create_task(self._sink_start(self._sink))
        if self._engine is not None:
            self._tasks.append(loop.create_task(self._work_forever()))

    @staticmethod
    async def _sink_start(sink: EventWriter | SiemLines) -> None:
        try:
            await sink.start()
        except Exception:
            logger.exception("the event writer could not start; events stay queued in memory")

    async def done(self) -> None:
        self._refusals.remove()
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._starting, 30)
            self._starting = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._jobs.join(), 5)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._sink is not None:
            await self._sink.close()
            self._sink = None

    # --- the hooks ---------------------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        inputs = flow.metadata.get(context.INPUTS)
        role = inputs.subject.role if isinstance(inputs, context.DecisionInputs) else None
        self._tunnels[flow.client_conn.id] = _Tunnel(flow.metadata.get(context.IDENTITY), role)
        if flow.response is not None:  # refused at the CONNECT: nothing follows
            self._record_flow(flow, intercepted=False)
            return
        decision = flow.metadata.get(context.DECISION)
        if isinstance(decision, Decision) and not decision.allowed:
            event = self._flow_event(flow, intercepted=False)
            if event is not None:
                self._unanswered[flow.client_conn.id] = event

    def refused_by_mitmproxy(self, peer: Address | None, error: str, sent: str) -> None:
        """mitmproxy refused what a client sent before any addon saw a request (a malformed
        request line, a URL with user-info, invalid characters): recorded as an attempt with
        what was sent, bounded and escaped (`sent` is already a Python bytes repr)."""
        if not self._recording:
            return
        try:
            sent = _USERINFO.sub(r"\1[redacted]@", sent)[:MAX_SENT]
            found = _SENT_HOST.search(sent)
            host = found.group(1).lower()[:300] if found else "(unreadable request)"
            ip = None
            if peer:
                ip = str(peer[0])
                ip = ip.removeprefix("::ffff:") if ip.startswith("::ffff:") and "." in ip \
                    else ip
            # HTTP/2 extended CONNECT (RFC 8441, `:protocol`) asks for another protocol
            technique = Technique.PROTOCOL_UPGRADE if ":protocol" in sent else \
                Technique.MALFORMED_REQUEST
            decision = Decision(Verdict.BLOCK, Reason.INVALID_HOST, host=host,
                                technique=technique)
            self._submit(make_event(
                decision=decision, at=datetime.now(UTC), host=host, identity=None, role=None,
                ip=ip, device=self._devices.get(ip or ""), method=None, scheme=None, port=None,
                target=None, intercepted=False, technique=technique,
                evidence={"error": error[:200], "sent": sent}))
        except Exception:
            self._failed("refused_by_mitmproxy")

    def tls_clienthello(self, data: ClientHelloData) -> None:
        note = context.hello_notes.get(data.context.client.id)
        if note is None or not data.ignore_connection:
            return  # intercepted: recorded per request
        self._record_hello(data.context.client, data.context.server.address, note)

    def tls_failed_client(self, data: TlsData) -> None:
        """A handshake the client gave up on that Detect judged an attempt (ECH refused)."""
        client = data.context.client
        note = context.hello_notes.get(client.id)
        if note is not None and note.decision.technique == Technique.ECH:
            self._record_hello(client, data.context.server.address, note)

    def _record_hello(self, client: Client, address: Address | None,
                      note: context.HelloNote) -> None:
        if not self._recording:
            return
        self._unanswered.pop(client.id, None)
        try:
            tunnel = self._tunnels.get(client.id)
            technique = note.decision.technique
            self._submit(make_event(
                decision=note.decision, at=datetime.now(UTC),
                host=note.decision.host or note.sni or (str(address[0]) if address else "?"),
                identity=tunnel.identity if tunnel else None,
                role=tunnel.role if tunnel else None, ip=client_ip(client),
                device=self._devices.get(client_ip(client) or ""), method=None,
                scheme="https", port=address[1] if address else None, target=None,
                intercepted=False, technique=technique,
                evidence=note.evidence or _decided_evidence(note.decision)))
        except Exception:
            self._failed("tls_clienthello")

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._record_flow(flow, intercepted=True)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        self._record_flow(flow, intercepted=False)

    def client_disconnected(self, client: Client) -> None:
        self._tunnels.pop(client.id, None)
        event = self._unanswered.pop(client.id, None)
        if event is not None and self._recording:  # blocked, and cut before any request
            attempt = event.attempt
            if attempt is not None:
                attempt = AttemptEvidence(evidence={**attempt.evidence,
                                                    "cut": "no request after the CONNECT"},
                                          counted=attempt.counted)
            self._submit(replace(event, attempt=attempt))

    # --- helpers -------------------------------------------------------------------------------

    @property
    def _recording(self) -> bool:
        """Is there anywhere to record to? (No database and no SIEM: build nothing.)"""
        return self._enabled and (self._sink is not None or self._engine is not None)

    def _record_flow(self, flow: http.HTTPFlow | tcp.TCPFlow, *, intercepted: bool) -> None:
        if not self._recording:
            return
        event = self._flow_event(flow, intercepted=intercepted)
        if event is not None:
            self._unanswered.pop(flow.client_conn.id, None)
            self._submit(event)

    def _flow_event(self, flow: http.HTTPFlow | tcp.TCPFlow, *, intercepted: bool
                    ) -> Event | None:
        decision = flow.metadata.get(context.DECISION)
        if not isinstance(decision, Decision):
            return None  # not decided: a gateway page, a 407
        try:
            inputs = flow.metadata.get(context.INPUTS)
            at, role = datetime.now(UTC), None
            if isinstance(inputs, context.DecisionInputs):
                at, role = inputs.at, inputs.subject.role
                self._settings = inputs.policy.circumvention
            identity = flow.metadata.get(context.IDENTITY)
            tunnel = self._tunnels.get(flow.client_conn.id)
            if identity is None and tunnel is not None:
                identity, role = tunnel.identity, role or tunnel.role
            technique = flow.metadata.get(context.TECHNIQUE) or decision.technique
            evidence = flow.metadata.get(context.EVIDENCE)
            ip = client_ip(flow.client_conn)
            method: str | None
            scheme: str | None
            port: int | None
            if isinstance(flow, http.HTTPFlow):
                request = flow.request
                host = decision.host or request.pretty_host
                if evidence is None and technique:
                    evidence = _decided_evidence(decision, request, flow.client_conn.sni)
                method, scheme, port = request.method, request.scheme, request.port
                target = request.path if request.method != "CONNECT" else None
            else:
                address = flow.server_conn.address
                host = decision.host or (str(address[0]) if address else "?")
                method, scheme, port = None, None, address[1] if address else None
                target = None
            return make_event(
                decision=decision, at=at, host=host, identity=identity, role=role, ip=ip,
                device=self._devices.get(ip or ""), method=method, scheme=scheme, port=port,
                target=target, intercepted=intercepted, technique=technique,
                evidence=evidence)
        except Exception:
            self._failed("recording")
            return None

    def _submit(self, event: Event) -> None:
        self.stats.events += 1
        if event.attempt is not None and event.technique is not None and event.attempt.counted:
            first = self._acts.first_of(event)
            if first is not None:  # a follow-up of an act already counted
                self.stats.follow_ups += 1
                event = replace(event, attempt=AttemptEvidence(
                    evidence={**event.attempt.evidence, "same_act_as": first}, counted=False))
        if self._sink is not None:
            self._sink.submit(event)
        attempt = event.attempt
        if attempt is None or event.technique is None:
            return
        self.stats.attempts += 1
        if not attempt.counted or self._engine is None:
            return
        self.stats.acts += 1
        who = event.user or event.client_ip or "unknown"
        self._alert_attempt(event, who)
        if event.user is not None:
            self._queue(_Job("threshold", _threshold_job(event, self._settings)))

    def _alert_attempt(self, event: Event, who: str) -> None:
        """One alert per person and technique per threshold window: the attempts table keeps
        every attempt, the DSL's list stays readable."""
        key = (who, event.technique or "")
        now = time.monotonic()
        last = self._alerted.get(key)
        if last is not None and now - last < self._settings.threshold_window_seconds:
            return
        if len(self._alerted) > 50_000:
            self._alerted.clear()
        self._alerted[key] = now
        self._queue(_Job("alert", _attempt_alert_job(event)))

    def _queue(self, job: _Job) -> None:
        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:
            self.stats.alert_jobs_dropped += 1
            logger.warning("too many alert and sanction writes waiting; dropped one (%s)",
                           job.what)

    async def _work_forever(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                alert = await self._run_job(job)
                if alert is not None:
                    self.stats.alerts_raised += 1
                    if self._push.wants(alert):
                        await self._push_alert(alert)
            except Exception:
                self.stats.alerts_errors += 1
                logger.exception("an alert or sanction job failed")
            finally:
                self._jobs.task_done()

    async def _run_job(self, job: _Job) -> Alert | None:
        engine = self._engine
        assert engine is not None
        for attempt in range(self.job_retries):
            try:
                return await asyncio.to_thread(_in_transaction, engine, job.run)
            except Exception as exc:
                self.stats.alerts_errors += 1
                if attempt == 0:
                    logger.warning("writing a %s to the database failed (%s); retrying",
                                   job.what, str(exc).splitlines()[0] if str(exc) else exc)
                await asyncio.sleep(self.job_retry_seconds)
        self.stats.alert_jobs_dropped += 1
        logger.error("gave up writing a %s to the database", job.what)
        return None

    async def _push_alert(self, alert: Alert) -> None:
        results = await push_alert(self._push, alert)
        for channel, problem in results.items():
            if problem is not None:
                self.stats.alerts_errors += 1
                logger.warning("pushing alert %s by %s failed: %s", alert.id, channel, problem)
        if results and all(p is None for p in results.values()):
            self.stats.alerts_pushed += 1
            engine = self._engine
            assert engine is not None
            await asyncio.to_thread(_in_transaction, engine, lambda s: _mark(s, alert))

    def _failed(self, where: str) -> None:
        # Recording never blocks traffic: the decision stands; the failure is counted and logged.
        self.stats.record_errors += 1
        logger.exception("recording an event failed in %s", where)


def _mark(session: Session, alert: Alert) -> None:
    mark_pushed(session=session, alert_id=alert.id, at=datetime.now(UTC))


def _in_transaction(engine: Engine, work: Callable[[Session], Alert | None]) -> Alert | None:
    with Session(engine) as session, session.begin():
        return work(session)


def _attempt_alert_job(event: Event) -> Callable[[Session], Alert | None]:
    technique = event.technique or "unknown"
    who = event.user or f"the device at {event.client_ip or 'an unknown address'}"
    details = {"technique": technique, "host": event.host, "client_ip": event.client_ip,
               "event_id": event.id, **(event.attempt.evidence if event.attempt else {})}

    def run(session: Session) -> Alert:
        return raise_alert(session=session, severity=attempt_severity(technique),
                           kind=AlertKind.ATTEMPT, user=event.user, at=event.at,
                           summary=f"{who} tried to get round the filter ({technique}: "
                                   f"{event.host})", details=details)
    return run


def _threshold_job(event: Event, settings: CircumventionSettings
                   ) -> Callable[[Session], Alert | None]:
    """Count the act in the shared window; if it reached the threshold, act on it (in the same
    transaction, so two gateways cannot both act on one threshold)."""
    user = event.user
    assert user is not None

    def run(session: Session) -> Alert | None:
        attempts = count_act(session=session, user=user, at=event.at, settings=settings)
        if attempts is None:
            return None
        return on_threshold(session=session, user=user, attempts=attempts, settings=settings,
                            at=event.at, details={"last_technique": event.technique,
                                                  "last_host": event.host}).alert
    return run


def _decided_evidence(decision: Decision, request: http.Request | None = None,
                      sni: str | None = None) -> dict[str, str]:
    """Evidence for techniques decided from the host name: what was asked and what matched."""
    evidence = {"host": decision.host or "", "rule": decision.rule or "",
                "category": decision.category or ""}
    if request is not None:
        evidence["host_header"] = request.pretty_host
        if request.method == "CONNECT" or sni:
            evidence["connect"] = request.host
        if sni:
            evidence["sni"] = sni
    return {k: v for k, v in evidence.items() if v}


def _engine(url: str) -> Engine | None:
    if not url:
        return None
    try:
        engine = make_engine(url)
    except Exception as exc:
        raise options_error(f"schoolgate_database_url: {display_url(url)}: {exc}") from None
    try:
        require_current_schema(engine)
    except SchemaOutOfDate as exc:
        raise options_error(f"schoolgate_database_url: {exc}") from None
    except SQLAlchemyError as exc:
        # Unreachable now: filter anyway; events wait in the spool until it is back.
        logger.warning("the database %s cannot be reached (%s); events will be spooled until "
                       "it is back", display_url(url), str(exc).strip().splitlines()[0])
    return engine


def _load(path: str, parse: Callable[..., dict[str, str]], option: str) -> dict[str, str]:
    if not path:
        return {}
    try:
        return parse(Path(path).expanduser().read_text(encoding="utf-8"), source=path)
    except OSError as exc:
        raise options_error(f"{option}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise options_error(f"{option}: {exc}") from None

