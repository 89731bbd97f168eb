#!/usr/bin/env bash
# with-postgres.sh COMMAND...: run COMMAND with a PostgreSQL server for the tests.
# When one answers on $SCHOOLGATE_TEST_PG_HOST:$SCHOOLGATE_TEST_PG_PORT (default 127.0.0.1:5432)
# it is used as it is. Otherwise (a fresh machine) this installs Debian's postgresql package
# when needed (as root, without starting its daemon), starts a private cluster for this run
# (trust auth, loopback only, a free port, files under /tmp), points the tests at it through
# SCHOOLGATE_TEST_PG_PORT, and stops and removes it when COMMAND ends.
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

host="${SCHOOLGATE_TEST_PG_HOST:-127.0.0.1}"
port="${SCHOOLGATE_TEST_PG_PORT:-5432}"
user="${SCHOOLGATE_TEST_PG_USER:-postgres}"

answers() {  # answers PORT: true when a PostgreSQL server takes connections there
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$host" -p "$1" -U "$user" -t 3
    else
        (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
    fi
}

if answers "$port"; then
    exec "$@"
fi
if [ "$host" != 127.0.0.1 ] && [ "$host" != localhost ]; then
    echo "schoolgate: no PostgreSQL answers on $host:$port; the PostgreSQL tests will say so" >&2
    exec "$@"
fi

pg_bindir() {
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -n "$found" ] && [ -x "$found/initdb" ]; then echo "$found"; return 0; fi
    command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return 0
    return 1
}

if ! bindir="$(pg_bindir)"; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "schoolgate: installing Debian's postgresql for the tests (its daemon is not started)" >&2
        export DEBIAN_FRONTEND=noninteractive
        policy_rc=/usr/sbin/policy-rc.d created_policy_rc=0
        if [ ! -e "$policy_rc" ]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy_rc" && chmod +x "$policy_rc" && created_policy_rc=1
        fi
        apt-get update -qq >/dev/null 2>&1 || true
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 \
            || echo "schoolgate: could not install postgresql" >&2
        [ "$created_policy_rc" = 1 ] && rm -f "$policy_rc"
    fi
    if ! bindir="$(pg_bindir)"; then
        echo "schoolgate: no PostgreSQL on $host:$port and none to start (install Debian's" \
             "postgresql package); the PostgreSQL tests will say so" >&2
        exec "$@"
    fi
fi

root="$(mktemp -d /tmp/sg-test-pg.XXXXXX)"
run_as=()
if [ "$(id -u)" = 0 ]; then  # initdb and postgres refuse to run as root
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown postgres: "$root"
    run_as=(runuser -u postgres --)
fi
port="$("${SG_PY:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
stop_cluster() {
    "${run_as[@]}" "$bindir/pg_ctl" -D "$root/data" stop -m fast -w >/dev/null 2>&1
    rm -rf "$root"
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM
if ! "${run_as[@]}" "$bindir/initdb" -D "$root/data" -U "$user" --auth=trust --no-sync -E UTF8 \
        >"$root/initdb.log" 2>&1; then
    echo "schoolgate: initdb failed:" >&2; cat "$root/initdb.log" >&2; exit 1
fi
if ! "${run_as[@]}" "$bindir/pg_ctl" -D "$root/data" -l "$root/server.log" -w start \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$root -c fsync=off -c max_connections=200" \
        >/dev/null 2>&1; then
    echo "schoolgate: the private PostgreSQL did not start:" >&2; cat "$root/server.log" >&2; exit 1
fi
echo "schoolgate: no PostgreSQL on $host:${SCHOOLGATE_TEST_PG_PORT:-5432}; started a private one for this run on 127.0.0.1:$port" >&2
export SCHOOLGATE_TEST_PG_HOST=127.0.0.1 SCHOOLGATE_TEST_PG_PORT="$port" SCHOOLGATE_TEST_PG_USER="$user"
"$@"
