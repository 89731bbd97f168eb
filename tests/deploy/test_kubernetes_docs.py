"""docs/kubernetes.md's commands, run as written where no cluster is needed, so the page and
the manifests cannot drift apart: the CA and secrets are made with schoolgate's own commands,
every `kubectl create` runs with `--dry-run=client -o yaml` (kubectl's own offline rendering),
`kubectl apply -k` becomes `kubectl kustomize` of the same folder, and `helm install` becomes
`helm template` with the same arguments. Then: every Secret the manifests use is made by the
page with the keys they mount, and the CA rotation re-cuts a Secret that publishes both
certificates at staging and holds the new key after activation. The commands that need an API
server are listed in NEEDS_A_CLUSTER (no cluster runs here: docs/kubernetes.md says why)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from base64 import b64decode
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from tests.deploy.test_docs import sh_commands
from tests.deploy.test_helm import tool
from tests.deploy.test_kubernetes import build, pod_spec, workloads

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "kubernetes.md"
TRUST = ROOT / "deploy" / "kubernetes" / "overlays" / "trust"
NEEDS_A_CLUSTER = (
    "kubectl -n schoolgate wait ",
    "kubectl -n schoolgate delete ",
    "kubectl -n schoolgate rollout ",
    "kubectl label namespace ",
)


def secrets_used() -> dict[str, set[str]]:
    """Secret name -> the keys the built manifests read from it (empty: every key)."""
    used: dict[str, set[str]] = {}
    for workload in [*workloads("overlays/trust"), *build("migrate")]:
        spec = pod_spec(workload)
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                keys = {i["key"] for i in volume["secret"].get("items", [])}
                used.setdefault(volume["secret"]["secretName"], set()).update(keys)
        for container in spec["containers"] + spec.get("initContainers", []):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    used.setdefault(source["secretRef"]["name"], set())
    for ingress in (d for d in build("overlays/trust") if d["kind"] == "Ingress"):
        for tls in ingress["spec"]["tls"]:
            used.setdefault(tls["secretName"], set()).update({"tls.crt", "tls.key"})
    return used


def certificates(secret: dict[str, Any], key: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(b64decode(secret["data"][key]))


@pytest.fixture
def workstation(tmp_path: Path) -> Path:
    """The trust's workstation: a checkout (deploy/), the overlay's files, the directory's and
    the mail server's passwords, the domain CA, and the page's my-values.yaml."""
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    for name in ("policy.yaml", "identity.yaml", "notifications.yaml"):
        shutil.copy(TRUST / name, tmp_path / name)
    shutil.copy(
        ROOT / "deploy" / "helm" / "schoolgate" / "values-small-school.yaml",
        tmp_path / "my-values.yaml",
    )
    (tmp_path / "ldap-bind-password").write_text("bind-secret")
    (tmp_path / "smtp-password").write_text("smtp-secret")
    (tmp_path / "ad-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    return tmp_path


def test_every_command_of_the_kubernetes_page(workstation: Path) -> None:
    kubectl, helm = tool("kubectl"), tool("helm")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")},
        "PATH": f"{Path(kubectl).parent}:{Path(helm).parent}:{Path(sys.executable).parent}:"
        f"{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(workstation / "no-cluster"),
    }
    made: dict[str, dict[str, Any]] = {}  # the last rendering of each Secret
    staged: dict[str, Any] | None = None
    ran = 0
    for command in sh_commands(PAGE):
        if command.startswith(NEEDS_A_CLUSTER):
            continue
        if command.startswith("kubectl apply -k "):
            command = command.replace("kubectl apply -k ", "kubectl kustomize ", 1)
        elif command.startswith("helm install "):
            command = command.replace("helm install ", "helm template ", 1)
        elif command.startswith("kubectl ") and " create " in command:
            if command.endswith("| kubectl apply -f -"):
                command = command.removesuffix("| kubectl apply -f -").rstrip()
            else:
                command += " --dry-run=client -o yaml"
        elif "--activate" in command:  # "after the overlap": let the 30 days pass
            state_file = workstation / "trust-ca" / "ca" / "rotation.json"
            state = json.loads(state_file.read_text())
            state["next"]["activate_after"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            state_file.write_text(json.dumps(state))
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=workstation,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, f"docs/kubernetes.md: {command}\n{result.stderr}"
        ran += 1
        rendered = (
            [d for d in yaml.safe_load_all(result.stdout) if d]
            if command.startswith(("kubectl", "helm"))
            else []
        )
        for doc in rendered:
            if doc.get("kind") == "Secret" and " create " in command:
                made[doc["metadata"]["name"]] = doc
                assert doc["metadata"]["namespace"] == "schoolgate"
        if "schoolgate-ca --dry-run" in command:
            staged = made["schoolgate-ca"]  # the re-cut at staging
    assert ran >= 15
    # every Secret the manifests read is made by the page, with every key they mount
    for name, keys in secrets_used().items():
        assert name in made, f"docs/kubernetes.md never makes the Secret {name}"
        assert keys <= set(made[name]["data"]), (name, keys, set(made[name]["data"]))
    directory = yaml.safe_load((TRUST / "identity.yaml").read_text())["directory"]
    for path in (directory["bind_password_file"], directory["ca_file"]):
        assert Path(path).name in made["schoolgate-directory"]["data"]
    notices = yaml.safe_load((TRUST / "notifications.yaml").read_text())
    assert Path(notices["email"]["password_file"]).name in made["schoolgate-smtp"]["data"]
    # the rotation: at staging the Secret publishes both; the new CA is what was handed out
    assert staged is not None
    assert len(certificates(staged, "mitmproxy-ca-cert.pem")) == 2
    handed_out = x509.load_der_x509_certificate((workstation / "school-ca-next.cer").read_bytes())
    assert handed_out in certificates(staged, "mitmproxy-ca-cert.pem")
    assert certificates(staged, "mitmproxy-ca.pem")[0] != handed_out  # not live yet
    # "then re-cut the Secret ... with the same two commands": the key in use is the new CA's
    recut = next(c for c in sh_commands(PAGE) if "schoolgate-ca --dry-run" in c)
    result = subprocess.run(
        ["bash", "-c", recut.removesuffix("| kubectl apply -f -")],
        cwd=workstation,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    live = yaml.safe_load(result.stdout)
    assert certificates(live, "mitmproxy-ca.pem")[0] == handed_out
