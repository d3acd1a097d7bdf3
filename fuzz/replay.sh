#!/bin/bash
# Runs inputs through a fuzz target's binary once each (no fuzzing), e.g.
# to check crash inputs after a fix:
#
#   fuzz/replay.sh TARGET [FILE…]
#
# Without files: fuzz/seeds/TARGET/* and fuzz/regressions/TARGET/*.
# Prints each input that makes the target fail, exits 1 if any did.
# The session target is run as `nobody` without network when run as root
# (see run.sh).
set -euo pipefail
target=${1:?usage: replay.sh TARGET [FILE...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
nice -n 19 cargo afl build --release -j1 --bin "$target" >&2
bin="$here/target/release/$target"
run=()
if [ "$target" = session ] && [ "$(id -u)" = 0 ]; then
    user=${FUZZ_USER:-nobody}
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cp "$bin" "$tmp/session"
    chmod 755 "$tmp" "$tmp/session"
    bin="$tmp/session"
    dir=${C2FUZZ_DIR:-/dev/shm/c2fuzz}
    mkdir -p "$dir"
    chown -R "$user" "$dir"
    run=(unshare -n runuser -u "$user" -- env C2FUZZ_DIR="$dir")
fi
if [ $# = 0 ]; then
    shopt -s nullglob
    set -- "$here/seeds/$target"/* "$here/regressions/$target"/*
fi
bad=0
for f in "$@"; do
    if ! timeout 60 nice -n 19 "${run[@]}" "$bin" <"$f" >/dev/null 2>"${TMPDIR:-/tmp}/replay.err"; then
        echo "FAILS: $f" >&2
        tail -5 "${TMPDIR:-/tmp}/replay.err" >&2
        bad=1
    fi
done
echo "$# inputs, $([ $bad = 0 ] && echo none failed || echo some failed)"
exit $bad
