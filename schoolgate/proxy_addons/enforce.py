"""Enforce the policy on traffic: decide at CONNECT, at the TLS ClientHello and on every request,
pass through what needs no inspection, answer blocked traffic locally, and cut websockets whose
verdict has changed. Any error while deciding blocks (fail closed).

Decisions read the policy and overrides snapshots of PolicySource, which a background task
refreshes, so nothing on the request path touches a file or the network. A decision is reused
(the front door's first look, the CONNECT, the ClientHello, the requests of a connection) only
while the snapshots are the same objects and the clock is still before `holds_until`: never
past a break's end or an exception's expiry.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Client
from mitmproxy.proxy.mode_specs import TransparentMode
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.tls import ClientHelloData

from schoolgate.policy.decide import decide, holds_until
from schoolgate.policy.hostnames import (
    HostError,
    is_subdomain_or_same,
    normalise_host,
    unwrap_rewriting_proxy,
)
from schoolgate.policy.inspection import InspectMode, YouTubeMode
from schoolgate.policy.model import (
    Decision,
    Overrides,
    Policy,
    Reason,
    Request,
    Subject,
    Verdict,
)
from schoolgate.policy.techniques import Technique
from schoolgate.proxy_addons import context, mitm_internals
from schoolgate.proxy_addons.blockpage import make_plain_block
from schoolgate.proxy_addons.errors import options_error
from schoolgate.proxy_addons.flows import (
    block_response,
    fail_closed,
    host_name,
    pretty_host,
    same_host,
)
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.proxy_addons.safesearch import is_search_host
from schoolgate.proxy_addons.stats import GatewayStats

logger = logging.getLogger(__name__)

MISMATCH = Technique.HOST_MISMATCH  # circumvention: CONNECT target, SNI and Host disagree
REUSE_LIMIT = 4096  # decisions remembered for reuse (then forgotten all at once)


class _Reusable:
    """A decision and what it was made from: reusable for the same question while `policy`
    and `overrides` are the same objects and the time is in [since, until) (POSIX seconds)."""

    __slots__ = ("decision", "overrides", "policy", "since", "until")

    def __init__(
        self, policy: Policy, overrides: Overrides, decision: Decision, since: float, until: float
    ) -> None:
        self.policy, self.overrides, self.decision = policy, overrides, decision
        self.since, self.until = since, until


@dataclass(frozen=True, slots=True)
class _Settings:
    """How Enforce treats decrypted and blocked traffic; replaced whole, never edited."""

    sensitive_hosts: tuple[str, ...] = ()
    https_block_page: bool = True


class Enforce:
    def __init__(self, source: PolicySource, stats: GatewayStats | None = None) -> None:
        self._source = source
        self._settings = _Settings()
        self._subjects: dict[str, Subject] = {}  # client id -> who opened the tunnel
        self._identities: dict[str, context.Identity] = {}  # ... as Identify found them
        self._tunnel_blocks: dict[str, Decision] = {}  # client id -> block for the whole tunnel
        self._refuse: set[str] = set()  # client ids whose passthrough must never connect
        self._websockets: dict[str, http.HTTPFlow] = {}
        self._reusable: dict[tuple[str, int | None, Subject], _Reusable] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # tests fix it
        self.stats = stats or GatewayStats()
        self._reused_from: tuple[object, object] = (None, None)  # the snapshots they came from
        source.after_refresh(self._sweep_websockets)
        source.after_refresh(self._forget_old_decisions)

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_sensitive_hosts",
            Sequence[str],
            [],
            "Extra hosts (and their subdomains) never decrypted, besides the "
            "policy's sensitive categories.",
        )
        loader.add_option(
            "schoolgate_https_block_page",
            bool,
            True,
            "Intercept blocked HTTPS sites to show the block page (devices trust "
            "the school CA). False: refuse their CONNECT with 403.",
        )

    def configure(self, updated: set[str]) -> None:
        if not updated & {"schoolgate_sensitive_hosts", "schoolgate_https_block_page"}:
            return
        opts = ctx.options
        sensitive = []
        for raw in opts.schoolgate_sensitive_hosts:
            host = normalise_host(raw)
            if isinstance(host, HostError):
                raise options_error(f"schoolgate_sensitive_hosts: {raw!r}: {host.message}")
            sensitive.append(host.name)
        self._settings = _Settings(tuple(sensitive), opts.schoolgate_https_block_page)

    def _forget_old_decisions(self) -> None:
        """A new policy or overrides snapshot: the decisions made with the old ones can never
        be reused again; forget them (they would keep the old snapshots in memory)."""
        current = (self._source.snapshot, self._source.overrides)
        if current[0] is not self._reused_from[0] or current[1] is not self._reused_from[1]:
            self._reused_from = current
            self._reusable.clear()

    def _sweep_websockets(self) -> None:
        for flow in list(self._websockets.values()):
            self._check_websocket(flow)

    # --- the decision points -----------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        try:
            snap = self._source.snapshot
            identity = flow.metadata.get(context.IDENTITY)
            if isinstance(identity, context.Identity):
                self._identities[flow.client_conn.id] = identity  # for its ClientHello
            school, policy, overrides = self._for_client(flow.client_conn, identity)
            if policy is None:
                self._refuse_no_school(flow)
                return
            subject = self._subject(flow, policy)
            self._subjects[flow.client_conn.id] = subject
            decision, at = self._decide(
                policy, overrides, flow.request.host, flow.request.port, subject
            )
            flow.metadata[context.DECISION] = decision
            flow.metadata[context.INPUTS] = context.DecisionInputs(
                policy, subject, overrides, at, snap.page, school
            )
            if decision.allowed:
                return
            never = decision.host is None or self._never_decrypt(policy, decision.host)
            # An internal address is refused at once: no tunnel is ever opened towards one.
            if (
                never
                or not self._settings.https_block_page
                or decision.reason is Reason.INTERNAL_ADDRESS
            ):
                self.stats.refused += 1
                flow.response = make_plain_block(decision)
        except Exception:
            self._engine_error(flow, "http_connect")

    def tls_clienthello(self, data: ClientHelloData) -> None:
        client, server = data.context.client, data.context.server
        if server.address is None:
            return  # TLS to the gateway itself (secure web proxy), not to a destination
        try:
            school, policy, overrides = self._for_client(client, self._identities.get(client.id))
            sni = data.client_hello.sni
            if policy is None:  # in no school's subnets: nothing is decrypted or connected
                data.ignore_connection = True
                self._refuse.add(client.id)
                return
            subject = self._subjects.get(client.id, Subject(policy.default_role))
            connect_host = None if _transparent(client) else server.address[0]
            if sni and connect_host and not same_host(sni, connect_host):
                decision = Decision(
                    Verdict.BLOCK,
                    Reason.CIRCUMVENTION,
                    rule="sni-mismatch",
                    host=host_name(connect_host),
                    technique=MISMATCH,
                )
                self._tunnel_blocks[client.id] = decision
            else:
                decision, _ = self._decide(
                    policy, overrides, sni or server.address[0], server.address[1], subject
                )
            host = decision.host
            never = host is not None and self._never_decrypt(policy, host)
            if never:
                data.ignore_connection = True
                if not decision.allowed:
                    self._refuse.add(client.id)  # closed in server_connect, nothing decrypted
            elif (
                decision.allowed
                and host is not None
                and not self._needs_inspection(policy, host, subject)
            ):
                self.stats.passed_through += 1
                data.ignore_connection = True
            else:
                self.stats.intercepted += 1
            # Only relayed connections are recorded from here; intercepted ones per request.
            context.hello_notes[client.id] = context.HelloNote(
                decision, data.ignore_connection, sni, never_decrypt=never, school=school
            )
        except Exception:
            # Intercepting is the safe side: every request inside is decided again.
            self.stats.enforce_errors += 1
            logger.exception("deciding at the TLS ClientHello failed; intercepting")

    def server_connect(self, data: ServerConnectionHookData) -> None:
        if data.client.id in self._refuse:
            data.server.error = "blocked by the school's web filter"

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        try:
            decision, at, subject, policy, overrides, school = self._decide_request(flow)
            flow.metadata[context.DECISION] = decision
            flow.metadata[context.INPUTS] = context.DecisionInputs(
                policy, subject, overrides, at, self._source.snapshot.page, school
            )
            if decision.reason is Reason.NO_SCHOOL:
                flow.response = make_plain_block(decision)  # no school: no school's page
            elif not decision.allowed:
                flow.response = self._block_response(flow, decision, subject, at, policy)
        except Exception:
            self._engine_error(flow, "requestheaders")

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        self._websockets[flow.id] = flow
        self._check_websocket(flow)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        self._check_websocket(flow)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self._websockets.pop(flow.id, None)

    def client_disconnected(self, client: Client) -> None:
        self._subjects.pop(client.id, None)
        self._identities.pop(client.id, None)
        self._tunnel_blocks.pop(client.id, None)
        self._refuse.discard(client.id)
        context.hello_notes.pop(client.id, None)

    # --- helpers -----------------------------------------------------------------------------

    def _for_client(
        self, client: Client, identity: object
    ) -> tuple[str | None, Policy | None, Overrides]:
        """The school of a request (with a trust: by the listener the client connected to,
        its address, or the signed-in person's directory group or OU; docs/trust.md), that
        school's policy (None: the request belongs to no school and is refused), and the
        overrides that apply to it: another school's exceptions never open anything here. The
        one look-up per decision: the flow carries its school on from here."""
        snap = self._source.snapshot
        if snap.trust is None:
            return None, snap.policy, self._source.overrides
        found = snap.attribute(client, identity if isinstance(identity, context.Identity) else None)
        if found is None or found.school is None:
            return None, None, self._source.overrides_for(None)
        school = found.school.id
        return school, snap.trust.policies[school], self._source.overrides_for(school)

    def _decide(
        self, policy: Policy, overrides: Overrides, host: str, port: int | None, subject: Subject
    ) -> tuple[Decision, datetime]:
        """decide() at the clock's now (read once), or the same question's answer made
        earlier, when the snapshots are the same objects and now is before it may change."""
        at = self.clock()
        stamp = at.timestamp()
        key = (host, port, subject)
        known = self._reusable.get(key)
        if (
            known is not None
            and known.policy is policy
            and known.overrides is overrides
            and known.since <= stamp < known.until
        ):
            return known.decision, at
        request = Request(host, port)
        decision = decide(policy, request, subject, overrides, at)
        until = holds_until(policy, request, subject, overrides, at).timestamp()
        if until > stamp:
            if len(self._reusable) >= REUSE_LIMIT:
                self._reusable.clear()
            self._reusable[key] = _Reusable(policy, overrides, decision, stamp, until)
        return decision, at

    def _refuse_no_school(self, flow: http.HTTPFlow) -> None:
        """A trust's gateway, a client in no school's subnets: refused, with the trust's base
        policy standing in for the record (docs/trust.md)."""
        snap = self._source.snapshot
        decision = Decision(Verdict.BLOCK, Reason.NO_SCHOOL)
        subject = Subject(snap.policy.default_role)
        flow.metadata[context.DECISION] = decision
        flow.metadata[context.INPUTS] = context.DecisionInputs(
            snap.policy, subject, self._source.overrides_for(None), datetime.now(UTC), snap.page
        )
        self.stats.refused += 1
        flow.response = make_plain_block(decision)

    def _decide_request(
        self, flow: http.HTTPFlow
    ) -> tuple[Decision, datetime, Subject, Policy, Overrides, str | None]:
        snap = self._source.snapshot
        school, policy, overrides = self._for_client(
            flow.client_conn, flow.metadata.get(context.IDENTITY)
        )
        if policy is None:
            no_school = Decision(Verdict.BLOCK, Reason.NO_SCHOOL)
            base = Subject(snap.policy.default_role)
            return no_school, datetime.now(UTC), base, snap.policy, overrides, None
        subject = self._subject(flow, policy)
        blocked = self._tunnel_blocks.get(flow.client_conn.id)
        if blocked is not None:
            return blocked, datetime.now(UTC), subject, policy, overrides, school
        asked = pretty_host(flow.request)  # Host / :authority: the client chose it
        names = [asked]
        if not _transparent(flow.client_conn):
            names.append(flow.request.host)  # the CONNECT target or absolute-form URL host
        if flow.client_conn.sni:
            names.append(flow.client_conn.sni)
        if any(not same_host(asked, other) for other in names[1:]):
            return (
                Decision(
                    Verdict.BLOCK,
                    Reason.CIRCUMVENTION,
                    rule="host-mismatch",
                    host=host_name(names[-1]),
                    technique=MISMATCH,
                ),
                datetime.now(UTC),
                subject,
                policy,
                overrides,
                school,
            )
        decision, at = self._decide(policy, overrides, asked, flow.request.port, subject)
        return decision, at, subject, policy, overrides, school

    def _subject(self, flow: http.HTTPFlow, policy: Policy) -> Subject:
        """Who is asking; unknown people and unknown roles get the default role (fail closed)."""
        ident = flow.metadata.get(context.IDENTITY)
        if not isinstance(ident, context.Identity):
            remembered = self._subjects.get(flow.client_conn.id)
            return remembered or Subject(policy.default_role)
        return _subject_of(ident, policy)

    def passes_through(
        self, host: str, port: int, identity: context.Identity, client: Client | None = None
    ) -> bool:
        """Would a CONNECT to host:port by `identity` on `client`'s connection, whose
        ClientHello names the same host, be relayed unread (allowed, and never decrypted or not
        to be inspected)? With a trust, decided with the school Enforce's hooks find for it
        (listener, address, directory group or OU) and its overrides; a request that belongs to
        no school, or no client to attribute: False (the hooks decide, and refuse it). No stats;
        the front door's first look, before the hooks decide for real (its decision is
        remembered for them)."""
        if client is None:
            if self._source.snapshot.trust is not None:
                return False
            policy: Policy | None = self._source.snapshot.policy
            overrides = self._source.overrides
        else:
            _, policy, overrides = self._for_client(client, identity)
        if policy is None:
            return False
        subject = _subject_of(identity, policy)
        decision, _ = self._decide(policy, overrides, host, port, subject)
        if not decision.allowed or decision.host is None:
            return False
        return self._never_decrypt(policy, decision.host) or not self._needs_inspection(
            policy, decision.host, subject
        )

    def _never_decrypt(self, policy: Policy, host: str) -> bool:
        if any(is_subdomain_or_same(host, s) for s in self._settings.sensitive_hosts):
            return True
        categories = policy.domains.categories(host)
        return any(policy.categories[c].sensitive for c in categories)

    def _needs_inspection(self, policy: Policy, host: str, subject: Subject) -> bool:
        """Must this allowed connection be decrypted? Always for a role with `inspect: all`
        (the never-decrypt hosts were passed through before this is asked); for the others,
        whose verdict can change per request (role, time, exceptions): any categorised host,
        page-rewriting proxies, which can show any site, and the search engines and YouTube
        when the role's safe search or Restricted Mode must be forced."""
        role = policy.inspection.for_role(subject.role)
        if role.inspect is InspectMode.ALL:
            return True
        if (role.safe_search or role.youtube is not YouTubeMode.OFF) and is_search_host(host):
            return True
        return bool(policy.domains.categories(host)) or unwrap_rewriting_proxy(host) is not None

    def _check_websocket(self, flow: http.HTTPFlow) -> None:
        """Re-decide a live websocket; cut it when its verdict has become a block."""
        if not flow.live or flow.error:
            self._websockets.pop(flow.id, None)
            return
        try:
            decision = self._decide_request(flow)[0]
        except Exception:
            self.stats.enforce_errors += 1
            logger.exception("re-deciding a websocket failed; closing it")
            decision = Decision(Verdict.BLOCK, Reason.ENGINE_ERROR)
        if decision.allowed:
            return
        flow.metadata[context.DECISION] = decision
        if flow.websocket is not None and flow.websocket.messages:
            flow.websocket.messages[-1].drop()  # type: ignore[no-untyped-call]
        self.stats.websockets_cut += 1
        self._websockets.pop(flow.id, None)
        with contextlib.suppress(exceptions.ControlException):
            flow.kill()  # type: ignore[no-untyped-call]
        mitm_internals.close_client_now(flow.client_conn)

    def _block_response(
        self,
        flow: http.HTTPFlow,
        decision: Decision,
        subject: Subject,
        at: datetime,
        policy: Policy,
    ) -> http.Response:
        page = self._source.snapshot.page
        return block_response(flow, decision, subject, at=at, policy=policy, page=page)

    def _engine_error(self, flow: http.HTTPFlow, where: str) -> None:
        self.stats.enforce_errors += 1
        fail_closed(flow, "deciding", where)


def _subject_of(ident: context.Identity, policy: Policy) -> Subject:
    role = ident.role if ident.role in policy.roles and ident.role else policy.default_role
    return Subject(role, ident.user, ident.groups)


def _transparent(client: Client) -> bool:
    return isinstance(client.proxy_mode, TransparentMode)
