"""Sign-in throttling: too many failed sign-ins for one user name, or from one address, within
a window stop further tries for a while. Kept in memory: right for one admin process (several
processes would each count separately, which only loosens the limit by that factor).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

_MAX_KEYS = 50_000  # bound the memory a flood of made-up names can take


class SignInThrottle:
    def __init__(self, *, max_per_user: int, max_per_ip: int, window_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = {"user": max_per_user, "ip": max_per_ip}
        self._window = window_seconds
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, username: str, ip: str) -> list[tuple[str, str]]:
        return [("user", username.strip().casefold()), ("ip", ip)]

    def retry_after(self, username: str, ip: str) -> int | None:
        """Seconds until a sign-in may be tried again, or None if it may be tried now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(username, ip):
                failures = self._recent(key, now)
                if failures is not None and len(failures) >= self._limits[key[0]]:
                    wait = max(wait, failures[0] + self._window - now)
        return max(1, int(wait) + 1) if wait > 0 else None

    def failed(self, username: str, ip: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) >= _MAX_KEYS:
                self._prune(now)
            for key in self._keys(username, ip):
                self._failures.setdefault(key, deque(maxlen=self._limits[key[0]])).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(("user", username.strip().casefold()), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            if not self._recent(key, now):
                del self._failures[key]
        if len(self._failures) >= _MAX_KEYS:
            self._failures.clear()  # under a flood, forget rather than grow
