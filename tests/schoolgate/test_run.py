"""`schoolgate run`, the README's first command: it starts, serves, explains itself, stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SCHOOLGATE = str(Path(sys.executable).parent / "schoolgate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.e2e
def test_run_starts_the_product_on_embedded_defaults(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    proc = subprocess.Popen(
        [SCHOOLGATE, "run", "--listen-port", str(port), "--admin-port", str(admin_port),
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while "Press Ctrl-C to stop." not in out:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, out
            out += line
            assert time.monotonic() < deadline, out
        assert f"Proxy:     127.0.0.1:{port}" in out
        assert "pupil1 / pupil1-demo" in out
        proxy = f"http://pupil1:pupil1-demo@127.0.0.1:{port}"
        with httpx.Client(proxy=proxy, timeout=20) as client:
            blocked = client.get("http://www.tiktok.com/")
        assert blocked.status_code == 403
        assert "blocked at school" in blocked.text
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=20) as client:
            assert client.get("http://www.tiktok.com/").status_code == 407  # sign in first
        ca = httpx.get(f"http://127.0.0.1:{port}/ca.pem", timeout=20)
        assert ca.text.startswith("-----BEGIN CERTIFICATE-----")
        assert (tmp_path / "data" / "ca").is_dir()
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + rest
    with socket.socket() as s:  # the gateway child is gone too
        assert s.connect_ex(("127.0.0.1", port)) != 0
