"""Enforce the policy on traffic: decide at CONNECT, at the TLS ClientHello and on every request,
pass through what needs no inspection, answer blocked traffic locally, and cut websockets whose
verdict has changed. Any error while deciding blocks (fail closed).

Decisions read one in-memory snapshot (policy + settings) and one overrides snapshot; a
background task refreshes both, so nothing on the request path touches a file or the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Client
from mitmproxy.proxy.mode_specs import TransparentMode
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.tls import ClientHelloData

from policy.decide import decide
from policy.errors import PolicyError
from policy.hostnames import (
    HostError,
    is_subdomain_or_same,
    normalise_host,
    unwrap_rewriting_proxy,
)
from policy.inspection import InspectMode, YouTubeMode
from policy.model import (
    NO_OVERRIDES,
    Decision,
    Overrides,
    Policy,
    Reason,
    Request,
    Subject,
    Verdict,
)
from proxy_addons import context
from proxy_addons.blockpage import BlockPageSettings, make_block_page, make_plain_block
from proxy_addons.errors import options_error
from proxy_addons.safesearch import is_search_host
from store.list_status import policy_stamp
from store.overrides_db import DatabaseOverridesSource
from store.policy_files import load_policy
from store.snapshots import FileOverridesSource, LastSnapshotSource, OverridesSource
from store.techniques import Technique
from store.tokens import load_or_create_secret

logger = logging.getLogger(__name__)

MISMATCH = Technique.HOST_MISMATCH  # circumvention: CONNECT target, SNI and Host disagree
# (inode, size, mtime_ns) of the policy file and each list it names: has a file been replaced?
FileStamp = tuple[tuple[int, int, int] | None, ...]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything a decision reads besides the overrides; replaced whole, never edited."""

    policy: Policy
    policy_path: Path | None
    policy_stamp: FileStamp | None
    sensitive_hosts: tuple[str, ...]
    https_block_page: bool
    page: BlockPageSettings
    refresh_seconds: float


class Enforce:
    def __init__(self) -> None:
        self._snap: _Snapshot | None = None
        self._overrides: Overrides = NO_OVERRIDES
        self._source: OverridesSource | None = None
        self._subjects: dict[str, Subject] = {}  # client id -> who opened the tunnel
        self._tunnel_blocks: dict[str, Decision] = {}  # client id -> block for the whole tunnel
        self._refuse: set[str] = set()  # client ids whose passthrough must never connect
        self._websockets: dict[str, http.HTTPFlow] = {}
        self._task: asyncio.Task[None] | None = None
        self.stats: Counter[str] = Counter()

    @property
    def overrides_state(self) -> str:
        """Where the overrides in force come from, when that is not simply the database."""
        return str(getattr(self._source, "state", ""))

    def load(self, loader: Loader) -> None:
        loader.add_option("schoolgate_policy", str, "",
                          "Policy file (YAML). Empty: the seed policy shipped with schoolgate.")
        loader.add_option("schoolgate_overrides", str, "",
                          "Overrides snapshot file (JSON: exceptions, sanctions, supervised "
                          "sessions, local lists), replaced atomically by the admin. Empty: "
                          "none. With a database: where the last overrides read from it are "
                          "kept, for a start while it is down.")
        loader.add_option(*context.DATABASE_URL_OPTION)
        loader.add_option("schoolgate_sensitive_hosts", Sequence[str], [],
                          "Extra hosts (and their subdomains) never decrypted, besides the "
                          "policy's sensitive categories.")
        loader.add_option("schoolgate_https_block_page", bool, True,
                          "Intercept blocked HTTPS sites to show the block page (devices trust "
                          "the school CA). False: refuse their CONNECT with 403.")
        loader.add_option("schoolgate_refresh_ms", int, 2000,
                          "How often, in milliseconds, the overrides and the policy file are "
                          "re-read (a change reaches the gateway within this time).")
        loader.add_option("schoolgate_admin_url", str, "http://127.0.0.1:8081",
                          "Base URL of the admin service; the block page's 'Ask for access' "
                          "link points at its /requests/new form.")
        loader.add_option("schoolgate_secret_file", str, "",
                          "File holding the secret that signs 'Ask for access' links (made if "
                          "missing). Empty: a random secret for this run only.")

    def configure(self, updated: set[str]) -> None:
        if self._snap is not None and not any(o.startswith("schoolgate_") for o in updated):
            return
        opts = ctx.options
        old = self._snap
        if old is None or "schoolgate_policy" in updated:
            path = Path(opts.schoolgate_policy).expanduser() if opts.schoolgate_policy else None
            try:
                policy = load_policy(path)
            except PolicyError as exc:
                raise options_error(f"schoolgate_policy: {exc}") from None
            stamp = _stamp(path)
        else:
            policy, path, stamp = old.policy, old.policy_path, old.policy_stamp
        sensitive = []
        for raw in opts.schoolgate_sensitive_hosts:
            host = normalise_host(raw)
            if isinstance(host, HostError):
                raise options_error(f"schoolgate_sensitive_hosts: {raw!r}: "
                                              f"{host.message}")
            sensitive.append(host.name)
        if opts.schoolgate_refresh_ms < 100:
            raise options_error("schoolgate_refresh_ms must be at least 100 (milliseconds)")
        admin_url = opts.schoolgate_admin_url
        if not admin_url.startswith(("http://", "https://")):
            raise options_error(f"schoolgate_admin_url: {admin_url!r} is not an "
                                          "http:// or https:// URL")
        page = old.page if old is not None and "schoolgate_secret_file" not in updated else None
        if page is None or page.admin_url != admin_url:
            page = BlockPageSettings(admin_url, _secret(opts.schoolgate_secret_file))
        if old is None or updated & {"schoolgate_overrides", "schoolgate_database_url"}:
            if opts.schoolgate_database_url:
                # The database replaces the snapshot file (and the admin writes there).
                try:
                    db_source = DatabaseOverridesSource.from_url(opts.schoolgate_database_url)
                except Exception as exc:
                    raise options_error(f"schoolgate_database_url: {exc}") from None
                source: DatabaseOverridesSource | LastSnapshotSource = db_source
                if opts.schoolgate_overrides:
                    source = LastSnapshotSource(db_source, Path(opts.schoolgate_overrides))
                self._overrides = source.load_now()
                self._source = source
            elif opts.schoolgate_overrides:
                file_source = FileOverridesSource(Path(opts.schoolgate_overrides).expanduser())
                self._overrides = file_source.load_now()
                self._source = file_source
            else:
                self._source, self._overrides = None, NO_OVERRIDES
        self._snap = _Snapshot(policy, path, stamp, tuple(sensitive),
                               opts.schoolgate_https_block_page, page,
                               opts.schoolgate_refresh_ms / 1000)

    # --- background refresh ------------------------------------------------------------------

    def running(self) -> None:
        # Here, not in configure: the first configure sees the defaults, before --set arrives.
        if not ctx.options.schoolgate_secret_file:
            logger.warning("schoolgate_secret_file is not set: 'Ask for access' links are "
                           "signed with a secret for this run only, and the admin cannot "
                           "check them")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._state().refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                self.stats["refresh_errors"] += 1
                logger.warning("refreshing the policy and overrides failed", exc_info=True)

    async def refresh(self) -> None:
        """Re-read the overrides and (if its file changed) the policy; sweep websockets."""
        if self._source is not None:
            self._overrides = await self._source.load()
        snap = self._state()
        if snap.policy_path is not None:
            stamp = await asyncio.to_thread(_stamp, snap.policy_path)
            if stamp != snap.policy_stamp:
                try:
                    policy = await asyncio.to_thread(load_policy, snap.policy_path)
                except PolicyError as exc:
                    self.stats["policy_reload_refused"] += 1
                    logger.warning("the changed policy file was refused; the running policy "
                                   "stays in force:\n%s", exc)
                    policy = snap.policy
                else:
                    self.stats["policy_reloads"] += 1
                    logger.warning("policy reloaded from %s", snap.policy_path)
                # Swap the whole snapshot (it may have changed while we were reading).
                self._snap = replace(self._state(), policy=policy, policy_stamp=stamp)
        for flow in list(self._websockets.values()):
            self._check_websocket(flow)

    # --- the decision points -----------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        try:
            snap = self._state()
            subject = self._subject(flow, snap.policy)
            self._subjects[flow.client_conn.id] = subject
            decision, at = self._decide(snap, flow.request.host, flow.request.port, subject)
            flow.metadata[context.DECISION] = decision
            flow.metadata[context.INPUTS] = context.DecisionInputs(snap.policy, subject,
                                                                   self._overrides, at,
                                                                   snap.page)
            if decision.allowed:
                return
            never = decision.host is None or self._never_decrypt(snap, decision.host)
            # An internal address is refused at once: no tunnel is ever opened towards one.
            if never or not snap.https_block_page or \
                    decision.reason is Reason.INTERNAL_ADDRESS:
                self.stats["refused"] += 1
                flow.response = make_plain_block(decision)
        except Exception:
            self._engine_error(flow, "http_connect")

    def tls_clienthello(self, data: ClientHelloData) -> None:
        client, server = data.context.client, data.context.server
        if server.address is None:
            return  # TLS to the gateway itself (secure web proxy), not to a destination
        try:
            snap = self._state()
            sni = data.client_hello.sni
            subject = self._subjects.get(client.id, Subject(snap.policy.default_role))
            connect_host = None if _transparent(client) else server.address[0]
            if sni and connect_host and not _same_host(sni, connect_host):
                decision = Decision(Verdict.BLOCK, Reason.CIRCUMVENTION, rule="sni-mismatch",
                                    host=_name(connect_host), technique=MISMATCH)
                self._tunnel_blocks[client.id] = decision
                self.stats["blocked"] += 1
            else:
                decision, _ = self._decide(snap, sni or server.address[0], server.address[1],
                                           subject)
            host = decision.host
            never = host is not None and self._never_decrypt(snap, host)
            if never:
                data.ignore_connection = True
                if not decision.allowed:
                    self._refuse.add(client.id)  # closed in server_connect, nothing decrypted
            elif decision.allowed and host is not None and \
                    not self._needs_inspection(snap, host, subject):
                self.stats["passthrough"] += 1
                data.ignore_connection = True
            else:
                self.stats["intercepted"] += 1
            # Only relayed connections are recorded from here; intercepted ones per request.
            context.hello_notes[client.id] = context.HelloNote(decision, data.ignore_connection,
                                                               sni, never_decrypt=never)
        except Exception:
            # Intercepting is the safe side: every request inside is decided again.
            self.stats["engine_errors"] += 1
            logger.exception("deciding at the TLS ClientHello failed; intercepting")

    def server_connect(self, data: ServerConnectionHookData) -> None:
        if data.client.id in self._refuse:
            data.server.error = "blocked by the school's web filter"

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        try:
            decision, at, subject = self._decide_request(flow)
            flow.metadata[context.DECISION] = decision
            snap = self._state()
            flow.metadata[context.INPUTS] = context.DecisionInputs(
                snap.policy, subject, self._overrides, at, snap.page)
            if not decision.allowed:
                flow.response = self._block_response(flow, decision, subject, at)
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
        self._tunnel_blocks.pop(client.id, None)
        self._refuse.discard(client.id)
        context.hello_notes.pop(client.id, None)

    # --- helpers -----------------------------------------------------------------------------

    def _state(self) -> _Snapshot:
        if self._snap is None:
            raise RuntimeError("Enforce is not configured yet")
        return self._snap

    def _decide(self, snap: _Snapshot, host: str, port: int | None,
                subject: Subject) -> tuple[Decision, datetime]:
        at = datetime.now(UTC)  # read once per decision; decide() gets it passed in
        decision = decide(snap.policy, Request(host, port), subject, self._overrides, at)
        self.stats["allowed" if decision.allowed else "blocked"] += 1
        return decision, at

    def _decide_request(self, flow: http.HTTPFlow) -> tuple[Decision, datetime, Subject]:
        snap = self._state()
        subject = self._subject(flow, snap.policy)
        blocked = self._tunnel_blocks.get(flow.client_conn.id)
        if blocked is not None:
            return blocked, datetime.now(UTC), subject
        asked = flow.request.pretty_host  # Host / :authority: the client chose it
        names = [asked]
        if not _transparent(flow.client_conn):
            names.append(flow.request.host)  # the CONNECT target or absolute-form URL host
        if flow.client_conn.sni:
            names.append(flow.client_conn.sni)
        if any(not _same_host(asked, other) for other in names[1:]):
            self.stats["blocked"] += 1
            return (Decision(Verdict.BLOCK, Reason.CIRCUMVENTION, rule="host-mismatch",
                             host=_name(names[-1]), technique=MISMATCH),
                    datetime.now(UTC), subject)
        decision, at = self._decide(snap, asked, flow.request.port, subject)
        return decision, at, subject

    def _subject(self, flow: http.HTTPFlow, policy: Policy) -> Subject:
        """Who is asking; unknown people and unknown roles get the default role (fail closed)."""
        ident = flow.metadata.get(context.IDENTITY)
        if not isinstance(ident, context.Identity):
            remembered = self._subjects.get(flow.client_conn.id)
            return remembered or Subject(policy.default_role)
        return _subject_of(ident, policy)

    def passes_through(self, host: str, port: int, identity: context.Identity) -> bool:
        """Would a CONNECT to host:port by `identity`, whose ClientHello names the same host,
        be relayed unread (allowed, and never decrypted or not to be inspected)? Pure: no
        stats, no state; the front door's first look, before the hooks decide for real."""
        snap = self._state()
        subject = _subject_of(identity, snap.policy)
        decision = decide(snap.policy, Request(host, port), subject, self._overrides,
                          datetime.now(UTC))
        if not decision.allowed or decision.host is None:
            return False
        return self._never_decrypt(snap, decision.host) or \
            not self._needs_inspection(snap, decision.host, subject)

    def _never_decrypt(self, snap: _Snapshot, host: str) -> bool:
        if any(is_subdomain_or_same(host, s) for s in snap.sensitive_hosts):
            return True
        categories = snap.policy.domains.categories(host)
        return any(snap.policy.categories[c].sensitive for c in categories)

    def _needs_inspection(self, snap: _Snapshot, host: str, subject: Subject) -> bool:
        """Must this allowed connection be decrypted? Always for a role with `inspect: all`
        (the never-decrypt hosts were passed through before this is asked); for the others,
        whose verdict can change per request (role, time, exceptions): any categorised host,
        page-rewriting proxies, which can show any site, and the search engines and YouTube
        when the role's safe search or Restricted Mode must be forced."""
        role = snap.policy.inspection.for_role(subject.role)
        if role.inspect is InspectMode.ALL:
            return True
        if (role.safe_search or role.youtube is not YouTubeMode.OFF) and is_search_host(host):
            return True
        return bool(snap.policy.domains.categories(host)) or \
            unwrap_rewriting_proxy(host) is not None

    def _check_websocket(self, flow: http.HTTPFlow) -> None:
        """Re-decide a live websocket; cut it when its verdict has become a block."""
        if not flow.live or flow.error:
            self._websockets.pop(flow.id, None)
            return
        try:
            decision, _at, _subject = self._decide_request(flow)
        except Exception:
            self.stats["engine_errors"] += 1
            logger.exception("re-deciding a websocket failed; closing it")
            decision = Decision(Verdict.BLOCK, Reason.ENGINE_ERROR)
        if decision.allowed:
            return
        flow.metadata[context.DECISION] = decision
        if flow.websocket is not None and flow.websocket.messages:
            flow.websocket.messages[-1].drop()  # type: ignore[no-untyped-call]
        self.stats["websockets_cut"] += 1
        self._websockets.pop(flow.id, None)
        _close_client(flow)

    def _block_response(self, flow: http.HTTPFlow, decision: Decision, subject: Subject,
                        at: datetime) -> http.Response:
        snap = self._state()
        try:
            return make_block_page(decision, subject, site=flow.request.pretty_host, at=at,
                                   policy=snap.policy, settings=snap.page)
        except Exception:
            logger.exception("rendering the block page failed; sending a plain one")
            return make_plain_block(decision)

    def _engine_error(self, flow: http.HTTPFlow, where: str) -> None:
        self.stats["engine_errors"] += 1
        logger.exception("deciding failed in %s; blocking (fail closed)", where)
        decision = Decision(Verdict.BLOCK, Reason.ENGINE_ERROR)
        flow.metadata[context.DECISION] = decision
        flow.response = make_plain_block(decision)




def _subject_of(ident: context.Identity, policy: Policy) -> Subject:
    role = ident.role if ident.role in policy.roles and ident.role else policy.default_role
    return Subject(role, ident.user, ident.groups)


def _name(raw: str) -> str | None:
    host = normalise_host(raw)
    return None if isinstance(host, HostError) else host.name


def _same_host(a: str, b: str) -> bool:
    na, nb = _name(a), _name(b)
    return na is not None and na == nb


def _transparent(client: Client) -> bool:
    return isinstance(client.proxy_mode, TransparentMode)


def _stamp(path: Path | None) -> FileStamp | None:
    return None if path is None else policy_stamp(path)


def _secret(path: str) -> bytes:
    if not path:  # said once the options are final, in running()
        return secrets.token_hex(32).encode()
    try:
        return load_or_create_secret(Path(path).expanduser())
    except (OSError, ValueError) as exc:
        raise options_error(f"schoolgate_secret_file: {exc}") from None


def _close_client(flow: http.HTTPFlow) -> None:
    """Close the client's connection now. mitmproxy 12 has no public call for this outside a
    hook (`flow.kill()` is only noticed by the HTTP layer), so use the connection handler."""
    with contextlib.suppress(exceptions.ControlException):
        flow.kill()  # type: ignore[no-untyped-call]
    master = getattr(ctx, "master", None)
    proxyserver = master.addons.get("proxyserver") if master is not None else None
    handler = getattr(proxyserver, "connections", {}).get(flow.client_conn.id)
    if handler is not None:
        handler.close_connection(flow.client_conn)
