"""Test-only mitmdump script: makes deciding raise for one host name, to prove that an error
inside the gateway's hooks blocks (fail closed) instead of letting the request through."""

from __future__ import annotations

from typing import Any

import schoolgate.proxy_addons.enforce as enforce

EXPLODING_HOST = "explode.test"
_real_decide = enforce.decide


def _faulty_decide(policy: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
    if request.host.lower().rstrip(".").endswith(EXPLODING_HOST):
        raise RuntimeError(f"injected fault while deciding {request.host}")
    return _real_decide(policy, request, *args, **kwargs)


enforce.decide = _faulty_decide  # type: ignore[assignment]
addons: list[object] = []
