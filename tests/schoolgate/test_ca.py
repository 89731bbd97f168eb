"""`schoolgate ca`: export in every format a device manager takes, and a rotation that never
leaves devices without a certificate they trust (stage, overlap, switch, retire)."""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from schoolgate.cli import main
from schoolgate.commands.ca import CAError, activate, export, published, stage
from schoolgate.proxy_addons.ca import CERT_PEM, KEY_AND_CERT, ensure_school_ca

T0 = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "ca"
    ensure_school_ca(folder, "Test Primary", now=T0)
    return folder


def serial(cert: x509.Certificate) -> int:
    return cert.serial_number


def test_export_formats_hold_the_certificate_and_never_the_key(confdir: Path) -> None:
    in_use = x509.load_pem_x509_certificates((confdir / KEY_AND_CERT).read_bytes())[0]
    pem = export(confdir, "pem", T0)
    assert b"PRIVATE KEY" not in pem
    assert x509.load_pem_x509_certificates(pem) == [in_use]
    assert x509.load_der_x509_certificate(export(confdir, "der", T0)) == in_use
    bundle = pkcs12.load_pkcs12(export(confdir, "p12", T0), None)
    assert bundle.key is None
    assert [c.certificate for c in bundle.additional_certs] == [in_use]
    ssl.create_default_context(cadata=pem.decode())  # a TLS stack accepts it as a trust anchor


def test_openssl_reads_the_exports(confdir: Path, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    der = tmp_path / "ca.cer"
    der.write_bytes(export(confdir, "der", T0))
    text = subprocess.run(
        [openssl, "x509", "-inform", "DER", "-in", str(der), "-noout", "-subject"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Test Primary" in text
    p12 = tmp_path / "ca.p12"
    p12.write_bytes(export(confdir, "p12", T0))
    out = subprocess.run(
        [openssl, "pkcs12", "-in", str(p12), "-nokeys", "-passin", "pass:"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.count("BEGIN CERTIFICATE") == 1


def test_rotation_publishes_both_switches_after_the_overlap_and_retires_the_old(
    confdir: Path,
) -> None:
    old = published(confdir, T0).current
    go_live = stage(confdir, "Test Primary", 30 * DAY, T0)
    assert go_live == T0 + 30 * DAY
    staged = published(confdir, T0)
    assert staged.current == old  # the gateway still signs with the old CA
    assert staged.next is not None
    new = staged.next
    # Devices get both from now on: the export, /ca.pem (the published file) and the p12.
    assert x509.load_pem_x509_certificates(export(confdir, "pem", T0)) == [old, new]
    assert x509.load_pem_x509_certificates((confdir / CERT_PEM).read_bytes()) == [old, new]
    assert len(pkcs12.load_pkcs12(export(confdir, "p12", T0), None).additional_certs) == 2
    assert stat.S_IMODE((confdir / "next-ca.pem").stat().st_mode) == 0o600

    with pytest.raises(CAError, match="after 2026-10-01"):
        activate(confdir, T0 + 29 * DAY)
    pub = activate(confdir, T0 + 31 * DAY)
    assert pub.current == new
    assert pub.previous == (old,)
    in_use = x509.load_pem_x509_certificates((confdir / KEY_AND_CERT).read_bytes())
    assert in_use == [new]
    key = serialization.load_pem_private_key((confdir / KEY_AND_CERT).read_bytes(), None)
    assert key.public_key() == new.public_key()
    assert x509.load_pem_x509_certificates((confdir / CERT_PEM).read_bytes()) == [new, old]
    assert x509.load_der_x509_certificate(export(confdir, "der", T0 + 31 * DAY)) == new
    # After the second overlap the old certificate is no longer handed out.
    later = T0 + 62 * DAY
    assert x509.load_pem_x509_certificates(export(confdir, "pem", later)) == [new]


def test_force_switches_early_and_a_second_stage_is_refused(confdir: Path) -> None:
    stage(confdir, "Test Primary", 30 * DAY, T0)
    with pytest.raises(CAError, match="already staged"):
        stage(confdir, "Test Primary", 30 * DAY, T0)
    assert activate(confdir, T0 + DAY, force=True).previous
    with pytest.raises(CAError, match="no new CA is staged"):
        activate(confdir, T0 + 2 * DAY)


def test_a_gateway_restarted_on_the_new_ca_loads_it(confdir: Path) -> None:
    """mitmproxy's own loader accepts the CA file a rotation leaves behind."""
    from mitmproxy.certs import CertStore

    stage(confdir, "Test Primary", DAY, T0)
    new = published(confdir, T0).next
    activate(confdir, T0 + 2 * DAY)
    store = CertStore.from_store(confdir, "mitmproxy", 2048)
    assert store.default_ca._cert == new


def test_the_commands(tmp_path: Path, confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(confdir.parent)
    out = tmp_path / "school-ca.cer"
    assert main(["ca", "export", "--data-dir", data, "--format", "der", "--out", str(out)]) == 0
    assert x509.load_der_x509_certificate(out.read_bytes())
    assert main(["ca", "rotate", "--data-dir", data, "--overlap-days", "14"]) == 0
    assert "staged" in capsys.readouterr().err
    assert main(["ca", "status", "--data-dir", data]) == 0
    assert "staged:" in capsys.readouterr().out
    assert main(["ca", "rotate", "--data-dir", data, "--activate"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["ca", "rotate", "--data-dir", data, "--activate", "--force"]) == 0
    assert main(["ca", "export", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "no school CA" in capsys.readouterr().err


# --- the operations review's findings (H7, H1) ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["pem", "der", "p12"])
def test_the_staged_certificate_exports_in_every_format_before_it_goes_live(
    confdir: Path, fmt: str
) -> None:
    with pytest.raises(CAError, match="no new CA is staged"):
        export(confdir, fmt, T0, staged=True)
    stage(confdir, "Test Primary", 30 * DAY, T0)
    pub = published(confdir, T0)
    assert pub.next is not None
    data = export(confdir, fmt, T0, staged=True)
    if fmt == "pem":
        certs = x509.load_pem_x509_certificates(data)
    elif fmt == "der":
        certs = [x509.load_der_x509_certificate(data)]
    else:
        certs = [c.certificate for c in pkcs12.load_pkcs12(data, None).additional_certs]
    assert certs == [pub.next]  # the new one only, not the one in use


def test_the_staged_der_export_from_the_command_line(tmp_path: Path, confdir: Path) -> None:
    data = str(confdir.parent)
    assert main(["ca", "rotate", "--data-dir", data, "--overlap-days", "14"]) == 0
    out = tmp_path / "school-ca-next.cer"
    assert (
        main(["ca", "export", "--data-dir", data, "--staged", "--format", "der", "--out", str(out)])
        == 0
    )
    assert x509.load_der_x509_certificate(out.read_bytes()) == published(confdir, T0).next


def test_the_new_ca_keeps_the_school_name_of_the_one_in_use(
    confdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCHOOLGATE_SCHOOL_NAME", raising=False)
    assert main(["ca", "rotate", "--data-dir", str(confdir.parent)]) == 0
    staged = published(confdir, T0).next
    assert staged is not None
    assert "O=Test Primary" in staged.subject.rfc4514_string()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_rotating_as_root_keeps_the_files_the_service_users(confdir: Path) -> None:
    service = 65534  # nobody: stands for the schoolgate user
    for path in [confdir, *confdir.iterdir()]:
        os.chown(path, service, service)
    stage(confdir, "Test Primary", DAY, T0)
    activate(confdir, T0 + 2 * DAY)
    for path in confdir.rglob("*"):
        if path.parent == confdir or path.parent.name == "previous":
            assert path.stat().st_uid == service, path
    assert stat.S_IMODE((confdir / KEY_AND_CERT).stat().st_mode) == 0o600


def test_a_server_certificate_for_the_admin_is_issued_by_the_school_ca(
    tmp_path: Path, confdir: Path
) -> None:
    out = tmp_path / "tls"
    assert (
        main(
            [
                "ca",
                "server-cert",
                "--data-dir",
                str(confdir.parent),
                "--host",
                "admin.school.test",
                "--host",
                "127.0.0.1",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    context = ssl.create_default_context(cafile=str(confdir / CERT_PEM))
    context.load_cert_chain(out / "admin-cert.pem", out / "admin-key.pem")  # key matches
    leaf, issuer = x509.load_pem_x509_certificates((out / "admin-cert.pem").read_bytes())
    assert issuer == published(confdir, T0).current
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["admin.school.test"]
    assert stat.S_IMODE((out / "admin-key.pem").stat().st_mode) == 0o600
    assert (
        main(
            [
                "ca",
                "server-cert",
                "--data-dir",
                str(confdir.parent),
                "--host",
                "a/b",
                "--out-dir",
                str(out),
            ]
        )
        == 2
    )


@pytest.mark.e2e
def test_a_running_gateway_serves_the_staged_ca_without_a_restart(tmp_path: Path) -> None:
    import httpx

    from tests.support.gateway import running_gateway

    with running_gateway(tmp_path / "gw", policy=None) as gateway:
        url = f"http://127.0.0.1:{gateway.port}/ca.pem"
        before = httpx.get(url, timeout=20, trust_env=False).content
        assert len(x509.load_pem_x509_certificates(before)) == 1
        assert main(["ca", "rotate", "--data-dir", str(gateway.data_dir)]) == 0
        after = httpx.get(url, timeout=20, trust_env=False).content
        assert len(x509.load_pem_x509_certificates(after)) == 2
        assert gateway.proc.poll() is None


def test_an_old_certificate_leaves_the_published_file_after_its_overlap(confdir: Path) -> None:
    """H7.5: it stayed in /ca.pem's file until the next rotation."""
    from schoolgate.commands.ca import refresh_published

    stage(confdir, "Test Primary", DAY, T0)
    activate(confdir, T0 + 2 * DAY)
    served = confdir / CERT_PEM
    assert len(x509.load_pem_x509_certificates(served.read_bytes())) == 2
    assert refresh_published(confdir, T0 + 2 * DAY) == 0  # still in its overlap
    assert refresh_published(confdir, T0 + 4 * DAY) == 1
    assert x509.load_pem_x509_certificates(served.read_bytes()) == [
        published(confdir, T0 + 4 * DAY).current
    ]
