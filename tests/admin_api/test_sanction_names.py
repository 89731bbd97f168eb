"""A sanction follows the person, however the name is typed (finding 10 of the December security
review): the DSL's `Pupil1` is stored as the directory's `pupil1` and applies at the gateway; a
name the directory does not know is refused in plain words."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import select

from schoolgate.admin_api.resources import Resources
from schoolgate.policy.decide import decide
from schoolgate.policy.model import Reason, Request, Subject
from schoolgate.store.models import SanctionRow
from schoolgate.store.overrides_db import DatabaseOverridesSource
from tests.admin_api.conftest import client_for


def test_a_sanction_typed_with_capitals_applies_to_the_person(
    app: FastAPI, resources: Resources
) -> None:
    client, csrf = client_for(app, "dsl")
    placed = client.post(
        "/api/monitoring/sanctions",
        headers={"X-CSRF-Token": csrf},
        json={"user": "Ｐupil1 ", "reason": "Repeated VPN use.", "days": 1},
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["user"] == "pupil1"
    try:
        overrides = DatabaseOverridesSource(resources.engine).load_now()
        decision = decide(
            resources.policy,
            Request(host="www.example.org"),
            Subject(role="pupil", user="pupil1"),
            overrides,
            datetime.now(UTC),
        )
        assert decision.reason is Reason.SUPERVISED_ONLY
    finally:
        lifted = client.post(
            f"/api/monitoring/sanctions/{placed.json()['id']}/lift",
            headers={"X-CSRF-Token": csrf},
            json={},
        )
        assert lifted.status_code == 200


def test_a_name_the_directory_does_not_know_is_refused(app: FastAPI, resources: Resources) -> None:
    client, csrf = client_for(app, "dsl")
    answer = client.post(
        "/api/monitoring/sanctions",
        headers={"X-CSRF-Token": csrf},
        json={"user": "pupl1", "reason": "Typo.", "days": 1},
    )
    assert answer.status_code == 422
    assert answer.json()["problems"]["user"] == (
        "We could not find anyone called 'pupl1' in the school's directory: check the spelling"
    )
    page = client.post(
        "/monitoring/supervised-sessions",
        data={"csrf_token": csrf, "user": "pupl1", "minutes": "30"},
    )
    assert page.status_code == 422
    assert "We could not find anyone called" in page.text
    with resources.sessions() as session:
        assert (
            session.scalars(select(SanctionRow).where(SanctionRow.user == "pupl1")).first() is None
        )
