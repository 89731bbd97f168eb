"""Issue 13, the UX review's audit log item: the page shows actions and their before/after in
words (the DSL reads it too), and offers the actions by name to filter on; the raw codes and
JSON stay in the API and the CSV. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from fastapi import FastAPI

from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.services import audit
from tests.admin_api.conftest import USERS, blocked_site, client_for
from tests.admin_api.test_request_not_blocked import granted


def test_the_audit_log_speaks_in_words_and_keeps_the_raw_in_the_api(
    app: FastAPI, resources: Resources
) -> None:
    host = f"www.games-{uuid.uuid4().hex[:8]}.example"
    actor = USERS["business_manager"]
    assert actor is not None
    with resources.sessions() as session:
        audit.record(
            session,
            actor=actor,
            action="list.remove",
            target=f"list:{host}",
            at=datetime.now(UTC),
            before={"host": host, "verdict": "block", "note": "Pupils found a game site"},
        )
        session.commit()
    client, _ = client_for(app, "it_technician")

    page = client.get("/audit", params={"action": "list.remove"}).text
    assert "removed a website from the local lists" in page
    assert "<td>list.remove</td>" not in page
    assert "&#34;" not in page
    assert '"verdict"' not in page
    assert "Pupils found a game site" in page
    assert f"<dd>{host}</dd>" in page
    # The filter offers the actions by name (and sends the code).
    assert '<option value="list.remove" selected>removed a website from the local lists' in page
    assert '<option value="sanction.lift">lifted a supervised-only sanction' in page

    api = client.get("/api/audit", params={"action": "list.remove"}).json()
    mine = [entry for entry in api if entry["target"] == f"list:{host}"]
    assert len(mine) == 1
    assert mine[0]["action"] == "list.remove"
    assert mine[0]["before"]["verdict"] == "block"
    assert "list.remove" in client.get("/audit.csv").text


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def what_cells(page: str) -> list[str]:
    """The "What" column of the audit page (the fourth cell of each row)."""
    return [
        re.sub(r"<[^>]+>", "", cells[3]).strip()
        for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)
        if len(cells := re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)) >= 4
    ]


def test_the_what_column_says_what_the_thing_is_not_its_id(
    app: FastAPI, resources: Resources
) -> None:
    # UX review: the audit log's "What" showed "request:<uuid>", "sanction:<uuid>": the
    # request's site and person, the sanction's pupil, the access's reach say what it is.
    host = blocked_site()
    (exception,) = [e for e in granted(app, host) if e["target"] == host]
    bursar, csrf = client_for(app, "business_manager")
    headers = {"X-CSRF-Token": csrf}
    revoked = bursar.post(
        f"/api/exceptions/{exception['id']}/revoke", json={"reason": "Lesson over"}, headers=headers
    )
    assert revoked.status_code == 200, revoked.text
    app.dependency_overrides.clear()
    dsl, csrf = client_for(app, "dsl")
    headers = {"X-CSRF-Token": csrf}
    placed = dsl.post(
        "/api/monitoring/sanctions",
        json={"user": "pupil2", "reason": "Tried a VPN three times", "days": 1},
        headers=headers,
    )
    assert placed.status_code == 201, placed.text
    lifted = dsl.post(
        f"/api/monitoring/sanctions/{placed.json()['id']}/lift", json={}, headers=headers
    )
    assert lifted.status_code == 200, lifted.text

    cells = what_cells(dsl.get("/audit").text)
    assert f"{host}, asked for by pupil1" in cells  # request.create and request.approve
    assert f"access to {host} for pupil1" in cells  # exception.revoke: its reach
    assert "a supervised-only sanction on pupil2" in cells
    assert not [cell for cell in cells if UUID.search(cell)], cells
    approve_row = dsl.get("/audit", params={"action": "request.approve"}).text
    assert f"Access given</dt><dd>{host} for pupil1, until" in approve_row
    # IT sees that the sanction happened, not whom it was on.
    app.dependency_overrides.clear()
    it, _ = client_for(app, "it_technician")
    it_cells = what_cells(it.get("/audit", params={"action": "sanction.place"}).text)
    assert "a supervised-only sanction" in it_cells
    assert not [cell for cell in it_cells if "pupil2" in cell]
    # The ids stay in the API.
    raw = dsl.get("/api/audit", params={"action": "sanction.place"}).json()
    assert f"sanction:{placed.json()['id']}" in {entry["target"] for entry in raw}
