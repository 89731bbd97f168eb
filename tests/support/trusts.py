"""Trust folders for the tests (docs/trust.md): a trust file with its base policy, the schools'
own policies and their domain lists, each written where the trust's paths say."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def list_text(name: str, *domains: str, description: str | None = None) -> str:
    """A domain-list file with the headers every list carries (docs/lists.md)."""
    return (
        f"# category: {name}\n# description: {description or f'{name} for the tests'}\n"
        "# compiled: 2026-01-05\n# source: written for the tests\n"
        + "".join(f"{d}\n" for d in domains)
    )


def write_trust(folder: Path, trust: str, files: Mapping[str, str]) -> Path:
    """`files` (paths relative to `folder`: the base policy, the schools' policies and lists)
    and the trust file `folder`/trust.yaml holding `trust`; returns the trust file's path."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    path = folder / "trust.yaml"
    path.write_text(trust)
    return path
