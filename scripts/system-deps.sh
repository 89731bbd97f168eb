#!/usr/bin/env bash
# Installs the Debian packages the real-parts tests use (slapd, chromium, ...) when they are
# missing and we may: as root with apt-get. Otherwise says what is missing; the tests that need
# them then skip with a message (or fail, under CI=true).
set -uo pipefail

need=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapadd >/dev/null 2>&1 || need+=(ldap-utils)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v certutil >/dev/null 2>&1 || need+=(libnss3-tools)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
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
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
        || echo "schoolgate: could not install ${need[*]}; the tests that need them will say so" >&2
    [ "$created_policy_rc" = 1 ] && rm -f "$policy_rc"
else
    echo "schoolgate: missing Debian packages for some tests: ${need[*]} (install them as root with apt-get)" >&2
fi
exit 0
