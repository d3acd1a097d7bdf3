#!/usr/bin/env bash
# Catch-up benchmark (issue 14): host A was down while peer B changed
# CHANGES files of the synthetic tree and pushed them to C and D; A then
# runs `csync2 --catch-up` against B, C and D (their -iii servers up).
# Its cost should follow the missed changes, not the tree. Also times the
# `--full` form against the same three peers after A's database was wiped
# and rebuilt with -cIr, and one `-T` of A (against all three) for
# comparison.
#
# Usage: bash bench/catchup.sh [FILES] [CHANGES]
#   FILES    tree size (default 128000, shared with bench/bench.sh)
#   CHANGES  files changed while A was down (default 1000)
# Needs root (unshare, mount, loop devices, /etc/hosts).
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-128000}
changes=${2:-1000}
. bench/lib.sh
port=30979
names=(cu-a cu-b cu-c cu-d)
addrs=(127.79.0.1 127.79.0.2 127.79.0.3 127.79.0.4)
for i in "${!names[@]}"; do
    add_host "${addrs[$i]}" "${names[$i]}"
done
etc=$work/cu-etc
mkdir -p "$etc"
[ -f "$etc/bench.key" ] || "$ours" -k "$etc/bench.key"
for h in "${names[@]}"; do
    mkdir -p "$etc/$h"
    cp "$etc/bench.key" "$etc/$h/"
    cat > "$etc/$h/csync2.cfg" <<CFG
nossl * *;
group bench {
    host ${names[*]};
    key bench.key;
    include $tree;
    exclude *~ .*;
}
CFG
done
img_size=$(( files / 1000 * 40 + 512 ))M
cleanup() {
    for h in "${names[@]}"; do
        mountpoint -q "$work/cu-$h" && umount "$work/cu-$h"
    done
    return 0
}
trap cleanup EXIT
# node H ARGS...: csync2 as host H on its own tree and database
node() {
    local h=$1; shift
    CSYNC2_SYSTEM_DIR=$etc/$h ns_run "$work/cu-$h" "$ours" -N "$h" -D "$work/cu-db-$h" -p $port "$@"
}
serve() {
    local h
    for h in "$@"; do
        node "$h" -iii >/dev/null 2>&1 &
        local addr=${addrs[0]}
        case $h in cu-b) addr=${addrs[1]};; cu-c) addr=${addrs[2]};; cu-d) addr=${addrs[3]};; esac
        for _ in $(seq 200); do
            ss -Hltn "src $addr:$port" | grep -q . && break
            sleep 0.05
        done
    done
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# four identical trees, each on its own ext4 image, known to every database
for h in "${names[@]}"; do
    mountpoint -q "$work/cu-$h" && umount "$work/cu-$h"
    rm -rf "$work/cu-$h" "$work/cu-db-$h" "$work/cu-$h.img"
    mkdir -p "$work/cu-$h" "$work/cu-db-$h"
    truncate -s "$img_size" "$work/cu-$h.img"
    mkfs.ext4 -q -F "$work/cu-$h.img"
    mount -o loop "$work/cu-$h.img" "$work/cu-$h"
    rm -rf "$work/cu-$h/lost+found"
    cp -a "$tree/." "$work/cu-$h/"
    node "$h" -cIr "$tree" >/dev/null 2>&1
done
sync
# A is down: B changes files and pushes them to C and D
{ find "$work/cu-cu-b" -type f -name '*.c' -print0 || true; } | head -z -n "$changes" |
    xargs -0 sh -c 'for f; do echo "// changed while A was down" >> "$f"; done' sh
serve cu-c cu-d
node cu-b -x >/dev/null 2>&1 || true   # A unreachable: its rows stay dirty
wait
pending=$(node cu-b -M 2>/dev/null | grep -c 'cu-a' || true)

serve cu-b cu-c cu-d
t=$(now)
node cu-a --catch-up >"$work/cu-out.txt" 2>&1 || true
t_catchup=$(since "$t")
wait
got=$(grep -o 'Catch-up from cu-b: [0-9]* files' "$work/cu-out.txt" || true)

# one -T of A (against B, C and D), for scale
serve cu-b cu-c cu-d
t=$(now)
node cu-a -T >/dev/null 2>&1 || true
t_test=$(since "$t")
wait

# a rebuilt A: its database wiped, -cIr, then --catch-up --full
rm -rf "$work/cu-db-cu-a"; mkdir -p "$work/cu-db-cu-a"
node cu-a -cIr "$tree" >/dev/null 2>&1
serve cu-b cu-c cu-d
t=$(now)
node cu-a --catch-up --full >"$work/cu-full.txt" 2>&1 || true
t_full=$(since "$t")
wait

printf '\n%d files, %d changed on B while A was down (%s rows pending for A on B)\n\n' \
    "$files" "$changes" "$pending"
printf '| run | wall |\n|---|---|\n'
printf '| `--catch-up` from B, C, D (%s) | %ss |\n' "$got" "$t_catchup"
printf '| `-T` (B, C, D) | %ss |\n' "$t_test"
printf '| `--catch-up --full` from B, C, D after wiping the database | %ss |\n' "$t_full"
