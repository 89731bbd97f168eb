"""Who is behind a connection: proxy credentials checked against the school directory, else the
client's subnet, else the policy's default role. The answer goes into
`flow.metadata[context.IDENTITY]`; wrong credentials get a 407 (explicit proxy only).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Client
from mitmproxy.proxy import mode_specs

from proxy_addons import context
from proxy_addons.context import Identity, IdentitySource
from store.directory import Directory, DirectoryUnavailable, make_directory
from store.identity_config import (
    IdentityConfig,
    IdentityConfigError,
    LdapSettings,
    load_identity_config,
)

log = logging.getLogger(__name__)

DEFAULT = Identity(role=None, source=IdentitySource.DEFAULT)
AUTH_HEADER = "Proxy-Authorization"
_Key = tuple[str, bytes]  # (username, HMAC of the password under a per-process secret)


def parse_basic(header: str) -> tuple[str, str] | None:
    """(username, password) from `Basic base64(user:pass)`, or None if it is not that."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are both ValueErrors
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon and username else None


def is_explicit(flow: http.HTTPFlow) -> bool:
    """Only a client that knows it talks to a proxy can answer a 407."""
    mode = flow.client_conn.proxy_mode
    return isinstance(mode, mode_specs.RegularMode | mode_specs.UpstreamMode)


def make_challenge() -> http.Response:
    return http.Response.make(
        407, b"Sign in with your school account to use the internet.\n",
        {"Proxy-Authenticate": 'Basic realm="schoolgate"', "Cache-Control": "no-store",
         "Content-Type": "text/plain; charset=utf-8"})


class TtlCache:
    """Answers of the directory: an Identity, or None for refused credentials, until `expires`.
    Expired sign-ins stay readable through `stale` for when the directory is down."""

    def __init__(self, limit: int = 10_000) -> None:
        self._entries: OrderedDict[_Key, tuple[float, Identity | None]] = OrderedDict()
        self._limit = limit

    def get(self, key: _Key, now: float) -> tuple[bool, Identity | None]:
        entry = self._entries.get(key)
        return (True, entry[1]) if entry is not None and now < entry[0] else (False, None)

    def stale(self, key: _Key) -> Identity | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None else None

    def put(self, key: _Key, identity: Identity | None, expires: float) -> None:
        self._entries[key] = (expires, identity)
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)


@dataclass(frozen=True)
class Setup:
    """One configuration and what it built; replaced whole when the option changes."""

    config: IdentityConfig = field(default_factory=IdentityConfig)
    directory: Directory | None = None
    source: IdentitySource = IdentitySource.DEFAULT
    cache: TtlCache = field(default_factory=TtlCache)


def load_setup(path: str) -> Setup:
    """Read the identity configuration at `path` ("" = nobody authenticates)."""
    if not path:
        return Setup()
    config = load_identity_config(Path(path))
    directory = make_directory(config.directory)
    if directory is None:
        return Setup(config)
    source = (IdentitySource.DIRECTORY if isinstance(config.directory, LdapSettings)
              else IdentitySource.LOCAL)
    return Setup(config, directory, source)


class Identify:
    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        self.directory_seconds = 0.0  # time spent waiting for the directory (for metrics)
        self.clock: Callable[[], float] = time.monotonic
        self._setup = Setup()
        self._secret = secrets.token_bytes(32)
        self._tunnels: dict[str, Identity] = {}  # client connection id -> who opened the tunnel
        self._pending: dict[_Key, asyncio.Future[Identity | None]] = {}
        self._directory_down = False

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_identity", str, "",
            "Path of the identity configuration (identity.yaml): the directory to check proxy "
            "credentials against, groups and subnets mapped to roles, cache times. Empty: "
            "nobody signs in and everyone gets the policy's default role.")

    def configure(self, updated: set[str]) -> None:
        if "schoolgate_identity" not in updated:
            return
        try:
            setup = load_setup(ctx.options.schoolgate_identity)
        except IdentityConfigError as error:
            raise exceptions.OptionsError(str(error)) from None  # type: ignore[no-untyped-call]
        old, self._setup = self._setup, setup
        if old.directory is not None:
            old.directory.close()

    def done(self) -> None:
        if self._setup.directory is not None:
            self._setup.directory.close()

    def client_disconnected(self, client: Client) -> None:
        self._tunnels.pop(client.id, None)

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        await self._handle(flow, tunnel=True)

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        await self._handle(flow, tunnel=False)

    async def _handle(self, flow: http.HTTPFlow, *, tunnel: bool) -> None:
        try:
            if flow.response or flow.error or not flow.live:
                return
            # Requests inside a tunnel belong to whoever opened it (checked once, at CONNECT).
            known = None if tunnel else self._tunnels.get(flow.client_conn.id)
            identity = known or await self._identify(flow)
            if identity is None:
                self.stats["challenged"] += 1
                flow.response = make_challenge()
                return
            flow.metadata[context.IDENTITY] = identity
            if tunnel:
                self._tunnels[flow.client_conn.id] = identity
        except Exception:  # fail closed: an unidentified flow gets the most restrictive role
            self.stats["hook_errors"] += 1
            log.warning("identifying a client failed; it gets the default role", exc_info=True)
            flow.metadata[context.IDENTITY] = DEFAULT
            if tunnel:
                self._tunnels[flow.client_conn.id] = DEFAULT
        finally:
            flow.request.headers.pop(AUTH_HEADER, None)  # never forwarded upstream

    async def _identify(self, flow: http.HTTPFlow) -> Identity | None:
        """The identity, or None when the client must be asked for credentials."""
        setup = self._setup
        explicit = is_explicit(flow)
        header = flow.request.headers.get(AUTH_HEADER)
        if explicit and header is not None and setup.directory is not None:
            credentials = parse_basic(header)
            return await self._check(setup, *credentials) if credentials else None
        peer = flow.client_conn.peername
        subnet = setup.config.subnet_for(str(peer[0])) if peer else None
        if subnet and (subnet.without_auth or not explicit or not setup.config.auth_required):
            return Identity(role=subnet.role, source=IdentitySource.SUBNET)
        if explicit and setup.config.auth_required and setup.directory is not None:
            return None
        return DEFAULT

    async def _check(self, setup: Setup, username: str, password: str) -> Identity | None:
        key = (username, hmac.digest(self._secret, password.encode(), hashlib.sha256))
        hit, identity = setup.cache.get(key, self.clock())
        if hit:
            self.stats["cache_hits"] += 1
            return identity
        # Browsers open several connections at once with the same credentials: ask once.
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._ask(setup, key, username, password))
            if not pending.done():
                self._pending[key] = pending
                pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _ask(self, setup: Setup, key: _Key, username: str, password: str) -> Identity | None:
        assert setup.directory is not None
        ttl = setup.config.cache
        self.stats["directory_lookups"] += 1
        started = time.monotonic()
        try:
            user = await setup.directory.authenticate(username, password)
        except DirectoryUnavailable as error:
            self.stats["directory_errors"] += 1
            if not self._directory_down:
                log.warning("the directory is unavailable; signed-in users keep their role, "
                            "new sign-ins get the default role: %s", error)
            self._directory_down = True
            # Held briefly, so that a hung directory does not delay every plain-HTTP request.
            fallback = setup.cache.stale(key) or DEFAULT
            setup.cache.put(key, fallback, self.clock() + ttl.negative_seconds)
            return fallback
        finally:
            self.directory_seconds += time.monotonic() - started
        if self._directory_down:
            log.info("the directory is answering again")
            self._directory_down = False
        if user is None:
            self.stats["rejected"] += 1
            setup.cache.put(key, None, self.clock() + ttl.negative_seconds)
            return None
        self.stats["authenticated"] += 1
        identity = Identity(role=setup.config.role_for_groups(user.groups), source=setup.source,
                            user=user.username, groups=user.groups)
        setup.cache.put(key, identity, self.clock() + ttl.positive_seconds)
        return identity
