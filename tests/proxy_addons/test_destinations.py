"""GuardDestinations: the hosts file, the resolver, `judge` as a table, and the addon's hooks
(taddons/tflow) refusing internal addresses and pinning connections to the checked address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.connection import Server
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import taddons, tflow, tutils

from schoolgate.policy.addresses import InternalKind
from schoolgate.policy.model import Decision, Reason, Subject, Verdict
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.blockpage import BlockPageSettings
from schoolgate.proxy_addons.destinations import (
    GuardDestinations,
    LookupFailed,
    Resolver,
    judge,
    parse_hosts_file,
)
from tests.policy.test_addresses import ALLOW, with_seed
from tests.policy.test_decide import LESSON

HOSTS = """\
# a comment
192.0.0.9   learning.test *.learning.test
127.0.0.1   rebind.test
192.0.0.9   both.test
::1         both.test   # every address of a name is kept
10.0.5.20   mis.school.lan
"""


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_hosts_file_is_read_with_wildcards_and_every_address() -> None:
    hosts = parse_hosts_file(HOSTS, source="hosts")
    assert hosts["both.test"] == (ip("192.0.0.9"), ip("::1"))
    assert hosts["*.learning.test"] == (ip("192.0.0.9"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1\n", "line 1: expected an address and a name"),
        ("\n300.1.1.1 a.test\n", "line 2: '300.1.1.1' is not an IP address"),
        ("10.0.0.1 'bad name'\n", "line 1:"),
    ],
)
def test_hosts_file_mistakes_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hosts_file(text, source="hosts")


async def test_the_resolver_answers_from_the_hosts_file_only() -> None:
    resolver = Resolver(parse_hosts_file(HOSTS, source="hosts"))
    assert await resolver.resolve("www.learning.test", 443) == (ip("192.0.0.9"),)
    assert await resolver.resolve("REBIND.test.", 80) == (ip("127.0.0.1"),)
    assert await resolver.resolve("0x7f.1", 80) == (ip("127.0.0.1"),)  # literals as they are
    with pytest.raises(LookupFailed, match="not in the gateway's hosts file"):
        await resolver.resolve("bbc.co.uk", 443)  # never DNS when a hosts file is given
    with pytest.raises(LookupFailed):
        await resolver.resolve("exa mple.test", 80)


@pytest.fixture(scope="module")
def allowing():  # type: ignore[no-untyped-def]
    return with_seed(ALLOW)


@pytest.mark.parametrize(
    ("name", "role", "port", "addresses", "refused"),
    [
        ("learning.test", "pupil", 443, ["192.0.0.9"], None),
        ("rebind.test", "pupil", 80, ["127.0.0.1"], InternalKind.LOOPBACK),
        ("both.test", "pupil", 80, ["192.0.0.9", "::1"], InternalKind.LOOPBACK),  # every address
        ("cloud.test", "staff", 80, ["169.254.169.254"], InternalKind.METADATA),
        ("mis.school.lan", "staff", 443, ["10.0.5.20"], None),  # allowed by its name
        ("mis.school.lan", "pupil", 443, ["10.0.5.20"], InternalKind.PRIVATE),
        ("printer.test", "staff", 80, ["10.0.5.20"], None),  # allowed by its address and port
        ("printer.test", "staff", 8080, ["10.0.5.20"], InternalKind.PRIVATE),
        ("mis.school.lan", "staff", 8080, ["10.0.5.20"], InternalKind.PRIVATE),  # our own port
        ("mis.school.lan", None, 443, ["10.0.5.20"], InternalKind.PRIVATE),  # nobody known
    ],
)
def test_judge(
    allowing,
    name: str,
    role: str | None,
    port: int,  # type: ignore[no-untyped-def]
    addresses: list[str],
    refused: InternalKind | None,
) -> None:
    found = judge(
        allowing, role, name, port, tuple(ip(a) for a in addresses), frozenset({8080, 8081})
    )
    assert (found[0] if found else None) is refused


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[tuple[GuardDestinations, taddons.context]]:
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    addon = GuardDestinations()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, schoolgate_hosts_file=str(hosts))
        yield addon, tctx


def decided(
    host: str,
    port: int,
    *,
    role: str = "pupil",
    allowed: bool = True,
    connect: bool = False,
    policy=None,
) -> tflow.HTTPFlow:  # type: ignore[no-untyped-def]
    from schoolgate.store.policy_files import load_policy

    if connect:
        flow = tflow.tflow(
            req=tutils.treq(
                method=b"CONNECT",
                host=host,
                port=port,
                path=b"",
                authority=f"{host}:{port}".encode(),
            )
        )
    else:
        flow = tflow.tflow(
            req=tutils.treq(host=host, port=port, scheme=b"http", authority=b"", path=b"/")
        )
    verdict = Verdict.ALLOW if allowed else Verdict.BLOCK
    flow.metadata[context.DECISION] = Decision(verdict, Reason.DEFAULT_ALLOW, host=host)
    flow.metadata[context.INPUTS] = context.DecisionInputs(
        policy or load_policy(),
        Subject(role, "someone"),
        None,
        LESSON,  # type: ignore[arg-type]
        BlockPageSettings("http://admin.test", b"s" * 40),
    )
    return flow


async def test_a_name_resolving_inside_is_blocked_and_recorded_as_internal(
    guard: tuple[GuardDestinations, taddons.context],
) -> None:
    addon, _ = guard
    for connect in (False, True):
        flow = decided("rebind.test", 80, connect=connect)
        await (addon.http_connect(flow) if connect else addon.requestheaders(flow))
        assert flow.response is not None
        assert flow.response.status_code == 403
        decision = flow.metadata[context.DECISION]
        assert (decision.reason, decision.rule) == (Reason.INTERNAL_ADDRESS, "internal:loopback")
        assert flow.metadata[context.EVIDENCE] == {"resolved_address": "127.0.0.1"}


async def test_an_unknown_name_fails_closed(
    guard: tuple[GuardDestinations, taddons.context],
) -> None:
    addon, _ = guard
    flow = decided("nowhere.test", 80)
    await addon.requestheaders(flow)
    assert flow.response is not None
    assert flow.response.status_code == 502


@pytest.mark.parametrize(
    ("role", "words", "not_there"),
    [
        ("pupil", "If it still does not work, tell your teacher.", "could not find"),
        ("staff", "If many websites fail, tell IT.", "tell your teacher"),
    ],
)
async def test_a_site_that_does_not_answer_gets_a_page_in_the_block_pages_voice(
    guard: tuple[GuardDestinations, taddons.context], role: str, words: str, not_there: str
) -> None:
    """The UX review: an allowed site that cannot be reached showed a raw "502 Bad Gateway /
    [Errno -2] Name or service not known"; now a page for a child, and one for staff."""
    addon, _ = guard
    flow = decided("nowhere.test", 80, role=role)
    await addon.requestheaders(flow)
    assert flow.response is not None
    assert flow.response.status_code == 502
    assert flow.response.headers["Content-Type"].startswith("text/html")
    page = flow.response.get_text() or ""
    assert "This website is not answering" in page
    assert "nowhere.test" in page
    assert "It is not blocked" in page
    assert words in page
    assert not_there not in page
    assert "Errno" not in page
    assert "Bad Gateway" not in page


async def test_blocked_flows_are_not_looked_up(
    guard: tuple[GuardDestinations, taddons.context],
) -> None:
    addon, _ = guard
    flow = decided("rebind.test", 80, allowed=False)
    await addon.requestheaders(flow)
    assert flow.response is None  # Enforce answers it; nothing is connected


def hook(
    client_flow: tflow.HTTPFlow,
    host: str,
    port: int,
    *,  # type: ignore[name-defined]
    tls: bool = False,
) -> ServerConnectionHookData:
    server = Server(address=(host, port))
    server.tls = tls
    return ServerConnectionHookData(client=client_flow.client_conn, server=server)


async def test_the_connection_goes_to_the_checked_address_then_keeps_its_name(
    guard: tuple[GuardDestinations, taddons.context],
) -> None:
    addon, _ = guard
    flow = decided("learning.test", 443, connect=True)
    await addon.http_connect(flow)
    assert flow.response is None
    data = hook(flow, "learning.test", 443, tls=True)
    await addon.server_connect(data)
    assert data.server.error is None
    assert data.server.address == ("192.0.0.9", 443)  # pinned: no second look-up
    assert data.server.sni == "learning.test"  # the certificate is still checked by name
    addon.server_connected(data)
    assert data.server.address == ("learning.test", 443)  # reusable for the same name


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("rebind.test", 443),
        ("127.0.0.1", 80),
        ("both.test", 443),
        ("169.254.169.254", 80),
        ("nowhere.test", 443),
    ],
)
async def test_server_connect_refuses_what_was_not_checked(
    guard: tuple[GuardDestinations, taddons.context], host: str, port: int
) -> None:
    addon, _ = guard
    data = hook(decided("learning.test", 443), host, port)
    await addon.server_connect(data)
    assert data.server.error is not None
    assert "refused by the school's web filter" in data.server.error


def test_own_ports_and_bad_options(guard: tuple[GuardDestinations, taddons.context]) -> None:
    addon, tctx = guard
    tctx.options.add_option("schoolgate_admin_url", str, "http://127.0.0.1:8081", "admin")
    tctx.configure(addon, listen_port=3128, schoolgate_admin_url="http://10.0.0.2:9443")
    assert {3128, 9443} <= addon.own_ports
    with pytest.raises(exceptions.OptionsError, match="schoolgate_hosts_file"):
        tctx.configure(addon, schoolgate_hosts_file="/nonexistent/hosts")
    with pytest.raises(exceptions.OptionsError, match="schoolgate_resolve_timeout_ms"):
        tctx.configure(addon, schoolgate_resolve_timeout_ms=1)


async def test_transparent_mode_judges_where_the_client_was_going(
    guard: tuple[GuardDestinations, taddons.context],
) -> None:
    from mitmproxy.proxy.mode_specs import ProxyMode

    addon, _ = guard
    flow = decided("learning.test", 80)  # the Host header names a public site ...
    flow.client_conn.proxy_mode = ProxyMode.parse("transparent")
    flow.server_conn.address = ("10.0.0.1", 80)  # ... but the packets were going here
    await addon.requestheaders(flow)
    assert flow.response is not None
    assert flow.metadata[context.DECISION].reason is Reason.INTERNAL_ADDRESS


class BrokenResolver(Resolver):
    async def resolve(self, name: str, port: int) -> tuple[ipaddress.IPv4Address, ...]:
        raise RuntimeError("resolver bug")


async def test_an_error_while_checking_fails_closed(
    guard: tuple[GuardDestinations, taddons.context],
) -> None:
    addon, _ = guard
    addon.resolver = BrokenResolver()
    flow = decided("learning.test", 80)
    await addon.requestheaders(flow)
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert flow.metadata[context.DECISION].reason is Reason.ENGINE_ERROR
    data = hook(flow, "learning.test", 80)
    await addon.server_connect(data)
    assert data.server.error is not None
    assert data.server.address == ("learning.test", 80)  # never pinned anywhere
