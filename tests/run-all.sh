#!/usr/bin/env bash
# Runs every test of csync2-rs. The differential and interoperability tests
# need the real csync2 (Debian's package) as the reference: install it if
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# what the tests need: the real csync2, groff for the man page check,
# PostgreSQL and MariaDB for the state-database backends (the tests start
# private servers of their own; the packages' system services are not used)
need=()
[ -x /usr/sbin/csync2 ] || need+=(csync2)
command -v groff >/dev/null || need+=(groff-base)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
[ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing: run 'apt-get install ${need[*]}' as root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# the Debian package enables an inetd entry for csync2; tests never use it
cargo build --release --quiet
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# one closing line with the totals of every test binary
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\n%d passed, %d failed\n", p, f }' "$log"
exit "$status"
