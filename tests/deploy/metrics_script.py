"""Test-only mitmdump script, still passed by some deploy tests: the installed addon list
(proxy_addons/main.py) has the Metrics addon, so this adds nothing; it only checks that."""

from __future__ import annotations

from schoolgate.proxy_addons.main import addons as installed
from schoolgate.proxy_addons.metrics import Metrics

assert any(isinstance(a, Metrics) for a in installed), "proxy_addons/main.py lost Metrics"
addons: list[object] = []
