"""Test-only mitmdump script: loads the Metrics addon after schoolgate's addons, unless the
installed addon list (proxy_addons/main.py) already has it."""

from __future__ import annotations

from proxy_addons.main import addons as installed
from proxy_addons.metrics import Metrics

addons: list[object] = [] if any(isinstance(a, Metrics) for a in installed) else [Metrics()]
