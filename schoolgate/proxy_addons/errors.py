"""Errors of the gateway's addons.

    mitmproxy.exceptions.OptionsError   a bad option value: mitmproxy rolls the change back and
                                        the running state stays (raised via `options_error`)

Deciding never raises out of a hook: every hook catches its errors and blocks (fail closed),
because mitmproxy swallows hook exceptions and the flow would carry on.
"""

from __future__ import annotations

from mitmproxy import exceptions


def options_error(message: str) -> exceptions.OptionsError:
    """An OptionsError (typed: mitmproxy's own constructor carries no annotations)."""
    return exceptions.OptionsError(message)  # type: ignore[no-untyped-call]
