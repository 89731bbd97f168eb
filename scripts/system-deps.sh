#!/usr/bin/env bash
# Installs the Debian packages the real-parts tests use (slapd, chromium, ...) when they are
# missing and we may: as root with apt-get. Otherwise says what is missing; the tests that need
# them then skip with a message (or fail, under CI=true).
set -uo pipefail

export PATH="$PATH:/usr/sbin:/sbin"
need=()
want() {  # want PROGRAM PACKAGE: add PACKAGE when PROGRAM is missing
    command -v "$1" >/dev/null 2>&1 || need+=("$2")
}
want slapd slapd                    # a real LDAP server for the directory tests
want ldapadd ldap-utils
want chromium chromium              # browser tests (Playwright drives Debian's chromium)
want chromedriver chromium-driver
want certutil libnss3-tools         # trusting the school CA in the browser's NSS store
want wrk wrk                        # benchmarks
want nft nftables                   # transparent mode rules, tested in network namespaces
want ip iproute2
want docker-compose docker-compose  # checks deploy/compose with compose's own parser
want systemd-analyze systemd        # checks the systemd units
want promtool prometheus            # checks the Prometheus rules (the daemon is not started)
want amtool prometheus-alertmanager # checks the Alertmanager config compose uses
want pdftotext poppler-utils        # reads the evidence pack PDF back in its test
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "schoolgate: installing Debian packages for the tests: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Do not let package scripts start system daemons (slapd on :389): tests start their own.
    policy_rc=/usr/sbin/policy-rc.d
    created_policy_rc=0
    if [ ! -e "$policy_rc" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy_rc" && chmod +x "$policy_rc" && created_policy_rc=1
    fi
    apt-get update -qq >/dev/null 2>&1 || true
    if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
        for package in "${need[@]}"; do  # one by one, so one missing package costs only itself
            apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1 \
                || echo "schoolgate: could not install $package; the tests that need it will say so" >&2
        done
    fi
    [ "$created_policy_rc" = 1 ] && rm -f "$policy_rc"
else
    echo "schoolgate: missing Debian packages for some tests: ${need[*]} (install them as root with apt-get)" >&2
fi
exit 0
