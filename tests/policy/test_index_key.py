"""The domain index does not depend on the interpreter's string-hash seed (review 2026-12,
1.2 point 2): an operator who pins PYTHONHASHSEED gets the same answers and memory figures, and
the stored keys still differ from one process to the next (a secret key of the index's own,
given by store/policy_files.py), so hash collisions cannot be searched for offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOSTS = [
    "x.com",
    "api.x.com",
    "xbox.com",
    "www.instagram.com",
    "cdn.fbcdn.net",
    "learning.test",
    "www.tiktok.com",
    "notx.com",
    "8.8.8.8",
]

SCRIPT = f"""
import json, sys, tracemalloc
from schoolgate.store.policy_files import load_policy
tracemalloc.start()
policy = load_policy(None)
index = policy.domains
size, _ = tracemalloc.get_traced_memory()
print(json.dumps({{
    "answers": {{h: list(index.categories(h)) for h in {HOSTS!r}}},
    "domains": len(index),
    "bytes": size,
    "keys": sorted(index._masks)[:20],
}}))
"""


def run(seed: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_index_answers_alike_whatever_the_hash_seed() -> None:
    zero, one = run("0"), run("1")
    assert zero["answers"] == one["answers"]
    assert zero["domains"] == one["domains"]
    # the memory figures: what the parsed policy keeps, within 2 % (allocator noise)
    assert abs(int(zero["bytes"]) - int(one["bytes"])) <= 0.02 * int(zero["bytes"])  # type: ignore[call-overload]
    assert zero["answers"]["api.x.com"]  # type: ignore[index]


def test_a_pinned_hash_seed_does_not_pin_the_index_keys() -> None:
    first, second = run("0"), run("0")
    assert first["answers"] == second["answers"]
    assert first["keys"] != second["keys"]
