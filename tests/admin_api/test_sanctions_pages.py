"""Sanctions in the admin (admin_api/sanctions.py, services/sanctions.py) on SQLite and
PostgreSQL: place, extend (a recommendation extended is placed), lift, open a supervised
session; each through store/sanctions.py, audited, and seen by the gateway's overrides source
at its next refresh (the change counter moved)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from schoolgate.admin_api.resources import Resources
from schoolgate.store.admin_models import AuditEntryRow
from schoolgate.store.models import (
    CHANGES_ROW,
    ChangeCounter,
    SanctionRow,
    SanctionState,
    SupervisedSessionRow,
)
from schoolgate.store.overrides_db import DatabaseOverridesSource
from schoolgate.store.sanctions import place_sanction
from tests.admin_api.conftest import ROLES, client_for


def _counter(resources: Resources) -> int:
    with resources.sessions() as session:
        return session.get_one(ChangeCounter, CHANGES_ROW).counter


def _actions(resources: Resources, target: str) -> list[str]:
    with resources.sessions() as session:
        return list(
            session.scalars(
                select(AuditEntryRow.action)
                .where(AuditEntryRow.target == target)
                .order_by(AuditEntryRow.id)
            )
        )


def _recommended(resources: Resources, user: str) -> str:
    now = datetime.now(UTC)
    with resources.sessions() as session, session.begin():
        return place_sanction(
            session=session,
            user=user,
            starts=now,
            ends=now + timedelta(days=14),
            reason="3 attempts",
            placed_by="schoolgate",
            state=SanctionState.RECOMMENDED,
        )


def test_a_sanction_placed_reaches_the_gateways_overrides(
    app: FastAPI, resources: Resources
) -> None:
    user = "pupil2"  # a person the directory knows (others are refused); lifted at the end
    reason = f"Tried a VPN twice ({uuid.uuid4().hex[:6]})."
    source = DatabaseOverridesSource(resources.engine)
    source.load_now()
    counter = _counter(resources)
    client, csrf = client_for(app, "dsl")
    answer = client.post(
        "/monitoring/sanctions",
        data={"csrf_token": csrf, "user": user, "days": "7", "reason": reason},
    )
    assert answer.status_code == 303
    assert _counter(resources) > counter
    with resources.sessions() as session:
        row = session.scalars(
            select(SanctionRow).where(SanctionRow.user == user, SanctionRow.reason == reason)
        ).one()
    assert row.state is SanctionState.PLACED
    assert row.placed_by == "dsl1"
    assert row.ends is not None
    assert timedelta(days=6, hours=23) < row.ends - row.starts <= timedelta(days=7)
    assert _actions(resources, f"sanction:{row.id}") == ["sanction.place"]
    assert user in {s.user for s in source.load_now().sanctions}
    assert user in client.get("/monitoring/sanctions").text
    assert (
        client.post(
            f"/api/monitoring/sanctions/{row.id}/lift", headers={"X-CSRF-Token": csrf}, json={}
        ).status_code
        == 200
    )


def test_extend_lift_and_a_supervised_session(app: FastAPI, resources: Resources) -> None:
    user = "pupil2"  # a person the directory knows (others are refused); lifted at the end
    client, csrf = client_for(app, "dsl")
    placed = client.post(
        "/api/monitoring/sanctions",
        headers={"X-CSRF-Token": csrf},
        json={"user": user, "reason": "Repeated proxy use.", "days": 2},
    )
    assert placed.status_code == 201
    sanction_id = placed.json()["id"]
    counter = _counter(resources)
    extended = client.post(
        f"/api/monitoring/sanctions/{sanction_id}/extend",
        headers={"X-CSRF-Token": csrf},
        json={"note": "still trying"},
    )
    assert extended.status_code == 200
    assert extended.json()["ends"] is None  # until lifted
    assert "extended by dsl1: still trying" in extended.json()["note"]
    session_answer = client.post(
        "/monitoring/supervised-sessions", data={"csrf_token": csrf, "user": user, "minutes": "45"}
    )
    assert session_answer.status_code == 303
    with resources.sessions() as session:
        opened = session.scalars(
            select(SupervisedSessionRow)
            .where(SupervisedSessionRow.user == user)
            .order_by(SupervisedSessionRow.starts.desc())
            .limit(1)
        ).one()
    assert opened.ends - opened.starts == timedelta(minutes=45)
    assert opened.opened_by == "dsl1"
    lifted = client.post(
        f"/monitoring/sanctions/{sanction_id}/lift",
        data={"csrf_token": csrf, "reason": "Apologised.", "confirm": "yes"},
    )
    assert lifted.status_code == 303
    assert _counter(resources) >= counter + 3
    with resources.sessions() as session:
        row = session.get_one(SanctionRow, sanction_id)
    assert row.state is SanctionState.LIFTED
    assert row.lifted_by == "dsl1"
    assert _actions(resources, f"sanction:{sanction_id}") == [
        "sanction.place",
        "sanction.extend",
        "sanction.lift",
    ]
    again = client.post(
        f"/api/monitoring/sanctions/{sanction_id}/lift", headers={"X-CSRF-Token": csrf}, json={}
    )
    assert again.status_code == 409


def test_a_recommendation_extended_is_placed(app: FastAPI, resources: Resources) -> None:
    user = f"pupil-{uuid.uuid4().hex[:6]}"
    sanction_id = _recommended(resources, user)
    client, csrf = client_for(app, "dsl")
    page = client.get("/monitoring/sanctions").text
    assert f'action="/monitoring/sanctions/{sanction_id}/extend"' in page
    assert "Place it" in page
    answer = client.post(
        f"/monitoring/sanctions/{sanction_id}/extend", data={"csrf_token": csrf, "days": "14"}
    )
    assert answer.status_code == 303
    with resources.sessions() as session:
        assert session.get_one(SanctionRow, sanction_id).state is SanctionState.PLACED
    assert _actions(resources, f"sanction:{sanction_id}") == ["sanction.confirm"]


@pytest.mark.parametrize(
    ("path", "fields", "field"),
    [
        ("/monitoring/sanctions", {"user": "", "reason": "abc"}, "User"),
        ("/monitoring/sanctions", {"user": "p", "reason": "abc", "days": "0"}, "Days"),
        ("/monitoring/sanctions", {"user": "p", "reason": "abc", "days": "many"}, "Days"),
        ("/monitoring/sanctions", {"user": "p\r\nq", "reason": "abc"}, "User"),
        ("/monitoring/supervised-sessions", {"user": "p", "minutes": "1"}, "Minutes"),
        (
            "/monitoring/supervised-sessions",
            {"user": "p", "minutes": "100000000000000000000"},
            "Minutes",
        ),
    ],
)
def test_bad_input_gets_a_clear_message_and_changes_nothing(
    app: FastAPI, resources: Resources, path: str, fields: dict[str, str], field: str
) -> None:
    client, csrf = client_for(app, "dsl")
    counter = _counter(resources)
    answer = client.post(path, data={"csrf_token": csrf, **fields})
    assert answer.status_code == 422
    assert f'<a href="#{field.lower()}">' in answer.text  # the sentence links to the field
    assert _counter(resources) == counter


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ["extend", "lift"])
def test_only_the_dsl_may_change_a_sanction(
    app: FastAPI, resources: Resources, role: str, action: str
) -> None:
    sanction_id = _recommended(resources, f"pupil-{uuid.uuid4().hex[:6]}")
    client, csrf = client_for(app, role)
    page = client.post(
        f"/monitoring/sanctions/{sanction_id}/{action}",
        data={"csrf_token": csrf, "reason": "Spoke to them.", "confirm": "yes"},
    )
    api = client.post(
        f"/api/monitoring/sanctions/{sanction_id}/{action}", headers={"X-CSRF-Token": csrf}, json={}
    )
    if role == "dsl":
        assert (page.status_code, api.status_code) == (303, 409 if action == "lift" else 200)
        return
    assert page.status_code == (303 if role == "anonymous" else 403)
    assert api.status_code == (401 if role == "anonymous" else 403)
    with resources.sessions() as session:
        assert session.get_one(SanctionRow, sanction_id).state is SanctionState.RECOMMENDED


@pytest.mark.parametrize("sanction_id", [str(uuid.uuid4()), "zzz", "1" * 36])
def test_an_unknown_sanction_is_not_found(app: FastAPI, sanction_id: str) -> None:
    client, csrf = client_for(app, "dsl")
    answer = client.post(
        f"/api/monitoring/sanctions/{sanction_id}/lift", headers={"X-CSRF-Token": csrf}, json={}
    )
    assert answer.status_code == 404
