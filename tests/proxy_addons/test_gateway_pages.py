"""GatewayPages: requests addressed to the gateway are answered, never forwarded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from mitmproxy import exceptions, http
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow, tutils

from schoolgate.proxy_addons.ca import CERT_PEM, ensure_school_ca
from schoolgate.proxy_addons.gateway_pages import PAC_TYPE, GatewayPages
from schoolgate.proxy_addons.policy_source import PolicySource

GATEWAY = ("10.0.0.5", 8080)


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[tuple[GatewayPages, taddons.context]]:
    ensure_school_ca(tmp_path, "Test Primary", now=datetime(2026, 1, 1, tzinfo=UTC))
    source = PolicySource()
    addon = GatewayPages(source)
    with taddons.context(source, addon) as tctx:
        tctx.configure(addon, confdir=str(tmp_path))
        yield addon, tctx


def get(
    host: str, port: int, path: str, *, method: str = "GET", mode: str = "regular"
) -> http.HTTPFlow:
    flow = tflow.tflow(
        req=tutils.treq(
            host=host, port=port, path=path.encode(), method=method.encode(), authority=b""
        )
    )
    flow.client_conn.sockname = GATEWAY
    flow.client_conn.proxy_mode = ProxyMode.parse(mode)
    return flow


@pytest.mark.parametrize(
    ("host", "port", "ours"),
    [
        ("10.0.0.5", 8080, True),  # the address the client reached us on
        ("10.0.0.5", 80, False),  # another service on the same machine
        ("example.com", 8080, False),
        ("gateway.school.test", 80, True),  # the configured gateway name, any port
    ],
)
def test_only_requests_for_the_gateway_are_answered(
    pages: tuple[GatewayPages, taddons.context], host: str, port: int, ours: bool
) -> None:
    addon, tctx = pages
    tctx.configure(addon, schoolgate_gateway_host="Gateway.School.Test.")
    flow = get(host, port, "/")
    addon.requestheaders(flow)
    assert (flow.response is not None) is ours


def test_transparent_mode_never_mistakes_the_destination_for_us(
    pages: tuple[GatewayPages, taddons.context],
) -> None:
    addon, _ = pages
    flow = get(*GATEWAY, "/proxy.pac", mode="transparent")
    addon.requestheaders(flow)
    assert flow.response is None


def test_pac_routes_through_the_gateway_and_never_direct_for_the_internet(
    pages: tuple[GatewayPages, taddons.context],
) -> None:
    addon, _ = pages
    for path in ("/proxy.pac", "/wpad.dat"):
        flow = get(*GATEWAY, path)
        addon.requestheaders(flow)
        assert flow.response is not None
        assert flow.response.headers["content-type"] == PAC_TYPE
        pac = flow.response.text or ""
        assert 'var PROXY = "PROXY 10.0.0.5:8080";' in pac
        assert pac.rstrip().endswith("return PROXY;\n}")
        assert "dnsResolve" not in pac


def test_ca_downloads(pages: tuple[GatewayPages, taddons.context], tmp_path: Path) -> None:
    addon, _ = pages
    pem, der = get(*GATEWAY, "/ca.pem"), get(*GATEWAY, "/ca.crt")
    addon.requestheaders(pem)
    addon.requestheaders(der)
    assert pem.response is not None
    assert der.response is not None
    assert pem.response.content == (tmp_path / CERT_PEM).read_bytes()
    cert = x509.load_der_x509_certificate(der.response.content or b"")
    assert "CN=schoolgate CA (Test Primary)" in cert.subject.rfc4514_string()
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/", "GET", 200),
        ("/nothing-here", "GET", 404),
        ("/proxy.pac", "POST", 405),
    ],
)
def test_other_paths_and_methods(
    pages: tuple[GatewayPages, taddons.context], path: str, method: str, status: int
) -> None:
    addon, _ = pages
    flow = get(*GATEWAY, path, method=method)
    addon.requestheaders(flow)
    assert flow.response is not None
    assert flow.response.status_code == status


def test_connect_to_the_gateway_is_refused(pages: tuple[GatewayPages, taddons.context]) -> None:
    addon, _ = pages
    flow = get(*GATEWAY, "", method="CONNECT")
    addon.http_connect(flow)
    assert flow.response is not None
    assert flow.response.status_code == 403


def test_bad_gateway_host_is_refused(pages: tuple[GatewayPages, taddons.context]) -> None:
    addon, tctx = pages
    with pytest.raises(exceptions.OptionsError, match="schoolgate_gateway_host"):
        tctx.configure(addon, schoolgate_gateway_host="http://gateway/")


# --- the policy's internal allow list in the PAC file ------------------------------------------

DIRECT_POLICY = """
internal:
  allow:
    - {hosts: [mis.school.lan, 10.20.0.0/16], roles: [staff], direct: true}
    - {hosts: [printer.school.lan, 192.0.2.0/24], roles: all}
"""


def direct_policy(tmp_path: Path) -> Path:
    seed = (
        Path(__file__).resolve().parents[2] / "schoolgate" / "policy" / "data" / "seed.yaml"
    ).read_text()
    path = tmp_path / "policy.yaml"
    path.write_text(seed.replace("internal:\n  allow: []\n", "") + DIRECT_POLICY)
    lists = Path(__file__).resolve().parents[2] / "schoolgate" / "policy" / "data" / "lists"
    for item in lists.iterdir():
        (tmp_path / item.name).write_text(item.read_text())
    return path


PAC_DIRECT = [  # (host, DIRECT?): only the entries marked direct, names on label boundaries
    ("mis.school.lan", True),
    ("reports.mis.school.lan", True),
    ("notmis.school.lan", False),
    ("mis.school.lan.evil.com", False),
    ("10.20.3.4", True),
    ("printer.school.lan", False),
    ("192.0.2.7", False),
    ("www.bbc.co.uk", False),
]


def test_the_served_pac_sends_the_policys_direct_entries_direct(
    pages: tuple[GatewayPages, taddons.context], tmp_path: Path
) -> None:
    from tests.schoolgate.test_pac import evaluate

    addon, tctx = pages
    tctx.options.schoolgate_policy = str(direct_policy(tmp_path))  # PolicySource's option
    flow = get(*GATEWAY, "/proxy.pac")
    addon.requestheaders(flow)
    assert flow.response is not None
    answers = evaluate(flow.response.text or "", [h for h, _ in PAC_DIRECT], tmp_path)
    assert [a == "DIRECT" for a in answers] == [d for _, d in PAC_DIRECT]


def test_the_pac_command_reads_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from schoolgate.cli import main
    from tests.schoolgate.test_pac import evaluate

    out = tmp_path / "proxy.pac"
    assert (
        main(
            [
                "pac",
                "--gateway",
                "gw.school.lan",
                "--policy",
                str(direct_policy(tmp_path)),
                "--out",
                str(out),
                "--no-notes",
            ]
        )
        == 0
    )
    answers = evaluate(out.read_text(), [h for h, _ in PAC_DIRECT], tmp_path)
    assert [a == "DIRECT" for a in answers] == [d for _, d in PAC_DIRECT]
    # the seed policy has no direct entries: a name is never DIRECT
    assert main(["pac", "--gateway", "gw.school.lan", "--out", str(out), "--no-notes"]) == 0
    assert evaluate(out.read_text(), ["mis.school.lan"], tmp_path) == ["PROXY gw.school.lan:8080"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    assert main(["pac", "--gateway", "gw.school.lan", "--policy", str(bad)]) == 2
    assert "--policy" in capsys.readouterr().err
