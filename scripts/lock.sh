#!/usr/bin/env bash
# Remake requirements.lock (the image's pinned, hashed runtime dependencies) from pyproject.toml,
# in a throw-away virtual environment with pip-tools, on Python 3.12 like the image.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${SCHOOLGATE_LOCK_PYTHON:-python3.12}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check pip-tools
cp "$root/pyproject.toml" "$work/"
(cd "$work" && "$work/venv/bin/pip-compile" --quiet --generate-hashes --strip-extras \
    --no-header --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml)
{
    sed -n '1,4p' "$root/requirements.lock"
    cat "$work/requirements.lock"
} > "$root/requirements.lock.new"
mv "$root/requirements.lock.new" "$root/requirements.lock"
echo "wrote $root/requirements.lock"
