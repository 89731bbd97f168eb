"""deploy/kubernetes: every manifest validates against the Kubernetes API schemas (strict, with
kubernetes-validate, offline), and the shape the issue asks for holds: several gateway replicas
behind a Service, probes, a PodDisruptionBudget that selects them, resource requests, a
migration Job, the database URL from a Secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install kubernetes-validate (schemas ship with it)")

KUBE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSION = "1.30.0"
FILES = sorted(p for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> list[dict[str, Any]]:
    return [d for p in FILES for d in yaml.safe_load_all(p.read_text()) if d]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_manifests_validate_strictly(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, VERSION, strict=True)  # raises on any error


def test_strict_validation_catches_a_misspelt_field() -> None:
    bad = by_kind("Deployment")["schoolgate-gateway"]
    bad["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)


def test_the_kustomization_lists_every_manifest_but_the_example_secrets() -> None:
    listed = set(yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in FILES} - {"secrets.example.yaml"}


def test_several_gateway_replicas_behind_a_service_with_a_disruption_budget() -> None:
    gateway = by_kind("Deployment")["schoolgate-gateway"]
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert gateway["spec"]["replicas"] >= 2
    service = by_kind("Service")["schoolgate-gateway"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["externalTrafficPolicy"] == "Local"  # client addresses kept
    pdb = by_kind("PodDisruptionBudget")["schoolgate-gateway"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < gateway["spec"]["replicas"]


@pytest.mark.parametrize("name", ["schoolgate-gateway", "schoolgate-admin"])
def test_probes_resources_and_no_privileges(name: str) -> None:
    spec = by_kind("Deployment")[name]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in spec["containers"]:
        assert container["readinessProbe"]
        assert container["livenessProbe"]
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for container in spec.get("initContainers", []):
        assert container["resources"]["requests"]


def test_the_gateway_probes_use_its_metrics_health_endpoint_and_proxy_port() -> None:
    container = by_kind("Deployment")["schoolgate-gateway"]["spec"]["template"]["spec"][
        "containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["tcpSocket"] == {"port": "proxy"}
    assert "schoolgate_metrics_host=0.0.0.0" in container["args"]


def test_migrations_are_a_job_and_the_database_comes_from_a_secret() -> None:
    job = by_kind("Job")["schoolgate-db-upgrade"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["db", "upgrade"]
    secrets = by_kind("Secret")
    assert "SCHOOLGATE_DATABASE_URL" in secrets["schoolgate-env"]["stringData"]
    for name in ("schoolgate-gateway", "schoolgate-admin"):
        container = by_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
        assert {"secretRef": {"name": "schoolgate-env"}} in container["envFrom"]
