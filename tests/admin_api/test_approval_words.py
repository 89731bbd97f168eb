"""The approval form in the Business Manager's words (UX review finding 8, walked again in
Chromium): roles and categories as people say them ("social media manager", "every site in
social media"), the directory's groups offered rather than typed from memory, and a class or
group the directory does not know refused (a typo would open the site for nobody, or be queued
for nobody), on the request form and on the approval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.services.grants import Grant, reach_words
from schoolgate.policy.model import Scope, TargetKind
from tests.admin_api.conftest import blocked_site, client_for
from tests.admin_api.test_request_not_blocked import ask
from tests.admin_api.test_requests import stored_request
from tests.admin_api.test_safe_grants import _approve

UNKNOWN = "Nobody in the school directory is in the class or group Year9"


def test_the_approval_form_names_roles_categories_and_groups_in_words(
    app: FastAPI, resources: Resources
) -> None:
    request_id = stored_request(resources, blocked_site())
    bursar, _ = client_for(app, "business_manager")
    page = bursar.get(f"/requests/{request_id}").text
    assert "Everyone with a role (pupil, staff, social media manager)" in page
    assert "social_media_manager)" not in page
    assert "Every site in social media (the whole category)" in page
    assert "The whole category “social”" not in page
    assert '<datalist id="known-groups">' in page
    assert '<option value="Year5">' in page


def test_a_role_typed_as_people_say_it_is_understood(app: FastAPI, resources: Resources) -> None:
    request_id = stored_request(resources, blocked_site())
    status, body = _approve(
        app, request_id, scope="role", who="Social media manager", target_kind="host"
    )
    assert status == 422  # wider than the request: the confirmation first
    assert isinstance(body["problems"], dict)
    assert body["problems"].keys() == {"confirm_wide"}
    message = str(body["message"])
    assert "with the role social media manager use" in message
    assert "social_media_manager" not in message


def test_a_group_the_directory_does_not_know_is_refused(app: FastAPI, resources: Resources) -> None:
    request_id = stored_request(resources, blocked_site())
    status, body = _approve(
        app, request_id, scope="group", who="Year9", target_kind="host", confirm_wide=True
    )
    assert status == 422
    assert UNKNOWN in str(body["message"])
    request = ask(app, "staff", blocked_site(), for_group="Year9")
    assert request.status_code == 422
    assert UNKNOWN in request.json()["message"]
    known = ask(app, "staff", blocked_site(), for_group="year5")  # the directory ignores case
    assert known.status_code == 201, known.text


def test_a_categorys_reach_is_said_in_words(resources: Resources) -> None:
    now = datetime.now(UTC)
    grant = Grant(
        scope=Scope.GROUP,
        who="Year5",
        target_kind=TargetKind.CATEGORY,
        target="social",
        starts=now,
        ends=now + timedelta(hours=1),
    )
    words = reach_words(resources.policy, grant, people=1)
    assert " sites in social media until " in words
    assert "'social'" not in words
