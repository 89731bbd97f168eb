#!/usr/bin/env bash
# Start schoolgate on embedded defaults (the seed policy, the demo directory, SQLite).
set -euo pipefail
SG_EXTRAS=runtime  # only what running needs; ./scripts/test.sh adds the [test] extras
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec "$SG_VENV/bin/schoolgate" run "$@"
