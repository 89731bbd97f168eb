"""A school leaving the trust, end to end (docs/trust.md, "Removing a school"): a real gateway
serving two schools records each school's browsing; `schoolgate trust remove-school` exports
and deletes one school's rows and takes it out of the trust file; the running gateway then
refuses that school's devices (`no_school`) and still serves the other school, whose rows are
untouched."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schoolgate.store.db import make_engine
from schoolgate.store.models import EventRow
from tests.e2e.test_trust_gateway import ELM, OAK, client_from
from tests.schoolgate.test_cli import run
from tests.support.gateway import wait_for
from tests.support.trusts import running_trust_gateway, write_two_schools

pytestmark = pytest.mark.e2e


def test_a_removed_schools_devices_are_refused_and_the_other_school_goes_on(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    trust = write_two_schools(tmp_path, oak=OAK, elm=ELM, now=now)
    database = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    with running_trust_gateway(tmp_path, trust) as gw:
        engine = make_engine(database)

        def events(school: str) -> int:
            with Session(engine) as session:
                query = select(func.count()).where(EventRow.school == school)
                return session.scalar(query.select_from(EventRow)) or 0

        try:
            for address in (OAK, ELM):
                with client_from(gw, address) as client:
                    assert client.get("http://learning.test/").status_code == 200
            wait_for(lambda: events("oak") and events("elm"), what="both schools' events")
            oak_events = events("oak")
            out = tmp_path / "elm.zip"
            removed = run(
                "trust", "remove-school", str(trust), "elm",
                "--export", str(out), "--database", database,
            )  # fmt: skip
            assert removed.returncode == 0, removed.stderr
            with zipfile.ZipFile(out) as pack:
                assert json.loads(pack.read("manifest.json"))["tables"]["events"] >= 1
            assert events("elm") == 0
            assert events("oak") == oak_events

            def elm_refused() -> bool:
                with client_from(gw, ELM) as elm:
                    answer = elm.get("http://learning.test/")
                return answer.status_code == 403 and "no_school" in answer.text

            wait_for(elm_refused, what="the gateway to drop the removed school")
            with client_from(gw, OAK) as oak:
                assert oak.get("http://learning.test/").status_code == 200
        finally:
            engine.dispose()
