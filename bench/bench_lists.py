"""Benchmark the content lists at scale: `lists build` and `lists update` time, memory per domain
and decision time with a 5-million-domain list loaded, and gateway start time with it.

    python bench/bench_lists.py [--domains 5000000] [--build-domains 200000] [--no-gateway]

Everything runs on loopback: the update fetches a UT1-style `domains` file (with a SHA-256
checksum file) from a local HTTP server; the gateway is a real `schoolgate gateway` process.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_domains import synthetic_domains
from schoolgate.policy.decide import decide
from schoolgate.policy.listformats import ListEntry, ListFile, compact, format_list_file
from schoolgate.policy.model import NO_OVERRIDES, Policy, Request, Subject
from schoolgate.store.list_build import build_lists, load_manifest
from schoolgate.store.list_updates import update_lists
from schoolgate.store.policy_files import forget_loaded_policy, load_policy

BIN = Path(sys.executable).parent
POLICY = """\
name: bench policy
roles: {pupil: Pupils, staff: Staff}
default_role: pupil
categories:
  x: {domains: [x.com, twitter.com, t.co, twimg.com], not_unblockable_for: all}
  adult: {lists: [adult.txt], description: "Adult content (UT1-style feed)"}
calendar: {timezone: Europe/London, school_day: {start: "08:45", end: "15:15"}}
rules:
  - {name: x, roles: all, categories: [x], action: block}
  - {name: adult, roles: all, categories: [adult], action: block}
default: allow
"""
SEED_LIST = (
    "# category: adult\n# description: d\n# compiled: 2026-12-01\n# source: s\nseed.example\n"
)


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def serve(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = lambda *a: Quiet(*a, directory=str(folder))  # noqa: E731
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def timed[T](call: Any, *args: Any, **kwargs: Any) -> tuple[T, float]:
    started = time.perf_counter()
    result: T = call(*args, **kwargs)
    return result, time.perf_counter() - started


def decision_ns(
    policies: dict[str, Policy], hosts: list[str], rounds: int = 40, batch: int = 200
) -> dict[str, tuple[float, float]]:
    """Median and p99 ns per decide() over `hosts` for each policy (each sample the mean of
    `batch` calls). The policies take turns sample by sample, so a busy moment on a shared
    machine falls on all of them alike."""
    at = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    subject = Subject("pupil")
    samples: dict[str, list[float]] = {name: [] for name in policies}
    for policy in policies.values():
        for host in hosts:
            decide(policy, Request(host, 443), subject, NO_OVERRIDES, at)
    for _ in range(rounds):
        for host in hosts:
            request = Request(host, 443)
            for name, policy in policies.items():
                start = time.perf_counter_ns()
                for _ in range(batch):
                    decide(policy, request, subject, NO_OVERRIDES, at)
                samples[name].append((time.perf_counter_ns() - start) / batch)
    out = {}
    for name, values in samples.items():
        values.sort()
        out[name] = (statistics.median(values), values[int(0.99 * (len(values) - 1))])
    return out


def policy_memory(path: Path) -> tuple[float, float]:
    """Bytes the loaded policy keeps, and the peak while loading (tracemalloc)."""
    forget_loaded_policy()  # measure a load from scratch, not the remembered one
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    policy = load_policy(path)
    gc.collect()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del policy
    return kept - before, peak - before


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_start(policy: Path, data: Path) -> tuple[float, int]:
    """Seconds from launching `schoolgate gateway` to its port accepting, and its RSS then."""
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    log = data / f"gateway-{port}.log"
    command = [
        str(BIN / "schoolgate"),
        "gateway",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--data-dir",
        str(data),
        "--policy",
        str(policy),
        "--",
        "--set",
        "schoolgate_metrics_port=0",
    ]
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the gateway exited:\n{log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                time.sleep(0.05)
            if time.perf_counter() - started > 900:
                raise RuntimeError("the gateway did not start in 15 minutes")
        seconds = time.perf_counter() - started
        rss = 0
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
        return seconds, rss
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_build(folder: Path, count: int) -> float:
    """`lists build` over a synthetic v2fly file + AdGuard service of `count` names."""
    upstream = folder / "upstream"
    names = synthetic_domains(count, seed=7)
    v2fly = "\n".join(f"domain:{n}" if i % 3 else f"full:{n} @ads" for i, n in enumerate(names))
    adguard = "id: big\nname: Big\nrules:\n" + "".join(f"  - '||{n}^'\n" for n in names[::2])
    files = {"v2/data/big": v2fly + "\n", "adg/services/big.yml": adguard}
    pins: dict[str, dict[str, str]] = {}
    for rel, text in files.items():
        target = upstream / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        source, _, path = rel.partition("/")
        pins.setdefault(source, {})[path] = hashlib.sha256(text.encode()).hexdigest()
    lines = ["sources:"]
    for source, paths in pins.items():
        lines += [
            f"  {source}:",
            f"    repository: https://example.test/{source}",
            f"    commit: {'ab' * 20}",
            "    files:",
        ]
        lines += [f"      {p}: {d}" for p, d in paths.items()]
    lines += [
        "outputs:",
        "  - {list: big.txt, category: big, description: Big, "
        "compiled: 2026-12-01, feeds: [{source: v2, kind: v2fly, name: big}, "
        "{source: adg, kind: adguard-service, name: big}]}",
    ]
    manifest = folder / "sources.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    loaded, hand = load_manifest(manifest)
    _, seconds = timed(build_lists, loaded, hand, upstream)
    return seconds


def decide_only(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-decide-") as tmp:
        root = Path(tmp)
        names = synthetic_domains(count)
        body = format_list_file(
            ListFile(
                "adult",
                "d",
                datetime(2026, 12, 1).date(),
                ("s",),
                compact(ListEntry(n) for n in names),
            )
        )
        del names
        last = body.rstrip("\n").rsplit("\n", 1)[-1].split()[0]
        policies: dict[str, Policy] = {}
        for name, text in (("small", SEED_LIST + last + "\n"), ("big", body)):
            (root / name).mkdir()
            (root / name / "policy.yaml").write_text(POLICY)
            (root / name / "adult.txt").write_text(text)
            policies[name] = load_policy(root / name / "policy.yaml")
        hosts = [
            "x.com",
            "api.x.com",
            "www." + last,
            "www.bbc.co.uk",
            "classroom.google.com",
            "a.b.c.d.e.f.g.example.net",
        ]
        times = decision_ns(policies, hosts)
        print(
            f"decide() median / p99 ns over {len(hosts)} hosts: "
            f"{times['small'][0]:.0f} / {times['small'][1]:.0f} with a 2-domain list; "
            f"{times['big'][0]:.0f} / {times['big'][1]:.0f} with {count:,}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--domains",
        type=int,
        default=5_000_000,
        help="entries in the content list (default 5,000,000)",
    )
    parser.add_argument(
        "--build-domains",
        type=int,
        default=200_000,
        help="names in the synthetic upstream for `lists build`",
    )
    parser.add_argument("--no-gateway", action="store_true", help="skip the gateway start")
    parser.add_argument(
        "--decide-only",
        action="store_true",
        help="only the decision times (the list is written directly)",
    )
    args = parser.parse_args()
    if args.decide_only:
        decide_only(args.domains)
        return
    with tempfile.TemporaryDirectory(prefix="bench-lists-") as tmp:
        root = Path(tmp)
        print(
            f"Python {sys.version.split()[0]}, {os.cpu_count()} cores; "
            f"content list: {args.domains:,} domains\n"
        )

        seconds = bench_build(root / "build", args.build_domains)
        print(
            f"lists build, {args.build_domains:,} upstream names (v2fly + AdGuard): {seconds:.1f} s"
        )

        feed = root / "feed"
        feed.mkdir()
        names, seconds = timed(synthetic_domains, args.domains)
        body = ("# synthetic UT1-style domains\n" + "\n".join(names) + "\n").encode()
        del names
        (feed / "domains").write_bytes(body)
        (feed / "domains.sha256").write_text(f"{hashlib.sha256(body).hexdigest()}  domains\n")
        print(f"(generating the feed: {seconds:.1f} s, {len(body) / 1e6:.0f} MB)")
        del body
        school = root / "school"
        school.mkdir()
        policy_path = school / "policy.yaml"
        policy_path.write_text(POLICY)
        (school / "adult.txt").write_text(SEED_LIST)
        server, url = serve(feed)
        (school / "lists.yaml").write_text(
            f"sources:\n  - {{name: feed, category: adult, format: ut1-domains, "
            f'url: "{url}/domains", sha256_url: "{url}/domains.sha256", '
            f"max_bytes: 500000000}}\n"
        )
        report, seconds = timed(
            update_lists, school / "lists.yaml", now=datetime.now(UTC), policy_path=policy_path
        )
        server.shutdown()
        assert report.ok, report
        entries = report.outcomes[0].entries
        print(
            f"lists update, {entries:,} entries (fetch, sha256, parse, compact, write, "
            f"policy check): {seconds:.1f} s"
        )

        forget_loaded_policy()  # the update's policy check loaded these very bytes
        policy, seconds = timed(load_policy, policy_path)
        print(f"policy load with the list (the gateway's start and reload work): {seconds:.1f} s")
        kept, peak = policy_memory(policy_path)
        print(
            f"memory the loaded policy keeps: {kept / entries:.1f} bytes per domain "
            f"({kept / 1e6:.0f} MB); peak while loading {peak / entries:.0f} bytes per "
            "domain"
        )

        last = (school / "adult.txt").read_text().rstrip("\n").rsplit("\n", 1)[-1].split()[0]
        small_dir = root / "small"
        small_dir.mkdir()
        (small_dir / "policy.yaml").write_text(POLICY)
        (small_dir / "adult.txt").write_text(SEED_LIST + last + "\n")  # the same hit in both
        small_policy = load_policy(small_dir / "policy.yaml")
        hosts = [
            "x.com",
            "api.x.com",
            "www." + last,
            "www.bbc.co.uk",
            "classroom.google.com",
            "a.b.c.d.e.f.g.example.net",
        ]
        times = decision_ns({"small": small_policy, "big": policy}, hosts)
        (s_med, s_p99), (b_med, b_p99) = times["small"], times["big"]
        print(
            f"decide() median / p99 ns over {len(hosts)} hosts: {s_med:.0f} / {s_p99:.0f} "
            f"with a 2-domain list; {b_med:.0f} / {b_p99:.0f} with {entries:,}"
        )
        del policy
        gc.collect()

        if not args.no_gateway:
            start_small, rss_small = gateway_start(small_dir / "policy.yaml", root / "gw1")
            start_big, rss_big = gateway_start(policy_path, root / "gw2")
            print(
                f"gateway start to listening: {start_small:.1f} s, RSS "
                f"{rss_small / 1e6:.0f} MB with a 2-domain list; {start_big:.1f} s, RSS "
                f"{rss_big / 1e6:.0f} MB with {entries:,} "
                f"({(rss_big - rss_small) / entries:.0f} bytes per domain)"
            )


if __name__ == "__main__":
    main()
