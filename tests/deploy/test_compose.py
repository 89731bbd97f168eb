"""deploy/compose and the Dockerfile: compose's own parser accepts the file, refuses to start while
a required secret is unset, and the services wait for what they need (healthy database,
finished migrations); the image runs as a non-root user with the data directory as a volume."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.needs import need

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
SECRETS = {
    "SCHOOLGATE_DB_PASSWORD": "db-password-0123456789abcdef",
    "SCHOOLGATE_SESSION_SECRET": "session-secret-0123456789abcdef0123456789",
    "GRAFANA_ADMIN_PASSWORD": "grafana-password-0123456789",
    "SCHOOLGATE_SCHOOL_NAME": "Example Primary School",
    "SCHOOLGATE_GATEWAY_HOST": "gateway.school.lan",
    "SCHOOLGATE_ADMIN_URL": "http://gateway.school.lan:8081",
}


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) if it works here, else Debian's `docker-compose` (v1.29)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    need(legacy is not None, "docker compose (or docker-compose)",
         "install Debian's 'docker-compose' or Docker's compose plugin")
    assert legacy is not None
    return [legacy]


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Given as --env-file so that a technician's own .env in the checkout cannot interfere."""
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


def run_config(env: dict[str, str], env_file: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run([*compose_command(), "--env-file", str(env_file), "config"],
                          cwd=COMPOSE, env={**base, **env}, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def config(empty_env_file: Path) -> dict[str, Any]:
    result = run_config(SECRETS, empty_env_file)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def test_every_service_is_there(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"postgres", "migrate", "gateway", "admin", "prometheus",
                                       "grafana"}


@pytest.mark.parametrize("service", ["postgres", "gateway", "admin", "prometheus", "grafana"])
def test_long_running_services_have_healthchecks(config: dict[str, Any], service: str) -> None:
    check = config["services"][service]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert config["services"][service]["restart"] == "unless-stopped"


@pytest.mark.parametrize("service", ["gateway", "admin"])
def test_the_gateway_and_admin_wait_for_migrations_and_the_database(
        config: dict[str, Any], service: str) -> None:
    depends = config["services"][service]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"


def test_migrations_are_a_one_shot_step(config: dict[str, Any]) -> None:
    migrate = config["services"]["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_secrets_reach_the_services(config: dict[str, Any]) -> None:
    admin = config["services"]["admin"]["environment"]
    assert admin["SCHOOLGATE_SESSION_SECRET"] == SECRETS["SCHOOLGATE_SESSION_SECRET"]
    assert SECRETS["SCHOOLGATE_DB_PASSWORD"] in admin["SCHOOLGATE_DATABASE_URL"]
    assert "SCHOOLGATE_SESSION_SECRET" not in config["services"]["gateway"]["environment"]


@pytest.mark.parametrize("missing", ["SCHOOLGATE_DB_PASSWORD", "SCHOOLGATE_SESSION_SECRET",
                                     "GRAFANA_ADMIN_PASSWORD"])
def test_compose_refuses_to_start_without_a_secret(missing: str, empty_env_file: Path) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    result = run_config(env, empty_env_file)
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


def test_the_example_env_file_names_every_required_variable() -> None:
    example = (COMPOSE / ".env.example").read_text()
    for name in SECRETS:
        assert f"{name}=" in example


def test_the_dockerfile() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms
    assert all(line.split()[1] == "python:3.12-slim" for line in froms)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["schoolgate"]  # the last stage runs as a non-root user
    assert 'VOLUME ["/var/lib/schoolgate"]' in lines
    assert any("pip install --no-cache-dir ." in line for line in lines)
    assert 'ENTRYPOINT ["schoolgate"]' in lines
