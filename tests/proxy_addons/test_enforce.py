"""Enforce addon units: mitmproxy's taddons/tflow with a real policy file written by the test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mitmproxy import exceptions, http
from mitmproxy.connection import Server
from mitmproxy.proxy import context as proxy_context
from mitmproxy.test import taddons, tflow, tutils
from mitmproxy.tls import ClientHello, ClientHelloData

import schoolgate.proxy_addons.enforce as enforce_module
from schoolgate.policy.decide import decide
from schoolgate.policy.model import (
    ApprovedException,
    Decision,
    LocalListEntry,
    Overrides,
    Reason,
    Scope,
    TargetKind,
    Verdict,
)
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.context import Identity, IdentitySource
from schoolgate.proxy_addons.enforce import Enforce
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.store.snapshots import write_overrides_atomically
from tests.support.gateway import write_policy


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    write_policy(path, in_break=False)
    return path


@contextlib.contextmanager
def enforcing(policy_file: Path, tmp_path: Path) -> Iterator[tuple[Enforce, taddons.context]]:
    """Enforce and its PolicySource in mitmproxy's test context, with `policy_file`."""
    source = PolicySource()
    enforce = Enforce(source)
    with taddons.context(source, enforce) as tctx:
        tctx.configure(
            enforce,
            schoolgate_policy=str(policy_file),
            schoolgate_secret_file=str(tmp_path / "secret"),
        )
        yield enforce, tctx


@pytest.fixture
def addon(policy_file: Path, tmp_path: Path) -> Iterator[tuple[Enforce, taddons.context]]:
    with enforcing(policy_file, tmp_path) as both:
        yield both


def request_flow(
    host: str,
    *,
    role: str | None = None,
    user: str | None = None,
    scheme: str = "https",
    host_header: str | None = None,
) -> http.HTTPFlow:
    flow = tflow.tflow(
        req=tutils.treq(
            host=host, port=443 if scheme == "https" else 80, scheme=scheme.encode(), authority=b""
        )
    )
    flow.request.headers["Host"] = host_header or host
    flow.client_conn.sni = host if scheme == "https" else None
    if role is not None or user is not None:
        flow.metadata[context.IDENTITY] = Identity(
            role=role, source=IdentitySource.LOCAL, user=user
        )
    return flow


@pytest.mark.parametrize(
    ("host", "role", "blocked"),
    [
        ("x.com", "staff", True),
        ("api.twitter.com", "social_media_manager", True),
        ("www.instagram.com", "pupil", True),
        ("www.facebook.com", "pupil", True),
        ("www.facebook.com", "staff", True),  # lesson time
        ("www.facebook.com", "social_media_manager", False),
        ("www.tiktok.com", "pupil", True),
        ("www.tiktok.com", "staff", True),  # lesson time: staff use social media at break only
        ("learning.test", "pupil", False),
        ("xbox.com", "pupil", False),  # label boundaries
        ("www.facebook.com", None, True),  # no identity: the default (pupil) role
        ("www.facebook.com", "governor", True),  # unknown role: the default role
    ],
)
def test_requestheaders_applies_the_policy(
    addon: tuple[Enforce, taddons.context], host: str, role: str | None, blocked: bool
) -> None:
    enforce, _ = addon
    flow = request_flow(host, role=role)
    enforce.requestheaders(flow)
    decision = flow.metadata[context.DECISION]
    assert (decision.verdict is Verdict.BLOCK) is blocked
    if blocked:
        assert flow.response is not None
        assert flow.response.status_code == 403
        assert flow.response.headers["Cache-Control"] == "no-store"
        assert b"This website is blocked at school" in flow.response.content
    else:
        assert flow.response is None


def test_an_earlier_answer_is_respected(addon: tuple[Enforce, taddons.context]) -> None:
    enforce, _ = addon
    flow = request_flow("x.com")
    flow.response = http.Response.make(407)
    enforce.requestheaders(flow)
    assert flow.response.status_code == 407
    assert context.DECISION not in flow.metadata


def test_host_header_that_disagrees_with_the_destination_is_blocked(
    addon: tuple[Enforce, taddons.context],
) -> None:
    enforce, _ = addon
    flow = request_flow("learning.test", role="staff", host_header="x.com")
    enforce.requestheaders(flow)
    decision = flow.metadata[context.DECISION]
    assert decision.reason is Reason.CIRCUMVENTION
    assert decision.technique == enforce_module.MISMATCH
    assert flow.response is not None
    assert flow.response.status_code == 403


def test_an_exception_while_deciding_blocks(
    addon: tuple[Enforce, taddons.context], monkeypatch: pytest.MonkeyPatch
) -> None:
    enforce, _ = addon

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(enforce_module, "decide", explode)
    flow = request_flow("learning.test", role="staff")
    enforce.requestheaders(flow)
    assert flow.metadata[context.DECISION].reason is Reason.ENGINE_ERROR
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert enforce.stats.enforce_errors == 1


def test_blocked_connect_is_let_through_for_the_page_or_refused(
    addon: tuple[Enforce, taddons.context],
) -> None:
    enforce, tctx = addon
    flow = tflow.tflow(
        req=tutils.treq(method=b"CONNECT", host="x.com", port=443, authority=b"x.com:443", path=b"")
    )
    enforce.http_connect(flow)
    assert flow.response is None  # intercepted later to show the page
    tctx.configure(enforce, schoolgate_https_block_page=False)
    flow = tflow.tflow(
        req=tutils.treq(method=b"CONNECT", host="x.com", port=443, authority=b"x.com:443", path=b"")
    )
    enforce.http_connect(flow)
    assert flow.response is not None
    assert flow.response.status_code == 403


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "::1", "10.0.0.1", "169.254.169.254", "prometheus"]
)
def test_a_connect_to_an_internal_address_is_refused_at_once(
    addon: tuple[Enforce, taddons.context], host: str
) -> None:
    enforce, _ = addon
    flow = tflow.tflow(
        req=tutils.treq(
            method=b"CONNECT", host=host, port=443, authority=f"{host}:443".encode(), path=b""
        )
    )
    enforce.http_connect(flow)
    assert flow.response is not None  # never a tunnel, not even for a block page
    assert flow.response.status_code == 403
    assert b"internal_address" in (flow.response.content or b"")


def clienthello(host: str, sni: str | None) -> ClientHelloData:
    from mitmproxy import ctx as mitm_ctx

    client = tflow.tclient_conn()
    ctx = proxy_context.Context(client, mitm_ctx.options)
    ctx.server = Server(address=(host, 443))
    hello = ClientHello(_client_hello_bytes(sni))
    return ClientHelloData(ctx, hello)


def _client_hello_bytes(sni: str | None) -> bytes:
    """A real ClientHello made by Python's ssl module (handshake message only)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    record = outgoing.read()
    return record[9:]  # strip the TLS record header (5 bytes) and handshake header (4)


@pytest.mark.parametrize(
    ("host", "sni", "ignored"),
    [
        ("learning.test", "learning.test", True),  # allowed, uncategorised: passed through
        ("bank.test", "bank.test", True),  # sensitive: never decrypted
        ("www.facebook.com", "www.facebook.com", False),  # categorised: its verdict can change
        ("x.com", "x.com", False),  # blocked: intercepted for the page
        ("learning.test", "x.com", False),  # SNI disagrees with CONNECT: intercepted and blocked
    ],
)
def test_clienthello_passes_through_only_what_needs_no_inspection(
    addon: tuple[Enforce, taddons.context], host: str, sni: str, ignored: bool
) -> None:
    enforce, _ = addon
    data = clienthello(host, sni)
    enforce.tls_clienthello(data)
    assert data.ignore_connection is ignored


def test_sni_mismatch_blocks_every_request_in_the_tunnel(
    addon: tuple[Enforce, taddons.context],
) -> None:
    enforce, _ = addon
    data = clienthello("learning.test", "x.com")
    enforce.tls_clienthello(data)
    flow = request_flow("learning.test", role="staff")
    flow.client_conn = data.context.client
    enforce.requestheaders(flow)
    assert flow.metadata[context.DECISION].technique == enforce_module.MISMATCH


def test_configured_sensitive_hosts_are_never_decrypted(
    addon: tuple[Enforce, taddons.context],
) -> None:
    enforce, tctx = addon
    tctx.configure(enforce, schoolgate_sensitive_hosts=["nhs.test"])
    data = clienthello("www.nhs.test", "www.nhs.test")
    enforce.tls_clienthello(data)
    assert data.ignore_connection


def test_a_bad_policy_option_is_refused_and_the_running_one_stays(
    addon: tuple[Enforce, taddons.context], tmp_path: Path
) -> None:
    enforce, tctx = addon
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\n")
    with pytest.raises(exceptions.OptionsError, match=r"bad\.yaml"):
        tctx.configure(enforce, schoolgate_policy=str(bad))
    flow = request_flow("x.com", role="staff")
    enforce.requestheaders(flow)
    assert flow.response is not None
    assert flow.response.status_code == 403


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("schoolgate_sensitive_hosts", ["bad host name!"]),
        ("schoolgate_refresh_ms", 0),
        ("schoolgate_refresh_ms", 99),
        ("schoolgate_admin_url", "ftp://admin"),
    ],
)
def test_bad_options_are_refused(
    addon: tuple[Enforce, taddons.context], option: str, value: object
) -> None:
    enforce, tctx = addon
    with pytest.raises(exceptions.OptionsError, match=option):
        tctx.configure(enforce, **{option: value})


async def test_refresh_picks_up_overrides_and_a_changed_policy(
    addon: tuple[Enforce, taddons.context], tmp_path: Path, policy_file: Path
) -> None:
    enforce, tctx = addon
    overrides = tmp_path / "overrides.json"
    write_overrides_atomically(overrides, Overrides())
    tctx.configure(enforce, schoolgate_overrides=str(overrides))
    write_overrides_atomically(
        overrides,
        Overrides(local_list=(LocalListEntry("learning.test", Verdict.BLOCK, "reported"),)),
    )
    await enforce._source.refresh()
    flow = request_flow("learning.test", role="staff")
    enforce.requestheaders(flow)
    assert flow.metadata[context.DECISION].reason is Reason.LOCAL_BLOCK
    # A broken policy file is refused on refresh; the running policy stays.
    policy_file.write_text("roles: [")
    await enforce._source.refresh()
    assert enforce._source.stats.policy_reloads_refused == 1
    flow = request_flow("x.com", role="staff")
    enforce.requestheaders(flow)
    assert flow.metadata[context.DECISION].reason is Reason.RULE_BLOCK


def test_staff_may_use_facebook_in_the_break(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    write_policy(path, in_break=True)
    source = PolicySource()
    enforce = Enforce(source)
    with taddons.context(source, enforce) as tctx:
        tctx.configure(enforce, schoolgate_policy=str(path))
        flow = request_flow("www.facebook.com", role="staff")
        enforce.requestheaders(flow)
    assert flow.response is None
    assert flow.metadata[context.DECISION].reason is Reason.RULE_ALLOW


# --- decisions reused only while they hold (decide.holds_until), with a fixed clock ---------


def test_a_decision_is_reused_within_its_window_and_never_past_the_breaks_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy_file = tmp_path / "policy.yaml"
    ends = write_policy(policy_file, in_break=True, break_seconds=600)  # to the second
    made: list[str] = []

    def counting_decide(*args: object) -> Decision:
        made.append(args[1].host)  # type: ignore[attr-defined]
        return decide(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(enforce_module, "decide", counting_decide)
    with enforcing(policy_file, tmp_path) as (enforce, _):
        now = [ends - timedelta(microseconds=1)]
        enforce.clock = lambda: now[0]
        connect = request_flow("www.facebook.com", role="staff")
        data = clienthello("www.facebook.com", "www.facebook.com")
        connect.client_conn = data.context.client
        enforce.http_connect(connect)
        enforce.tls_clienthello(data)
        assert connect.metadata[context.DECISION].allowed  # staff, in the break
        assert context.hello_notes[data.context.client.id].decision.allowed
        assert made == ["www.facebook.com"]  # the ClientHello reused the CONNECT's decision

        now[0] = ends  # the break's last instant is over: decided again, blocked
        later = clienthello("www.facebook.com", "www.facebook.com")
        later.context.client.id = data.context.client.id
        enforce.tls_clienthello(later)
        note = context.hello_notes[data.context.client.id]
        assert not note.decision.allowed
        assert note.decision.reason is Reason.RULE_BLOCK
        assert made == ["www.facebook.com"] * 2
        request = request_flow("www.facebook.com", role="staff")
        enforce.requestheaders(request)
        assert request.response is not None
        assert request.response.status_code == 403


async def test_a_decision_is_never_reused_past_an_exceptions_expiry(
    addon: tuple[Enforce, taddons.context], tmp_path: Path
) -> None:
    enforce, tctx = addon
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    grant = ApprovedException(
        id="ex-1",
        scope=Scope.ROLE,
        who="pupil",
        target_kind=TargetKind.HOST,
        target="www.facebook.com",
        starts=expiry - timedelta(hours=1),
        ends=expiry,
    )
    overrides = tmp_path / "overrides.json"
    write_overrides_atomically(overrides, Overrides(exceptions=(grant,)))
    tctx.configure(enforce, schoolgate_overrides=str(overrides))
    await enforce._source.refresh()
    now = [expiry - timedelta(microseconds=1)]
    enforce.clock = lambda: now[0]

    def decided() -> Decision:
        flow = request_flow("www.facebook.com", role="pupil")
        enforce.requestheaders(flow)
        decision: Decision = flow.metadata[context.DECISION]
        return decision

    first = decided()
    assert first.reason is Reason.EXCEPTION
    assert decided() is first  # reused: the same snapshots, the same second
    now[0] = expiry
    assert decided().reason is Reason.RULE_BLOCK
    now[0] = expiry - timedelta(seconds=1)  # a clock that went back: decided again
    assert decided().reason is Reason.EXCEPTION


async def test_new_snapshots_forget_the_decisions_made_with_the_old_ones(
    addon: tuple[Enforce, taddons.context], tmp_path: Path
) -> None:
    enforce, tctx = addon
    overrides = tmp_path / "overrides.json"
    write_overrides_atomically(overrides, Overrides())
    tctx.configure(enforce, schoolgate_overrides=str(overrides))
    await enforce._source.refresh()
    enforce.requestheaders(request_flow("learning.test", role="staff"))
    assert enforce._reusable  # remembered for reuse
    await enforce._source.refresh()  # nothing changed: kept
    assert enforce._reusable
    write_overrides_atomically(
        overrides,
        Overrides(local_list=(LocalListEntry("learning.test", Verdict.BLOCK, "reported"),)),
    )
    await enforce._source.refresh()
    assert not enforce._reusable  # nothing made with the old overrides is kept alive
    flow = request_flow("learning.test", role="staff")
    enforce.requestheaders(flow)
    assert flow.metadata[context.DECISION].reason is Reason.LOCAL_BLOCK
