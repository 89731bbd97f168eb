"""Benchmark: CPU per request of schoolgate's gateway (both engines) against bare mitmdump, in the
same run, on loopback, for plain HTTP, intercepted HTTPS (kept and new connections) and
passed-through HTTPS. Not a test: it prints the table for docs/benchmarks.md.

    .venv/bin/python bench/bench_gateway.py [--quick] [--rounds 5] [--json FILE]

Needs wrk and nginx (Debian: apt-get install wrk nginx-light). It starts its own nginx on free
loopback ports (never the system one), three proxies (bare mitmdump, `schoolgate gateway`,
`schoolgate gateway --engine lean`) and drives each in turn, alternating the order every round.
CPU per request is the proxy process's utime+stime (/proc/PID/stat) over the requests that
completed with a 200. Every load is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy_addons.ca import ensure_school_ca  # noqa: E402
from tests.support.gateway import OriginCA  # noqa: E402

BIN = Path(sys.executable).parent
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_proxy.lua"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")

# Host names that resolve to 127.0.0.1 here without DNS (/etc/hosts): one per class, so the
# policy and bare mitmdump's --ignore-hosts can treat each class as it should be treated.
PLAIN_HOST = "localhost"  # plain HTTP, uncategorised: allowed
INTERCEPT_HOST = "vm"  # categorised ("curriculum", allowed): schoolgate decrypts it
PASS_HOST = "runsc"  # uncategorised, allowed: schoolgate passes it through
PROXIES = ("bare", "schoolgate", "lean")
CLASSES = ("http", "https_keepalive", "https_newconn", "https_passthrough")
CLASS_TITLES = {
    "http": "plain HTTP, keep-alive (wrk, absolute-form)",
    "https_keepalive": "HTTPS intercepted, keep-alive",
    "https_newconn": "HTTPS intercepted, new connection per request",
    "https_passthrough": "HTTPS passed through, new connection per request",
}
TARGETS_US = {"http": 884.0, "https_passthrough": 150.0}  # e2guardian / squid reference (issue 3)

BENCH_POLICY = f"""\
name: "gateway benchmark policy"
roles:
  pupil: "Everyone (the benchmark runs without an identity file)"
default_role: pupil
categories:
  curriculum: {{domains: [{INTERCEPT_HOST}]}}
  x: {{domains: [x.com, twitter.com, t.co], not_unblockable_for: all}}
  social: {{domains: [tiktok.com, snapchat.com]}}
calendar:
  timezone: "Europe/London"
  school_days: [monday, tuesday, wednesday, thursday, friday, saturday, sunday]
  school_day: {{start: "00:00", end: "23:59"}}
  periods: []
  bank_holidays: none
rules:
  - {{name: x, roles: all, categories: [x], action: block}}
  - {{name: pupils-social, roles: [pupil], categories: [social], action: block}}
  - {{name: curriculum, roles: [pupil], categories: [curriculum], action: allow}}
default: allow
# The origins are this machine's loopback (nginx on free ports): internal addresses, which the
# gateway refuses unless the policy lists them, on ports it refuses unless the policy names them.
internal:
  allow:
    - {{hosts: [{PLAIN_HOST}, {INTERCEPT_HOST}, {PASS_HOST}, 127.0.0.1/32], roles: [pupil],
       note: "the benchmark's origins"}}
ports: {{connect: [443, 80, HTTPS_PORT], http: [80, HTTP_PORT]}}
"""

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {cert}; ssl_certificate_key {key};
        location / {{ default_type text/plain; return 200 "hello from the origin\\n"; }}
    }}
}}
"""


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode}):\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not listen on {port} within 90 s:\n{log.read_text()}")


@dataclass
class Started:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Setup:
    folder: Path
    origin_ca: OriginCA
    school_ca: Path  # the gateway CA certificate (PEM), shared by all three proxies
    http_port: int
    https_port: int
    pin_proxy: list[str]  # taskset prefix for the proxies
    pin_load: list[str]  # taskset prefix for nginx and wrk
    started: list[Started] = field(default_factory=list)

    def start(self, name: str, command: list[str], port: int, root: Path = ROOT) -> Started:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=self.folder, env={**os.environ, "PYTHONPATH": str(root)})
        one = Started(name, port, proc, log)
        self.started.append(one)
        wait_listening(port, proc, log, name)
        return one

    def stop_all(self) -> None:
        for one in reversed(self.started):
            if one.proc.poll() is None:
                one.proc.terminate()
                try:
                    one.proc.wait(15)
                except subprocess.TimeoutExpired:
                    one.proc.kill()
                    one.proc.wait(5)


def pinning(enabled: bool) -> tuple[list[str], list[str]]:
    """Proxies on the last CPU, load and origin on the others (when there are two or more)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
        return [], []
    load = ",".join(str(c) for c in cpus[:-1])
    os.sched_setaffinity(0, set(cpus[:-1]))  # this process drives the HTTPS load
    return ["taskset", "-c", str(cpus[-1])], ["taskset", "-c", load]


def origin_setup(folder: Path, pin: bool) -> tuple[Setup, list[str]]:
    """The shared part of a benchmark run: CPU pinning, the origins' CA, an nginx origin
    configured (not started) on free ports, and the benchmark policy in `folder`. Returns the
    Setup (its school_ca still to be set) and the command that starts nginx."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or shutil.which("wrk") is None:
        raise SystemExit("needs nginx and wrk: apt-get install -y nginx-light wrk")
    pin_proxy, pin_load = pinning(pin)
    origin_ca = OriginCA.make(folder / "origin-ca", [PLAIN_HOST, INTERCEPT_HOST, PASS_HOST])
    setup = Setup(folder, origin_ca, Path(), free_port(), free_port(), pin_proxy, pin_load)
    (folder / "nginx" / "tmp").mkdir(parents=True)
    conf = folder / "nginx" / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=folder / "nginx", http_port=setup.http_port,
                                      https_port=setup.https_port, cert=origin_ca.cert_pem,
                                      key=origin_ca.key_pem))
    (folder / "policy.yaml").write_text(BENCH_POLICY.replace("HTTPS_PORT", str(setup.https_port))
                                        .replace("HTTP_PORT", str(setup.http_port)))
    return setup, [*pin_load, nginx, "-c", str(conf), "-p", str(folder / "nginx")]


@contextlib.contextmanager
def environment(folder: Path, pin: bool, baseline: Path | None = None
                ) -> Iterator[tuple[Setup, dict[str, Started]]]:
    setup, nginx = origin_setup(folder, pin)
    pin_proxy, origin_ca, policy = setup.pin_proxy, setup.origin_ca, folder / "policy.yaml"
    data = folder / "gateway-data"
    data.mkdir()
    setup.school_ca = ensure_school_ca(data / "ca", "Benchmark Primary School").cert_pem_path
    upstream_ca = f"ssl_verify_upstream_trusted_ca={origin_ca.ca_pem}"
    proxies: dict[str, Started] = {}
    try:
        setup.start("nginx", nginx, setup.http_port)
        port = free_port()
        proxies["bare"] = setup.start("bare", [
            *pin_proxy, str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1",
            "--listen-port", str(port), "--set", "connection_strategy=lazy",
            "--set", f"confdir={data / 'ca'}", "--set", upstream_ca,
            "--ignore-hosts", rf"^{PASS_HOST}:"], port)
        runs = [("schoolgate", "mitmdump", ROOT), ("lean", "lean", ROOT)]
        if baseline is not None:  # the same commands from another checkout (--baseline)
            runs += [("schoolgate-base", "mitmdump", baseline), ("lean-base", "lean", baseline)]
        for name, engine, root in runs:
            port = free_port()
            proxies[name] = setup.start(name, [
                *pin_proxy, str(BIN / "schoolgate"), "gateway", "--engine", engine,
                "--policy", str(policy), "--listen-host", "127.0.0.1",
                "--listen-port", str(port), "--data-dir", str(data), "--", "--set", upstream_ca,
                # Detect blocks CONNECTs to ports other than these: the origin's is odd.
                "--set", f"schoolgate_connect_ports={setup.https_port}",
            ], port, root)
        yield setup, proxies
    finally:
        setup.stop_all()


# --- load generators ----------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """How much load one measurement sends; every one stops by itself."""

    seconds: float  # wrk duration, and the time limit of the HTTPS generator
    wrk_connections: int
    connections: int  # HTTPS connections per measurement (keep-alive class)
    requests_per_connection: int  # keep-alive class
    new_connections: int  # new-connection and passthrough classes
    concurrency: int


FULL = Load(seconds=6, wrk_connections=10, connections=10, requests_per_connection=60,
            new_connections=150, concurrency=8)
QUICK = Load(seconds=2, wrk_connections=4, connections=4, requests_per_connection=20,
             new_connections=30, concurrency=4)
WARMUP = Load(seconds=1, wrk_connections=2, connections=2, requests_per_connection=5,
              new_connections=5, concurrency=2)


def run_wrk(setup: Setup, proxy_port: int, load: Load) -> int:
    """Plain HTTP through the proxy; the number of requests answered without error."""
    target = f"http://{PLAIN_HOST}:{setup.http_port}/"
    command = [*setup.pin_load, "wrk", "-t1", f"-c{load.wrk_connections}",
               f"-d{max(1, round(load.seconds))}s", "--timeout", "10s", "-s", str(WRK_SCRIPT),
               f"http://127.0.0.1:{proxy_port}", "--", target]
    result = subprocess.run(command, capture_output=True, text=True, timeout=load.seconds + 60)
    line = next((x for x in result.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary:\n{result.stdout}\n{result.stderr}")
    summary = json.loads(line)
    return int(summary["requests"]) - int(summary["errors"])


def client_context(setup: Setup) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(setup.school_ca))  # intercepted
    context.load_verify_locations(cafile=str(setup.origin_ca.ca_pem))  # passed through
    context.set_alpn_protocols(["http/1.1"])
    return context


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _connection(proxy_port: int, host: str, port: int, requests: int,
                      context: ssl.SSLContext) -> int:
    """CONNECT, TLS, then `requests` GETs on the one connection; how many got a 200."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    ok = 0
    try:
        writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        await writer.drain()
        reply = await reader.readuntil(b"\r\n\r\n")
        if not reply.startswith(b"HTTP/1.1 200"):
            return 0
        await writer.start_tls(context, server_hostname=host)
        for i in range(requests):
            close = b"Connection: close\r\n" if i == requests - 1 else b""
            writer.write(b"GET / HTTP/1.1\r\nHost: " + f"{host}:{port}".encode() + b"\r\n"
                         + close + b"\r\n")
            await writer.drain()
            ok += await _read_response(reader) == 200
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return ok


async def _https_load(proxy_port: int, host: str, port: int, connections: int, requests: int,
                      concurrency: int, seconds: float, context: ssl.SSLContext) -> int:
    deadline = time.monotonic() + seconds
    queue = iter(range(connections))
    done = failed = 0

    async def worker() -> None:
        nonlocal done, failed
        for _ in queue:
            if time.monotonic() >= deadline:
                return
            try:
                ok = await asyncio.wait_for(
                    _connection(proxy_port, host, port, requests, context), timeout=30)
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
                failed += 1
                continue
            done += ok  # not `done += await ...`: that reads `done` before the await

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if failed:
        print(f"  ({failed} of {connections} connections failed)", flush=True)
    return done


def run_https(setup: Setup, proxy_port: int, kind: str, load: Load) -> int:
    context = client_context(setup)
    if kind == "https_keepalive":
        host, connections, requests = INTERCEPT_HOST, load.connections, load.requests_per_connection
    elif kind == "https_newconn":
        host, connections, requests = INTERCEPT_HOST, load.new_connections, 1
    else:
        host, connections, requests = PASS_HOST, load.new_connections, 1
    concurrency = min(load.concurrency, connections)
    return asyncio.run(_https_load(proxy_port, host, setup.https_port, connections, requests,
                                   concurrency, load.seconds * 4, context))


def drive(setup: Setup, proxy: Started, kind: str, load: Load) -> tuple[float, int]:
    """One measurement: (CPU seconds the proxy used, requests completed)."""
    before = cpu_seconds(proxy.proc.pid)
    completed = (run_wrk(setup, proxy.port, load) if kind == "http"
                 else run_https(setup, proxy.port, kind, load))
    time.sleep(0.5)  # let the proxy finish closing the connections: that is its work too
    return cpu_seconds(proxy.proc.pid) - before, completed


def issuer_seen(setup: Setup, proxy: Started, host: str) -> str:
    """The common name of the certificate issuer the client sees for `host` via `proxy`."""
    async def probe() -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        target = f"{host}:{setup.https_port}"
        writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        await writer.start_tls(client_context(setup), server_hostname=host)
        transport = writer.transport
        ssl_object = transport.get_extra_info("ssl_object")
        cert = ssl_object.getpeercert() if ssl_object else None
        writer.close()
        issuer = dict(x[0] for x in (cert or {}).get("issuer", ()))
        return str(issuer.get("commonName", "?"))
    return asyncio.run(probe())


# --- the run ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine_state() -> dict[str, object]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    import mitmproxy.version
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
            "cpu_model": model, "loadavg": os.getloadavg(), "python": platform.python_version(),
            "mitmproxy": mitmproxy.version.VERSION}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, small loads")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5; quick 1)")
    parser.add_argument("--classes", default=",".join(CLASSES),
                        help=f"comma-separated subset of {','.join(CLASSES)}")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    parser.add_argument("--baseline", type=Path, help="also run both engines from this checkout "
                        "(e.g. a git worktree of an older commit), as schoolgate-base and "
                        "lean-base, in the same rounds")
    args = parser.parse_args(argv)
    load = QUICK if args.quick else FULL
    rounds = args.rounds or (1 if args.quick else 5)
    classes = [c for c in args.classes.split(",") if c]
    unknown = set(classes) - set(CLASSES)
    if unknown:
        parser.error(f"unknown classes {sorted(unknown)}; known: {', '.join(CLASSES)}")

    state = machine_state()
    print(f"# {state['date']}; {state['cpus']} CPUs ({state['cpu_model']}); load average "
          f"{state['loadavg']}; Python {state['python']}; mitmproxy {state['mitmproxy']}")
    samples: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp, \
            environment(Path(tmp), not args.no_pin, args.baseline) as (setup, proxies):
        print(f"# pinning: proxies {setup.pin_proxy[-1:] or 'none'}, load and origin "
              f"{setup.pin_load[-1:] or 'none'}")
        for name, proxy in proxies.items():
            seen = {h: issuer_seen(setup, proxy, h) for h in (INTERCEPT_HOST, PASS_HOST)}
            print(f"# {name}: {INTERCEPT_HOST} certificate issued by {seen[INTERCEPT_HOST]!r}, "
                  f"{PASS_HOST} by {seen[PASS_HOST]!r}")
            for kind in classes:  # warm-up: certificates, caches, imports
                drive(setup, proxy, kind, WARMUP)
        for number in range(rounds):
            names = list(proxies)
            order = names[number % len(names):] + names[:number % len(names)]
            for kind in classes:
                for name in order:
                    cpu, completed = drive(setup, proxies[name], kind, load)
                    us = cpu / completed * 1e6 if completed else float("nan")
                    samples.append({"round": number, "class": kind, "proxy": name,
                                    "cpu_s": round(cpu, 3), "requests": completed,
                                    "us_per_request": round(us, 1)})
                    print(f"round {number + 1}/{rounds} {kind:18} {name:10} {completed:6} req "
                          f"{cpu:6.2f} s CPU {us:8.0f} us/req", flush=True)
        state["loadavg_after"] = os.getloadavg()
    print_table(samples, classes)
    if args.baseline is not None:
        print_baseline(samples, classes, args.baseline)
    print(f"# load average at the end: {state['loadavg_after']}")
    if args.json:
        args.json.write_text(json.dumps({"machine": state, "samples": samples}, indent=1))
    return 0


def print_table(samples: list[dict[str, object]], classes: Sequence[str]) -> None:
    def values(kind: str, proxy: str) -> list[float]:
        return [float(str(s["us_per_request"])) for s in samples
                if s["class"] == kind and s["proxy"] == proxy]

    def round_ratios(kind: str, proxy: str, against_kind: str | None = None) -> list[float]:
        ratios = []
        for r in sorted({int(str(s["round"])) for s in samples}):
            mine = [float(str(s["us_per_request"])) for s in samples if s["round"] == r
                    and s["class"] == kind and s["proxy"] == proxy]
            bare = [float(str(s["us_per_request"])) for s in samples if s["round"] == r
                    and s["class"] == (against_kind or kind) and s["proxy"] == "bare"]
            if mine and bare and bare[0] > 0:
                ratios.append(mine[0] / bare[0])
        return ratios

    print("\nCPU per request (µs, median over rounds); ratio = median of per-round ratios to bare")
    print(f"{'class':52} {'bare':>7} {'schoolgate':>10} {'ratio':>6} {'lean':>7} {'ratio':>6}"
          f" {'target':>7}")
    for kind in classes:
        bare, sg, lean = (median(values(kind, p)) for p in PROXIES)
        target = TARGETS_US.get(kind)
        print(f"{CLASS_TITLES[kind]:52} {bare:7.0f} {sg:10.0f} "
              f"{median(round_ratios(kind, 'schoolgate')):6.2f} {lean:7.0f} "
              f"{median(round_ratios(kind, 'lean')):6.2f} "
              f"{f'{target:.0f}' if target else '-':>7}")
    if "https_passthrough" in classes and "https_newconn" in classes:
        print(f"{'  passed through, vs bare intercepting (new conn.)':52} "
              f"{median(values('https_newconn', 'bare')):7.0f} "
              f"{median(values('https_passthrough', 'schoolgate')):10.0f} "
              f"{median(round_ratios('https_passthrough', 'schoolgate', 'https_newconn')):6.2f} "
              f"{median(values('https_passthrough', 'lean')):7.0f} "
              f"{median(round_ratios('https_passthrough', 'lean', 'https_newconn')):6.2f}")


def print_baseline(samples: list[dict[str, object]], classes: Sequence[str],
                   baseline: Path) -> None:
    """This checkout against --baseline, engine by engine: median of the per-round ratios."""
    def per_round(kind: str, proxy: str) -> dict[int, float]:
        return {int(str(s["round"])): float(str(s["us_per_request"])) for s in samples
                if s["class"] == kind and s["proxy"] == proxy}

    print(f"\nthis checkout / {baseline} (median of per-round ratios; rounds in brackets)")
    for kind in classes:
        cells = []
        for engine in ("schoolgate", "lean"):
            new, old = per_round(kind, engine), per_round(kind, f"{engine}-base")
            ratios = [new[r] / old[r] for r in sorted(new) if r in old and old[r] > 0]
            cells.append(f"{engine} {median(ratios):5.2f} ["
                         + ", ".join(f"{x:.2f}" for x in ratios) + "]")
        print(f"{CLASS_TITLES[kind]:52} " + "   ".join(cells))


if __name__ == "__main__":
    sys.exit(main())
