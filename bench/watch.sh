#!/usr/bin/env bash
# Live-sync benchmark (issue 15): two nodes on this machine (loopback
# names, each node's tree bind-mounted over the configured path in its own
# mount namespace); node A runs the watcher, node B a `-ii` server. Rows:
#   ours   csync2-rs --watch --delay 0.2, csync2-rs server
#   lsyncd lsyncd (Debian's) spawning `csync2 -xr` of csync2-rs, delay 1
#   real   lsyncd spawning the real `csync2 -xr`, delay 1 (the seed
#          article's set-up), real server
# Each row: latency from a write on A to the complete file on B over
# SAMPLES single-file changes at random places (p50, p99), a BURST-file
# burst until the last file is there, the watcher's CPU over 60 idle
# seconds, and its peak RSS (for lsyncd: lsyncd's own; each csync2 -xr it
# spawns is a process of its own). Also the time of one `csync2 -x`
# (csync2-rs) of a burst of the same size, the burst target's yardstick.
#
# Usage: bash bench/watch.sh [FILES] [SAMPLES] [BURST] [ROWS] [SLOW_SAMPLES]
#   FILES         tree size (default 128000); with BENCH_SMALL=1 small files
#   SAMPLES       latency samples for ours (default 200)
#   BURST         burst size (default 10000)
#   ROWS          which rows (default "ours lsyncd real")
#   SLOW_SAMPLES  latency samples for the lsyncd rows, whose every change
#                 walks the whole tree (default 20)
# Needs root (unshare, mount, /etc/hosts), python3, ss, lsyncd.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-128000}
samples=${2:-200}
burst=${3:-10000}
rows_wanted=${4:-ours lsyncd real}
slow_samples=${5:-20}
idle_s=${IDLE:-60}
command -v lsyncd >/dev/null || { echo "needs lsyncd: apt-get install lsyncd" >&2; exit 1; }
. bench/lib.sh
port=30979
add_host 127.79.0.1 watch-a
add_host 127.79.0.2 watch-b
etc=$work/watch-etc
mkdir -p "$etc"
[ -f "$etc/bench.key" ] || "$ours" -k "$etc/bench.key"
for h in watch-a watch-b; do
    mkdir -p "$etc/$h"
    cp "$etc/bench.key" "$etc/$h/"
    cat > "$etc/$h/csync2.cfg" <<CFG
nossl * *;
group bench {
    host watch-a watch-b;
    key bench.key;
    include $tree;
    exclude *~ .*;
}
CFG
done
a=$work/watch-a b=$work/watch-b

pids=()
stop_all() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
trap stop_all EXIT

# fresh BIN: both trees as copies of the bench tree (hard links: only new
# files are written), both databases initialised
fresh() {
    local bin=$1
    rm -rf "$a" "$b" "$work/watch-db-a" "$work/watch-db-b"
    cp -al "$tree" "$a"
    cp -al "$tree" "$b"
    mkdir -p "$work/watch-db-a" "$work/watch-db-b"
    CSYNC2_SYSTEM_DIR=$etc/watch-a ns_run "$a" "$bin" -N watch-a -D "$work/watch-db-a" -cIr "$tree"
    CSYNC2_SYSTEM_DIR=$etc/watch-b ns_run "$b" "$bin" -N watch-b -D "$work/watch-db-b" -cIr "$tree"
}

# ns_bg NODE_TREE CMD... : ns_run in the background, with $! the command's
# own pid (unshare and sh exec it)
ns_bg() {
    local priv=$1; shift
    PRIV=$priv SYNC=$tree unshare -m --propagation private \
        sh -c 'mount --bind "$PRIV" "$SYNC" && exec "$@"' sh "$@" &
}

server() {
    local bin=$1
    CSYNC2_SYSTEM_DIR=$etc/watch-b ns_bg "$b" "$bin" -N watch-b -D "$work/watch-db-b" -p $port -ii \
        >"$work/watch-server.log" 2>&1
    pids+=($!)
    for _ in $(seq 200); do
        ss -Hltn "src 127.79.0.2:$port" | grep -q . && return 0
        sleep 0.05
    done
    echo "server did not start" >&2; exit 1
}

# the lsyncd configuration that spawns BIN -xr for each batch (the seed
# article's layer, reduced to what it runs)
lsyncd_conf() {
    local bin=$1
    cat > "$work/watch-lsyncd.lua" <<LUA
settings { nodaemon = true, insist = true, logfile = "$work/watch-lsyncd.log" }
csync2 = {
    delay = 1,
    maxProcesses = 1,
    action = function(inlet)
        local elist = inlet.getEvents()
        spawn(elist, "$bin", "-N", "watch-a", "-D", "$work/watch-db-a", "-p", "$port", "-xr")
    end,
    init = function(event)
        spawn(event, "$bin", "-N", "watch-a", "-D", "$work/watch-db-a", "-p", "$port", "-xr")
    end,
}
sync { csync2, source = "$tree" }
LUA
}

watcher() {
    local kind=$1
    case $kind in
    ours)
        CSYNC2_SYSTEM_DIR=$etc/watch-a ns_bg "$a" "$ours" -N watch-a -D "$work/watch-db-a" -p $port \
            --watch --delay 0.2 ${WATCH_V:--v} >"$work/watch-watcher.log" 2>&1
        ;;
    lsyncd | real)
        local bin=$ours
        [ "$kind" = real ] && bin=$real
        lsyncd_conf "$bin"
        CSYNC2_SYSTEM_DIR=$etc/watch-a ns_bg "$a" lsyncd "$work/watch-lsyncd.lua" \
            >"$work/watch-watcher.log" 2>&1
        ;;
    esac
    pids+=($!)
}

watcher_pid() { echo "${pids[-1]}"; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
peak_rss_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.3f", a[i] }'; }

results=()
for kind in $rows_wanted; do
    bin=$ours server_bin=$ours n=$samples
    [ "$kind" = real ] && bin=$real server_bin=$real
    [ "$kind" != ours ] && n=$slow_samples
    fresh "$bin"
    server "$server_bin"
    watcher "$kind"
    wp=$(watcher_pid)
    # the start-up is over when a first file gets through
    python3 bench/watchlat.py latency "$a" "$b" 1 >/dev/null
    python3 bench/watchlat.py latency "$a" "$b" "$n" > "$work/watch-lat-$kind.txt"
    p50=$(pct 50 < "$work/watch-lat-$kind.txt")
    p99=$(pct 99 < "$work/watch-lat-$kind.txt")
    bt=$(python3 bench/watchlat.py burst "$a" "$b" "$burst" "$kind")
    # settle, then 60 idle seconds
    sleep 5
    c0=$(cpu_ticks "$wp")
    sleep "$idle_s"
    c1=$(cpu_ticks "$wp")
    idle=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
    rss=$(peak_rss_mb "$wp")
    results+=("| $kind | $n | ${p50}s | ${p99}s | ${bt}s | ${idle}s | ${rss} MB |")
    stop_all
done

# the yardstick: one csync2 -x (ours) of a burst of the same size
fresh "$ours"
server "$ours"
python3 - "$a" "$burst" <<'PY'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    d = os.path.join(root, "burst-x", f"d{i // 100:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
        f.write(f"burst x {i}\n")
PY
t0=$(date +%s.%N)
CSYNC2_SYSTEM_DIR=$etc/watch-a ns_run "$a" "$ours" -N watch-a -D "$work/watch-db-a" -p $port -x
t1=$(date +%s.%N)
xt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
stop_all
[ "$(find "$b/burst-x" -type f | wc -l)" = "$burst" ] || { echo "the -x yardstick did not deliver" >&2; exit 1; }

printf '\n%d files; latency from a write on A to the whole file on B\n\n' "$files"
printf '| watcher | samples | p50 | p99 | %d-file burst | CPU in '"$idle_s"' idle s | peak RSS |\n|---|---|---|---|---|---|---|\n' "$burst"
printf '%s\n' "${results[@]}"
printf '\none csync2-rs -x of a %d-file burst (check of the whole tree + push): %ss\n' "$burst" "$xt"
