"""Shadow mode through the real gateway (`schoolgate gateway`, whose addons include Shadow):
the live policy alone is enforced, and the requests where the proposed policy (shadow.yaml,
for the roles in shadow-roles.txt) would decide differently are written to the database."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from schoolgate.proxy_addons.shadow import SHADOW_POLICY, SHADOW_ROLES
from schoolgate.store.db import default_database_url, make_engine
from schoolgate.store.models import ShadowDifferenceRow
from tests.support.gateway import Gateway, running_gateway, wait_for, write_identity, write_policy

pytestmark = pytest.mark.e2e


def fetch(gw: Gateway, user: str, url: str) -> httpx.Response:
    with gw.client(user, trust="both") as client:
        return client.get(url)


def _rows(gw: Gateway) -> list[ShadowDifferenceRow]:
    engine = make_engine(default_database_url(gw.data_dir))
    try:
        with Session(engine) as session:
            return list(session.scalars(select(ShadowDifferenceRow)))
    finally:
        engine.dispose()


def test_the_shadow_records_differences_and_enforces_nothing(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)  # live: now is lesson time, staff may not use Facebook
    write_policy(tmp_path / SHADOW_POLICY, in_break=True)  # shadow: now is lunch, they may
    (tmp_path / SHADOW_ROLES).write_text("staff\n", encoding="utf-8")
    with running_gateway(tmp_path, policy=policy, identity=write_identity(tmp_path / "id")) as gw:
        wait_for(
            lambda: "runs in shadow for staff" in gw.log_text(),
            timeout=30,
            what="the shadow policy loaded",
        )
        for _ in range(3):
            assert fetch(gw, "staff1", "http://facebook.com/").status_code == 403  # live
        assert fetch(gw, "pupil1", "http://facebook.com/").status_code == 403
        assert fetch(gw, "staff1", "https://www.facebook.com/").status_code == 403  # CONNECT
        assert fetch(gw, "staff1", "http://learning.test/").status_code == 200
        assert not gw.contacted("facebook.com")  # enforcement unchanged: never reached
        wait_for(
            lambda: sum(r.requests for r in _rows(gw)) >= 4,
            timeout=30,
            what="the differences written",
        )
        rows = _rows(gw)
    assert {(r.role, r.host, r.live, r.shadow, r.rule) for r in rows} == {
        ("staff", "facebook.com", "block", "allow", "staff-social-media-at-break"),
        ("staff", "www.facebook.com", "block", "allow", "staff-social-media-at-break"),
    }
    # pupils are not in shadow; same verdicts are not differences; HTTPS counts once (CONNECT)
    assert sum(r.requests for r in rows) == 4
