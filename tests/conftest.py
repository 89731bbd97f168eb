"""Suite-wide fixtures: where test artefacts (screenshots, logs) are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def artefacts_dir() -> Path:
    """test-artifacts/ at the project root: screenshots and logs worth keeping after a run."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
