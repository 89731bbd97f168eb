"""The image's contents without Docker (no daemon runs here, and the base image is on Docker
Hub, which this machine cannot reach: docs/kubernetes.md). The Dockerfile's build stage is
replayed faithfully: exactly the files its COPY lines bring in, installed with
`pip install --no-deps .` as it does (into a folder of their own, the dependencies being the
locked ones this test environment already has). The result must hold every package and its
data, and run as the image runs it: `schoolgate --help`, the migrations, and a gateway that
answers a blocked site with the school's block page. A new top-level package or data file left
out of the Dockerfile or of pyproject's package data fails here, not in a school."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.deploy.test_docs import terminate
from tests.support.gateway import free_port, wait_until_listening

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def build_stage_copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY in the Dockerfile's first (build) stage."""
    copies: list[tuple[list[str], str]] = []
    stage = 0
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("FROM "):
            stage += 1
        elif line.startswith("COPY ") and stage == 1:
            *sources, destination = shlex.split(line)[1:]
            copies.append((sources, destination))
    return copies


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build stage's /opt/schoolgate, as a folder on this machine's Python path."""
    work = tmp_path_factory.mktemp("image")
    src, site = work / "src", work / "site"
    src.mkdir()
    for sources, destination in build_stage_copies():
        for source in sources:
            target = src / destination / (Path(source).name if destination.endswith("/") else "")
            if (ROOT / source).is_dir():
                shutil.copytree(
                    ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-deps",
            "--target",
            str(site),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def in_image(site: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")},
        "PYTHONPATH": str(site),
    }
    return subprocess.run(
        [sys.executable, "-m", "schoolgate.cli", *args],
        cwd=site.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_dockerfile_copies_every_package_pyproject_ships() -> None:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"][
        "find"
    ]["include"]
    copied = {s for sources, _ in build_stage_copies() for s in sources}
    for pattern in find:
        assert pattern.rstrip("*") in copied, f"the Dockerfile never copies {pattern}"
    for needed in ("requirements.lock", "pyproject.toml"):
        assert needed in copied


def test_the_image_runs_its_own_code_with_its_data(image: Path) -> None:
    code = (
        "import schoolgate\n"
        "from schoolgate import admin_api, policy, proxy_addons, store\n"
        "for m in (admin_api, policy, proxy_addons, schoolgate, store): print(m.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(image)},
        cwd=image.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert all(line.startswith(str(image)) for line in result.stdout.split()), result.stdout
    for data in (
        "schoolgate/policy/data/seed.yaml",
        "schoolgate/proxy_addons/templates",
        "schoolgate/admin_api/templates",
        "schoolgate/store/migrations/env.py",
        "schoolgate/store/data",
    ):
        assert (image / data).exists(), data
    assert in_image(image, "--help").returncode == 0


def test_the_image_migrates_and_filters(image: Path, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgraded = in_image(image, "db", "upgrade", "--database", database)
    assert upgraded.returncode == 0, upgraded.stderr
    assert in_image(image, "db", "status", "--database", database).returncode == 0
    port, metrics = free_port(), free_port()
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        # the image's CMD (gateway --listen-port ...), on loopback and free ports
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "schoolgate.cli",
                "gateway",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
                "--database",
                database,
                "--",
                "--set",
                f"schoolgate_metrics_port={metrics}",
            ],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")},
                "PYTHONPATH": str(image),
            },
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(port, proc, log, timeout=90)
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", trust_env=False, timeout=20) as c:
            answer = c.get("http://x.com/")
        assert answer.status_code == 403
        assert "This website is blocked at school" in answer.text
    finally:
        terminate(proc)
