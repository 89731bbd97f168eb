"""`schoolgate run`: the whole product on embedded defaults, for a first look and for the demo.

Starts the gateway (and the admin, when it is installed) as child processes with the seed
policy, the demo directory and the data in ./var/schoolgate, prints where to point a browser
and the proxy, and stops them all on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import store
from store.db import secure_directory

DEMO_IDENTITY = Path(store.__file__).resolve().parent / "data" / "demo-identity.yaml"
DEMO_ACCOUNTS = ("pupil1", "pupil2", "teacher1", "socialmedia1", "bursar1", "dsl1", "it1")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="start schoolgate on embedded defaults (seed policy, demo directory)",
        description="Start the gateway (and the admin) on embedded defaults and say where to "
                    "point a browser and the proxy. Ctrl-C stops everything.")
    parser.add_argument("--listen-host", default="127.0.0.1",
                        help="the gateway's address (default 127.0.0.1; 0.0.0.0 for the LAN)")
    parser.add_argument("--listen-port", type=int, default=8080, help="gateway port (8080)")
    parser.add_argument("--admin-port", type=int, default=8081, help="admin port (8081)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("SCHOOLGATE_DATA_DIR", "") or
                                     "var/schoolgate"),
                        help="where the CA, database and secrets live (./var/schoolgate)")
    parser.add_argument("--policy", type=Path, help="policy file (default: the seed policy)")
    parser.add_argument("--identity", type=Path, default=DEMO_IDENTITY,
                        help="identity settings (default: the demo directory)")
    parser.set_defaults(handler=run)


WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names, not a binding


def reachable_host(listen_host: str) -> str:
    """The address to tell people: a wildcard listen address is reachable on loopback."""
    return "127.0.0.1" if listen_host in WILDCARDS else listen_host


def _child_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    me = [sys.executable, "-m", "schoolgate.cli"]
    host = reachable_host(args.listen_host)
    admin_url = f"http://{host}:{args.admin_port}"
    gateway = [*me, "gateway", "--listen-host", args.listen_host,
               "--listen-port", str(args.listen_port), "--data-dir", str(args.data_dir),
               "--identity", str(args.identity), "--admin-url", admin_url]
    if args.policy:
        gateway += ["--policy", str(args.policy)]
    commands = {"gateway": gateway}
    if _admin_available():
        admin = [*me, "admin", "--listen-host", host, "--listen-port", str(args.admin_port),
                 "--data-dir", str(args.data_dir), "--identity", str(args.identity),
                 "--gateway-url", f"http://{host}:{args.listen_port}"]
        if args.policy:
            admin += ["--policy", str(args.policy)]
        commands["admin"] = admin
    return commands


def _admin_available() -> bool:
    """The admin service is built by a later part of the project; run what exists."""
    return importlib.util.find_spec("schoolgate.commands.admin") is not None


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def banner(args: argparse.Namespace, started: set[str]) -> str:
    host = reachable_host(args.listen_host)
    proxy = f"{host}:{args.listen_port}"
    lines = [
        "",
        "schoolgate is running on embedded defaults.",
        f"  Proxy:     {proxy}  (set it in the browser, or use the PAC file "
        f"http://{proxy}/proxy.pac)",
        f"  School CA: http://{proxy}/ca.pem  (install it so the browser can show block pages)",
    ]
    if "admin" in started:
        lines.append(f"  Admin:     http://{host}:{args.admin_port}/  (sign in with a demo "
                     "account: bursar1, dsl1, it1)")
    lines += [
        f"  Policy:    {args.policy or 'the seed policy (policy/data/seed.yaml)'}",
        f"  Data:      {args.data_dir}",
        "  Demo accounts (proxy sign-in): " + ", ".join(f"{u} / {u}-demo" for u in DEMO_ACCOUNTS),
        "",
        "Try it:",
        f"  curl -x http://pupil1:pupil1-demo@{proxy} http://www.tiktok.com/     # blocked page",
        f"  curl -x http://teacher1:teacher1-demo@{proxy} http://www.facebook.com/ "
        "# break times only",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    secure_directory(args.data_dir)  # 0750 whatever the umask (review finding 15)
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host = reachable_host(args.listen_host)
    ports = {"gateway": args.listen_port, "admin": args.admin_port}
    try:
        for name, command in _child_commands(args).items():
            children[name] = subprocess.Popen(command)
            if not _wait_listening(host, ports[name], children[name], 60):
                print(f"schoolgate run: the {name} did not start (see the messages above)",
                      file=sys.stderr)
                return 1
        print(banner(args, set(children)), flush=True)
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"schoolgate run: the {name} stopped (exit {child.returncode})",
                          file=sys.stderr)
                    return child.returncode or 1
            time.sleep(0.5)
        return 0
    finally:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
