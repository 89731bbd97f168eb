"""One SIEM line shape (review 2026-12, F2): the line written without a database
(store/siem.py) is the line the event writer writes beside the database (store/events.py's
codec): the same keys, `replica` and `seq`, and no path or query for traffic not decrypted."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.events import AttemptEvidence, Event, event_json_line
from schoolgate.store.siem import SiemLines

AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def relayed_event() -> Event:
    return Event(
        at=AT,
        host="vpn.example",
        verdict=Verdict.BLOCK,
        reason=Reason.CIRCUMVENTION,
        user="Pupil1",
        path="/secret-path",
        query="q=1",
        technique="web_proxy",
        intercepted=False,
        attempt=AttemptEvidence({"port": "8443"}),
    )


async def test_without_a_database_the_siem_line_is_the_writers_line(tmp_path: Path) -> None:
    out = tmp_path / "siem.jsonl"
    sink = SiemLines(str(out), replica="gw1")
    event = relayed_event()
    sink.submit(event)
    await sink.close()
    written = json.loads(out.read_text())
    expected = json.loads(event_json_line("gw1", written["seq"], event))
    assert written == expected
    assert written["replica"] == "gw1"
    assert (written["path"], written["query"]) == (None, None)  # never decrypted: not kept
    assert written["user"] == "pupil1"
    assert written["attempt"] == {"evidence": {"port": "8443"}, "counted": True}
    assert written["at"] == AT.isoformat()


async def test_lines_are_numbered_in_order(tmp_path: Path) -> None:
    out = tmp_path / "siem.jsonl"
    sink = SiemLines(str(out))
    for _ in range(3):
        sink.submit(relayed_event())
    await sink.close()
    seqs = [json.loads(line)["seq"] for line in out.read_text().splitlines()]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
