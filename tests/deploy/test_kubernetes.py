"""deploy/kubernetes: what `kubectl kustomize` builds from each overlay (and the migration step)
validates against the Kubernetes API schemas (strict, kubernetes-validate, offline), and the
operations review's findings hold fixed: the policy is a whole-folder ConfigMap mount (so a
kubelet update is a reload), the migration Job sits in the namespace and outside the base, a
CronJob purges by retention, the spool survives a pod, the directory's secrets come from a
Secret, the admin never mounts the CA key, the image is named once, the admin has an Ingress
with TLS, NetworkPolicies fence the pods, Prometheus Operator users get PodMonitors."""

from __future__ import annotations

import functools
import ipaddress
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.needs import need

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install kubernetes-validate (schemas ship with it)"
)

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
VERSIONS = ("1.30.0", "1.33.0")
OVERLAYS = ("overlays/small-school", "overlays/trust")
BUILDS = ("base", *OVERLAYS, "migrate")
CRD_KINDS = {"PodMonitor", "PrometheusRule"}  # Prometheus Operator's: not in the Kubernetes schemas
IMAGE = "registry.example.org/schoolgate:0.1.0"


@functools.cache
def build(folder: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    need(
        kubectl is not None,
        "kubectl (its built-in kustomize)",
        "install kubectl (Kubernetes' own packages) to build deploy/kubernetes",
    )
    assert kubectl is not None
    out = subprocess.run(
        [kubectl, "kustomize", str(KUBE / folder)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def one(folder: str, kind: str, name: str) -> dict[str, Any]:
    found = [
        d
        for d in build(folder)
        if d["kind"] == kind
        and (
            d["metadata"]["name"] == name
            or (
                d["metadata"]["name"].startswith(name + "-")
                and d["metadata"]["name"][len(name) + 1 :].isalnum()
                and len(d["metadata"]["name"]) - len(name) == 11
            )
        )
    ]  # kustomize's hash suffix
    assert len(found) == 1, [d["metadata"]["name"] for d in build(folder) if d["kind"] == kind]
    return found[0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return dict(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(doc["spec"]["template"]["spec"])


def workloads(folder: str) -> list[dict[str, Any]]:
    return [
        d for d in build(folder) if d["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")
    ]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("folder", BUILDS)
def test_every_build_validates_strictly(folder: str, version: str) -> None:
    for doc in build(folder):
        if doc["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any error


def test_strict_validation_catches_a_misspelt_field() -> None:
    bad = dict(one("base", "StatefulSet", "schoolgate-gateway"))
    bad["spec"] = dict(bad["spec"], replica=2)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)


@pytest.mark.parametrize("folder", BUILDS)
def test_everything_lands_in_the_schoolgate_namespace(folder: str) -> None:
    for doc in build(folder):
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "schoolgate", doc["metadata"]


def test_the_migration_job_is_outside_the_base_and_names_its_namespace_itself() -> None:
    """H6/M9: `kubectl apply -f migrate/job.yaml` lands in schoolgate too; `apply -k` of an
    overlay never re-runs it or trips over its immutable fields."""
    job = yaml.safe_load((KUBE / "migrate" / "job.yaml").read_text())
    assert job["metadata"]["namespace"] == "schoolgate"
    assert pod_spec(job)["containers"][0]["args"] == ["db", "upgrade"]
    for folder in ("base", *OVERLAYS):
        assert not [d for d in build(folder) if d["kind"] == "Job"]


@pytest.mark.parametrize("folder", BUILDS)
def test_one_image_named_in_one_place(folder: str) -> None:
    images = {
        c["image"]
        for w in workloads(folder)
        for c in pod_spec(w)["containers"] + pod_spec(w).get("initContainers", [])
    }
    assert images == {IMAGE}
    raw = [p for p in KUBE.rglob("*.yaml") if IMAGE.split(":")[0] in p.read_text()]
    assert [p.relative_to(KUBE).as_posix() for p in raw] == ["components/image/kustomization.yaml"]


@pytest.mark.parametrize("folder", OVERLAYS)
def test_a_policy_update_reaches_the_pods_as_a_symlink_swap(folder: str) -> None:
    """H3: the policy ConfigMap is mounted as a whole folder (subPath mounts never update) and
    keeps its name (no hash suffix), so kubelet's update is a live reload; the gateway is
    pointed at the file inside that folder."""
    policy_map = one(folder, "ConfigMap", "schoolgate-policy")
    assert policy_map["metadata"]["name"] == "schoolgate-policy"
    assert "policy.yaml" in policy_map["data"]
    for kind, name in (("StatefulSet", "schoolgate-gateway"), ("Deployment", "schoolgate-admin")):
        spec = pod_spec(one(folder, kind, name))
        volume = next(
            v for v in spec["volumes"] if v.get("configMap", {}).get("name") == "schoolgate-policy"
        )
        container = spec["containers"][0]
        mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
        assert "subPath" not in mount
        assert f"--policy={mount['mountPath']}/policy.yaml" in container["args"]


def test_the_overlay_policies_pass_the_policy_check() -> None:
    from schoolgate.store.policy_files import load_policy

    for folder in OVERLAYS:
        assert load_policy(KUBE / folder / "policy.yaml").rules


@pytest.mark.parametrize("folder", OVERLAYS)
def test_a_cronjob_purges_by_retention(folder: str) -> None:
    cron = one(folder, "CronJob", "schoolgate-purge")
    args = pod_spec(cron)["containers"][0]["args"]
    assert args[:2] == ["db", "purge"]
    assert "--events-days" in args
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert {"secretRef": {"name": "schoolgate-env"}} in pod_spec(cron)["containers"][0]["envFrom"]


@pytest.mark.parametrize("folder", OVERLAYS)
def test_the_event_spool_is_on_a_volume_that_outlives_the_pod(folder: str) -> None:
    """M6: a StatefulSet's claim, mounted where the gateway spools."""
    gateway = one(folder, "StatefulSet", "schoolgate-gateway")
    claims = {c["metadata"]["name"] for c in gateway["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in pod_spec(gateway)["containers"][0]["volumeMounts"]}
    assert "spool" in claims
    assert mounts["spool"] == "/var/lib/schoolgate/spool"  # DATA_DIR/spool (gateway.py)
    assert "--data-dir=/var/lib/schoolgate" in pod_spec(gateway)["containers"][0]["args"]
    assert gateway["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


@pytest.mark.parametrize("folder", OVERLAYS)
def test_the_directory_secrets_come_from_a_secret(folder: str) -> None:
    """M7: identity.yaml names files in the mounted schoolgate-directory Secret."""
    identity = yaml.safe_load((KUBE / folder / "identity.yaml").read_text())["directory"]
    for kind, name in (("StatefulSet", "schoolgate-gateway"), ("Deployment", "schoolgate-admin")):
        spec = pod_spec(one(folder, kind, name))
        volume = next(
            v
            for v in spec["volumes"]
            if v.get("secret", {}).get("secretName") == "schoolgate-directory"
        )
        mount = next(
            m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"]
        )
        assert Path(identity["bind_password_file"]).parent == Path(mount["mountPath"])
        assert Path(identity["ca_file"]).parent == Path(mount["mountPath"])
    example = [d for d in yaml.safe_load_all((KUBE / "secrets.example.yaml").read_text()) if d]
    keys = {d["metadata"]["name"]: set(d["stringData"]) for d in example}
    assert keys["schoolgate-directory"] == {
        Path(identity["bind_password_file"]).name,
        Path(identity["ca_file"]).name,
    }


def test_the_admin_never_mounts_the_ca_key() -> None:
    spec = pod_spec(one("overlays/trust", "Deployment", "schoolgate-admin"))
    for volume in spec["volumes"]:
        if volume.get("secret", {}).get("secretName") == "schoolgate-ca":
            assert volume["secret"]["items"] == [{"key": "secret", "path": "secret"}]
    gateway = pod_spec(one("overlays/trust", "StatefulSet", "schoolgate-gateway"))
    assert any(
        v.get("secret", {}).get("secretName") == "schoolgate-ca" and "items" not in v["secret"]
        for v in gateway["volumes"]
    )


@pytest.mark.parametrize("folder", OVERLAYS)
def test_the_admin_has_an_ingress_with_tls_for_its_own_host(folder: str) -> None:
    ingress = one(folder, "Ingress", "schoolgate-admin")
    hosts = {r["host"] for r in ingress["spec"]["rules"]}
    assert hosts == set(ingress["spec"]["tls"][0]["hosts"])
    assert ingress["spec"]["tls"][0]["secretName"]
    config = one(folder, "ConfigMap", "schoolgate-config")["data"]
    assert config["SCHOOLGATE_ADMIN_URL"] == f"https://{hosts.pop()}"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = one(folder, "Service", "schoolgate-admin")
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    admin = pod_spec(one(folder, "Deployment", "schoolgate-admin"))["containers"][0]
    assert "--forwarded-allow-ips=*" in admin["args"]  # M3: the client's address, not the proxy's


def _private(cidr: str) -> bool:
    return ipaddress.ip_network(cidr).is_private


def test_network_policies_deny_by_default_and_keep_the_gateway_off_other_pods() -> None:
    policies = {
        d["metadata"]["name"]: d["spec"]
        for d in build("overlays/trust")
        if d["kind"] == "NetworkPolicy"
    }
    deny = policies["default-deny"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    gateway = policies["schoolgate-gateway"]
    for rule in gateway["egress"]:
        for peer in rule["to"]:
            if "ipBlock" in peer:
                block = peer["ipBlock"]
                if ipaddress.ip_network(block["cidr"]).prefixlen == 0:  # "the internet"
                    excepted = [ipaddress.ip_network(c) for c in block.get("except", [])]
                    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"):
                        net = ipaddress.ip_network(private)
                        if net.version == excepted[0].version:
                            assert any(net.subnet_of(e) for e in excepted), private  # type: ignore[arg-type]
                    assert "ports" not in rule
                else:  # a named service (database, directory): its ports only
                    assert rule["ports"]
            else:  # pods: only the cluster DNS
                assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
                assert {p["port"] for p in rule["ports"]} == {53}
    labels = {"app.kubernetes.io/name": "schoolgate-gateway"}
    assert gateway["podSelector"]["matchLabels"] == labels
    covered = {
        tuple(sorted(p["podSelector"].get("matchLabels", {}).items())) for p in policies.values()
    }
    for workload in workloads("overlays/trust"):
        template = (
            workload["spec"]["jobTemplate"]["spec"]["template"]
            if workload["kind"] == "CronJob"
            else workload["spec"]["template"]
        )
        pod_labels = template["metadata"]["labels"]
        assert any(all(pod_labels.get(k) == v for k, v in sel) for sel in covered if sel), workload[
            "metadata"
        ]["name"]
    assert all(
        _private(p["ipBlock"]["cidr"]) or ipaddress.ip_network(p["ipBlock"]["cidr"]).prefixlen == 0
        for r in gateway["egress"]
        for p in r["to"]
        if "ipBlock" in p
    )


def test_prometheus_operator_users_get_pod_monitors_with_the_rules_job_names() -> None:
    monitors = {
        d["metadata"]["name"]: d for d in build("overlays/trust") if d["kind"] == "PodMonitor"
    }
    assert set(monitors) == {"schoolgate-gateway", "schoolgate-admin"}
    rules = (ROOT / "deploy" / "prometheus" / "schoolgate-rules.yml").read_text()
    for name, monitor in monitors.items():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        endpoint = monitor["spec"]["podMetricsEndpoints"][0]
        assert {"targetLabel": "job", "replacement": name} in endpoint["relabelings"]
        assert f'job="{name}"' in rules
        kind = "StatefulSet" if name == "schoolgate-gateway" else "Deployment"
        spec = pod_spec(one("overlays/trust", kind, name))
        assert endpoint["port"] in {p["name"] for p in spec["containers"][0]["ports"]}
        assert (
            monitor["spec"]["selector"]["matchLabels"].items()
            <= one("overlays/trust", kind, name)["spec"]["template"]["metadata"]["labels"].items()
        )


def test_prometheus_operator_users_get_the_alert_rules_as_they_are_in_deploy_prometheus() -> None:
    """The monitoring component said it shipped the alert rules as a PrometheusRule and listed
    only the PodMonitors; the copy must say what deploy/prometheus says."""
    (rule,) = [d for d in build("overlays/trust") if d["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "schoolgate-rules.yml").read_text())
    assert rule["spec"] == rules, "copy deploy/prometheus/schoolgate-rules.yml's groups into " + (
        "deploy/kubernetes/components/monitoring/prometheusrule.yaml"
    )
    assert len(rules["groups"][0]["rules"]) >= 10


def test_a_small_school_runs_one_of_each_and_a_trust_several() -> None:
    small = one("overlays/small-school", "StatefulSet", "schoolgate-gateway")
    assert small["spec"]["replicas"] == 1
    assert (
        one("overlays/small-school", "PodDisruptionBudget", "schoolgate-gateway")["spec"][
            "minAvailable"
        ]
        == 0
    )  # drains are not blocked
    trust = one("overlays/trust", "StatefulSet", "schoolgate-gateway")
    pdb = one("overlays/trust", "PodDisruptionBudget", "schoolgate-gateway")
    assert trust["spec"]["replicas"] >= 2
    assert pdb["spec"]["minAvailable"] < trust["spec"]["replicas"]
    assert one("overlays/trust", "Deployment", "schoolgate-admin")["spec"]["replicas"] >= 2
    assert not [d for d in build("overlays/small-school") if d["kind"] == "PodMonitor"]


@pytest.mark.parametrize(
    ("kind", "name"), [("StatefulSet", "schoolgate-gateway"), ("Deployment", "schoolgate-admin")]
)
def test_probes_resources_and_no_privileges(kind: str, name: str) -> None:
    spec = pod_spec(one("overlays/trust", kind, name))
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
    gateway = one("overlays/trust", "StatefulSet", "schoolgate-gateway")
    container = pod_spec(gateway)["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["tcpSocket"] == {"port": "proxy"}
    assert "schoolgate_metrics_host=0.0.0.0" in container["args"]
    service = one("overlays/trust", "Service", "schoolgate-gateway")
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["externalTrafficPolicy"] == "Local"  # client addresses kept
    ranges = service["spec"]["loadBalancerSourceRanges"]  # never an open proxy
    assert ranges
    assert all(ipaddress.ip_network(r).is_private for r in ranges)


def test_the_database_comes_from_a_secret() -> None:
    example = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((KUBE / "secrets.example.yaml").read_text())
        if d
    }
    assert "SCHOOLGATE_DATABASE_URL" in example["schoolgate-env"]["stringData"]
    for workload in [*workloads("overlays/trust"), *build("migrate")]:
        container = pod_spec(workload)["containers"][0]
        assert {"secretRef": {"name": "schoolgate-env"}} in container["envFrom"]


def test_ca_rotation_with_the_manifests(tmp_path: Path) -> None:
    """H7.6: the files the gateway's init container copies from the schoolgate-ca Secret are
    the ones `schoolgate ca rotate` keeps current: after staging, the published file holds both
    certificates; after activation, the key file holds the new CA."""
    import shlex
    from datetime import UTC, datetime, timedelta

    from cryptography import x509

    from schoolgate.commands.ca import activate, stage
    from schoolgate.proxy_addons.ca import ensure_school_ca

    init = pod_spec(one("overlays/trust", "StatefulSet", "schoolgate-gateway"))["initContainers"][0]
    script = init["command"][-1]
    copied = {
        Path(word).name
        for word in shlex.split(script.replace("&&", " "))
        if word.startswith("/ca/")
    }
    assert copied == {"mitmproxy-ca.pem", "mitmproxy-ca-cert.pem", "secret"}
    confdir = tmp_path / "ca"
    now = datetime(2026, 9, 1, tzinfo=UTC)
    ensure_school_ca(confdir, "Trust", now=now)
    stage(confdir, "Trust", timedelta(days=1), now)
    assert (
        len(x509.load_pem_x509_certificates((confdir / "mitmproxy-ca-cert.pem").read_bytes())) == 2
    )
    staged = x509.load_pem_x509_certificates((confdir / "next-ca.pem").read_bytes())[0]
    activate(confdir, now + timedelta(days=2))
    in_use = x509.load_pem_x509_certificates((confdir / "mitmproxy-ca.pem").read_bytes())[0]
    assert in_use == staged
    for name in copied - {"secret"}:
        assert (confdir / name).is_file()
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    for name in copied - {"secret"}:
        assert f"--from-file=./trust-ca/ca/{name}" in docs


@pytest.mark.parametrize("folder", OVERLAYS)
def test_a_cronjob_sends_the_notifications_and_remembers_what_it_sent(folder: str) -> None:
    """Issue 14: `schoolgate notify` every five minutes, like the systemd timer and the compose
    service; one run at a time, with the admin's settings, and its state (what was sent) on a
    volume that outlives the run, so nothing is sent twice."""
    from schoolgate.admin_api.notifications import parse_notification_settings

    cron = one(folder, "CronJob", "schoolgate-notify")
    assert cron["spec"]["schedule"] == "*/5 * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["suspend"] is False  # on unless a school without mail turns it off
    spec = pod_spec(cron)
    container = spec["containers"][0]
    assert container["args"][:2] == ["notify", "--settings"]
    settings_path = Path(container["args"][2])
    assert {"secretRef": {"name": "schoolgate-env"}} in container["envFrom"]
    assert {"configMapRef": {"name": "schoolgate-config"}} in container["envFrom"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    # the settings file is the overlay's notifications.yaml, mounted where the args say
    settings_volume = next(n for n, p in mounts.items() if p == str(settings_path.parent))
    settings_map = one(folder, "ConfigMap", "schoolgate-notifications")
    assert volumes[settings_volume]["configMap"]["name"] == settings_map["metadata"]["name"]
    text = settings_map["data"][settings_path.name]
    settings = parse_notification_settings(text, source=folder)
    # the mail password file is inside the mounted schoolgate-smtp Secret
    password = settings.email.password_file
    assert password is not None
    smtp_volume = next(n for n, p in mounts.items() if p == str(Path(password).parent))
    assert volumes[smtp_volume]["secret"]["secretName"] == "schoolgate-smtp"
    example = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((KUBE / "secrets.example.yaml").read_text())
        if d
    }
    assert Path(password).name in example["schoolgate-smtp"]["stringData"]
    # the data folder (notifications-state.json) is a claim, not the pod's own disk
    data_dir = one(folder, "ConfigMap", "schoolgate-config")["data"]["SCHOOLGATE_DATA_DIR"]
    state_volume = next(n for n, p in mounts.items() if p == data_dir)
    claim = volumes[state_volume]["persistentVolumeClaim"]["claimName"]
    assert one(folder, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"]
    # it may reach the database and a mail server's ports, and nothing else but DNS
    policy = next(
        d["spec"]
        for d in build(folder)
        if d["kind"] == "NetworkPolicy"
        and d["spec"]["podSelector"].get("matchLabels", {}).items()
        <= cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].items()
        and d["spec"]["podSelector"].get("matchLabels")
    )
    ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {5432, 53, 25, 465, 587}
    assert "ingress" not in policy


@pytest.mark.parametrize("folder", BUILDS)
def test_every_container_runs_a_real_schoolgate_command(folder: str) -> None:
    """The args of every container that runs the image's entry point (`schoolgate`) parse with
    schoolgate's own command line, so a renamed flag fails here, not in the cluster."""
    from schoolgate.cli import make_parser

    assert 'ENTRYPOINT ["schoolgate"]' in (ROOT / "Dockerfile").read_text()
    parsed = 0
    for workload in workloads(folder):
        for container in pod_spec(workload)["containers"]:
            if "command" in container:
                continue
            make_parser().parse_args(container["args"])  # exits (SystemExit) on a bad flag
            parsed += 1
    assert parsed >= (1 if folder == "migrate" else 4)
