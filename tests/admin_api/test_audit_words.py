"""Issue 13, the UX review's audit log item: the page shows actions and their before/after in
words (the DSL reads it too), and offers the actions by name to filter on; the raw codes and
JSON stay in the API and the CSV. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import FastAPI

from schoolgate.admin_api.resources import Resources
from schoolgate.admin_api.services import audit
from tests.admin_api.conftest import USERS, client_for


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
