"""Transparent mode for real: deploy/nftables/schoolgate.nft loaded in a router network namespace
that runs `schoolgate gateway --mode transparent`, between a client namespace and a server
("internet") namespace, all made by this test. The client's TCP 80/443 is redirected to the
gateway (block page by Host header and by SNI; allowed traffic reaches the origin from the
router's address), UDP 443 is refused (ECONNREFUSED on a connected socket, though the server
answers UDP), direct egress and DNS over TLS are refused, and the gateway identified the client
by its subnet. Nothing outside the namespaces receives traffic."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.gateway import write_policy
from tests.support.needs import need, need_program

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RULES = ROOT / "deploy" / "nftables" / "schoolgate.nft"
PYTHON = sys.executable
SCHOOLGATE = str(Path(sys.executable).parent / "schoolgate")
CLIENT_IP, ROUTER_LAN, ROUTER_WAN, SERVER_IP = "10.77.0.2", "10.77.0.1", "10.77.1.1", "10.77.1.2"

pytestmark = pytest.mark.e2e


@dataclass
class Lab:
    client: str
    router: str
    server: str
    ca_pem: Path
    log: Path

    def probe(self, *args: str) -> dict[str, object]:
        out = subprocess.run(
            ["ip", "netns", "exec", self.client, PYTHON, str(HERE / "netns_client.py"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        result: dict[str, object] = json.loads(out)
        return result

    def in_router(self, *command: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.router, *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def namespaces_allowed() -> bool:
    name = f"sgprobe-{uuid.uuid4().hex[:6]}"
    ok = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ok


def configured_rules(lan_if: str, port: int) -> str:
    text = RULES.read_text()
    text = re.sub(r"^define LAN_IF = .*$", f'define LAN_IF = "{lan_if}"', text, flags=re.M)
    text = re.sub(r"^define GATEWAY_PORT = .*$", f"define GATEWAY_PORT = {port}", text, flags=re.M)
    text = re.sub(
        r"^define LAN_TO_SERVERS = .*$",
        f"define LAN_TO_SERVERS = {{ {SERVER_IP} . 2222 }}",
        text,
        flags=re.M,
    )
    return re.sub(
        r"^define DNS_SERVERS = .*$", f"define DNS_SERVERS = {{ {SERVER_IP} }}", text, flags=re.M
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need_program("ip", "iproute2")
    nft = need_program("nft", "nftables")
    need(
        os.geteuid() == 0 and namespaces_allowed(),
        "network namespaces",
        "run as root on a machine (or container) that allows `ip netns add`",
    )
    folder = tmp_path_factory.mktemp("netns")
    tag = uuid.uuid4().hex[:6]
    client, router, server = (f"sg{role}-{tag}" for role in ("c", "r", "s"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (client, router, server):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh(
            "ip",
            "link",
            "add",
            f"c0{tag}",
            "netns",
            client,
            "type",
            "veth",
            "peer",
            "name",
            f"r0{tag}",
            "netns",
            router,
        )
        sh(
            "ip",
            "link",
            "add",
            f"r1{tag}",
            "netns",
            router,
            "type",
            "veth",
            "peer",
            "name",
            f"s0{tag}",
            "netns",
            server,
        )
        for ns, dev, address in (
            (client, f"c0{tag}", f"{CLIENT_IP}/24"),
            (router, f"r0{tag}", f"{ROUTER_LAN}/24"),
            (router, f"r1{tag}", f"{ROUTER_WAN}/24"),
            (server, f"s0{tag}", f"{SERVER_IP}/24"),
        ):
            sh("ip", "-n", ns, "addr", "add", address, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", client, "route", "add", "default", "via", ROUTER_LAN)
        sh("ip", "-n", server, "route", "add", "default", "via", ROUTER_WAN)
        sh("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        rules = folder / "schoolgate.nft"
        rules.write_text(configured_rules(f"r0{tag}", 8080))
        sh("ip", "netns", "exec", router, nft, "-f", str(rules))

        origin = subprocess.Popen(
            ["ip", "netns", "exec", server, PYTHON, str(HERE / "netns_origin.py"), SERVER_IP],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(origin)
        assert origin.stdout is not None
        assert origin.stdout.readline().strip() == b"ready"

        policy = folder / "policy.yaml"
        write_policy(policy, in_break=False)
        # The lab's "internet" is a private network of the test's own namespaces, which the
        # gateway refuses as internal unless the policy lists it.
        with policy.open("a") as extra:
            extra.write(
                "internal:\n  allow:\n    - {hosts: [10.77.1.0/24], roles: [staff], "
                "note: the lab's internet}\n"
            )
        identity = folder / "identity.yaml"
        identity.write_text(
            "subnets:\n  - {cidr: 10.77.0.0/24, role: staff, without_auth: true}"
            "\nauth_required: false\n"
        )
        data, log = folder / "data", folder / "gateway.log"
        command = [
            "ip",
            "netns",
            "exec",
            router,
            SCHOOLGATE,
            "gateway",
            "--mode",
            "transparent",
            "--listen-port",
            "8080",
            "--data-dir",
            str(data),
            "--policy",
            str(policy),
            "--identity",
            str(identity),
            "--school-name",
            "Netns Primary",
            "--",
            "--set",
            "termlog_verbosity=warn",
            "-s",
            str(HERE / "metrics_script.py"),
            "--set",
            "schoolgate_metrics_port=9090",
        ]
        with log.open("wb") as out:
            gateway = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                cwd=folder,
            )
        procs.append(gateway)
        made = Lab(client, router, server, data / "ca" / "mitmproxy-ca-cert.pem", log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert gateway.poll() is None, log.read_text()
            check = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    router,
                    PYTHON,
                    "-c",
                    "import socket; socket.create_connection(('127.0.0.1', 9090), 1)",
                ],
                capture_output=True,
            )
            if check.returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the gateway did not start:\n{log.read_text()}")
        yield made
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for ns in (client, router, server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_plain_http_is_redirected_and_a_blocked_host_gets_the_block_page(lab: Lab) -> None:
    blocked = lab.probe("http", "x.com", SERVER_IP, "80")
    assert blocked["status"] == 403
    assert "This website is blocked at school" in str(blocked["body"])


def test_allowed_http_reaches_the_origin_through_the_gateway(lab: Lab) -> None:
    allowed = lab.probe("http", "learning.test", SERVER_IP, "80")
    assert allowed["status"] == 200
    # The origin saw the router's address: the gateway made the connection, not the client.
    assert f"peer={ROUTER_WAN}" in str(allowed["body"])


def test_https_is_redirected_and_blocked_by_sni(lab: Lab) -> None:
    blocked = lab.probe("https", "www.instagram.com", SERVER_IP, "443", str(lab.ca_pem))
    assert blocked["status"] == 403  # the school CA's certificate was accepted: the gateway
    assert "This website is blocked at school" in str(blocked["body"])


def test_quic_is_refused_though_the_server_answers_udp(lab: Lab) -> None:
    assert lab.probe("udp", SERVER_IP, "443") == {
        "error": "ConnectionRefusedError",
        "detail": "[Errno 111] Connection refused",
    }


@pytest.mark.parametrize("port", ["853", "8443"])
def test_direct_egress_that_skips_the_gateway_is_refused(lab: Lab, port: str) -> None:
    assert lab.probe("tcp", SERVER_IP, port)["error"] == "ConnectionRefusedError"


def test_ssh_to_an_internet_host_is_refused(lab: Lab) -> None:
    """Ops review L1: the example opened TCP 22 to every host, an SSH-tunnel way round."""
    assert lab.probe("tcp", SERVER_IP, "22")["error"] == "ConnectionRefusedError"


def test_a_listed_server_and_port_still_passes(lab: Lab) -> None:
    """LAN_TO_SERVERS (address . port) lets the LAN reach a named server directly, and only
    on its listed port."""
    assert lab.probe("tcp", SERVER_IP, "2222") == {"connected": True}


def test_the_client_was_identified_by_its_subnet(lab: Lab) -> None:
    lab.probe("http", "learning.test", SERVER_IP, "80")
    metrics = lab.in_router(
        PYTHON,
        "-c",
        "import urllib.request; print(urllib.request.urlopen("
        "'http://127.0.0.1:9090/metrics', timeout=5).read().decode())",
    )
    subnet = re.search(
        r'^schoolgate_identities_total\{source="subnet"\} ([0-9.e+]+)$', metrics, re.M
    )
    assert subnet is not None
    assert float(subnet.group(1)) >= 1
    assert re.search(r'^schoolgate_requests_total\{.*role="staff".*\} [1-9]', metrics, re.M)


def test_the_rules_counted_what_they_did(lab: Lab) -> None:
    ruleset = lab.in_router("nft", "list", "table", "inet", "schoolgate")
    redirected = re.search(r"dport \{ 80, 443 \} counter packets (\d+) .* redirect", ruleset)
    assert redirected is not None
    assert int(redirected.group(1)) >= 3
