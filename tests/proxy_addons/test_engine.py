"""The lean engine (proxy_addons/engine.py) on its own: its command line, its hook dispatch table
and where the front door is wired in. The gateway itself runs on it in tests/e2e."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import exceptions, http, options, tls
from mitmproxy.proxy import server_hooks
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http import HttpRequestHeadersHook
from mitmproxy.test import tflow

from schoolgate.proxy_addons.enforce import Enforce
from schoolgate.proxy_addons.engine import (
    EVENT_LOOP_VARIABLE,
    LeanMaster,
    front_door,
    load_scripts,
    loop_factory,
    make_parser,
    option_specs,
    run_lean,
)
from schoolgate.proxy_addons.engine import (
    Block as LeanBlock,
)
from schoolgate.proxy_addons.frontdoor import FrontDoor
from schoolgate.proxy_addons.identity import Identify
from schoolgate.proxy_addons.mitm_internals import TlsClienthelloHook
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.proxy_addons.stats import GatewayStats


def specs(*argv: str) -> list[str]:
    return option_specs(make_parser().parse_args(list(argv)))


def test_the_command_line_becomes_mitmproxy_settings() -> None:
    assert specs(
        "--mode",
        "regular",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        "3128",
        "-q",
        "--set",
        "schoolgate_front_door=false",
    ) == [
        "mode=regular",
        "listen_host=127.0.0.1",
        "listen_port=3128",
        "termlog_verbosity=error",
        "schoolgate_front_door=false",
    ]


def test_mitmdump_only_options_are_ignored_when_harmless_and_refused_otherwise() -> None:
    assert specs("--set", "flow_detail=0", "--set", "onboarding=false") == []
    with pytest.raises(exceptions.OptionsError, match="use --engine mitmdump"):
        specs("--set", "flow_detail=2")


def test_a_missing_script_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(exceptions.OptionsError, match="does not exist"):
        load_scripts([str(tmp_path / "nowhere.py")])


class Calls:
    """A real addon that notes the hooks it gets, and fails or halts when told."""

    def __init__(self, name: str, seen: list[str], fail: bool = False, halt: bool = False) -> None:
        self.name, self.seen, self.fail, self.halt = name, seen, fail, halt

    async def client_connected(self, client: object) -> None:
        self.seen.append(self.name)
        if self.fail:
            raise RuntimeError("this addon fails")
        if self.halt:
            raise exceptions.AddonHalt


def test_the_dispatch_table_runs_every_handler_in_order_past_a_failing_one() -> None:
    seen: list[str] = []

    async def run() -> None:
        lean = LeanMaster(
            options.Options(),
            [
                Calls("a", seen, fail=True),
                Calls("b", seen),
                Calls("c", seen, halt=True),
                Calls("d", seen),
            ],
        )
        client = tflow.tclient_conn()
        await lean.addons.handle_lifecycle(server_hooks.ClientConnectedHook(client))
        # looked up once per hook, rebuilt when the chain changes
        table = lean.addons.handlers  # type: ignore[attr-defined]
        before = table(server_hooks.ClientConnectedHook(client))
        assert table(server_hooks.ClientConnectedHook(client)) is before  # looked up once
        lean.add(Calls("e", seen))
        assert len(table(server_hooks.ClientConnectedHook(client))) == len(before) + 1

    asyncio.run(run())
    assert seen == ["a", "b", "c"]  # "a" failed (logged), "c" halted the event


def test_the_front_door_is_wired_only_with_identify_and_enforce() -> None:
    async def run() -> None:
        bare = LeanMaster(options.Options(), [])
        assert front_door(bare, []) is None
        stats = GatewayStats()
        identify, enforce = Identify(stats), Enforce(PolicySource(stats), stats)
        lean = LeanMaster(options.Options(), [identify, enforce])
        door = front_door(lean, [identify, enforce])
        assert isinstance(door, FrontDoor)
        assert door.gate.identify == identify.identify_now
        assert door.gate.passes_through == enforce.passes_through
        assert door.stats is stats  # the front door counts in the gateway's one GatewayStats
        assert door.gate.run_hook == lean.addons.run_named  # the chain's own dispatch

    asyncio.run(run())


class Updates:
    def __init__(self, seen: list[object]) -> None:
        self.seen = seen

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.seen.append(("requestheaders", flow))

    def update(self, flows: list[http.HTTPFlow]) -> None:
        self.seen.append(("update", flows))

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        self.seen.append(("tls_clienthello", data))


def test_the_dispatch_table_passes_each_hooks_arguments_and_the_update_after_a_flow_event() -> None:
    seen: list[object] = []

    async def run() -> None:
        lean = LeanMaster(options.Options(), [Updates(seen)])
        flow = tflow.tflow()
        await lean.addons.handle_lifecycle(HttpRequestHeadersHook(flow))
        hello: Any = None
        data = tls.ClientHelloData(Context(flow.client_conn, options.Options()), hello)
        await lean.addons.handle_lifecycle(TlsClienthelloHook(data))
        await lean.addons.handle_lifecycle(server_hooks.ClientConnectedHook(flow.client_conn))
        assert seen == [
            ("requestheaders", flow),
            ("update", [flow]),
            ("tls_clienthello", data),  # not a flow: no update
        ]
        # By name, without the hook object (the front door's way): the same calls.
        seen.clear()
        await lean.addons.run_named(HttpRequestHeadersHook.name, flow)
        await lean.addons.run_named(TlsClienthelloHook.name, data)
        await lean.addons.run_named(server_hooks.ClientConnectedHook.name, flow.client_conn)
        assert seen == [("requestheaders", flow), ("update", [flow]), ("tls_clienthello", data)]

    asyncio.run(run())


# --- the event loop: uvloop where installed, asyncio's own when told ----------------------------


def test_the_lean_engine_runs_on_uvloop_unless_told_otherwise() -> None:
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory({}) is uvloop.new_event_loop
    assert loop_factory({EVENT_LOOP_VARIABLE: "uvloop"}) is uvloop.new_event_loop
    assert loop_factory({EVENT_LOOP_VARIABLE: " AsyncIO "}) is asyncio.new_event_loop


def test_an_unknown_event_loop_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'trio': use 'uvloop' or 'asyncio'"):
        loop_factory({EVENT_LOOP_VARIABLE: "trio"})


def test_without_uvloop_the_engine_falls_back_to_asyncio_unless_uvloop_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert loop_factory({}) is asyncio.new_event_loop
    with pytest.raises(ValueError, match="uvloop is not installed"):
        loop_factory({EVENT_LOOP_VARIABLE: "uvloop"})


def test_the_gateway_will_not_start_on_an_unknown_event_loop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(EVENT_LOOP_VARIABLE, "trio")
    assert run_lean([], addons=[]) == 1
    assert "SCHOOLGATE_EVENT_LOOP='trio': use 'uvloop' or 'asyncio'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "peer", ["127.0.0.1", "10.1.2.3", "8.8.8.8", "::1", "::ffff:8.8.8.8", "fe80::1%eth0", "fd00::1"]
)
@pytest.mark.parametrize(("block_global", "block_private"), [(True, False), (False, True)])
async def test_the_lean_block_refuses_exactly_what_mitmproxys_block_refuses(
    peer: str, block_global: bool, block_private: bool
) -> None:
    from mitmproxy.addons import block
    from mitmproxy.test import taddons

    for run in range(2):  # the second time from the remembered answer
        errors = []
        for addon in (block.Block(), LeanBlock()):
            with taddons.context(addon) as tctx:
                tctx.configure(addon, block_global=block_global, block_private=block_private)
                client = tflow.tclient_conn()
                client.peername = (peer, 5000 + run)
                addon.client_connected(client)
                errors.append(client.error)
        assert errors[0] == errors[1]


def test_the_lean_tls_config_serves_the_crl_where_mitmproxys_does_and_follows_a_new_ca(
    tmp_path: Path,
) -> None:
    from mitmproxy.addons import tlsconfig
    from mitmproxy.test import taddons

    from schoolgate.proxy_addons.engine import TlsConfig as LeanTlsConfig

    def answered(addon: Any, path: str) -> bool:
        flow = tflow.tflow()
        flow.request.path = path
        addon.request(flow)
        return flow.response is not None

    paths: dict[str, list[str]] = {}
    for name, addon in (("theirs", tlsconfig.TlsConfig()), ("ours", LeanTlsConfig())):
        with taddons.context(addon) as tctx:
            for confdir in (tmp_path / name / "one", tmp_path / name / "two"):
                confdir.mkdir(parents=True)
                tctx.configure(addon, confdir=str(confdir))
                path = addon.crl_path()
                assert path == tlsconfig.TlsConfig.crl_path(addon)  # mitmproxy's own reading
                assert answered(addon, path)
                assert not answered(addon, "/other.crl")
                paths.setdefault(name, []).append(path)
            first, second = paths[name]
            assert first != second  # a new CA, a new path: the first is not remembered
            assert not answered(addon, first)


@pytest.mark.parametrize(
    ("method", "path", "version", "fields"),
    [
        ("GET", "/", "HTTP/1.1", [(b"Host", b"a.example")]),
        (
            "GET",
            "/",
            "HTTP/1.1",
            [(b"Upgrade", b"h2c"), (b"Connection", b"Upgrade, HTTP2-Settings")],
        ),
        ("GET", "/", "HTTP/1.1", [(b"upgrade", b"h2c"), (b"HTTP2-Settings", b"AAMAAABkAAQAAP__")]),
        ("GET", "/", "HTTP/1.1", [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]),
        ("GET", "/", "HTTP/1.1", [(b"UPGRADE", b"H2C")]),
        ("PRI", "*", "HTTP/2.0", []),
        ("PRI", "/", "HTTP/1.1", []),
    ],
)
async def test_the_lean_disable_h2c_does_what_mitmproxys_does(
    method: str, path: str, version: str, fields: list[tuple[bytes, bytes]]
) -> None:
    from mitmproxy.addons import disable_h2c
    from mitmproxy.test import taddons

    from schoolgate.proxy_addons.engine import DisableH2C as LeanDisableH2C

    outcomes = []
    for addon in (disable_h2c.DisableH2C(), LeanDisableH2C()):
        with taddons.context(addon):
            flow = tflow.tflow()
            flow.request.method, flow.request.path = method, path
            flow.request.http_version = version
            flow.request.headers = http.Headers(fields)
            addon.request(flow)
            outcomes.append((flow.request.headers.fields, flow.error and flow.error.msg))
    assert outcomes[0] == outcomes[1]
