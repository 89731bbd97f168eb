"""Shadow mode: decide each request a second time with a proposed policy, for chosen roles, and
count where it differs from the live verdict. Only the live verdict is enforced: this addon
never answers, blocks or changes a flow, and any error in it is counted and swallowed.

The proposed policy is `shadow.yaml` beside the live policy file, and the roles it runs for are
`shadow-roles.txt` (one a line; empty or missing: every role); the admin writes both. A
background task re-reads them when they change and writes the counted differences to the
database every few seconds, so the request path does one extra `decide()` and a counter.
Runs right after Enforce in proxy_addons/main.py (it reads Enforce's decision from
flow.metadata).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader
from sqlalchemy import Engine, insert

from schoolgate.policy.decide import decide
from schoolgate.policy.diff import open_windows
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.model import Decision, Policy, Reason, Request, Subject, Verdict
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.background import Background
from schoolgate.proxy_addons.flows import pretty_host
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.proxy_addons.stats import GatewayStats
from schoolgate.store.db import make_engine
from schoolgate.store.models import ShadowDifferenceRow
from schoolgate.store.policy_files import load_policy
from schoolgate.store.policy_versions import SHADOW_POLICY, SHADOW_ROLES, content_hash

logger = logging.getLogger(__name__)

# Only verdicts the policy text made are compared: overrides, circumvention and address checks
# come before the rules and are the same under either policy.
COMPARED = frozenset(
    {Reason.RULE_ALLOW, Reason.RULE_BLOCK, Reason.DEFAULT_ALLOW, Reason.DEFAULT_BLOCK}
)
EVERY_SECONDS = 2.0
# shadow sha256, role, host, live verdict, shadow verdict, shadow rule
Key = tuple[str, str, str, str, str, str]
MAX_REMEMBERED = 50_000  # shadow verdicts kept per (role, host, port, open windows)


@dataclass(frozen=True, slots=True)
class Trial:
    """The policy in shadow, replaced whole on reload (so a request never mixes two). Without
    overrides a verdict depends only on (role, host, port, open windows): see
    policy.diff.open_windows; `remembered` keeps those, so most requests cost a look-up."""

    policy: Policy
    sha256: str
    roles: frozenset[str]  # empty: every role
    remembered: dict[tuple[str, str, int | None, frozenset[str]], tuple[Verdict, str]] = field(
        default_factory=dict
    )


class Shadow:
    def __init__(self, source: PolicySource, stats: GatewayStats | None = None) -> None:
        self._source = source  # where the live policy file is
        self.trial: Trial | None = None
        self._stamp: tuple[object, ...] | None = None
        self._pending: Counter[Key] = Counter()
        self._engine: Engine | None = None
        self._task = Background(self._forever)
        self.stats = stats or GatewayStats()

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_shadow_dir",
            str,
            "",
            "Folder holding shadow.yaml (a proposed policy decided alongside the "
            "live one, never enforced) and shadow-roles.txt. Empty: the folder "
            "of the policy file.",
        )

    def running(self) -> None:
        self._task.start()

    async def done(self) -> None:
        await self._task.stop()
        await asyncio.to_thread(self.flush)

    # --- the request path ----------------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """HTTPS and other tunnels: compared once per CONNECT (as events count passed-through
        traffic per connection)."""
        self._compare(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Plain HTTP: each request (requests inside a tunnel were compared at its CONNECT)."""
        if flow.request.scheme == "http":
            self._compare(flow)

    def _compare(self, flow: http.HTTPFlow) -> None:
        trial = self.trial
        if trial is None:
            return
        policy = trial.policy
        try:
            live = flow.metadata.get(context.DECISION)
            if not isinstance(live, Decision) or live.reason not in COMPARED:
                return
            ident = flow.metadata.get(context.IDENTITY)
            role = getattr(ident, "role", None) or policy.default_role
            if trial.roles and role not in trial.roles:
                return
            host = live.host or pretty_host(flow.request)
            port = flow.request.port
            now = datetime.now(UTC)
            memo = (role, host, port, open_windows(policy, now))
            found = trial.remembered.get(memo)
            if found is None:
                if len(trial.remembered) >= MAX_REMEMBERED:
                    trial.remembered.clear()
                shadow = decide(policy, Request(host, port), Subject(role), None, now)
                found = trial.remembered[memo] = (shadow.verdict, shadow.rule or "")
            self.stats.shadow_compared += 1
            if found[0] is not live.verdict:
                self._pending[
                    (trial.sha256, role, host, str(live.verdict), str(found[0]), found[1])
                ] += 1
        except Exception:  # shadow mode must never change what happens to a request
            self.stats.shadow_errors += 1
            logger.warning("shadow decision failed", exc_info=True)

    # --- background ----------------------------------------------------------------------------

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(EVERY_SECONDS)
            try:
                await asyncio.to_thread(self.reload)
                await asyncio.to_thread(self.flush)
            except Exception:
                self.stats.shadow_errors += 1
                logger.warning("shadow mode: reloading or writing failed", exc_info=True)

    def _folder(self) -> Path | None:
        if ctx.options.schoolgate_shadow_dir:
            return Path(ctx.options.schoolgate_shadow_dir).expanduser()
        live = self._source.snapshot.path
        return live.parent if live is not None else None

    def reload(self) -> None:
        """Load the shadow policy and roles when their files changed (none: shadow off)."""
        folder = self._folder()
        if folder is None:
            return
        files = (folder / SHADOW_POLICY, folder / SHADOW_ROLES)
        stamp = tuple(
            (s.st_ino, s.st_size, s.st_mtime_ns) if (s := _stat(f)) else None for f in files
        )
        if stamp == self._stamp:
            return
        self._stamp = stamp
        if stamp[0] is None:
            self.trial = None
            logger.warning("shadow mode is off")
            return
        try:
            policy = load_policy(files[0])
            text = files[0].read_bytes().decode("utf-8")
            roles = files[1].read_text(encoding="utf-8") if stamp[1] else ""
        except (PolicyError, OSError, UnicodeDecodeError) as error:
            self.trial = None
            logger.warning("shadow mode is off: the shadow policy was refused: %s", error)
            return
        wanted = frozenset(line.strip() for line in roles.splitlines() if line.strip())
        self.trial = Trial(policy, content_hash(text), wanted)
        logger.warning(
            "shadow mode: %s runs in shadow for %s",
            files[0],
            ", ".join(sorted(wanted)) or "every role",
        )

    def flush(self) -> None:
        """Write the counted differences (nothing is lost if writing fails: they wait)."""
        if not self._pending:
            return
        url = getattr(ctx.options, "schoolgate_database_url", "")
        if not url:
            return
        if self._engine is None:
            self._engine = make_engine(url)
        pending, self._pending = self._pending, Counter()
        now = datetime.now(UTC)
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(ShadowDifferenceRow),
                    [
                        {
                            "shadow_sha256": sha,
                            "at": now,
                            "role": role[:100],
                            "host": host[:300],
                            "live": live,
                            "shadow": shadow,
                            "rule": rule[:200],
                            "requests": count,
                        }
                        for (sha, role, host, live, shadow, rule), count in pending.items()
                    ],
                )
        except Exception:
            self._pending.update(pending)
            raise
        self.stats.shadow_written += sum(pending.values())


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None
