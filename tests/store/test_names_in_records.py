"""Events carry the canonical user name, so one person's records are found under one name."""

from __future__ import annotations

from datetime import UTC, datetime

from schoolgate.policy.model import Reason, Verdict
from schoolgate.store.events import Event


def test_an_events_user_is_the_canonical_name() -> None:
    at = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    event = Event(
        at=at,
        host="x.com",
        verdict=Verdict.BLOCK,
        reason=Reason.DEFAULT_BLOCK,
        user="ＰＵＰＩＬ１ ",
    )
    assert event.user == "pupil1"
    assert (
        Event(at=at, host="x.com", verdict=Verdict.BLOCK, reason=Reason.DEFAULT_BLOCK).user is None
    )
