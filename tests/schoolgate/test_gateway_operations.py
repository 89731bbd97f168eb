"""`schoolgate gateway` as operators run it, with its default log settings: a Kubernetes
ConfigMap update (kubelet's `..data` symlink swap, then the old folder removed) is a policy
reload, and the warnings operators need (a policy applied or refused, the metrics port taken)
reach the log without any extra setting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.gateway import free_port, wait_until_listening

SCHOOLGATE = str(Path(sys.executable).parent / "schoolgate")

POLICY = """\
name: "{name}"
roles: {{pupil: "Pupils"}}
default_role: pupil
categories:
  x: {{domains: [x.com]}}
calendar:
  timezone: Europe/London
  school_days: [monday, tuesday, wednesday, thursday, friday]
  school_day: {{start: "08:45", end: "15:15"}}
  periods: []
  bank_holidays: none
rules:
  - {{name: block-x, roles: all, categories: [x], action: block}}
default: allow
"""


def configmap_volume(folder: Path, version: str, text: str) -> None:
    """What kubelet does on an update: write ..<version>/, swap ..data to it atomically, point
    each key's symlink at ..data/<key>, then remove the old folder."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"..{version}"
    target.mkdir()
    (target / "policy.yaml").write_text(text)
    old = os.readlink(folder / "..data") if (folder / "..data").is_symlink() else None
    tmp = folder / "..data_tmp"
    tmp.symlink_to(target.name)
    os.replace(tmp, folder / "..data")
    if not (folder / "policy.yaml").is_symlink():
        (folder / "policy.yaml").symlink_to("..data/policy.yaml")
    if old is not None:
        for child in (folder / old).iterdir():
            child.unlink()
        (folder / old).rmdir()


def start(tmp_path: Path, policy: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    port = free_port()
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                SCHOOLGATE,
                "gateway",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
                "--policy",
                str(policy),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until_listening(port, proc, log)
    return proc, log


def wait_for_text(log: Path, text: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not in the log:\n{log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_a_configmap_update_is_applied_and_said_in_the_default_log(tmp_path: Path) -> None:
    config = tmp_path / "etc-schoolgate"
    configmap_volume(config, "2026_12_03_01", POLICY.format(name="first"))
    proc, log = start(tmp_path, config / "policy.yaml")
    try:
        configmap_volume(config, "2026_12_03_02", POLICY.format(name="second"))
        text = wait_for_text(log, "policy reloaded from")
        assert str(config / "policy.yaml") in text  # the link, not the folder kubelet removed
        time.sleep(3)  # a few more refreshes: the removed old folder must not matter
        text = log.read_text(errors="replace")
        assert "refused" not in text, text
        # and a broken update is refused, loudly, with the running policy kept
        configmap_volume(config, "2026_12_03_03", "rules: [\n")
        wait_for_text(log, "the changed policy file was refused")
    finally:
        stop(proc)


def test_a_taken_metrics_port_is_a_warning_in_the_default_log(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(name="one"))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        proc, log = start(tmp_path, policy, "--", "--set", f"schoolgate_metrics_port={taken}")
        try:
            text = wait_for_text(log, "the metrics endpoint cannot listen")
            assert f":{taken}" in text
        finally:
            stop(proc)
