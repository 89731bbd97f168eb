"""A teacher (not only the DSL) opens a supervised session for a sanctioned pupil of their
class (identity file `classes:`: the demo's Teachers-Year5 teaches Year5), from the API, the
DSL's form or the teacher page; it is in the audit log with the teacher's name, and the
gateway's overrides see it. A pupil of another class, or a teacher with no class, is refused
in plain words; the DSL may supervise anyone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from schoolgate.admin_api.deps import current_user
from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.store.admin_models import AuditEntryRow
from schoolgate.store.identity_config import parse_identity_config
from schoolgate.store.models import SupervisedSessionRow
from schoolgate.store.overrides_db import DatabaseOverridesSource
from schoolgate.store.sanctions import lift_sanction, place_sanction
from tests.admin_api.conftest import client_for


@pytest.fixture
def sanctioned(resources: Resources) -> Iterator[list[str]]:
    """pupil1 (Year5) and pupil2 (Year6) are supervised-only."""
    now = datetime.now(UTC)
    with resources.sessions() as session, session.begin():
        ids = [
            place_sanction(
                session=session,
                user=user,
                starts=now - timedelta(minutes=1),
                ends=now + timedelta(days=14),
                reason="3 attempts",
                placed_by="dsl1",
            )
            for user in ("pupil1", "pupil2")
        ]
    yield ids
    with resources.sessions() as session, session.begin():
        for sanction_id in ids:
            lift_sanction(session=session, sanction_id=sanction_id, by="dsl1", at=datetime.now(UTC))


def test_a_teacher_supervises_a_pupil_of_their_class_and_it_is_audited(
    app: FastAPI, resources: Resources, sanctioned: list[str]
) -> None:
    client, csrf = client_for(app, "staff")  # teacher1: Teachers-Year5
    answer = client.post(
        "/api/monitoring/supervised-sessions",
        headers={"X-CSRF-Token": csrf},
        json={"user": "Pupil1", "minutes": 40},
    )
    assert answer.status_code == 201, answer.text
    session_id = answer.json()["id"]
    page = client.post("/teacher", data={"csrf_token": csrf, "user": "pupil1", "minutes": "20"})
    assert page.status_code == 303
    assert page.headers["location"] == "/teacher"
    with resources.sessions() as session:
        row = session.get_one(SupervisedSessionRow, session_id)
        audit = session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.target == f"supervised_session:{session_id}")
        ).one()
    assert row.user == "pupil1"
    assert row.opened_by == "teacher1"
    assert row.ends - row.starts == timedelta(minutes=40)
    assert (audit.actor, audit.action) == ("teacher1", "supervised_session.open")
    supervised = DatabaseOverridesSource(resources.engine).load_now().supervised_sessions
    assert any(s.user == "pupil1" for s in supervised)


@pytest.mark.parametrize("how", ["api", "dsl_form", "teacher_page"])
def test_a_pupil_of_another_class_is_refused(
    app: FastAPI, resources: Resources, sanctioned: list[str], how: str
) -> None:
    client, csrf = client_for(app, "staff")
    if how == "api":
        answer = client.post(
            "/api/monitoring/supervised-sessions",
            headers={"X-CSRF-Token": csrf},
            json={"user": "pupil2", "minutes": 40},
        )
        assert answer.status_code == 403
        assert "not in your class" in answer.text
    else:
        path = "/monitoring/supervised-sessions" if how == "dsl_form" else "/teacher"
        answer = client.post(path, data={"csrf_token": csrf, "user": "pupil2", "minutes": "40"})
        assert answer.status_code == 403
        assert "pupil2 is not in your class" in answer.text
    with resources.sessions() as session:
        opened = session.scalars(
            select(SupervisedSessionRow).where(
                SupervisedSessionRow.user == "pupil2", SupervisedSessionRow.opened_by == "teacher1"
            )
        ).all()
    assert opened == []


def test_a_teacher_with_no_class_supervises_nobody(app: FastAPI, sanctioned: list[str]) -> None:
    client, csrf = client_for(app, "business_manager")  # staff, teaches no class
    answer = client.post(
        "/api/monitoring/supervised-sessions",
        headers={"X-CSRF-Token": csrf},
        json={"user": "pupil1", "minutes": 40},
    )
    assert answer.status_code == 403
    assert "does not say which class you teach" in answer.text
    page = client.get("/teacher")
    assert page.status_code == 200
    assert "does not say which class you teach" in page.text
    assert "pupil1" not in page.text


def test_the_dsl_supervises_anyone(
    app: FastAPI, resources: Resources, sanctioned: list[str]
) -> None:
    client, csrf = client_for(app, "dsl")
    answer = client.post(
        "/api/monitoring/supervised-sessions",
        headers={"X-CSRF-Token": csrf},
        json={"user": "pupil2", "minutes": 30},
    )
    assert answer.status_code == 201
    page = client.get("/teacher")
    assert "Pupil One (Year 5)" in page.text
    assert "Pupil Two (Year 6)" in page.text


def test_the_teacher_page_lists_only_their_class(app: FastAPI, sanctioned: list[str]) -> None:
    client, _csrf = client_for(app, "staff")
    page = client.get("/teacher")
    assert page.status_code == 200
    assert "Your class: Year5." in page.text
    assert "Pupil One (Year 5)" in page.text
    assert "Pupil Two (Year 6)" not in page.text
    assert 'href="/teacher"' in page.text  # in the navigation


def test_class_groups_compare_ignoring_case(app: FastAPI, sanctioned: list[str]) -> None:
    teacher = SignedInUser(
        "teacher6",
        "Teacher Six",
        frozenset({Role.STAFF}),
        "staff",
        frozenset({"Staff", "TEACHERS-year6"}),
    )
    app.dependency_overrides[current_user] = lambda: teacher
    client, _csrf = client_for(app, "anonymous")
    page = client.get("/teacher")
    assert "Pupil Two (Year 6)" in page.text
    assert "Pupil One (Year 5)" not in page.text


def test_the_identity_file_says_which_class_each_group_teaches() -> None:
    config = parse_identity_config(
        "classes:\n  - {group: Teachers-Year5, teaches: [Year5]}\n"
        "  - {group: Heads, teaches: [Year5, year6]}\n"
    )
    assert config.classes_taught({"teachers-year5"}) == {"year5"}
    assert config.classes_taught({"Heads", "Staff"}) == {"year5", "year6"}
    assert config.classes_taught({"Staff"}) == frozenset()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("classes:\n  - {group: T5}\n", "classes[0].teaches"),
        ("classes:\n  - {group: T5, teaches: []}\n", "classes[0].teaches"),
        ("classes:\n  - {group: '', teaches: [Year5]}\n", "classes[0].group"),
        ("classes:\n  - {group: T5, teaches: [Year5], extra: 1}\n", "classes[0].extra"),
    ],
)
def test_a_wrong_class_mapping_is_refused_with_its_place(text: str, where: str) -> None:
    from schoolgate.store.identity_config import IdentityConfigError

    with pytest.raises(IdentityConfigError) as raised:
        parse_identity_config(text, source="identity.yaml")
    assert f"identity.yaml: {where}" in str(raised.value)


def test_a_pupil_cannot_open_one(app: FastAPI) -> None:
    client, csrf = client_for(app, "pupil")
    answer = client.post(
        "/api/monitoring/supervised-sessions",
        headers={"X-CSRF-Token": csrf},
        json={"user": "pupil1", "minutes": 40},
    )
    assert answer.status_code == 403
    assert client.get("/teacher").status_code == 403


def test_a_teacher_still_cannot_place_or_see_sanctions(app: FastAPI) -> None:
    client, csrf = client_for(app, "staff")
    assert client.get("/api/monitoring/sanctions").status_code == 403
    assert (
        client.post(
            "/api/monitoring/sanctions",
            headers={"X-CSRF-Token": csrf},
            json={"user": "pupil2", "reason": "x"},
        ).status_code
        == 403
    )
