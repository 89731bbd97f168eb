"""The lean engine: schoolgate's addons on mitmproxy's proxy core with only the built-in addons
the gateway needs, instead of mitmdump's ~35 (each of which is offered every event).

`run_lean(arguments)` takes the subset of mitmdump's command line that `schoolgate gateway`
writes (`--mode`, `--listen-host`, `--listen-port`, `-s`, `--set name=value`, `-q`) and runs
until SIGINT/SIGTERM; a bad option, a script that fails to load or an error logged while
starting (e.g. the port is taken) ends it with a message and a non-zero status.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mitmproxy import addonmanager, ctx, exceptions, flow, hooks, master, options
from mitmproxy.addons import (
    block,
    core,
    disable_h2c,
    errorcheck,
    next_layer,
    proxyserver,
    script,
    termlog,
    tlsconfig,
)
from mitmproxy.proxy import mode_specs

from schoolgate.proxy_addons import mitm_internals
from schoolgate.proxy_addons.enforce import Enforce
from schoolgate.proxy_addons.flows import has_header
from schoolgate.proxy_addons.frontdoor import FrontDoor, Gate
from schoolgate.proxy_addons.identity import Identify

logger = logging.getLogger(__name__)

PROG = "schoolgate gateway --engine lean"
EVENT_LOOP_VARIABLE = "SCHOOLGATE_EVENT_LOOP"  # uvloop (the default where installed) or asyncio

# Options of mitmdump's addons that the lean engine does not load. Setting one of them to its
# harmless value is accepted and ignored (gateway.py writes them for mitmdump); any other value
# is refused, because the feature behind it is not there.
IGNORED_OPTIONS = {"flow_detail": ("0",), "onboarding": ("false", "False")}

# termlog_verbosity -> the lowest level worth making a log record for at all.
_LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "alert": logging.INFO,
    "debug": logging.DEBUG,
}


def builtin_addons() -> list[object]:
    """The built-in addons the gateway relies on, in mitmdump's relative order.

    Core (option checks, core commands), Block (`block_global`/`block_private`: refuse clients
    from public addresses, as mitmdump does by default), DisableH2C (refuse h2c upgrades the
    proxy cannot carry), Proxyserver (listening, `connection_strategy`, streaming, timeouts),
    NextLayer (what protocol comes next; `ignore_hosts` and our `ignore_connection`) and
    TlsConfig (the school CA, upstream verification). Left out on purpose: ProxyAuth (Identify
    replaces it), UpdateAltSvc (StripAltSvc), Onboarding (the gateway serves its CA itself),
    ScriptLoader (scripts are loaded once, never hot-reloaded), the dumper, and the replay,
    save, map and modify addons.
    """
    server: Any = proxyserver.Proxyserver  # mitmproxy leaves its __init__ unannotated
    return [core.Core(), Block(), DisableH2C(), server()]


class DisableH2C(disable_h2c.DisableH2C):
    """mitmproxy's DisableH2C (drop h2c upgrade headers, kill HTTP/2 prior-knowledge flows),
    which looks at a request only when it could be either: it has an Upgrade header or the
    method PRI. (mitmproxy's looks the header up through its Mapping on every request.)"""

    def process_flow(self, f: Any) -> None:
        request = f.request
        if request.data.method == b"PRI" or has_header(request.headers, b"upgrade"):
            super().process_flow(f)  # type: ignore[no-untyped-call]


class Block(block.Block):
    """mitmproxy's Block (refuse clients from public or, if asked, private addresses), with
    its two options read in `configure` rather than on every connection (each `ctx.options.x`
    is a deep copy) and a client's address judged once per address seen."""

    def __init__(self) -> None:
        self.block_global, self.block_private = True, False
        self._kinds: dict[str, tuple[bool, bool, bool]] = {}  # address -> loopback, private, global

    def configure(self, updated: set[str]) -> None:
        if updated & {"block_global", "block_private"}:
            self.block_global = bool(ctx.options.block_global)
            self.block_private = bool(ctx.options.block_private)

    def client_connected(self, client: Any) -> None:
        peer = str(client.peername[0])
        kinds = self._kinds.get(peer)
        if kinds is None:
            address: Any = ipaddress.ip_address(peer.rsplit("%", 1)[0])
            if isinstance(address, ipaddress.IPv6Address):
                address = address.ipv4_mapped or address
            kinds = (address.is_loopback, address.is_private, address.is_global)
            if len(self._kinds) >= 65_536:
                self._kinds.clear()
            self._kinds[peer] = kinds
        loopback, private, public = kinds
        if loopback or isinstance(client.proxy_mode, mode_specs.LocalMode):
            return
        if self.block_private and private:
            logger.warning("Client connection from %s killed by block_private option.", peer)
            client.error = "Connection killed by block_private."
        if self.block_global and public:
            logger.warning("Client connection from %s killed by block_global option.", peer)
            client.error = "Connection killed by block_global."


class TlsConfig(tlsconfig.TlsConfig):
    """mitmproxy's TlsConfig, with the path its CRL is served at worked out once per CA instead
    of on every request (its `request` hook reads the CA certificate's serial number each time)."""

    _crl: tuple[object, str] | None = None

    def crl_path(self) -> str:
        ca = self.certstore.default_ca
        if self._crl is None or self._crl[0] is not ca:
            self._crl = (ca, super().crl_path())
        return self._crl[1]


def after_addons() -> list[object]:
    """Built-ins that come after the gateway's own addons (where mitmdump has them)."""
    return [next_layer.NextLayer(), TlsConfig()]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument(
        "--mode",
        "-m",
        action="append",
        default=[],
        help="proxy mode, as mitmdump's --mode (default: regular)",
    )
    parser.add_argument("--listen-host", default=None, help="address to listen on")
    parser.add_argument("--listen-port", type=int, default=None, help="port to listen on")
    parser.add_argument(
        "-s",
        "--scripts",
        action="append",
        default=[],
        metavar="SCRIPT",
        help="an addon script, loaded once after schoolgate's addons",
    )
    parser.add_argument(
        "--set",
        dest="setoptions",
        action="append",
        default=[],
        metavar="option=value",
        help="set an option, as mitmdump's --set",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    return parser


class DispatchTable(addonmanager.AddonManager):
    """mitmproxy's AddonManager, but each hook's handlers are looked up once, not on every
    event: mitmproxy walks every addon with getattr, a generator and a context manager for
    each event, about a third of the proxy's CPU per request. The table is rebuilt whenever
    addons are added or removed (this engine has no hot-reloaded scripts, and no addon here
    grows hooks at run time). As in mitmproxy, an exception in a hook is logged and the
    other addons still run; AddonHalt stops the event, OptionsError propagates."""

    def __init__(self, owner: master.Master) -> None:
        super().__init__(owner)  # type: ignore[no-untyped-call]
        self._handlers: dict[str, list[Callable[..., Any]]] = {}

    def register(self, addon: Any) -> Any:
        self._handlers.clear()
        return super().register(addon)  # type: ignore[no-untyped-call]

    def add(self, *addons: Any) -> None:
        super().add(*addons)  # type: ignore[no-untyped-call]
        self._handlers.clear()

    def remove(self, addon: Any) -> None:
        super().remove(addon)  # type: ignore[no-untyped-call]
        self._handlers.clear()

    def clear(self) -> None:
        super().clear()  # type: ignore[no-untyped-call]
        self._handlers.clear()

    def handlers(self, event: hooks.Hook) -> list[Callable[..., Any]]:
        found = self._handlers.get(event.name)
        if found is None:
            found = [func for top in self.chain for _addon, func in self._iter_hooks(top, event)]
            self._handlers[event.name] = found
        return found

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        handlers = self.handlers(event)
        # mitmproxy follows every flow event with an `update` event; no addon here wants it.
        updates = self.handlers(_UPDATE)
        if not handlers and not updates:
            return  # nobody listens: not even the arguments are gathered
        args = _args(event)
        await self._call(handlers, args)
        if updates and args and isinstance(args[0], flow.Flow):
            await self._call(updates, [[args[0]]])

    async def run_named(self, name: str, *args: Any) -> None:
        """`handle_lifecycle(TheHook(*args))` for the hook called `name`, without making the hook
        object (mitmproxy's hooks check their class on every instance) or reading its fields
        back: the front door's way to run a hook, several times on every tunnel."""
        handlers = self._handlers.get(name)
        if handlers is None:
            kind: Any = hooks.all_hooks[name]
            handlers = self.handlers(kind.__new__(kind))  # only its name is looked at
        updates = self.handlers(_UPDATE)
        if handlers:
            await self._call(handlers, list(args))
        if updates and args and isinstance(args[0], flow.Flow):
            await self._call(updates, [[args[0]]])

    async def trigger_event(self, event: hooks.Hook) -> None:
        await self._trigger(event, event.args())

    async def _trigger(self, event: hooks.Hook, args: list[Any]) -> None:
        await self._call(self.handlers(event), args)

    @staticmethod
    async def _call(handlers: list[Callable[..., Any]], args: list[Any]) -> None:
        for func in handlers:
            try:
                result = func(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
            except exceptions.AddonHalt:
                return
            except exceptions.OptionsError:
                raise
            except Exception as error:
                logger.error(f"Addon error: {error}", exc_info=True)


_UPDATE = hooks.UpdateHook([])  # the key of the `update` hook's handlers
_FIELDS: dict[type, tuple[str, ...]] = {}


def _args(event: hooks.Hook) -> list[Any]:
    """`event.args()` (its dataclass fields' values, in order), with the field names looked up
    once per hook class rather than with `dataclasses.fields` on every event."""
    kind: Any = type(event)
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return [getattr(event, name) for name in names]


class LeanMaster(master.Master):
    """A mitmproxy Master with the lean built-ins around the given addons."""

    addons: DispatchTable

    def __init__(self, opts: options.Options, addons: Sequence[object]) -> None:
        super().__init__(opts, with_termlog=False)
        self.addons = DispatchTable(self)
        self._termlog_addon = termlog.TermLog()
        self.add(self._termlog_addon)
        self.add(*builtin_addons(), *addons, *after_addons())
        # Exits the process if anything logs an error before the proxy is serving.
        self.add(errorcheck.ErrorCheck())

    def add(self, *addons: object) -> None:
        """Append addons to the chain (mitmproxy's AddonManager.add, which is unannotated)."""
        manager: Any = self.addons
        manager.add(*addons)


def front_door(lean: LeanMaster, addons: Sequence[object]) -> FrontDoor | None:
    """The front door, wired to the gateway's Identify and Enforce and to the addon chain's
    hooks (the one place they meet); None without those addons (then mitmproxy serves all)."""
    identify = next((a for a in addons if isinstance(a, Identify)), None)
    enforce = next((a for a in addons if isinstance(a, Enforce)), None)
    proxyserver = lean.addons.get("proxyserver")  # type: ignore[no-untyped-call]
    if identify is None or enforce is None or proxyserver is None:
        return None
    gate = Gate(
        identify=identify.identify_now,
        passes_through=enforce.passes_through,
        run_hook=lean.addons.run_named,
    )
    return FrontDoor(proxyserver, gate, enforce.stats)


def _options_error(message: str) -> exceptions.OptionsError:
    return exceptions.OptionsError(message)  # type: ignore[no-untyped-call]


def load_scripts(paths: Sequence[str]) -> list[object]:
    """The addons of each script (its `addons` list, else the module itself)."""
    loaded: list[object] = []
    for path in paths:
        if not Path(path).is_file():
            raise _options_error(f"script {path!r} does not exist")
        module = script.load_script(path)
        if module is None:  # load_script has logged the error
            raise _options_error(f"script {path!r} could not be loaded (see above)")
        loaded.extend(getattr(module, "addons", [module]))
    return loaded


def option_specs(args: argparse.Namespace) -> list[str]:
    """All the `name=value` settings the command line asks for, in mitmproxy's `--set` form."""
    specs = [f"mode={mode}" for mode in args.mode]
    if args.listen_host is not None:
        specs.append(f"listen_host={args.listen_host}")
    if args.listen_port is not None:
        specs.append(f"listen_port={args.listen_port}")
    if args.quiet:
        specs.append("termlog_verbosity=error")
    kept = []
    for spec in [*specs, *args.setoptions]:
        name, _, value = spec.partition("=")
        if name in IGNORED_OPTIONS:
            if value not in IGNORED_OPTIONS[name]:
                raise _options_error(
                    f"option {name}={value}: the lean engine does not load the mitmproxy addon "
                    f"behind {name!r}; use --engine mitmdump for it"
                )
            continue
        kept.append(spec)
    return kept


def _quieten_logging(opts: options.Options) -> None:
    """Make no log records below what the terminal shows: mitmproxy makes one per connection
    event and hands each to every handler and (as `add_log`) to every addon."""
    level = _LEVELS.get(str(opts.termlog_verbosity), logging.INFO)
    logging.getLogger().setLevel(min(level, logging.WARNING))


async def _main(arguments: Sequence[str], addons: Sequence[object]) -> int:
    args = make_parser().parse_args(list(arguments))
    logging.getLogger().setLevel(logging.INFO)
    mitm_internals.skip_message_type_checks()
    mitm_internals.counted_flow_ids()
    opts = options.Options()
    try:
        # Scripts go straight after schoolgate's addons, where mitmdump's ScriptLoader has them.
        lean = LeanMaster(opts, [*addons, *load_scripts(args.scripts)])
        door = front_door(lean, addons)
        if door is not None:
            lean.add(door)
        opts.set(*option_specs(args))
    except exceptions.OptionsError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    _quieten_logging(opts)
    opts.changed.connect(lambda updated: _quieten_logging(opts))

    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, lean.shutdown)
    # A client that goes away mid-write must not kill the process.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await lean.run()
    return 0


def loop_factory(
    environ: Mapping[str, str] = os.environ,
) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop the lean engine runs on: uvloop where it is installed (less CPU per
    connection: its transports and streams are written in C), asyncio's own loop when it is
    not, or when SCHOOLGATE_EVENT_LOOP=asyncio says so. Any other value than `uvloop`,
    `asyncio` or empty is refused."""
    wanted = environ.get(EVENT_LOOP_VARIABLE, "").strip().lower()
    if wanted not in ("", "uvloop", "asyncio"):
        raise ValueError(
            f"{EVENT_LOOP_VARIABLE}={wanted!r}: use 'uvloop' or 'asyncio' (or leave it unset)"
        )
    if wanted != "asyncio":
        try:
            import uvloop
        except ImportError:
            if wanted == "uvloop":
                raise ValueError(
                    f"{EVENT_LOOP_VARIABLE}=uvloop, but uvloop is not installed here"
                ) from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_lean(arguments: Sequence[str], addons: Sequence[object] | None = None) -> int:
    """Run the lean gateway until it is told to stop; the process's exit status."""
    if addons is None:
        from schoolgate.proxy_addons.main import addons as gateway_addons

        addons = gateway_addons
    try:
        factory = loop_factory()
    except ValueError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    mitm_internals.eager_tasks_on_any_loop()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_main(arguments, addons))
