"""The policy page's versions, edit, preview and restore (admin_api/policy_view.py and
admin_api/services/policy_versions.py), on SQLite and PostgreSQL: a save needs a reason and a
valid text (located errors, file untouched), writes the file and records a version with its
diff in the audit log; an outside edit is noticed as a version; a restore brings an old text
back; the preview replays recorded decisions; only IT may do any of it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.deps import get_now
from schoolgate.admin_api.resources import Resources, make_resources
from schoolgate.admin_api.services.lists import find_entry
from schoolgate.policy.model import Reason, Verdict
from schoolgate.store import policy_versions as versions
from schoolgate.store.admin_models import AuditEntryRow
from schoolgate.store.models import EventRow
from schoolgate.store.policy_files import seed_policy_path
from tests.admin_api.conftest import client_for, settings_for

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # a Monday afternoon
BREAK_RULE = "    categories: [facebook, social]\n    when: [break]\n"
NO_FACEBOOK_AT_BREAK = "    categories: [social]\n    when: [break]\n"


@dataclass
class Admin:
    app: FastAPI
    resources: Resources
    path: Path


@pytest.fixture
def admin(database_url: str, tmp_path: Path) -> Iterator[Admin]:
    path = tmp_path / "policy.yaml"
    path.write_bytes(seed_policy_path().read_bytes())
    made = make_resources(settings_for(database_url, tmp_path / "data", policy_file=path))
    app = make_app(resources=made)
    app.dependency_overrides[get_now] = lambda: NOW
    yield Admin(app, made, path)
    app.dependency_overrides.clear()
    made.close()


def _it(admin: Admin) -> tuple[TestClient, str]:
    return client_for(admin.app, "it_technician")


def _latest(admin: Admin) -> versions.PolicyVersionRow:
    with admin.resources.sessions() as session:
        row = versions.latest(session, versions.POLICY)
    assert row is not None
    return row


def test_the_page_says_which_version_runs_and_records_the_file(admin: Admin) -> None:
    client, _ = _it(admin)
    page = client.get("/policy")
    assert page.status_code == 200
    row = _latest(admin)
    assert row.text == admin.path.read_text(encoding="utf-8")
    assert f"version {row.id}" in page.text
    assert versions.short_id(row.sha256) in page.text


def test_a_save_writes_the_file_records_a_version_and_audits_the_diff(admin: Admin) -> None:
    client, token = _it(admin)
    client.get("/policy")
    before = _latest(admin)
    new_text = admin.path.read_text(encoding="utf-8").replace(BREAK_RULE, NO_FACEBOOK_AT_BREAK)
    answer = client.post(
        "/policy/edit",
        data={
            "csrf_token": token,
            "text": new_text,
            "reason": "Governors: no Facebook at break",
            "action": "save",
        },
    )
    assert answer.status_code == 303, answer.text
    assert admin.path.read_text(encoding="utf-8") == new_text
    row = _latest(admin)
    assert row.id > before.id
    assert (row.author, row.reason) == ("it1", "Governors: no Facebook at break")
    assert "-    categories: [facebook, social]\n+    categories: [social]\n" in row.diff
    with admin.resources.sessions() as session:
        entry = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.action == "policy.change")
            .order_by(AuditEntryRow.id.desc())
        ).first()
    assert entry is not None
    assert entry.after is not None
    assert entry.after["version"] == row.id
    assert "+    categories: [social]" in str(entry.after["diff"])
    assert f"version {row.id}" in client.get(answer.headers["location"]).text
    audit = client.get("/audit?action=policy.change")
    assert "categories: [social]" in audit.text


def test_a_bad_text_is_refused_with_its_place_and_the_file_is_untouched(admin: Admin) -> None:
    client, token = _it(admin)
    original = admin.path.read_bytes()
    bad = original.decode().replace("categories: [x, instagram]", "categories: [x, gamez]")
    answer = client.post(
        "/policy/edit", data={"csrf_token": token, "text": bad, "reason": "typo", "action": "save"}
    )
    assert answer.status_code == 422
    assert "gamez" in answer.text
    assert "rules[0]" in answer.text
    assert admin.path.read_bytes() == original
    assert [p.name for p in admin.path.parent.iterdir() if p.name.startswith(".")] == []


def test_a_save_needs_a_reason(admin: Admin) -> None:
    client, token = _it(admin)
    original = admin.path.read_bytes()
    answer = client.post(
        "/policy/edit",
        data={
            "csrf_token": token,
            "text": original.decode() + "\n# more\n",
            "reason": "  ",
            "action": "save",
        },
    )
    assert answer.status_code == 422
    assert "why the policy is changing" in answer.text
    assert admin.path.read_bytes() == original


def test_an_outside_edit_becomes_a_version_and_a_restore_brings_the_old_text_back(
    admin: Admin,
) -> None:
    client, token = _it(admin)
    client.get("/policy")
    first = _latest(admin)
    admin.path.write_text(first.text + "\n# edited on the server\n", encoding="utf-8")
    listing = client.get("/policy/versions")
    outside = _latest(admin)
    assert outside.id > first.id
    assert outside.author == versions.OUTSIDE
    assert versions.OUTSIDE in listing.text
    detail = client.get(f"/policy/versions/{outside.id}")
    assert "+# edited on the server" in detail.text
    answer = client.post(
        f"/policy/versions/{first.id}/restore",
        data={"csrf_token": token, "reason": "undo the server edit"},
    )
    assert answer.status_code == 303, answer.text
    assert admin.path.read_text(encoding="utf-8") == first.text
    restored = _latest(admin)
    assert restored.id > outside.id
    assert restored.reason == f"restored version {first.id}: undo the server edit"
    assert restored.sha256 == first.sha256


def test_the_preview_replays_recorded_decisions(admin: Admin) -> None:
    lunch = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
    tag = uuid.uuid4().hex[:8]
    with admin.resources.sessions() as session:
        for i, user in enumerate([f"s1{tag}", f"s1{tag}", f"s2{tag}"]):
            session.add(
                EventRow(
                    id=str(uuid.uuid4()),
                    replica=f"r{tag}",
                    seq=i,
                    at=lunch + timedelta(minutes=i),
                    user=user,
                    role="staff",
                    host="www.facebook.com",
                    verdict=Verdict.ALLOW,
                    reason=Reason.RULE_ALLOW.value,
                    intercepted=False,
                )
            )
        session.commit()
    client, token = _it(admin)
    new_text = admin.path.read_text(encoding="utf-8").replace(BREAK_RULE, NO_FACEBOOK_AT_BREAK)
    answer = client.post(
        "/policy/edit",
        data={
            "csrf_token": token,
            "text": new_text,
            "reason": "",
            "action": "preview",
            "days": "7",
        },
    )
    assert answer.status_code == 200, answer.text
    sentence = re.search(
        r"Staff would lose facebook during lunch: (\d+) requests? by (\d+)", answer.text
    )
    assert sentence is not None
    assert int(sentence.group(1)) >= 3  # other tests' events may share the database
    assert "staff facebook lunch 12:00-13:00: allow -&gt; BLOCK" in answer.text
    assert admin.path.read_text(encoding="utf-8") != new_text  # a preview saves nothing


@pytest.mark.parametrize("role", ["business_manager", "dsl", "staff", "pupil"])
def test_only_it_may_change_the_policy(admin: Admin, role: str) -> None:
    client, token = client_for(admin.app, role)
    original = admin.path.read_bytes()
    answer = client.post(
        "/policy/edit",
        data={"csrf_token": token, "text": "name: x\n", "reason": "r", "action": "save"},
    )
    assert answer.status_code == 403
    assert client.get("/policy/versions").status_code == 403
    assert admin.path.read_bytes() == original


def test_the_admin_and_the_gateway_give_the_same_short_version(admin: Admin) -> None:
    from schoolgate.proxy_addons.policy_source import (
        policy_version,  # schoolgate_policy_info's label
    )

    client, token = _it(admin)
    new_text = admin.path.read_text(encoding="utf-8") + "\n# a comment, so a new version\n"
    answer = client.post(
        "/policy/edit",
        data={"csrf_token": token, "text": new_text, "reason": "comment", "action": "save"},
    )
    assert answer.status_code == 303, answer.text
    row = _latest(admin)
    assert versions.short_id(row.sha256) == policy_version(admin.path)
    api = client.get("/api/policy/versions").json()
    assert api["running"]["id"] == row.id
    assert api["running"]["short"] == policy_version(admin.path)


def test_after_a_save_the_page_names_the_real_file_not_a_temporary(admin: Admin) -> None:
    client, token = _it(admin)
    new_text = admin.path.read_text(encoding="utf-8") + "\n# named after the file\n"
    answer = client.post(
        "/policy/edit",
        data={"csrf_token": token, "text": new_text, "reason": "r", "action": "save"},
    )
    assert answer.status_code == 303
    assert admin.resources.policy.source == str(admin.path)
    assert ".policy-check-" not in client.get("/policy").text


@pytest.mark.parametrize(
    ("method", "url", "data", "status"),
    [
        ("post", "/policy/edit", {"text": "a" * 600_000, "reason": "r", "action": "save"}, 422),
        (
            "post",
            "/policy/edit",
            {"text": "name: [unclosed\n", "reason": "r", "action": "save"},
            422,
        ),
        (
            "post",
            "/policy/edit",
            {"text": "x", "reason": "r", "action": "preview", "days": "400"},
            422,
        ),
        (
            "post",
            "/policy/edit",
            {"text": "x", "reason": "r", "action": "preview", "days": "soon"},
            422,
        ),
        ("post", "/policy/edit", {"text": "x", "reason": "r" * 2000, "action": "save"}, 422),
        ("get", "/policy/versions/999999999", None, 404),
        ("get", "/policy/versions/abc", None, 422),
        ("get", "/policy/versions/99999999999999999999", None, 422),
        ("post", "/policy/versions/999999999/restore", {"reason": "r"}, 404),
    ],
)
def test_hostile_input_gets_a_clear_answer_and_changes_nothing(
    admin: Admin, method: str, url: str, data: dict[str, str] | None, status: int
) -> None:
    client, token = _it(admin)
    original = admin.path.read_bytes()
    answer = (
        client.get(url)
        if method == "get"
        else client.post(url, data={"csrf_token": token, **(data or {})})
    )
    assert answer.status_code == status, answer.text[:500]
    assert admin.path.read_bytes() == original


def test_a_restore_needs_a_reason(admin: Admin) -> None:
    client, token = _it(admin)
    client.get("/policy")
    first = _latest(admin)
    original = admin.path.read_bytes()
    answer = client.post(
        f"/policy/versions/{first.id}/restore", data={"csrf_token": token, "reason": ""}
    )
    assert answer.status_code == 422
    assert "why the policy is changing" in answer.text
    assert admin.path.read_bytes() == original


def test_the_seed_policy_cannot_be_edited_and_the_page_says_how(app: FastAPI) -> None:
    client, token = client_for(app, "it_technician")
    page = client.get("/policy")
    assert page.status_code == 200
    assert "SCHOOLGATE_POLICY_FILE" in page.text
    assert 'id="edit-form"' not in page.text
    answer = client.post(
        "/policy/edit",
        data={"csrf_token": token, "text": "name: x\n", "reason": "r", "action": "save"},
    )
    assert answer.status_code == 409
    assert "seed policy" in answer.text


def test_local_list_changes_become_versions_and_an_old_one_can_be_restored(admin: Admin) -> None:
    from schoolgate.store.models import LocalListRow

    tag = uuid.uuid4().hex[:8]
    first_host, second_host = f"first-{tag}.example", f"second-{tag}.example"
    client, token = _it(admin)
    with admin.resources.sessions() as session:
        session.add(
            LocalListRow(
                host=first_host,
                verdict=Verdict.BLOCK,
                note="reported",
                added_by="bursar1",
                added_at=NOW,
            )
        )
        session.commit()
    client.get("/policy/versions")
    with admin.resources.sessions() as session:
        kept = versions.latest(session, versions.LISTS)
        assert kept is not None
        assert f"block {first_host}  # reported\n" in kept.text
        session.delete(find_entry(session, first_host, None))
        session.add(
            LocalListRow(
                host=second_host, verdict=Verdict.BLOCK, note="", added_by="bursar1", added_at=NOW
            )
        )
        session.commit()
    answer = client.post(
        f"/policy/versions/{kept.id}/restore",
        data={"csrf_token": token, "reason": "the old block was right"},
    )
    assert answer.status_code == 303, answer.text
    with admin.resources.sessions() as session:
        assert find_entry(session, first_host, None) is not None
        assert find_entry(session, second_host, None) is None
        latest = versions.latest(session, versions.LISTS)
        assert latest is not None
        assert latest.text == kept.text
        assert latest.reason == f"restored version {kept.id}: the old block was right"
        between = [
            r for r in versions.history(session, versions.LISTS) if kept.id < r.id < latest.id
        ]
        assert any(second_host in r.text for r in between)  # the change in between was kept
        entry = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.action == "list.restore")
            .order_by(AuditEntryRow.id.desc())
        ).first()
        assert entry is not None
        assert entry.after is not None
        assert f"-block {second_host}" in str(entry.after["diff"])


def test_a_proposed_policy_runs_in_shadow_shows_its_differences_and_is_promoted(
    admin: Admin,
) -> None:
    from schoolgate.store.models import ShadowDifferenceRow

    client, token = _it(admin)
    original = admin.path.read_text(encoding="utf-8")
    proposed = original.replace(BREAK_RULE, NO_FACEBOOK_AT_BREAK)
    refused = client.post(
        "/policy/edit",
        data={
            "csrf_token": token,
            "text": proposed,
            "shadow_roles": "staff, wizards",
            "action": "shadow",
        },
    )
    assert refused.status_code == 422
    assert "Unknown role &#39;wizards&#39;" in refused.text
    answer = client.post(
        "/policy/edit",
        data={"csrf_token": token, "text": proposed, "shadow_roles": "staff", "action": "shadow"},
    )
    assert answer.status_code == 303, answer.text
    shadow_file = admin.path.parent / versions.SHADOW_POLICY
    assert shadow_file.read_text(encoding="utf-8") == proposed
    assert (admin.path.parent / versions.SHADOW_ROLES).read_text() == "staff\n"
    assert admin.path.read_text(encoding="utf-8") == original  # nothing enforced
    sha = versions.content_hash(proposed)
    with admin.resources.sessions() as session:
        for requests in (2, 3):
            session.add(
                ShadowDifferenceRow(
                    shadow_sha256=sha,
                    at=NOW,
                    role="staff",
                    host="facebook.com",
                    live="allow",
                    shadow="block",
                    rule="staff-social-media-otherwise",
                    requests=requests,
                )
            )
        session.commit()
    report = client.get("/policy/shadow")
    assert report.status_code == 200
    assert "being tried in shadow for staff" in report.text
    assert "facebook.com" in report.text
    assert "<td>5</td>" in report.text
    assert (
        client.post("/policy/shadow/promote", data={"csrf_token": token, "reason": ""}).status_code
        == 422
    )
    done = client.post(
        "/policy/shadow/promote",
        data={"csrf_token": token, "reason": "a week in shadow, as expected"},
    )
    assert done.status_code == 303, done.text
    assert admin.path.read_text(encoding="utf-8") == proposed
    assert not shadow_file.exists()
    assert _latest(admin).reason == "promoted from shadow: a week in shadow, as expected"


def test_a_shadow_can_be_discarded(admin: Admin) -> None:
    client, token = _it(admin)
    original = admin.path.read_text(encoding="utf-8")
    client.post(
        "/policy/edit",
        data={"csrf_token": token, "text": original + "\n# trial\n", "action": "shadow"},
    )
    assert (admin.path.parent / versions.SHADOW_POLICY).exists()
    done = client.post("/policy/shadow/discard", data={"csrf_token": token})
    assert done.status_code == 303
    assert not (admin.path.parent / versions.SHADOW_POLICY).exists()
    assert admin.path.read_text(encoding="utf-8") == original
    assert "Nothing is being tried in shadow" in client.get("/policy/shadow").text
    assert client.post("/policy/shadow/discard", data={"csrf_token": token}).status_code == 404
