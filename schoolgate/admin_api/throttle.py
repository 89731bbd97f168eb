"""The admin's sign-in throttle and the client address it counts by.

Failed sign-ins are counted in the shared database (store/throttle.py), so every admin process
sees the same counts and a burst is counted before any password is checked. Keys: the user name
from one address (`signin_max_failures_per_user`), one address (`signin_max_failures_per_ip`)
and the user name from anywhere (four times the per-user limit), each with back-off; so five
wrong passwords typed by someone else never keep the DSL out from her own desk.

The address is the connection's, or, only when that connection comes from one of the configured
`trusted_proxies`, the nearest untrusted address in its X-Forwarded-For header: a header sent by
anyone else is ignored, so nobody picks their own address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from sqlalchemy import Engine
from starlette.requests import Request

from schoolgate.store.throttle import ADDRESS, USER, USER_AT_ADDRESS, Attempt, Limit, Throttle

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_FORWARDED = 20  # addresses read from X-Forwarded-For, nearest first


class SignInThrottle:
    """Sign-in attempts for the admin, reserved before the password is checked."""

    def __init__(
        self, engine: Engine | None, *, max_per_user: int, max_per_ip: int, window_seconds: float
    ) -> None:
        self.throttle = Throttle(
            engine,
            scope="admin",
            limits={
                USER_AT_ADDRESS: Limit(max_per_user, window_seconds),
                ADDRESS: Limit(max_per_ip, window_seconds),
                USER: Limit(4 * max_per_user, window_seconds),
            },
        )

    def reserve(self, user: str, address: str) -> Attempt:
        """`user` is the canonical user name. Blocking: call from a worker thread."""
        return self.throttle.reserve(user=user, address=address)

    def succeeded(self, attempt: Attempt) -> None:
        self.throttle.succeeded(attempt)

    def close(self) -> None:
        """Close the in-memory database it may have fallen back to (not the shared one)."""
        self.throttle.close()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def client_address(request: Request, trusted_proxies: Sequence[Network]) -> str:
    """The client's address as the admin should believe it (see the module docstring)."""
    peer = request.client.host if request.client else "unknown"

    def trusted(text: str) -> bool:
        found = _address(text)
        return found is not None and any(found in network for network in trusted_proxies)

    if not trusted_proxies or not trusted(peer):
        return peer
    hops = [
        hop.strip()
        for line in request.headers.getlist("x-forwarded-for")
        for hop in line.split(",")
    ][-MAX_FORWARDED:]
    for hop in reversed(hops):
        if _address(hop) is None:
            return peer  # not an address: a forged or broken header proves nothing
        if not trusted(hop):
            return str(_address(hop))
    return peer
