"""PolicySource and Enforce with a trust file (docs/trust.md): each client decided with its
school's policy by its address, a client in no school refused, the trust reloaded when any of
its files changes, and a broken change refused while the running trust stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow, tutils
from mitmproxy.tls import ClientHello, TlsData

from schoolgate.policy.model import Decision, Reason
from schoolgate.policy.techniques import Technique
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.context import Identity, IdentitySource
from schoolgate.proxy_addons.detect import Detect
from schoolgate.proxy_addons.enforce import Enforce
from schoolgate.proxy_addons.policy_source import PolicySource
from tests.proxy_addons.test_enforce import clienthello
from tests.support.policies import POLICY_TEXT
from tests.support.tls_hello import ECH, ECH_PAYLOAD, client_hello_body
from tests.support.trusts import list_text, write_trust

TRUST = """
name: Test Trust
base: base.yaml
locks: {categories: [social]}
schools:
  oak: {name: Oak, subnets: [10.1.0.0/16], policy: oak.yaml}
  elm: {name: Elm, subnets: [10.2.0.0/16]}
"""
OAK = """
categories:
  games: {lists: [games.txt]}
rules:
  - {name: oak-games, roles: all, categories: [games], action: block}
"""


def make_trust(folder: Path) -> Path:
    files = {
        "base.yaml": POLICY_TEXT,
        "oak.yaml": OAK,
        "games.txt": list_text("games", "games.example"),
    }
    return write_trust(folder, TRUST, files)


def decide(enforce: Enforce, host: str, client: str) -> Decision:
    flow = tflow.tflow(req=tutils.treq(host=host, port=80, scheme=b"http", authority=b""))
    flow.request.headers["Host"] = host
    flow.client_conn.sni = host
    flow.client_conn.peername = (client, 50000)
    flow.metadata[context.IDENTITY] = Identity(role="staff", source=IdentitySource.LOCAL, user="t")
    enforce.requestheaders(flow)
    decision: Decision = flow.metadata[context.DECISION]
    if decision.reason is Reason.NO_SCHOOL:
        assert flow.response is not None
        assert flow.response.status_code == 403
        assert b"no_school" in flow.response.content
    return decision


async def test_each_client_is_decided_with_its_schools_policy(tmp_path: Path) -> None:
    trust = make_trust(tmp_path)
    source = PolicySource()
    enforce = Enforce(source)
    with taddons.context(source, enforce) as tctx:
        tctx.configure(
            enforce, schoolgate_trust=str(trust), schoolgate_secret_file=str(tmp_path / "secret")
        )
        assert decide(enforce, "games.example", "10.1.2.3").rule == "oak-games"
        assert decide(enforce, "games.example", "::ffff:10.1.2.3").rule == "oak-games"
        assert decide(enforce, "games.example", "10.2.2.3").reason is Reason.DEFAULT_ALLOW
        assert decide(enforce, "games.example", "10.3.0.1").reason is Reason.NO_SCHOOL
        assert decide(enforce, "learning.example", "192.0.2.1").reason is Reason.NO_SCHOOL
        identity = Identity(role="staff", source=IdentitySource.LOCAL, user="t")
        assert not enforce.passes_through("learning.example", 443, identity)  # no client

        def first_look(host: str, address: str) -> bool:
            client = tflow.tclient_conn()
            client.peername = (address, 50000)
            return enforce.passes_through(host, 443, identity, client)

        # the front door's first look, by the client's school (issue 17): Oak blocks games
        assert not first_look("games.example", "10.1.2.3")
        assert first_look("games.example", "10.2.2.3")
        assert first_look("learning.example", "::ffff:10.1.2.3")
        assert not first_look("learning.example", "10.3.0.1")

        # a list of one school changes: the trust is reloaded
        (tmp_path / "games.txt").write_text(list_text("games", "othergames.example"))
        await source.refresh()
        assert source.stats.policy_reloads == 1
        assert decide(enforce, "othergames.example", "10.1.2.3").rule == "oak-games"
        assert decide(enforce, "games.example", "10.1.2.3").reason is Reason.DEFAULT_ALLOW

        # a school's change that loosens a lock is refused; the running trust stays
        version = source.snapshot.version
        (tmp_path / "oak.yaml").write_text(
            OAK + "  - {name: tiktok, roles: all, categories: [social], action: allow}\n"
        )
        await source.refresh()
        assert source.stats.policy_reloads_refused == 1
        assert source.snapshot.version == version
        assert decide(enforce, "othergames.example", "10.1.2.3").rule == "oak-games"
        # the trust's rules decide TikTok (which of the two depends on the hour: lunch or not)
        trusts = ("staff-social-media-at-break", "staff-social-media-otherwise")
        assert decide(enforce, "tiktok.com", "10.1.2.3").rule in trusts


def test_a_trust_and_a_policy_together_are_refused(tmp_path: Path) -> None:
    trust = make_trust(tmp_path)
    source = PolicySource()
    with (
        taddons.context(source) as tctx,
        pytest.raises(exceptions.OptionsError, match="schoolgate_trust or schoolgate_policy"),
    ):
        tctx.configure(
            source, schoolgate_trust=str(trust), schoolgate_policy=str(tmp_path / "base.yaml")
        )


def test_a_broken_trust_is_refused_at_start_naming_the_school(tmp_path: Path) -> None:
    trust = make_trust(tmp_path)
    (tmp_path / "oak.yaml").write_text(
        "rules:\n  - {name: t, roles: all, categories: [social], action: allow}\n"
    )
    source = PolicySource()
    with (
        taddons.context(source) as tctx,
        pytest.raises(exceptions.OptionsError, match=r"school 'oak' .*the trust locks 'social'"),
    ):
        tctx.configure(source, schoolgate_trust=str(trust))


# --- attribution by listener and by directory (docs/trust.md) ----------------------------------

ATTRIBUTED = """
name: Test Trust
base: base.yaml
locks: {categories: [social]}
schools:
  oak:
    name: Oak
    subnets: [10.1.0.0/16]
    listeners: ["10.9.0.1:3128"]
    directory: {group: OakPupils}
    policy: oak.yaml
  elm: {name: Elm, subnets: [10.2.0.0/16], directory: {ou: "ou=Elm,dc=trust,dc=org"}}
"""


FILES = {
    "base.yaml": POLICY_TEXT,
    "oak.yaml": OAK,
    "games.txt": list_text("games", "games.example"),
}


def attributed(
    enforce: Enforce,
    *,
    peer: str,
    sockname: tuple[str, int] = ("10.9.0.9", 3128),
    mode: str = "regular",
    identity: Identity | None = None,
) -> tuple[Decision, str | None]:
    """Decide games.example for a client at `peer` that connected to the gateway's `sockname`;
    (the decision, the school the flow carries)."""
    flow = tflow.tflow(req=tutils.treq(host="games.example", port=80, scheme=b"http"))
    flow.request.authority = ""
    flow.request.headers["Host"] = "games.example"
    flow.client_conn.sni = "games.example"
    flow.client_conn.peername = (peer, 50000)
    flow.client_conn.sockname = sockname
    flow.client_conn.proxy_mode = ProxyMode.parse(mode)
    flow.metadata[context.IDENTITY] = identity or Identity("staff", IdentitySource.LOCAL, "t")
    enforce.requestheaders(flow)
    inputs = flow.metadata[context.INPUTS]
    assert isinstance(inputs, context.DecisionInputs)
    return flow.metadata[context.DECISION], inputs.school


def person(*groups: str, dn: str | None = None) -> Identity:
    return Identity("pupil", IdentitySource.DIRECTORY, "p1", frozenset(groups), dn)


def test_a_request_carries_the_school_of_its_listener_subnet_or_directory(
    tmp_path: Path,
) -> None:
    source = PolicySource()
    enforce = Enforce(source)
    with taddons.context(source, enforce) as tctx:
        tctx.configure(enforce, schoolgate_trust=str(write_trust(tmp_path, ATTRIBUTED, FILES)))
        # Elm's subnet, through Oak's listener: Oak's policy, and the flow says Oak
        decision, school = attributed(enforce, peer="10.2.0.5", sockname=("10.9.0.1", 3128))
        assert (decision.rule, school) == ("oak-games", "oak")
        assert (
            attributed(enforce, peer="::ffff:10.2.0.5", sockname=("::ffff:10.9.0.1", 3128))[1]
            == "oak"
        )
        # another listener of the gateway: the subnet decides
        assert attributed(enforce, peer="10.2.0.5")[1] == "elm"
        # transparent mode reports the client's destination there, never a listener
        assert (
            attributed(enforce, peer="10.2.0.5", sockname=("10.9.0.1", 3128), mode="transparent")[1]
            == "elm"
        )
        # outside every subnet: the signed-in person's group or OU
        decision, school = attributed(enforce, peer="192.0.2.1", identity=person("oakpupils"))
        assert (decision.rule, school) == ("oak-games", "oak")
        elm_pupil = person("Pupils", dn="uid=p1,ou=Elm,dc=trust,dc=org")
        assert attributed(enforce, peer="192.0.2.1", identity=elm_pupil)[1] == "elm"
        # in both schools: refused, never one of them by chance; nobody signed in: refused
        both = person("OakPupils", dn="uid=p1,ou=Elm,dc=trust,dc=org")
        for identity in (both, person("Pupils")):
            decision, school = attributed(enforce, peer="192.0.2.1", identity=identity)
            assert (decision.reason, school) == (Reason.NO_SCHOOL, None)


def test_the_tunnels_clienthello_is_decided_for_the_school_of_its_connect(tmp_path: Path) -> None:
    source = PolicySource()
    enforce = Enforce(source)
    with taddons.context(source, enforce) as tctx:
        tctx.configure(enforce, schoolgate_trust=str(write_trust(tmp_path, ATTRIBUTED, FILES)))
        connect = tflow.tflow(req=tutils.treq(method=b"CONNECT", host="games.example", port=443))
        connect.client_conn.peername = ("192.0.2.1", 50000)
        connect.metadata[context.IDENTITY] = person("OakPupils")
        enforce.http_connect(connect)
        assert connect.metadata[context.INPUTS].school == "oak"
        hello = clienthello("games.example", "games.example")
        hello.context.client = connect.client_conn
        enforce.tls_clienthello(hello)
        note = context.hello_notes[connect.client_conn.id]
        assert (note.school, note.decision.rule) == ("oak", "oak-games")
        enforce.client_disconnected(connect.client_conn)
        assert connect.client_conn.id not in context.hello_notes


def test_detects_notes_keep_the_connections_school(tmp_path: Path) -> None:
    # An ECH ClientHello whose client then gives up (an attempt Detect records on its own
    # note): the note still carries the school Enforce found at the CONNECT, by listener.
    source = PolicySource()
    enforce, detect = Enforce(source), Detect()
    with taddons.context(source, enforce, detect) as tctx:
        tctx.configure(enforce, schoolgate_trust=str(write_trust(tmp_path, ATTRIBUTED, FILES)))
        connect = tflow.tflow(req=tutils.treq(method=b"CONNECT", host="learning.test", port=443))
        connect.client_conn.peername = ("10.2.0.5", 50000)  # Elm's subnet ...
        connect.client_conn.sockname = ("10.9.0.1", 3128)  # ... through Oak's listener
        enforce.http_connect(connect)
        client = connect.client_conn
        hello = clienthello("learning.test", "learning.test")
        hello.context.client = client
        hello.client_hello = ClientHello(client_hello_body("learning.test", {ECH: ECH_PAYLOAD}))
        for addon in (enforce, detect):
            addon.tls_clienthello(hello)
        client.error = "OpenSSL Error([('SSL routines', '', 'tlsv1 alert ech required')])"
        detect.tls_failed_client(TlsData(client, hello.context))
        note = context.hello_notes.pop(client.id)
        assert (note.decision.technique, note.school) == (Technique.ECH, "oak")
