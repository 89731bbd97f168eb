"""Who is behind a connection: proxy credentials checked against the school directory, else the
client's subnet, else the policy's default role. The answer goes into
`flow.metadata[context.IDENTITY]` with the canonical user name (policy/names.py); wrong
credentials get a 407 (explicit proxy only).

Password guessing is throttled (store/throttle.py, shared by every worker and replica through the
database): per user name and per client address, with back-off, and the directory is never asked
while a name is backed off, so a pupil can neither guess a teacher's password nor lock her out of
Active Directory. Only the unknown-credential path touches the database; known credentials are
answered from the cache. Credentials the directory could not check (it is down, or this addon
failed) get a 407, never an anonymous default role; only the exact user and password verified
before keep their identity while the directory is down.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Address, Client
from mitmproxy.proxy import mode_specs
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from schoolgate.policy.names import canonical_user
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.context import Identity, IdentitySource
from schoolgate.proxy_addons.errors import options_error
from schoolgate.proxy_addons.flows import has_header, header_value
from schoolgate.proxy_addons.stats import GatewayStats
from schoolgate.store.db import make_engine
from schoolgate.store.directory import Directory, DirectoryUnavailable, make_directory
from schoolgate.store.identity_config import (
    IdentityConfig,
    IdentityConfigError,
    LdapSettings,
    SubnetRole,
    load_identity_config,
)
from schoolgate.store.throttle import ADDRESS, USER, Attempt, Limit, Throttle

log = logging.getLogger(__name__)

DEFAULT = Identity(role=None, source=IdentitySource.DEFAULT)
AUTH_HEADER = "Proxy-Authorization"
AUTH_KEY = AUTH_HEADER.lower().encode()
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


def make_challenge(retry_after: int = 0) -> http.Response:
    """The 407 that asks for a sign-in; with `retry_after`, it also says to wait."""
    headers = {
        "Proxy-Authenticate": 'Basic realm="schoolgate"',
        "Cache-Control": "no-store",
        "Content-Type": "text/plain; charset=utf-8",
    }
    text = "Sign in with your school account to use the internet.\n"
    if retry_after:
        minutes = max(1, round(retry_after / 60))
        headers["Retry-After"] = str(retry_after)
        text = (
            f"Too many wrong passwords. Wait {minutes} minute{'s' if minutes != 1 else ''}, "
            "then sign in with your school account again.\n"
        )
    return http.Response.make(407, text.encode(), headers)


@dataclass(frozen=True, slots=True)
class Challenge:
    """Ask for credentials (again), after `retry_after` seconds if that is not 0."""

    retry_after: int = 0


ASK = Challenge()


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


SUBNET_MEMORY = 4096  # client addresses whose subnet is remembered per configuration
_UNKNOWN = object()


@dataclass(frozen=True)
class Setup:
    """One configuration and what it built; replaced whole when the option changes."""

    config: IdentityConfig = field(default_factory=IdentityConfig)
    directory: Directory | None = None
    source: IdentitySource = IdentitySource.DEFAULT
    cache: TtlCache = field(default_factory=TtlCache)
    # client address -> its subnet under this configuration (the front door and Identify both
    # ask on every new connection); gone with the configuration, bounded.
    subnets: dict[str, SubnetRole | None] = field(default_factory=dict)

    def subnet_for(self, address: str) -> SubnetRole | None:
        found = self.subnets.get(address, _UNKNOWN)
        if found is _UNKNOWN:
            if len(self.subnets) >= SUBNET_MEMORY:
                self.subnets.clear()
            found = self.subnets[address] = self.config.subnet_for(address)
        return found  # type: ignore[return-value]


def make_throttle(
    engine: Engine | None, *, per_user: int, per_address: int, window_seconds: int
) -> Throttle:
    return Throttle(
        engine,
        scope="proxy",
        limits={USER: Limit(per_user, window_seconds), ADDRESS: Limit(per_address, window_seconds)},
    )


def load_setup(path: str) -> Setup:
    """Read the identity configuration at `path` ("" = nobody authenticates)."""
    if not path:
        return Setup()
    config = load_identity_config(Path(path))
    directory = make_directory(config.directory)
    if directory is None:
        return Setup(config)
    source = (
        IdentitySource.DIRECTORY
        if isinstance(config.directory, LdapSettings)
        else IdentitySource.LOCAL
    )
    return Setup(config, directory, source)


class Identify:
    def __init__(self, stats: GatewayStats | None = None) -> None:
        self.stats = stats or GatewayStats()
        self.clock: Callable[[], float] = time.monotonic
        self._setup = Setup()
        self._secret = secrets.token_bytes(32)
        self._tunnels: dict[str, Identity] = {}  # client connection id -> who opened the tunnel
        self._pending: dict[_Key, asyncio.Future[Identity | Challenge]] = {}
        self._directory_down = False
        self._down_until = 0.0  # while the directory is down, do not wait on it for each sign-in
        self._engine: Engine | None = None
        self.throttle = make_throttle(None, per_user=3, per_address=30, window_seconds=600)

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_identity",
            str,
            "",
            "Path of the identity configuration (identity.yaml): the directory to check proxy "
            "credentials against, groups and subnets mapped to roles, cache times. Empty: "
            "nobody signs in and everyone gets the policy's default role.",
        )
        loader.add_option(*context.DATABASE_URL_OPTION)
        loader.add_option(
            "schoolgate_signin_failures_per_user",
            int,
            3,
            "Wrong proxy passwords allowed for one user name per window before the directory "
            "is no longer asked for that name (keep it well below Active Directory's lock-out "
            "threshold, so a pupil guessing cannot lock a teacher out).",
        )
        loader.add_option(
            "schoolgate_signin_failures_per_address",
            int,
            30,
            "Wrong proxy passwords allowed from one client address per window.",
        )
        loader.add_option(
            "schoolgate_signin_window_seconds",
            int,
            600,
            "The sign-in throttle's window; each window in a row that reaches a limit doubles "
            "the wait (up to an hour).",
        )

    def configure(self, updated: set[str]) -> None:
        throttle_options = {
            "schoolgate_database_url",
            "schoolgate_signin_failures_per_user",
            "schoolgate_signin_failures_per_address",
            "schoolgate_signin_window_seconds",
        }
        if updated & throttle_options:
            self._configure_throttle()
        if "schoolgate_identity" not in updated:
            return
        try:
            setup = load_setup(ctx.options.schoolgate_identity)
        except IdentityConfigError as error:
            raise options_error(str(error)) from None
        old, self._setup = self._setup, setup
        if old.directory is not None:
            old.directory.close()

    def _configure_throttle(self) -> None:
        opts = ctx.options
        limits = (
            opts.schoolgate_signin_failures_per_user,
            opts.schoolgate_signin_failures_per_address,
            opts.schoolgate_signin_window_seconds,
        )
        if min(limits) < 1:
            raise options_error(
                "schoolgate_signin_failures_per_user, _per_address and _window_seconds must be "
                "at least 1"
            )
        engine = None
        if opts.schoolgate_database_url:
            try:
                engine = make_engine(opts.schoolgate_database_url)
            except (ValueError, SQLAlchemyError, ImportError) as error:
                raise options_error(f"schoolgate_database_url: {error}") from None
        old_engine, self._engine = self._engine, engine
        self.throttle.close()
        self.throttle = make_throttle(
            engine, per_user=limits[0], per_address=limits[1], window_seconds=limits[2]
        )
        if old_engine is not None:
            old_engine.dispose()

    def done(self) -> None:
        if self._setup.directory is not None:
            self._setup.directory.close()
        self.throttle.close()
        if self._engine is not None:
            self._engine.dispose()

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
            if isinstance(identity, Challenge):
                self.stats.challenged += 1
                flow.response = make_challenge(identity.retry_after)
                return
            flow.metadata[context.IDENTITY] = identity
            if tunnel:
                self._tunnels[flow.client_conn.id] = identity
        except Exception:
            # Fail closed: credentials nobody could check are asked for again (never the default
            # role, which would escape the claimed user's sanction); without credentials, the
            # most restrictive role.
            self.stats.identify_errors += 1
            if is_explicit(flow) and has_header(flow.request.headers, AUTH_KEY):
                log.warning(
                    "identifying a client failed; asking it to sign in again", exc_info=True
                )
                self.stats.challenged += 1
                flow.response = make_challenge()
                return
            log.warning("identifying a client failed; it gets the default role", exc_info=True)
            flow.metadata[context.IDENTITY] = DEFAULT
            if tunnel:
                self._tunnels[flow.client_conn.id] = DEFAULT
        finally:
            if has_header(flow.request.headers, AUTH_KEY):
                del flow.request.headers[AUTH_HEADER]  # never forwarded upstream

    async def _identify(self, flow: http.HTTPFlow) -> Identity | Challenge:
        """The identity, or a Challenge when the client must be asked for credentials."""
        setup = self._setup
        explicit = is_explicit(flow)
        header = header_value(flow.request.headers, AUTH_KEY)
        peer = flow.client_conn.peername
        if explicit and header is not None and setup.directory is not None:
            credentials = _credentials(header)
            if credentials is None:
                return ASK
            address = str(peer[0]) if peer else "unknown"
            return await self._check(setup, credentials[0], credentials[1], address)
        return _without_credentials(setup, peer, explicit=explicit)

    def identify_now(self, header: str | None, peer: Address | None) -> Identity | Challenge | None:
        """What an explicit proxy client's CONNECT would be identified as, when that needs no
        directory and changes nothing (no throttle, no stats): None when it would have to ask
        the directory (credentials not in the cache). For the front door's first look."""
        setup = self._setup
        if header is not None and setup.directory is not None:
            credentials = _credentials(header)
            if credentials is None:
                return ASK
            hit, identity = setup.cache.get(self._key(*credentials), self.clock())
            return (identity or ASK) if hit else None
        return _without_credentials(setup, peer, explicit=True)

    def _key(self, username: str, password: str) -> _Key:
        return (username, hmac.digest(self._secret, password.encode(), hashlib.sha256))

    async def _check(
        self, setup: Setup, username: str, password: str, address: str
    ) -> Identity | Challenge:
        key = self._key(username, password)
        hit, identity = setup.cache.get(key, self.clock())
        if hit:
            self.stats.cache_hits += 1
            return identity or ASK
        # Browsers open several connections at once with the same credentials: ask once.
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._ask(setup, key, username, password, address))
            if not pending.done():
                self._pending[key] = pending
                pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    def _unverified(self, setup: Setup, key: _Key, why: str) -> Identity | Challenge:
        """Credentials that could not be checked: only the exact pair verified before keeps
        its identity; anything else is asked again (fail closed)."""
        stale = setup.cache.stale(key)
        if stale is not None:
            self.stats.stale_identities += 1
            return stale
        self.stats.unverified += 1
        log.info("a sign-in for %r could not be checked (%s): asked to sign in again", key[0], why)
        return ASK

    async def _ask(
        self, setup: Setup, key: _Key, username: str, password: str, address: str
    ) -> Identity | Challenge:
        assert setup.directory is not None
        ttl = setup.config.cache
        if self.clock() < self._down_until:
            return self._unverified(setup, key, "the directory is down")
        attempt: Attempt = await asyncio.to_thread(
            self.throttle.reserve, user=username, address=address
        )
        if not attempt.allowed:
            self.stats.throttled += 1
            stale = setup.cache.stale(key)
            if stale is not None:  # verified before: no need to ask the directory
                return stale
            return Challenge(attempt.retry_after)
        self.stats.directory_lookups += 1
        started = time.monotonic()
        try:
            user = await setup.directory.authenticate(username, password)
        except DirectoryUnavailable as error:
            self.stats.directory_errors += 1
            if not self._directory_down:
                log.warning(
                    "the directory is unavailable; people already signed in keep their "
                    "role, other sign-ins are asked again until it answers: %s",
                    error,
                )
            self._directory_down = True
            # For a short while, do not wait on a hung directory for every new sign-in.
            self._down_until = self.clock() + ttl.negative_seconds
            return self._unverified(setup, key, "the directory is down")
        finally:
            self.stats.directory_seconds += time.monotonic() - started
        if self._directory_down:
            log.info("the directory is answering again")
            self._directory_down = False
        if user is None:
            self.stats.rejected += 1
            setup.cache.put(key, None, self.clock() + ttl.negative_seconds)
            return ASK
        await asyncio.to_thread(self.throttle.succeeded, attempt)
        self.stats.authenticated += 1
        try:
            name = canonical_user(user.username)
        except ValueError:
            name = username
        identity = Identity(
            role=setup.config.role_for_groups(user.groups),
            source=setup.source,
            user=name,
            groups=user.groups,
            dn=user.dn or None,
        )
        setup.cache.put(key, identity, self.clock() + ttl.positive_seconds)
        return identity


def _credentials(header: str) -> tuple[str, str] | None:
    """(canonical user name, password) of a Basic header; None if it holds no user name."""
    credentials = parse_basic(header)
    if credentials is None:
        return None
    try:
        return canonical_user(credentials[0]), credentials[1]
    except ValueError:
        return None  # not a user name at all: nobody to ask the directory about


def _without_credentials(
    setup: Setup, peer: Address | None, *, explicit: bool
) -> Identity | Challenge:
    subnet = setup.subnet_for(str(peer[0])) if peer else None
    if subnet and (subnet.without_auth or not explicit or not setup.config.auth_required):
        return Identity(role=subnet.role, source=IdentitySource.SUBNET)
    if explicit and setup.config.auth_required and setup.directory is not None:
        return ASK
    return DEFAULT
