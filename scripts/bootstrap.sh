#!/usr/bin/env bash
# Sourced by scripts/run.sh and scripts/test.sh: finds a Python >= 3.12, makes .venv and
# installs schoolgate into it (again only when pyproject.toml changes, or the caller needs more).
# The caller says what it needs in SG_EXTRAS before sourcing: "runtime" (run.sh: what running
# the gateway and admin needs) or "test" (test.sh, and the default: the [test] extras too, about
# 630 MB more). The stamp records the pyproject.toml hash and what was installed; "test" covers
# "runtime", so switching from test.sh to run.sh installs nothing.
# Sets SG_VENV and SG_PY for the caller.
set -euo pipefail

SG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SG_VENV="${SG_VENV:-$SG_ROOT/.venv}"

sg_python_ok() {  # true when "$1" is a Python interpreter >= 3.12
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

sg_find_python() {
    local candidates=()
    [ -n "${SCHOOLGATE_PYTHON:-}" ] && candidates+=("$SCHOOLGATE_PYTHON")
    candidates+=(python3.13 python3.12 python3.14)
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    if [ -d "$pyenv_root/versions" ]; then
        # newest 3.12+ pyenv build first
        while IFS= read -r v; do candidates+=("$pyenv_root/versions/$v/bin/python3"); done < <(
            ls "$pyenv_root/versions" 2>/dev/null | grep -E '^3\.(1[2-9]|[2-9][0-9])(\.[0-9]+)*$' | sort -rV)
    fi
    candidates+=(python3 python)
    local c
    for c in "${candidates[@]}"; do
        if command -v "$c" >/dev/null 2>&1 && sg_python_ok "$c"; then
            command -v "$c"; return 0
        fi
    done
    return 1
}

if [ ! -x "$SG_VENV/bin/python" ] || ! sg_python_ok "$SG_VENV/bin/python"; then
    if ! base_python="$(sg_find_python)"; then
        cat >&2 <<'MSG'
schoolgate needs Python 3.12 or newer (mitmproxy 12 does), and none was found.
Looked for: $SCHOOLGATE_PYTHON, python3.13, python3.12, pyenv's 3.12+ builds, python3.
Install one, for example:
  Ubuntu 24.04:   apt-get install python3.12 python3.12-venv
  Debian 12:      its python3 is 3.11; get a 3.12 from uv, a maintained installer:
                    python3 -m venv /opt/uv && /opt/uv/bin/pip install uv
                    /opt/uv/bin/uv python install 3.12
                  then SCHOOLGATE_PYTHON="$(/opt/uv/bin/uv python find 3.12)"
  pyenv:          pyenv install 3.12
then run this command again (or point SCHOOLGATE_PYTHON at the interpreter).
MSG
        exit 3
    fi
    echo "schoolgate: creating $SG_VENV with $base_python ($("$base_python" -V 2>&1))" >&2
    rm -rf "$SG_VENV"
    "$base_python" -m venv "$SG_VENV"
fi

SG_PY="$SG_VENV/bin/python"
SG_EXTRAS="${SG_EXTRAS:-test}"
case "$SG_EXTRAS" in
    runtime) sg_target="$SG_ROOT" ;;
    test) sg_target="$SG_ROOT[test]" ;;
    *) echo "schoolgate: SG_EXTRAS must be runtime or test, not '$SG_EXTRAS'" >&2; exit 2 ;;
esac
stamp="$SG_VENV/.schoolgate-installed"
want="$(sha256sum < "$SG_ROOT/pyproject.toml" | cut -d' ' -f1)"
have_hash="" have_extras=""
if [ -f "$stamp" ]; then
    read -r have_hash have_extras < "$stamp" || true
    have_extras="${have_extras:-test}"  # a stamp without it is from when [test] always went in
fi
if [ "$have_hash" != "$want" ] || { [ "$SG_EXTRAS" = test ] && [ "$have_extras" != test ]; }; then
    echo "schoolgate: installing schoolgate and its dependencies ($SG_EXTRAS) into $SG_VENV" >&2
    # pip's and setuptools' own chatter (index warnings, the editable-install banner) goes to a
    # log, shown only when the install fails
    sg_log="$SG_VENV/pip-install.log"
    if ! { "$SG_PY" -m pip install --quiet --disable-pip-version-check --upgrade pip &&
           "$SG_PY" -m pip install --quiet --disable-pip-version-check -e "$sg_target"; } \
            > "$sg_log" 2>&1; then
        echo "schoolgate: installing into $SG_VENV failed; pip's last lines:" >&2
        tail -n 25 "$sg_log" >&2
        echo "schoolgate: the whole output is in $sg_log (a network or package index problem is the usual cause; run the command again once it is fixed)" >&2
        exit 1
    fi
    echo "$want $SG_EXTRAS" > "$stamp"
fi
export SG_ROOT SG_VENV SG_PY
export PATH="$SG_VENV/bin:$PATH"
