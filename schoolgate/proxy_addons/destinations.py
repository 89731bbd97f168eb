"""Guard what is behind the gateway: look each allowed destination up once, refuse it when any of
its addresses is internal (loopback, private, link-local, cloud metadata ...) and not on the
policy's internal allow list, and pin the connection to the address that was checked, so a
second DNS answer cannot differ (DNS rebinding). A name that cannot be looked up is refused.

Runs after Enforce and Detect and before RecordEvents: a refusal replaces the flow's DECISION
with Reason.INTERNAL_ADDRESS and is recorded like any block. `server_connect` checks (and pins)
every connection the gateway opens again, whatever opened it. The gateway's own ports (its
listen port, the admin's and the metrics port) on an internal address are never reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Client
from mitmproxy.proxy.mode_specs import TransparentMode
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from schoolgate.policy.addresses import InternalKind, IPAddress, address_kind
from schoolgate.policy.hostnames import Host, HostError, normalise_host
from schoolgate.policy.model import Decision, Policy, Reason, Verdict
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.blockpage import make_plain_block, make_unreachable_page
from schoolgate.proxy_addons.errors import options_error
from schoolgate.proxy_addons.flows import block_response, fail_closed
from schoolgate.proxy_addons.mitm_internals import name_open_server
from schoolgate.proxy_addons.stats import GatewayStats

logger = logging.getLogger(__name__)

HostsMap = Mapping[str, tuple[IPAddress, ...]]
_CACHE_SECONDS = 10.0  # answers are re-checked on every use; this only saves look-ups
_CACHE_LIMIT = 4096


class LookupFailed(Exception):
    """A name could not be turned into addresses (the message says why)."""


def parse_hosts_file(text: str, *, source: str) -> dict[str, tuple[IPAddress, ...]]:
    """A hosts-format text ("ADDRESS NAME [NAME ...]", '#' comments; "*.name" covers the names
    below `name`) as name -> addresses, in file order. ValueError names the line."""
    found: dict[str, list[IPAddress]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{source}: line {number}: expected an address and a name")
        try:
            address = ipaddress.ip_address(fields[0])
        except ValueError:
            raise ValueError(
                f"{source}: line {number}: {fields[0]!r} is not an IP address"
            ) from None
        for raw in fields[1:]:
            wildcard = raw.startswith("*.")
            host = normalise_host(raw.removeprefix("*."))
            if isinstance(host, HostError):
                raise ValueError(f"{source}: line {number}: {raw!r}: {host.message}")
            found.setdefault(("*." if wildcard else "") + host.name, []).append(address)
    return {name: tuple(addresses) for name, addresses in found.items()}


class Resolver:
    """Names to addresses: from a hosts map only (tests, pinned set-ups), else the system's
    resolver, bounded in time; answers are remembered for a few seconds."""

    def __init__(self, hosts: HostsMap | None = None, timeout: float = 5.0) -> None:
        self.hosts = hosts
        self.timeout = timeout
        self._cache: dict[str, tuple[float, tuple[IPAddress, ...]]] = {}

    async def resolve(self, name: str, port: int) -> tuple[IPAddress, ...]:
        host = normalise_host(name)
        if isinstance(host, HostError):
            raise LookupFailed(host.message)
        if host.ip is not None:
            return (host.ip,)
        if self.hosts is not None:
            return self._from_hosts(host.name)
        now = time.monotonic()
        known = self._cache.get(host.name)
        if known is not None and known[0] > now:
            return known[1]
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host.name, port, type=socket.SOCK_STREAM), self.timeout
            )
        except TimeoutError:
            raise LookupFailed(f"looking up {host.name} took over {self.timeout:g}s") from None
        except OSError as exc:
            raise LookupFailed(f"{host.name} could not be looked up: {exc}") from None
        addresses = tuple(
            dict.fromkeys(ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos)
        )
        if not addresses:
            raise LookupFailed(f"{host.name} has no addresses")
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[host.name] = (now + _CACHE_SECONDS, addresses)
        return addresses

    def _from_hosts(self, name: str) -> tuple[IPAddress, ...]:
        assert self.hosts is not None
        if name in self.hosts:
            return self.hosts[name]
        labels = name.split(".")
        for i in range(1, len(labels)):
            wildcard = "*." + ".".join(labels[i:])
            if wildcard in self.hosts:
                return self.hosts[wildcard]
        raise LookupFailed(f"{name} is not in the gateway's hosts file")


def judge(
    policy: Policy | None,
    role: str | None,
    name: str,
    port: int,
    addresses: tuple[IPAddress, ...],
    own_ports: frozenset[int],
) -> tuple[InternalKind, IPAddress] | None:
    """The first address that may not be reached, and why; None when every one may. An
    internal address passes only by the policy's internal allow list (by the name or by the
    address, for the role and port), and never on one of the gateway's own ports."""
    for ip in addresses:
        kind = address_kind(ip)
        if kind is None:
            continue
        if (
            port not in own_ports
            and policy is not None
            and role is not None
            and (
                policy.internal.allowed(name, None, role, port) is not None
                or policy.internal.allowed(name, ip, role, port) is not None
            )
        ):
            continue
        return kind, ip
    return None


class GuardDestinations:
    def __init__(self, stats: GatewayStats | None = None) -> None:
        self.resolver = Resolver()
        self.own_ports: frozenset[int] = frozenset()
        # (client id, name, port) -> the checked address that connection must go to
        self._pins: dict[tuple[str, str, int], IPAddress] = {}
        self._who: dict[str, tuple[Policy, str]] = {}  # client id -> policy and role
        self._named: dict[str, tuple[str, int]] = {}  # server id -> the address it was asked as
        self.stats = stats or GatewayStats()

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_hosts_file",
            str,
            "",
            "FOR TESTS AND SPECIAL SET-UPS ONLY: a hosts-format file (ADDRESS NAME ...; *.name "
            "for names below it). When set, destinations are looked up only there, never in "
            "DNS, and a name not in it is refused. Empty (normal use): the system's resolver.",
        )
        loader.add_option(
            "schoolgate_resolve_timeout_ms",
            int,
            5000,
            "How long, in milliseconds, looking up a destination may take before "
            "it is refused (fail closed).",
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if updated & {"schoolgate_hosts_file", "schoolgate_resolve_timeout_ms"}:
            if opts.schoolgate_resolve_timeout_ms < 100:
                raise options_error("schoolgate_resolve_timeout_ms must be at least 100")
            hosts = None
            if opts.schoolgate_hosts_file:
                path = Path(opts.schoolgate_hosts_file).expanduser()
                try:
                    hosts = parse_hosts_file(path.read_text(), source=str(path))
                except (OSError, ValueError) as exc:
                    raise options_error(f"schoolgate_hosts_file: {exc}") from None
            self.resolver = Resolver(hosts, opts.schoolgate_resolve_timeout_ms / 1000)
        ports = [getattr(opts, "listen_port", None), getattr(opts, "schoolgate_metrics_port", None)]
        admin = getattr(opts, "schoolgate_admin_url", "")
        if admin:
            with contextlib.suppress(ValueError):
                ports.append(urlsplit(admin).port)
        self.own_ports = frozenset(p for p in ports if isinstance(p, int) and p > 0)

    # --- the hooks ---------------------------------------------------------------------------

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        await self._guard_safely(flow, connect=True)

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        await self._guard_safely(flow, connect=False)

    async def server_connect(self, data: ServerConnectionHookData) -> None:
        # mitmproxy swallows a hook's exception and connects anyway: refuse instead.
        try:
            await self._check_connect(data)
        except Exception:
            self.stats.destinations_errors += 1
            logger.exception("checking an upstream connection failed; refusing it")
            data.server.error = "refused by the school's web filter (internal error)"

    async def _check_connect(self, data: ServerConnectionHookData) -> None:
        server = data.server
        if server.address is None or server.error:
            return
        name, port = str(server.address[0]).lower().rstrip("."), int(server.address[1])
        client = data.client.id
        pinned = self._pins.get((client, name, port))
        if pinned is None:
            policy, role = self._who.get(client, (None, None))
            try:
                addresses = await self.resolver.resolve(name, port)
            except LookupFailed as exc:
                server.error = f"refused by the school's web filter: {exc}"
                return
            except Exception:
                logger.exception("looking up %s failed; refusing the connection", name)
                server.error = "refused by the school's web filter (lookup error)"
                return
            found = judge(policy, role, name, port, addresses, self.own_ports)
            if found is not None:
                self.stats.destinations_blocked += 1
                logger.warning(
                    "refused a connection to %s:%s (%s, %s)", name, port, found[1], found[0].value
                )
                server.error = "refused by the school's web filter (internal address)"
                return
            pinned = addresses[0]
        host = normalise_host(name)
        if server.tls and server.sni is None and isinstance(host, Host) and host.ip is None:
            server.sni = name  # the name the certificate must carry, not the pinned address
        self._named[server.id] = (str(server.address[0]), port)
        server.address = (str(pinned), port)

    def server_connected(self, data: ServerConnectionHookData) -> None:
        """Connected to the pinned address (server.peername says which): give the connection
        back the name it was asked for, so later requests to that name can reuse it."""
        named = self._named.pop(data.server.id, None)
        if named is not None:
            name_open_server(data.server, named)  # the connection is open: mitmproxy refuses
            # a plain assignment (proxy_addons/mitm_internals.py, item 5)

    def server_connect_error(self, data: ServerConnectionHookData) -> None:
        self._named.pop(data.server.id, None)

    def client_disconnected(self, client: Client) -> None:
        self._who.pop(client.id, None)
        for key in [k for k in self._pins if k[0] == client.id]:
            del self._pins[key]

    # --- helpers -----------------------------------------------------------------------------

    async def _guard_safely(self, flow: http.HTTPFlow, *, connect: bool) -> None:
        try:
            await self._guard(flow, connect=connect)
        except Exception:
            self.stats.destinations_errors += 1
            fail_closed(flow, "checking a destination", "guard")

    async def _guard(self, flow: http.HTTPFlow, *, connect: bool) -> None:
        if flow.response or flow.error or not flow.live:
            return
        decision = flow.metadata.get(context.DECISION)
        inputs = flow.metadata.get(context.INPUTS)
        if not isinstance(decision, Decision) or not isinstance(inputs, context.DecisionInputs):
            return  # not decided by Enforce (a gateway page, a 407): nothing goes upstream
        client = flow.client_conn.id
        role = inputs.subject.role
        self._who[client] = (inputs.policy, role)
        if not decision.allowed:
            return  # answered by the gateway: nothing is connected
        name, port = flow.request.host.lower().rstrip("."), flow.request.port
        address = flow.server_conn.address
        if isinstance(flow.client_conn.proxy_mode, TransparentMode) and address:
            # the connection goes where the client was going, whatever the Host header says
            name, port = str(address[0]), int(address[1])
        if (client, name, port) in self._pins:
            return
        try:
            addresses = await self.resolver.resolve(name, port)
        except LookupFailed as exc:
            self.stats.destinations_lookup_failed += 1
            flow.response = make_unreachable_page(
                name,
                role=role,
                policy=inputs.policy,
                problem=f"The school's web filter could not find this website ({exc}).",
            )
            return
        found = judge(inputs.policy, role, name, port, addresses, self.own_ports)
        if found is None:
            self._pins[(client, name, port)] = addresses[0]
            return
        kind, refused = found
        self._block(
            flow,
            inputs,
            Decision(
                Verdict.BLOCK,
                Reason.INTERNAL_ADDRESS,
                rule=f"internal:{kind.value}",
                category=decision.category,
                host=decision.host,
            ),
            connect,
            str(refused),
        )

    def _block(
        self,
        flow: http.HTTPFlow,
        inputs: context.DecisionInputs,
        decision: Decision,
        connect: bool,
        address: str | None,
    ) -> None:
        self.stats.destinations_blocked += 1
        flow.metadata[context.DECISION] = decision
        if address is not None:
            flow.metadata[context.EVIDENCE] = {"resolved_address": address}
        if connect:
            flow.response = make_plain_block(decision)
            return
        flow.response = block_response(
            flow, decision, inputs.subject, at=inputs.at, policy=inputs.policy, page=inputs.page
        )
