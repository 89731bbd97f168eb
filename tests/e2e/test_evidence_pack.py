"""The annual review's evidence pack (admin_api/evidence.py, services/evidence.py, pdf.py):
the live test of each rule through a real gateway process (as its test accounts, for the
sites the policy blocks; what is allowed is never fetched), pass and fail, the lists'
freshness, the year's counts, the printable page and the PDF."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.deps import current_user
from schoolgate.admin_api.evidence import review_gateway
from schoolgate.admin_api.services.evidence import Account, LiveGateway, build_pack
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.policy_files import load_policy, shipped_lists_dir
from tests.admin_api.conftest import USERS, settings_for
from tests.support.gateway import (
    PASSWORD,
    Gateway,
    running_gateway,
    write_identity,
    write_policy,
)

pytestmark = pytest.mark.e2e
ACCOUNTS = {
    "pupil": Account("pupil1", PASSWORD),
    "staff": Account("staff1", PASSWORD),
    "social_media_manager": Account("smm1", PASSWORD),
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    folder = tmp_path_factory.mktemp("review-gw")
    policy = folder / "policy.yaml"
    write_policy(policy, in_break=False)  # lesson time: staff Facebook blocked too
    with running_gateway(folder, policy=policy, identity=write_identity(folder / "id")) as gw:
        yield gw, policy


def admin_for(tmp_path: Path, policy: Path, gw: Gateway) -> FastAPI:
    url = f"sqlite:///{tmp_path / 'admin.db'}"
    upgrade(url)
    app = make_app(settings_for(url, tmp_path / "data", policy_file=policy))
    app.dependency_overrides[current_user] = lambda: USERS["dsl"]
    app.dependency_overrides[review_gateway] = lambda: LiveGateway(gw.proxy_url(), ACCOUNTS)
    return app


def test_every_blocking_rule_holds_through_the_gateway(
    gateway: tuple[Gateway, Path], tmp_path: Path, artefacts_dir: Path
) -> None:
    gw, policy = gateway
    client = TestClient(admin_for(tmp_path, policy, gw))
    page = client.get("/review", params={"date": datetime.now(UTC).date().isoformat()})
    assert page.status_code == 200, page.text
    (artefacts_dir / "review-evidence-pack.html").write_text(page.text)
    text = page.text
    assert "0 failed" in text
    assert "Some rules did not hold" not in text
    for host in ("x.com", "instagram.com", "proxysite.test", "tiktok.com"):
        assert f"<code>{host}</code>" in text
    assert "not tried: the policy allows it now" in text  # e.g. staff and TikTok
    for contacted in ("x.com", "instagram.com", "proxysite.test"):
        assert not gw.contacted(contacted)  # blocked, so never fetched from the origin
    assert "Designated Safeguarding Lead" in text  # the sign-off
    pdf = client.get("/review.pdf", params={"date": datetime.now(UTC).date().isoformat()})
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    (artefacts_dir / "review-evidence-pack.pdf").write_bytes(pdf.content)


def test_a_rule_the_gateway_does_not_enforce_fails(
    gateway: tuple[Gateway, Path], tmp_path: Path
) -> None:
    gw, running = gateway
    # The admin reviews a stricter policy than the gateway runs: staff may not see the
    # violence category either (the running policy blocks it for pupils only, at any time).
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(
        running.read_text().replace(
            "rules:\n",
            "rules:\n  - {name: staff-no-social, roles: [staff], categories: [violence],"
            " action: block}\n",
            1,
        )
    )
    client = TestClient(admin_for(tmp_path, stricter, gw))
    text = client.get("/review", params={"date": "2026-12-18"}).text
    assert "1 failed" in text
    assert "Some rules did not hold" in text
    assert "staff-no-social" in text


def test_without_a_gateway_nothing_is_tried_and_the_lists_are_dated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'unit.db'}"
    upgrade(url)
    engine = make_engine(url)
    policy = load_policy()
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        pack = build_pack(
            session,
            policy=policy,
            day=datetime(2026, 12, 18).date(),
            now=datetime(2026, 12, 18, 10, tzinfo=UTC),
            list_folders=[shipped_lists_dir()],
            gateway=None,
        )
    engine.dispose()
    assert pack.failed == 0
    assert pack.passed == 0
    assert all(c.live.startswith("not tried") for c in pack.checks)
    assert any("X (Twitter)" in line for line in pack.rules_in_words)
    social = next(f for f in pack.lists if f.file == "social.txt")
    assert social.compiled is not None
    assert social.domains > 10
    assert pack.counts.blocked == 0
