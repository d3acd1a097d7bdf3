#!/usr/bin/env bash
# Runs every test of csync2-rs. The differential and interoperability tests
# need the real csync2 (Debian's package) as the reference: install it if
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! [ -x /usr/sbin/csync2 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "the real csync2 is missing: run 'apt-get install csync2' as root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq csync2 >/dev/null
fi
# the Debian package enables an inetd entry for csync2; tests never use it
cargo build --release --quiet
cargo test --release --no-fail-fast 2>&1
