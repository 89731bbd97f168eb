"""schoolgate/commands/admin.py: settings from flags and environment, and the database check."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from schoolgate.commands.admin import DEMO_IDENTITY, prepare_database, settings_from
from store.db import default_database_url


def _args(tmp_path: Path, **extra: object) -> argparse.Namespace:
    values: dict[str, object] = {"data_dir": tmp_path, "identity": None, "policy": None,
                                 "gateway_url": None, "database": None}
    values.update(extra)
    return argparse.Namespace(**values)


def test_the_demo_directory_means_development_and_http_cookies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SCHOOLGATE_ENVIRONMENT", "SCHOOLGATE_COOKIE_SECURE",
                 "SCHOOLGATE_SESSION_SECRET", "SCHOOLGATE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = settings_from(_args(tmp_path, identity=DEMO_IDENTITY))
    assert settings.environment.value == "development"
    assert settings.cookie_secure is False
    assert settings.embedded_database


def test_elsewhere_production_wants_a_secret(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHOOLGATE_ENVIRONMENT", raising=False)
    monkeypatch.delenv("SCHOOLGATE_SESSION_SECRET", raising=False)
    other = tmp_path / "identity.yaml"
    other.write_text("{}\n")
    with pytest.raises(ValueError, match="no session secret"):
        settings_from(_args(tmp_path, identity=other))


def test_the_embedded_database_is_migrated_and_any_other_is_only_checked(
        tmp_path: Path) -> None:
    url = default_database_url(tmp_path)
    assert prepare_database(url, embedded=True) is None
    other = f"sqlite:///{tmp_path / 'other.db'}"
    problem = prepare_database(other, embedded=False)
    assert problem is not None
    assert "run: schoolgate db upgrade --database" in problem
