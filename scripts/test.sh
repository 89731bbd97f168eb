#!/usr/bin/env bash
# Run the whole test suite (lint and type checks included) on a fresh machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
"$SG_ROOT/scripts/system-deps.sh"
cd "$SG_ROOT"
exec "$SG_PY" -m pytest "$@"
