"""What mitmproxy refuses before any addon sees it (a malformed request line, a URL with
user-info, invalid characters): it only logs them, so a filter on its logger turns each into a
call the RecordEvents addon records as an attempt.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable

from mitmproxy.connection import Address

from schoolgate.policy.techniques import Technique

REFUSAL_LOGGER = "mitmproxy.proxy.server"  # where mitmproxy logs a request it could not read
MAX_SENT = 300  # characters of an unreadable request line kept
# "<peer>: Bad HTTP request line: b'...'" and the like (mitmproxy/net/http/http1/read.py)
_REFUSED = re.compile(
    r": (Bad HTTP request line|Invalid header line|Invalid headers|"
    r"Unknown HTTP version|Bad HTTP request|Invalid HTTP/2 request headers|"
    r"HTTP/2 protocol error|Invalid HTTP)(?:: (.*))?$",
    re.DOTALL,
)
_USERINFO = re.compile(r"(//)[^/@\s'\\]*@")  # user:password@ in a URL: never recorded
_SENT_HOST = re.compile(
    r"[a-zA-Z][a-zA-Z0-9+.-]*://(?:\[redacted\]@)?"
    r"([A-Za-z0-9._-]{1,253})(?=[:/ ?#']|$)"
)


class RefusalLog(logging.Filter):
    """A filter on mitmproxy's proxy server logger: a request that mitmproxy refused before any
    hook (it logs the client's address and the error at INFO) becomes a recorded attempt.

    The logger is set to INFO so that those records are made even when the gateway logs only
    warnings; the filter then lets through (to the terminal and to addons) only the records the
    root logger's level would have let through, so nothing else changes."""

    def __init__(self, refused: Callable[[Address | None, str, str], None]) -> None:
        super().__init__()
        self.refused = refused  # (client address, mitmproxy's error, what was sent)
        self._level: int | None = None

    def install(self) -> None:
        logger = logging.getLogger(REFUSAL_LOGGER)
        if self._level is None:
            self._level = logger.level
            logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
            logger.addFilter(self)

    def remove(self) -> None:
        if self._level is not None:
            logger = logging.getLogger(REFUSAL_LOGGER)
            logger.removeFilter(self)
            logger.setLevel(self._level)
            self._level = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            with contextlib.suppress(Exception):
                self._note(record)
        return record.levelno >= logging.getLogger().getEffectiveLevel()

    def _note(self, record: logging.LogRecord) -> None:
        found = _REFUSED.search(record.getMessage())
        if found is None:
            return
        peer = getattr(record, "client", None)
        self.refused(
            peer if isinstance(peer, tuple) else None,
            found.group(1),
            (found.group(2) or "").strip(),
        )


def read_refused(sent: str) -> tuple[str, str, Technique]:
    """What a refused client sent, with any user-info redacted and bounded; the host it named
    (or "(unreadable request)"); and the technique it counts as."""
    sent = _USERINFO.sub(r"\1[redacted]@", sent)[:MAX_SENT]
    found = _SENT_HOST.search(sent)
    host = found.group(1).lower()[:300] if found else "(unreadable request)"
    # HTTP/2 extended CONNECT (RFC 8441, `:protocol`) asks for another protocol
    technique = Technique.PROTOCOL_UPGRADE if ":protocol" in sent else Technique.MALFORMED_REQUEST
    return sent, host, technique
