"""PolicySource and Enforce with a trust file (docs/trust.md): each client decided with its
school's policy by its address, a client in no school refused, the trust reloaded when any of
its files changes, and a broken change refused while the running trust stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons, tflow, tutils

from schoolgate.policy.model import Decision, Reason
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.context import Identity, IdentitySource
from schoolgate.proxy_addons.enforce import Enforce
from schoolgate.proxy_addons.policy_source import PolicySource
from tests.support.policies import POLICY_TEXT
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
        assert not enforce.passes_through("learning.example", 443, identity)  # no address
        # the front door's first look, by the client's school (issue 17): Oak blocks games
        assert not enforce.passes_through("games.example", 443, identity, "10.1.2.3")
        assert enforce.passes_through("games.example", 443, identity, "10.2.2.3")
        assert enforce.passes_through("learning.example", 443, identity, "::ffff:10.1.2.3")
        assert not enforce.passes_through("learning.example", 443, identity, "10.3.0.1")

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
