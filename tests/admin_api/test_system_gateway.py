"""Issue 13, the UX review's "health says ready while the gateway is down": the system page
says what the admin knows of the gateway (it gets no heartbeat, so it cannot tell whether the
gateway runs; it shows the last visit the gateway recorded) and calls its own checks the
admin's, not the whole system's. A private SQLite database, so the last visit is this test's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.resources import make_resources
from schoolgate.policy.model import Verdict
from schoolgate.store.db import upgrade
from schoolgate.store.models import EventRow
from tests.admin_api.conftest import client_for, settings_for


def test_the_system_page_does_not_call_the_gateway_ready_when_it_cannot_tell(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgrade(url)
    resources = make_resources(settings_for(url, tmp_path / "data"))
    try:
        client, _ = client_for(make_app(resources=resources), "it_technician")
        before = client.get("/system").text
        assert "Health: ready" not in before
        assert "The admin: ready" in before
        assert "cannot tell whether the gateway is running" in before
        assert "The gateway has recorded no visits yet" in before

        with resources.sessions() as session:
            session.add(
                EventRow(
                    id=str(uuid.uuid4()),
                    replica="gateway-hall",
                    seq=1,
                    at=datetime.now(UTC) - timedelta(hours=3),
                    host="www.bbc.co.uk",
                    verdict=Verdict.ALLOW,
                    reason="default_allow",
                    intercepted=True,
                )
            )
            session.commit()
        after = client.get("/system").text
    finally:
        resources.close()
    assert "cannot tell whether the gateway is running" in after
    assert "(3 hours ago, by gateway-hall)" in after
