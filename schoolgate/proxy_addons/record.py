"""Record every decision as an event: intercepted traffic per request, relayed (passed-through or
refused) traffic per connection. Hooks only build an `Event` and hand it to the `EventWriter`
(never waiting on the database); circumvention attempts also feed the sanction threshold and
raise alerts, written and pushed by a background task.

An attempt is an act, not a request (docs/monitoring.md, "What counts as one attempt"): the
requests one person's device makes to the same registrable site with the same technique within
`schoolgate_act_seconds` of the act's first request are one act. Every request is still recorded;
only the act's first is `counted`, the others name it (`same_act_as`). Only counted acts raise an
alert and count towards the sanction threshold. This process's own act window decides at once
for the requests it sees; with a database, each act it sees first is then decided again for
every worker and replica, off the request path in one transaction (store/escalation.py
`act_job`): a follow-up of an act another worker saw first has its row marked so, and the alert
(one per person and technique per window) and the threshold are shared the same way.

Last in the addon list, so it sees the final decision (Enforce's, or Detect's on top of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from mitmproxy import ctx, http, tcp
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Address, Client
from mitmproxy.tls import ClientHelloData, TlsData
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from schoolgate.policy.model import CircumventionSettings, Decision, Reason, Verdict
from schoolgate.policy.techniques import Technique
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.errors import options_error
from schoolgate.proxy_addons.flows import address_ip, client_ip, pretty_host
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.proxy_addons.recording import (
    ActWindow,
    act_key,
    decided_evidence,
    make_event,
    parse_devices,
)
from schoolgate.proxy_addons.refusals import RefusalLog, read_refused
from schoolgate.proxy_addons.stats import GatewayStats
from schoolgate.store.alerts import NO_PUSH, PushSettings, load_push_settings
from schoolgate.store.db import SchemaOutOfDate, display_url, make_engine, require_current_schema
from schoolgate.store.escalation import AlertWorker, act_job
from schoolgate.store.event_writer import EventWriter
from schoolgate.store.events import AttemptEvidence, Event
from schoolgate.store.siem import SiemLines

logger = logging.getLogger(__name__)

ACT_SECONDS = 30  # default of schoolgate_act_seconds: one act's follow-up requests
_STATIC_OPTIONS = ("schoolgate_database_url", "schoolgate_spool_dir", "schoolgate_siem")


@dataclass(frozen=True, slots=True)
class _Tunnel:
    identity: object
    role: str | None
    school: str | None  # as Enforce found it at the CONNECT


class RecordEvents:
    def __init__(
        self, stats: GatewayStats | None = None, source: PolicySource | None = None
    ) -> None:
        self._source = source  # with a trust file: a school no decision carried
        self._sink: EventWriter | SiemLines | None = None  # where events go
        self._worker: AlertWorker | None = None  # alerts and sanctions (with a database)
        self._engine: Engine | None = None
        self._enabled = True
        self._devices: dict[str, str] = {}
        self._push: PushSettings = NO_PUSH
        self._tunnels: dict[str, _Tunnel] = {}
        # Blocked tunnels with nothing recorded yet: recorded once if the client goes away
        # without a request (a handshake cut short); dropped when a request is recorded.
        self._unanswered: dict[str, Event] = {}
        self._refusals = RefusalLog(self.refused_by_mitmproxy)
        self._acts = ActWindow(ACT_SECONDS)
        self._settings = CircumventionSettings()  # the running policy's (seen on each flow)
        self._starting: asyncio.Task[None] | None = None
        self._started = False
        self.stats = stats or GatewayStats()

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_recording",
            bool,
            True,
            "Record every decision as an event (database and/or SIEM lines).",
        )
        loader.add_option(*context.DATABASE_URL_OPTION)
        loader.add_option(
            "schoolgate_spool_dir",
            str,
            "",
            "Where events wait on disk while the database is unavailable. Empty: "
            "'spool' next to the CA directory (confdir).",
        )
        loader.add_option(
            "schoolgate_siem",
            str,
            "",
            "Also write events as JSON lines to this file, or '-' for stdout.",
        )
        loader.add_option(
            "schoolgate_devices",
            str,
            "",
            "YAML file mapping client IP addresses to device names, recorded with each event.",
        )
        loader.add_option(
            "schoolgate_act_seconds",
            int,
            ACT_SECONDS,
            "Requests from one person or device to the same site with the same "
            "technique within this many seconds of the first are one attempt "
            "(favicons, retries, reloads); see docs/monitoring.md.",
        )
        loader.add_option(
            "schoolgate_alert_push",
            str,
            "",
            "YAML file saying where urgent alerts are pushed at once (email via "
            "SMTP, a webhook); see docs/monitoring.md. Empty: nothing pushed.",
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if self._started and updated & set(_STATIC_OPTIONS):
            raise options_error(
                f"{', '.join(sorted(updated & set(_STATIC_OPTIONS)))} cannot "
                "change while the gateway runs; restart it"
            )
        self._enabled = opts.schoolgate_recording
        if opts.schoolgate_act_seconds < 0:
            raise options_error(
                "schoolgate_act_seconds must be 0 or more (0: every request is its own attempt)"
            )
        self._acts.seconds = opts.schoolgate_act_seconds
        if "schoolgate_devices" in updated:
            self._devices = _load(opts.schoolgate_devices, parse_devices, "schoolgate_devices")
        if "schoolgate_alert_push" in updated:
            path = opts.schoolgate_alert_push
            try:
                self._push = load_push_settings(Path(path).expanduser()) if path else NO_PUSH
                if self._worker is not None:
                    self._worker.push = self._push
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
            spool = opts.schoolgate_spool_dir or str(
                Path(opts.confdir).expanduser().parent / "spool"
            )
            writer = EventWriter(
                self._engine, spool_dir=Path(spool), siem_path=opts.schoolgate_siem or None
            )
            self._sink = writer
            self.stats.event_writer = lambda: writer.stats
        elif opts.schoolgate_siem:
            self._sink = SiemLines(opts.schoolgate_siem)
        loop = asyncio.get_running_loop()
        if self._sink is not None:
            self._starting = loop.create_task(self._sink_start(self._sink))
        if self._engine is not None:
            self._worker = AlertWorker(self._engine, self.stats, push=self._push)
            self._worker.start()

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
        if self._worker is not None:
            await self._worker.close()
            self._worker = None
        if self._sink is not None:
            await self._sink.close()
            self._sink = None

    # --- the hooks ---------------------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        inputs = flow.metadata.get(context.INPUTS)
        identity = flow.metadata.get(context.IDENTITY)
        if isinstance(inputs, context.DecisionInputs):
            tunnel = _Tunnel(identity, inputs.subject.role, inputs.school)
        else:
            tunnel = _Tunnel(identity, None, self._school_of(flow.client_conn, identity))
        self._tunnels[flow.client_conn.id] = tunnel
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
            sent, host, technique = read_refused(sent)
            ip = address_ip(peer)
            decision = Decision(Verdict.BLOCK, Reason.INVALID_HOST, host=host, technique=technique)
            self._submit(
                make_event(
                    decision=decision,
                    at=datetime.now(UTC),
                    host=host,
                    identity=None,
                    role=None,
                    ip=ip,
                    device=self._devices.get(ip or ""),
                    method=None,
                    scheme=None,
                    port=None,
                    target=None,
                    intercepted=False,
                    technique=technique,
                    evidence={"error": error[:200], "sent": sent},
                    school=self._school(ip),
                )
            )
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

    def _record_hello(
        self, client: Client, address: Address | None, note: context.HelloNote
    ) -> None:
        if not self._recording:
            return
        self._unanswered.pop(client.id, None)
        try:
            tunnel = self._tunnels.get(client.id)
            technique = note.decision.technique
            ip = client_ip(client)
            self._submit(
                make_event(
                    decision=note.decision,
                    at=datetime.now(UTC),
                    host=note.decision.host or note.sni or (str(address[0]) if address else "?"),
                    identity=tunnel.identity if tunnel else None,
                    role=tunnel.role if tunnel else None,
                    ip=ip,
                    device=self._devices.get(ip or ""),
                    method=None,
                    scheme="https",
                    port=address[1] if address else None,
                    target=None,
                    intercepted=False,
                    technique=technique,
                    evidence=note.evidence or decided_evidence(note.decision),
                    school=note.school,
                )
            )
        except Exception:
            self._failed("tls_clienthello")

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._record_flow(flow, intercepted=True)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        self._record_flow(flow, intercepted=False)

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(context.LATE):  # blocked when its page arrived (CheckPages)
            self._record_flow(flow, intercepted=True)

    def client_disconnected(self, client: Client) -> None:
        self._tunnels.pop(client.id, None)
        event = self._unanswered.pop(client.id, None)
        if event is not None and self._recording:  # blocked, and cut before any request
            attempt = event.attempt
            if attempt is not None:
                attempt = AttemptEvidence(
                    evidence={**attempt.evidence, "cut": "no request after the CONNECT"},
                    counted=attempt.counted,
                )
            self._submit(replace(event, attempt=attempt))

    # --- helpers -------------------------------------------------------------------------------

    def _school(self, ip: str | None) -> str | None:
        """The school of a client address, for what mitmproxy refused before any decision."""
        return self._source.snapshot.school_for(ip) if self._source is not None else None

    def _school_of(self, client: Client, identity: object = None) -> str | None:
        """The school of a flow no decision carried a school for (a hook failed before): found
        as Enforce finds it."""
        if self._source is None:
            return None
        person = identity if isinstance(identity, context.Identity) else None
        found = self._source.snapshot.attribute(client, person)
        return found.school.id if found is not None and found.school is not None else None

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

    def _flow_event(self, flow: http.HTTPFlow | tcp.TCPFlow, *, intercepted: bool) -> Event | None:
        decision = flow.metadata.get(context.DECISION)
        if not isinstance(decision, Decision):
            return None  # not decided: a gateway page, a 407
        try:
            inputs = flow.metadata.get(context.INPUTS)
            at, role = datetime.now(UTC), None
            identity = flow.metadata.get(context.IDENTITY)
            tunnel = self._tunnels.get(flow.client_conn.id)
            note = context.hello_notes.get(flow.client_conn.id)
            if isinstance(inputs, context.DecisionInputs):
                at, role, school = inputs.at, inputs.subject.role, inputs.school
                self._settings = inputs.policy.circumvention
            elif tunnel is not None:  # inside a CONNECT tunnel: the tunnel's
                school = tunnel.school
            elif note is not None:  # a transparent connection: its ClientHello's
                school = note.school
            else:
                school = self._school_of(flow.client_conn, identity)
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
                host = decision.host or pretty_host(request)
                if evidence is None and technique:
                    evidence = decided_evidence(decision, request, flow.client_conn.sni)
                method, scheme, port = request.method, request.scheme, request.port
                target = request.path if request.method != "CONNECT" else None
            else:
                address = flow.server_conn.address
                host = decision.host or (str(address[0]) if address else "?")
                method, scheme, port = None, None, address[1] if address else None
                target = None
            return make_event(
                decision=decision,
                at=at,
                host=host,
                identity=identity,
                role=role,
                ip=ip,
                device=self._devices.get(ip or ""),
                method=method,
                scheme=scheme,
                port=port,
                target=target,
                intercepted=intercepted,
                technique=technique,
                evidence=evidence,
                school=school,
            )
        except Exception:
            self._failed("recording")
            return None

    def _submit(self, event: Event) -> None:
        self.stats.events += 1
        if event.attempt is not None and event.technique is not None and event.attempt.counted:
            first = self._acts.first_of(event)
            if first is not None:  # a follow-up of an act already counted
                self.stats.follow_ups += 1
                event = replace(
                    event,
                    attempt=AttemptEvidence(
                        evidence={**event.attempt.evidence, "same_act_as": first}, counted=False
                    ),
                )
        if self._sink is not None:
            self._sink.submit(event)
        attempt = event.attempt
        if attempt is None or event.technique is None:
            return
        self.stats.attempts += 1
        if not attempt.counted or self._worker is None:
            return
        self.stats.acts += 1
        self._worker.submit(
            act_job(event, self._settings, act=act_key(event), act_seconds=self._acts.seconds)
        )

    def _failed(self, where: str) -> None:
        # Recording never blocks traffic: the decision stands; the failure is counted and logged.
        self.stats.record_errors += 1
        logger.exception("recording an event failed in %s", where)


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
        logger.warning(
            "the database %s cannot be reached (%s); events will be spooled until it is back",
            display_url(url),
            str(exc).strip().splitlines()[0],
        )
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
