"""RecordEvents: building events (pure tables), and the addon after real Enforce and Detect
addons writing through the real EventWriter into a real SQLite database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.connection import Server
from mitmproxy.proxy import context as proxy_context
from mitmproxy.test import taddons, tflow, tutils
from mitmproxy.tls import ClientHello, ClientHelloData, TlsData
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from schoolgate.policy.model import Decision, Reason, Verdict
from schoolgate.policy.techniques import Technique
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.context import Identity, IdentitySource
from schoolgate.proxy_addons.detect import Detect
from schoolgate.proxy_addons.enforce import Enforce
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.proxy_addons.record import RecordEvents
from schoolgate.proxy_addons.recording import make_event, parse_devices, redact_query
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import (
    AlertRow,
    CircumventionAttemptRow,
    EventRow,
    SanctionRow,
    SanctionState,
)
from tests.support.gateway import write_policy
from tests.support.tls_hello import ECH, ECH_PAYLOAD, client_hello_body

AT = datetime(2025, 3, 4, 10, 15, tzinfo=UTC)
BLOCK = Decision(
    Verdict.BLOCK, Reason.RULE_BLOCK, rule="x-and-instagram", category="x", host="x.com"
)
PUPIL = Identity(role="pupil", source=IdentitySource.LOCAL, user="pupil1")


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("q=cats&page=2", "q=cats&page=2"),
        ("user=a&password=hunter2", "user=a&password=[redacted]"),
        ("access_token=abc&x=1", "access_token=[redacted]&x=1"),
        ("code=123&state=s", "code=[redacted]&state=s"),
        ("sessionid=zz", "sessionid=[redacted]"),
        ("flag", "flag"),
    ],
)
def test_redact_query(query: str, kept: str) -> None:
    assert redact_query(query) == kept


def event(
    *,
    intercepted: bool,
    target: str | None = "/search?q=minecraft+mods",
    technique: str | None = None,
    host: str = "www.google.com",
) -> object:
    return make_event(
        decision=BLOCK,
        at=AT,
        host=host,
        identity=PUPIL,
        role="pupil",
        ip="10.0.0.5",
        device="ICT-01",
        method="GET",
        scheme="https",
        port=443,
        target=target,
        intercepted=intercepted,
        technique=technique,
        evidence={"page": "www.bbc.co.uk"} if technique else None,
    )


def test_intercepted_events_keep_path_query_and_search_terms() -> None:
    made = event(intercepted=True)
    assert (made.path, made.query, made.search_terms) == (  # type: ignore[attr-defined]
        "/search",
        "q=minecraft+mods",
        "minecraft mods",
    )
    assert (made.user, made.role, made.identity_source, made.device) == (  # type: ignore[attr-defined]
        "pupil1",
        "pupil",
        "local",
        "ICT-01",
    )


def test_relayed_events_keep_no_path_query_or_search_terms() -> None:
    made = event(intercepted=False)
    assert (made.path, made.query, made.search_terms) == (None, None, None)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("technique", "counted"),
    [(None, None), (Technique.ARCHIVE_VIEWER, True), (Technique.EMBEDDED_WIDGET, False)],
)
def test_techniques_make_attempts(technique: str | None, counted: bool | None) -> None:
    made = event(intercepted=True, technique=technique)
    attempt = made.attempt  # type: ignore[attr-defined]
    assert (attempt.counted if attempt else None) is counted
    if attempt:
        assert attempt.evidence == {"page": "www.bbc.co.uk"}


def test_parse_devices() -> None:
    assert parse_devices("10.0.0.5: ICT-01\n'::ffff:10.0.0.6': ' Library-2 '\n", source="d") == {
        "10.0.0.5": "ICT-01",
        "10.0.0.6": "Library-2",
    }
    with pytest.raises(ValueError, match=r"d: 2 problem") as info:
        parse_devices("nonsense: a\n10.0.0.1: [x]\n", source="d")
    assert "not an IP address" in str(info.value)
    with pytest.raises(ValueError, match="expected a mapping"):
        parse_devices("- a\n", source="d")


# --- the addon, writing to SQLite ---------------------------------------------------------------


@dataclass
class Rig:
    enforce: Enforce
    detect: Detect
    record: RecordEvents
    engine: Engine
    source: PolicySource

    def request(
        self,
        host: str,
        path: str = "/",
        *,
        identity: Identity = PUPIL,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> http.HTTPFlow:
        flow = tflow.tflow(
            req=tutils.treq(
                host=host,
                port=443,
                scheme=b"https",
                authority=b"",
                path=path.encode(),
                content=body,
            )
        )
        flow.request.headers["Host"] = host
        for name, value in (headers or {}).items():
            flow.request.headers[name] = value
        flow.client_conn.sni = host
        flow.metadata[context.IDENTITY] = identity
        for addon in (self.enforce, self.detect, self.record):
            addon.requestheaders(flow)
        return flow

    def hello(self, sni: str, extensions: dict[int, bytes] | None = None) -> ClientHelloData:
        ctx = proxy_context.Context(tflow.tclient_conn(), taddons.context().options)  # type: ignore[no-untyped-call]
        ctx.server = Server(address=(sni, 443))
        data = ClientHelloData(ctx, ClientHello(client_hello_body(sni, extensions)))
        for addon in (self.enforce, self.detect, self.record):
            addon.tls_clienthello(data)
        return data

    def client_gives_up(self, data: ClientHelloData, error: str) -> None:
        """The client aborts the gateway's handshake with `error` (tls_failed_client)."""
        data.context.client.error = error
        for addon in (self.detect, self.record):
            addon.tls_failed_client(TlsData(data.context.client, data.context))

    def events(self) -> list[EventRow]:
        with Session(self.engine) as session:
            return list(session.scalars(select(EventRow).order_by(EventRow.seq)))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)
    url = f"sqlite:///{tmp_path / 'sg.db'}"
    upgrade(url)
    source = PolicySource()
    enforce, detect, record = Enforce(source), Detect(), RecordEvents()
    with taddons.context(source, enforce, detect, record) as tctx:
        tctx.configure(
            enforce,
            schoolgate_policy=str(policy),
            schoolgate_secret_file=str(tmp_path / "secret"),
            schoolgate_database_url=url,
            schoolgate_spool_dir=str(tmp_path / "spool"),
            schoolgate_siem=str(tmp_path / "siem.jsonl"),
        )
        record.running()
        yield Rig(enforce, detect, record, make_engine(url), source)
        await record.done()


async def test_allowed_blocked_and_relayed_traffic_is_recorded(rig: Rig, tmp_path: Path) -> None:
    rig.request(
        "www.google.com",
        "/search?q=volcano+facts&password=hunter2",
        headers={"Cookie": "SID=cookie-secret"},
        body=b"password=body-secret",
    )
    rig.request("x.com", "/home")
    rig.hello("learning.test")  # uncategorised and allowed: passed through
    await rig.record.done()
    google, x, relayed = rig.events()
    assert (google.verdict, google.host, google.search_terms, google.path, google.query) == (
        Verdict.ALLOW,
        "www.google.com",
        "volcano facts",
        "/search",
        "q=volcano+facts&password=[redacted]",
    )
    assert (google.user, google.role, google.identity_source, google.intercepted) == (
        "pupil1",
        "pupil",
        "local",
        True,
    )
    assert (x.verdict, x.reason, x.rule, x.category) == (
        Verdict.BLOCK,
        "rule_block",
        "x-and-instagram",
        "x",
    )
    assert (relayed.host, relayed.intercepted, relayed.path, relayed.port) == (
        "learning.test",
        False,
        None,
        443,
    )
    stored = repr([vars(e) for e in rig.events()]) + (tmp_path / "siem.jsonl").read_text()
    for secret in ("hunter2", "cookie-secret", "body-secret"):
        assert secret not in stored
    assert "volcano facts" in (tmp_path / "siem.jsonl").read_text()


async def test_attempts_are_recorded_with_evidence_and_widgets_are_not_counted(rig: Rig) -> None:
    rig.request("web.archive.org", "/web/2024/https://www.instagram.com/")
    rig.request(
        "platform.twitter.com",
        "/embed",
        headers={
            "sec-fetch-dest": "iframe",
            "sec-fetch-site": "cross-site",
            "referer": "https://www.bbc.co.uk/news",
        },
    )
    dummy = rig.hello("learning.test", {ECH: ECH_PAYLOAD})  # a browser's dummy: no attempt
    insisting = rig.hello("learning.test", {ECH: ECH_PAYLOAD})
    rig.client_gives_up(
        insisting, "OpenSSL Error([('SSL routines', '', 'tlsv1 alert ech required')])"
    )
    assert not dummy.ignore_connection  # never relayed unread
    await rig.record.done()
    with Session(rig.engine) as session:
        attempts = {a.technique: a for a in session.scalars(select(CircumventionAttemptRow))}
    assert set(attempts) == {Technique.ARCHIVE_VIEWER, Technique.EMBEDDED_WIDGET, Technique.ECH}
    assert attempts[Technique.ARCHIVE_VIEWER].evidence["target"] == "www.instagram.com"
    assert attempts[Technique.ARCHIVE_VIEWER].counted
    assert not attempts[Technique.EMBEDDED_WIDGET].counted
    assert attempts[Technique.ECH].evidence["outer_sni"] == "learning.test"
    assert attempts[Technique.ECH].user is None  # no CONNECT seen: nobody known
    with Session(rig.engine) as session:
        alerts = list(session.scalars(select(AlertRow)))
    # one alert per counted attempt; the widget raises none
    assert sorted(a.details["technique"] for a in alerts) == ["archive_viewer", "ech"]


@pytest.mark.parametrize(
    ("tail", "state", "alert"),
    [
        ("", SanctionState.RECOMMENDED, "sanction_recommended"),  # the default: the DSL decides
        ("circumvention: {on_threshold: sanction}\n", SanctionState.PLACED, "sanction_placed"),
    ],
)
async def test_three_attempts_recommend_or_place_a_sanction(
    rig: Rig, tmp_path: Path, tail: str, state: SanctionState, alert: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text() + tail)
    with taddons.context(rig.record) as tctx:  # each request its own act (no act window)
        tctx.configure(rig.record, schoolgate_act_seconds=0)
    await rig.source.refresh()
    for path in (
        "/web/2024/https://x.com/",
        "/web/2024/https://www.instagram.com/",
        "/web/2024/https://twitter.com/",
    ):
        flow = rig.request("web.archive.org", path)
        assert flow.response is not None
    await rig.record.done()
    with Session(rig.engine) as session:
        (sanction,) = session.scalars(select(SanctionRow))
        assert (sanction.user, sanction.state) == ("pupil1", state)
        kinds = sorted(a.kind for a in session.scalars(select(AlertRow)))
    assert kinds == ["circumvention_attempt", alert]  # attempt alerts are throttled


async def test_recording_off_records_nothing(rig: Rig) -> None:
    with taddons.context(rig.record) as tctx:
        tctx.configure(rig.record, schoolgate_recording=False)
        rig.request("x.com")
    await rig.record.done()
    assert rig.events() == []
