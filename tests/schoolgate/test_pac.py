"""`schoolgate pac`: the PAC file it writes, run by a real JavaScript engine (node) with the
standard PAC helper functions, routes every internet host through the gateway and never DIRECT."""

from __future__ import annotations

import json
import random
import shutil
import string
import subprocess
from ipaddress import ip_network
from pathlib import Path

import pytest

from schoolgate.cli import main
from schoolgate.commands.pac import make_pac, parse_gateway
from schoolgate.policy.addresses import InternalAllow, InternalSettings
from tests.support.needs import need

HERE = Path(__file__).resolve().parent
GATEWAY = "gateway.school.lan"
PROXY = "PROXY gateway.school.lan:8080"

# (host the browser asks for, expected answer)
CASES = [
    ("www.bbc.co.uk", PROXY),
    ("x.com", PROXY),
    ("intranet", PROXY),  # a plain name may resolve anywhere: never DIRECT
    ("8.8.8.8", PROXY),
    ("172.32.0.1", PROXY),  # just outside 172.16/12
    ("11.0.0.1", PROXY),
    ("10.0.0.1.nip.io", PROXY),  # looks like a private literal, is a public name
    ("2130706433", PROXY),  # 127.0.0.1 as a number: not a dotted literal, so through the proxy
    ("0x7f.0.0.1", PROXY),
    # IPv6 literals (ops review L2: private ones were proxied): public ones through the proxy,
    # loopback, unique-local (fc00::/7) and link-local (fe80::/10) DIRECT, as for IPv4.
    ("2001:4860:4860::8888", PROXY),
    ("2a00:1450:4009:81f::200e", PROXY),
    ("fbff::1", PROXY),  # just below fc00::/7
    ("fec0::1", PROXY),  # just above fe80::/10
    ("::ffff:8.8.8.8", PROXY),
    ("::2", PROXY),
    ("fd00::1.nip.io", PROXY),
    ("fd00:::1", PROXY),  # not a literal
    ("::1", "DIRECT"),
    ("[::1]", "DIRECT"),
    ("0:0:0:0:0:0:0:1", "DIRECT"),
    ("fd12:3456:789a::10", "DIRECT"),
    ("FC00::1", "DIRECT"),
    ("fe80::1ff:fe23:4567:890a", "DIRECT"),
    ("febf:ffff::1", "DIRECT"),
    ("::ffff:192.168.1.10", "DIRECT"),
    ("gateway.school.lan.evil.com", PROXY),
    ("10.1.2.3", "DIRECT"),
    ("172.16.0.9", "DIRECT"),
    ("172.31.255.255", "DIRECT"),
    ("192.168.1.10", "DIRECT"),
    ("127.0.0.1", "DIRECT"),
    ("169.254.10.10", "DIRECT"),
    ("localhost", "DIRECT"),
    (GATEWAY, "DIRECT"),
    ("Gateway.School.LAN", "DIRECT"),
]


def evaluate(pac: str, hosts: list[str], tmp_path: Path) -> list[str]:
    node = shutil.which("node")
    need(node is not None, "node (a JavaScript engine)", "install Debian's 'nodejs'")
    assert node is not None
    path = tmp_path / "proxy.pac"
    path.write_text(pac)
    cases = [[f"https://{h}/", h] for h in hosts]
    result = subprocess.run(
        [node, str(HERE / "pac_runner.js"), str(path)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answers: list[str] = json.loads(result.stdout)
    return answers


def test_the_pac_routes_each_case(tmp_path: Path) -> None:
    pac = make_pac([(GATEWAY, 8080)])
    answers = evaluate(pac, [h for h, _ in CASES], tmp_path)
    assert dict(zip([h for h, _ in CASES], answers, strict=True)) == dict(CASES)


def test_no_internet_host_is_ever_direct(tmp_path: Path) -> None:
    rng = random.Random(20260923)  # fixed: the same names every run
    alphabet = string.ascii_lowercase + string.digits + "-."
    names = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(300)]
    public_ips = [
        f"{rng.choice([1, 8, 23, 51, 104, 142, 185, 203])}.{rng.randint(0, 255)}."
        f"{rng.randint(0, 255)}.{rng.randint(0, 255)}"
        for _ in range(100)
    ]
    hosts = [n for n in names if n not in ("localhost", GATEWAY)] + public_ips
    answers = evaluate(make_pac([(GATEWAY, 8080)]), hosts, tmp_path)
    assert [h for h, a in zip(hosts, answers, strict=True) if a != PROXY] == []


def test_fail_over_lists_every_gateway_in_order(tmp_path: Path) -> None:
    pac = make_pac([("gw1.trust.lan", 3128), ("gw2.trust.lan", 3128), ("fd00::5", 8080)])
    answers = evaluate(pac, ["example.org", "gw1.trust.lan", "gw2.trust.lan"], tmp_path)
    assert answers == [
        "PROXY gw1.trust.lan:3128; PROXY gw2.trust.lan:3128; PROXY [fd00::5]:8080",
        "DIRECT",
        "DIRECT",  # ops review L2: every fail-over gateway is reached directly, not the first
    ]


def test_the_direct_domain_option_is_the_policys_internal_allow(tmp_path: Path) -> None:
    """Ops review L2 asked for a DIRECT-domain option: `internal.allow` entries marked
    `direct: true` (names with their subdomains, IPv4 and IPv6 ranges for literals)."""
    internal = InternalSettings(
        allow=(
            InternalAllow(hosts=("sims.school.lan",), direct=True),
            InternalAllow(
                networks=(ip_network("10.50.0.0/16"), ip_network("2001:db8:5::/48")), direct=True
            ),
            InternalAllow(hosts=("printer.school.lan",)),
        )
    )
    pac = make_pac([(GATEWAY, 8080)], internal)
    hosts = [
        "sims.school.lan",
        "www.sims.school.lan",
        "10.50.3.4",
        "2001:db8:5::9",
        "2001:db8:6::9",
        "printer.school.lan",
        "sims.school.lan.evil.com",
    ]
    answers = evaluate(pac, hosts, tmp_path)
    assert answers == ["DIRECT", "DIRECT", "DIRECT", "DIRECT", PROXY, PROXY, PROXY]


def test_the_command_writes_the_file_and_the_wpad_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wpad.dat"
    assert (
        main(["pac", "--gateway", "Gateway.School.LAN.", "--port", "3128", "--out", str(out)]) == 0
    )
    assert evaluate(out.read_text(), ["example.org"], tmp_path) == ["PROXY gateway.school.lan:3128"]
    notes = capsys.readouterr().err
    assert "option 252" in notes
    # ops review L2: DNS WPAD asks on port 80, which the gateway (3128 here) does not serve
    assert "port 80" in notes
    assert "http://gateway.school.lan:3128/wpad.dat" in notes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gw.lan", ("gw.lan", 8080)),
        ("gw.lan:3128", ("gw.lan", 3128)),
        ("[fd00::1]:8443", ("fd00::1", 8443)),
        ("10.0.0.5", ("10.0.0.5", 8080)),
    ],
)
def test_parse_gateway(text: str, expected: tuple[str, int]) -> None:
    assert parse_gateway(text, 8080) == expected


@pytest.mark.parametrize("text", ["", "gw.lan:0", "gw.lan:http", "http://gw.lan/", "a b"])
def test_parse_gateway_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"host name|port"):
        parse_gateway(text, 8080)


def test_the_command_says_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pac", "--gateway", "gw.lan:99999"]) == 2
    assert "1 to 65535" in capsys.readouterr().err
