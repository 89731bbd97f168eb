"""proxy_addons/frontdoor.py's own helpers (the front door itself runs end to end in
tests/e2e/test_frontdoor_e2e.py)."""

from __future__ import annotations

import uuid

from schoolgate.proxy_addons.frontdoor import _connection_id


def test_connection_ids_are_unique_and_in_mitmproxys_uuid_form() -> None:
    made = [_connection_id() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(str(uuid.UUID(one)) == one for one in made)
    assert len({one[:24] for one in made}) == 1  # one random prefix per process, then a count
