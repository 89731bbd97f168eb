"""The policy in force, for every addon that decides: the policy and overrides options, loaded and
validated, kept as whole snapshots that are swapped (never edited), refreshed in the background,
with the policy's version and the last reload's result. First in the addon list; the addons that
read it get it by constructor (proxy_addons/main.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from mitmproxy import ctx
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Client
from mitmproxy.proxy import mode_specs

from schoolgate.policy.errors import PolicyError
from schoolgate.policy.model import NO_OVERRIDES, Overrides, Policy
from schoolgate.policy.trust import Attribution, Trust
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.background import Background
from schoolgate.proxy_addons.blockpage import BlockPageSettings
from schoolgate.proxy_addons.errors import options_error
from schoolgate.proxy_addons.stats import GatewayStats
from schoolgate.store.list_status import policy_stamp
from schoolgate.store.overrides_db import DatabaseOverridesSource
from schoolgate.store.policy_files import load_policy
from schoolgate.store.snapshots import FileOverridesSource, LastSnapshotSource, OverridesSource
from schoolgate.store.tokens import load_or_create_secret
from schoolgate.store.trust_files import load_trust, trust_stamp, trust_version

logger = logging.getLogger(__name__)

# (inode, size, mtime_ns) of the policy file and each list it names: has a file been replaced?
FileStamp = tuple[tuple[int, int, int] | None, ...]
# Modes whose client socket's local address is the gateway listener the client connected to. In
# transparent mode mitmproxy reports the client's original destination there, and in the
# WireGuard, local and TUN modes a tunnel's: something a device chooses, never a listener.
_LISTENER_MODES = (
    mode_specs.RegularMode,
    mode_specs.UpstreamMode,
    mode_specs.Socks5Mode,
    mode_specs.ReverseMode,
)


class ReloadResult(StrEnum):
    OK = "ok"  # the policy file was (re)loaded and is in force
    REFUSED = "refused"  # a changed policy file was refused; the previous one stays


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """Everything a decision reads besides the overrides; replaced whole, never edited."""

    policy: Policy
    path: Path | None  # None: the seed policy shipped with schoolgate
    stamp: FileStamp | None
    version: str  # 12 hex digits of the file's SHA-256, or "seed"
    page: BlockPageSettings  # how block pages are made (admin link, signing secret)
    refresh_seconds: float
    # With a trust file (docs/trust.md): every school's policy; `policy` is then the trust's
    # base, `path` the trust file, and each request gets its school's policy (`attribute`).
    trust: Trust | None = None

    def school_for(self, address: str | None) -> str | None:
        """The id of the school a client at `address` belongs to by its subnet alone; None
        without a trust file, or for a client in no school's subnets. Only for what has no
        connection or identity to attribute (mitmproxy's refusals): else `attribute`."""
        if self.trust is None:
            return None
        school = self.trust.file.school_for(address or "")
        return None if school is None else school.id

    def attribute(self, client: Client, identity: context.Identity | None) -> Attribution | None:
        """With a trust, the school of a request from `client` by `identity` (the listener it
        connected to, its address, the person's directory group or OU: TrustFile.attribute);
        None without a trust file."""
        if self.trust is None:
            return None
        listener = client.sockname if isinstance(client.proxy_mode, _LISTENER_MODES) else None
        peer = client.peername
        address = str(peer[0]) if peer else None
        groups, dn = (identity.groups, identity.dn) if identity is not None else (frozenset(), None)
        return self.trust.file.attribute(listener=listener, address=address, groups=groups, dn=dn)


@dataclass(frozen=True, slots=True)
class LastReload:
    result: ReloadResult
    at: float  # Unix time


class PolicySource:
    """Owns the policy and overrides options. `snapshot` and `overrides` are read on the request
    path (two attribute reads); `refresh` runs every `schoolgate_refresh_ms` in a task.

    `snapshot` exists from the first `configure` on (reading it before raises AttributeError:
    a plain attribute, not a property, because mitmproxy reads every attribute of an addon
    when it is added)."""

    snapshot: PolicySnapshot

    def __init__(self, stats: GatewayStats | None = None) -> None:
        self.stats = stats or GatewayStats()
        self.overrides: Overrides = NO_OVERRIDES
        self._source: OverridesSource | None = None
        self._task = Background(self._refresh_forever)
        self._listeners: list[Callable[[], None]] = []
        self.last_reload = LastReload(ReloadResult.OK, time.time())
        self._by_school: tuple[Overrides, dict[str | None, Overrides]] = (NO_OVERRIDES, {})

    def overrides_for(self, school: str | None) -> Overrides:
        """The overrides in force for a client of `school` (Overrides.for_school), worked out
        once per school each time the overrides are read again."""
        current, found = self._by_school
        if current is not self.overrides:
            current, found = self.overrides, {}
            self._by_school = (current, found)
        mine = found.get(school)
        if mine is None:
            mine = found[school] = current.for_school(school)
        return mine

    @property
    def overrides_state(self) -> str:
        """Where the overrides in force come from, when that is not simply the database."""
        return str(getattr(self._source, "state", ""))

    def after_refresh(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every refresh (Enforce re-decides its live websockets)."""
        self._listeners.append(listener)

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_policy",
            str,
            "",
            "Policy file (YAML). Empty: the seed policy shipped with schoolgate.",
        )
        loader.add_option(
            "schoolgate_overrides",
            str,
            "",
            "Overrides snapshot file (JSON: exceptions, sanctions, supervised "
            "sessions, local lists), replaced atomically by the admin. Empty: "
            "none. With a database: where the last overrides read from it are "
            "kept, for a start while it is down.",
        )
        loader.add_option(
            "schoolgate_trust",
            str,
            "",
            "Trust file (YAML, docs/trust.md): many schools on one gateway, each client "
            "getting its school's policy by its address. Replaces schoolgate_policy. Empty: "
            "one school.",
        )
        loader.add_option(*context.DATABASE_URL_OPTION)
        loader.add_option(
            "schoolgate_refresh_ms",
            int,
            2000,
            "How often, in milliseconds, the overrides and the policy file are "
            "re-read (a change reaches the gateway within this time).",
        )
        loader.add_option(
            "schoolgate_admin_url",
            str,
            "http://127.0.0.1:8081",
            "Base URL of the admin service; the block page's 'Ask for access' "
            "link points at its /requests/new form.",
        )
        loader.add_option(
            "schoolgate_secret_file",
            str,
            "",
            "File holding the secret that signs 'Ask for access' links (made if "
            "missing). Empty: a random secret for this run only.",
        )

    def configure(self, updated: set[str]) -> None:
        old: PolicySnapshot | None = getattr(self, "snapshot", None)
        if old is not None and not any(o.startswith("schoolgate_") for o in updated):
            return
        opts = ctx.options
        trust = old.trust if old is not None else None
        path: Path | None
        if old is None or updated & {"schoolgate_policy", "schoolgate_trust"}:
            if opts.schoolgate_trust:
                if opts.schoolgate_policy:
                    raise options_error(
                        "set schoolgate_trust or schoolgate_policy, not both: a trust's "
                        "policies are named in its trust file"
                    )
                path = Path(opts.schoolgate_trust).expanduser()
                try:
                    trust = load_trust(path)
                except PolicyError as exc:
                    raise options_error(f"schoolgate_trust: {exc}") from None
                policy = trust.base
            else:
                path = Path(opts.schoolgate_policy).expanduser() if opts.schoolgate_policy else None
                try:
                    policy = load_policy(path)
                except PolicyError as exc:
                    raise options_error(f"schoolgate_policy: {exc}") from None
                trust = None
            stamp, version = _stamp(path, trust), _version(path, trust)
            self.last_reload = LastReload(ReloadResult.OK, time.time())
        else:
            policy, path, stamp, version = old.policy, old.path, old.stamp, old.version
        if opts.schoolgate_refresh_ms < 100:
            raise options_error("schoolgate_refresh_ms must be at least 100 (milliseconds)")
        admin_url = opts.schoolgate_admin_url
        if not admin_url.startswith(("http://", "https://")):
            raise options_error(
                f"schoolgate_admin_url: {admin_url!r} is not an http:// or https:// URL"
            )
        page = old.page if old is not None and "schoolgate_secret_file" not in updated else None
        if page is None or page.admin_url != admin_url:
            page = BlockPageSettings(admin_url, _secret(opts.schoolgate_secret_file))
        if old is None or updated & {"schoolgate_overrides", "schoolgate_database_url"}:
            self._source = _overrides_source(
                opts.schoolgate_database_url, opts.schoolgate_overrides
            )
            self.overrides = self._source.load_now() if self._source else NO_OVERRIDES
        self.snapshot = PolicySnapshot(
            policy, path, stamp, version, page, opts.schoolgate_refresh_ms / 1000, trust
        )

    # --- background refresh ------------------------------------------------------------------

    def running(self) -> None:
        # Here, not in configure: the first configure sees the defaults, before --set arrives.
        if not ctx.options.schoolgate_secret_file:
            logger.warning(
                "schoolgate_secret_file is not set: 'Ask for access' links are "
                "signed with a secret for this run only, and the admin cannot "
                "check them"
            )
        self._task.start()

    async def done(self) -> None:
        await self._task.stop()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.snapshot.refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                self.stats.policy_refresh_errors += 1
                logger.warning("refreshing the policy and overrides failed", exc_info=True)

    async def refresh(self) -> None:
        """Re-read the overrides and (if its file changed) the policy, then tell the listeners."""
        if self._source is not None:
            self.overrides = await self._source.load()
        snap = self.snapshot
        if snap.path is not None:
            stamp = await asyncio.to_thread(_stamp, snap.path, snap.trust)
            if stamp != snap.stamp:
                await self._reload(snap.path, stamp)
        for listener in self._listeners:
            listener()

    async def _reload(self, path: Path, stamp: FileStamp | None) -> None:
        trust: Trust | None = None
        try:
            if self.snapshot.trust is not None:
                trust = await asyncio.to_thread(load_trust, path)
                policy = trust.base
            else:
                policy = await asyncio.to_thread(load_policy, path)
        except PolicyError as exc:
            self.stats.policy_reloads_refused += 1
            self.last_reload = LastReload(ReloadResult.REFUSED, time.time())
            logger.warning(
                "the changed policy file was refused; the running policy stays in force:\n%s", exc
            )
            # The stamp is kept, so the same broken file is not read (and refused) again.
            self.snapshot = replace(self.snapshot, stamp=stamp)
            return
        version = await asyncio.to_thread(_version, path, trust)
        self.stats.policy_reloads += 1
        self.last_reload = LastReload(ReloadResult.OK, time.time())
        logger.warning("policy reloaded from %s", path)
        # Swap the whole snapshot (options may have changed it while we were reading).
        self.snapshot = replace(
            self.snapshot, policy=policy, stamp=stamp, version=version, trust=trust
        )


def policy_version(path: Path | None) -> str:
    """A short, stable label for the policy in force: the first 12 hex digits of the SHA-256 of
    the file, or 'seed' when the shipped seed policy is used."""
    if path is None:
        return "seed"
    try:
        data = path.read_bytes()
    except OSError:
        return "unreadable"
    return hashlib.sha256(data).hexdigest()[:12]


def _overrides_source(database_url: str, snapshot_file: str) -> OverridesSource | None:
    if database_url:
        # The database replaces the snapshot file (and the admin writes there).
        try:
            db_source = DatabaseOverridesSource.from_url(database_url)
        except Exception as exc:
            raise options_error(f"schoolgate_database_url: {exc}") from None
        if snapshot_file:
            return LastSnapshotSource(db_source, Path(snapshot_file))
        return db_source
    if snapshot_file:
        return FileOverridesSource(Path(snapshot_file).expanduser())
    return None


def _stamp(path: Path | None, trust: Trust | None) -> FileStamp | None:
    if path is None:
        return None
    return trust_stamp(path) if trust is not None else policy_stamp(path)


def _version(path: Path | None, trust: Trust | None) -> str:
    return trust_version(path) if trust is not None and path is not None else policy_version(path)


def _secret(path: str) -> bytes:
    if not path:  # said once the options are final, in running()
        return secrets.token_hex(32).encode()
    try:
        return load_or_create_secret(Path(path).expanduser())
    except (OSError, ValueError) as exc:
        raise options_error(f"schoolgate_secret_file: {exc}") from None
