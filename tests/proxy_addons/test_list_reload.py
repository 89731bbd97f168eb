"""The running gateway picks up lists that `lists update` wrote, without a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mitmproxy.test import taddons, tflow, tutils

from schoolgate.policy.model import Reason
from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.context import Identity, IdentitySource
from schoolgate.proxy_addons.enforce import Enforce
from schoolgate.proxy_addons.policy_source import PolicySource
from schoolgate.store.list_updates import update_lists

POLICY = """
name: reload test
roles: {pupil: Pupils, staff: Staff}
default_role: pupil
categories:
  adult: {lists: [adult.txt]}
calendar: {timezone: Europe/London, school_day: {start: "08:45", end: "15:15"}}
rules:
  - {name: adult, roles: all, categories: [adult], action: block}
default: allow
"""
OLD_ADULT = (
    "# category: adult\n# description: d\n# compiled: 2026-11-01\n# source: s\nold.example\n"
)


def decide(enforce: Enforce, host: str) -> Reason:
    flow = tflow.tflow(req=tutils.treq(host=host, port=443, scheme=b"https", authority=b""))
    flow.request.headers["Host"] = host
    flow.client_conn.sni = host
    flow.metadata[context.IDENTITY] = Identity(role="staff", source=IdentitySource.LOCAL, user="t")
    enforce.requestheaders(flow)
    reason: Reason = flow.metadata[context.DECISION].reason
    return reason


async def test_updated_list_is_enforced_without_a_restart(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    (tmp_path / "adult.txt").write_text(OLD_ADULT)
    (tmp_path / "feed.txt").write_text("porn.example\n")
    config = tmp_path / "lists.yaml"
    config.write_text(
        "sources:\n  - {name: feed, category: adult, format: domains, path: feed.txt}\n"
    )
    source = PolicySource()
    enforce = Enforce(source)
    with taddons.context(source, enforce) as tctx:
        tctx.configure(
            enforce, schoolgate_policy=str(policy), schoolgate_secret_file=str(tmp_path / "secret")
        )
        assert decide(enforce, "www.porn.example") is Reason.DEFAULT_ALLOW
        assert decide(enforce, "old.example") is Reason.RULE_BLOCK
        assert update_lists(config, now=datetime.now(UTC), policy_path=policy).ok
        await source.refresh()
        assert source.stats.policy_reloads == 1
        assert decide(enforce, "www.porn.example") is Reason.RULE_BLOCK
        assert decide(enforce, "old.example") is Reason.DEFAULT_ALLOW
        await source.refresh()  # nothing changed: no second reload
        assert source.stats.policy_reloads == 1
