"""Times as people read them on the admin's pages (issue 13): the approval page's "Why it is
blocked" and the staff Explain say "Thursday 3 December, 12:47" (no seconds; the year only when
it is not this year), while the CLI keeps its fuller "Thursday 3 December 2026 at 12:47:23"."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from schoolgate.admin_api.resources import Resources
from schoolgate.policy.explain import format_when, format_when_plain
from schoolgate.store.admin_models import UnblockRequestRow
from tests.admin_api.conftest import blocked_site, client_for
from tests.admin_api.test_requests import stored_request


def _why(page: str) -> str:
    found = re.search(r'<pre class="explain">(.*?)</pre>', page, re.S)
    assert found is not None, page
    return html.unescape(found.group(1))


@pytest.mark.parametrize("years_ago", [0, 1])
def test_why_it_is_blocked_reads_as_people_say_times(
    app: FastAPI, resources: Resources, years_ago: int
) -> None:
    now = datetime.now(UTC)
    # A winter moment (GMT is UTC), with seconds, on a weekday of this year or the last.
    blocked_at = datetime(now.year - years_ago, 1, 15, 12, 47, 23, tzinfo=UTC)
    request_id = stored_request(resources, blocked_site())
    with resources.sessions() as session:
        session.get_one(UnblockRequestRow, request_id).blocked_at = blocked_at
        session.commit()
    bursar, _ = client_for(app, "business_manager")
    why = _why(bursar.get(f"/requests/{request_id}").text)
    day = f"{blocked_at:%A} 15 January"
    expected = f"{day}, 12:47" if years_ago == 0 else f"{day} {blocked_at.year}, 12:47"
    assert expected in why, why
    assert "12:47:23" not in why
    assert " at 12:47" not in why


def test_the_staff_explain_writes_times_the_same_way(app: FastAPI) -> None:
    now = datetime.now(UTC)
    client, _ = client_for(app, "it_technician")
    found = client.get(
        "/api/explain",
        params={"host": blocked_site(), "role": "pupil", "at": f"{now.year}-01-15T12:47:23"},
    )
    assert found.status_code == 200, found.text
    text = found.json()["explanation"]
    assert "15 January, 12:47 (" in text, text
    assert "12:47:23" not in text


def test_the_cli_format_is_kept(resources: Resources) -> None:
    policy = resources.policy
    at = datetime(2026, 12, 3, 12, 47, 23, tzinfo=UTC)
    assert format_when(policy, at) == "Thursday 3 December 2026 at 12:47:23"
    assert format_when_plain(policy, at, now=at) == "Thursday 3 December, 12:47"
    next_year = datetime(2027, 1, 4, tzinfo=UTC)
    assert format_when_plain(policy, at, now=next_year) == "Thursday 3 December 2026, 12:47"
    summer = datetime(2026, 7, 1, 11, 5, tzinfo=UTC)  # 12:05 in London (BST)
    assert format_when_plain(policy, summer, now=at) == "Wednesday 1 July, 12:05"
