#!/usr/bin/env bash
# Multi-peer benchmark (issue 13): a full push of the synthetic tree from
# one client to 1, 2 and 4 peers at once, then a `-x` after 1% of the files
# changed; and a push to 4 peers of which one accepts connections and never
# answers (the run must end at --timeout while the other three finish as
# fast as without it). All peers run csync2-rs on this machine (loopback
# addresses, each peer's tree bind-mounted over the same path in its own
# mount namespace, on an ext4 image of its own), so their servers share its
# cores: wall time and the total CPU time of client and servers are
# reported.
#
# Usage: bash bench/peers.sh [FILES] [PEERS] [TIMEOUT]
#   FILES    tree size (default 128000, shared with bench/bench.sh)
#   PEERS    peer counts to measure (default "1 2 4")
#   TIMEOUT  --timeout for the hung-peer row (default 10)
# Needs root (unshare, mount, /etc/hosts), python3 and ss.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-128000}
counts=${2:-1 2 4}
hang_timeout=${3:-10}
. bench/lib.sh
port=30978
hosts=(peers-a peers-b1 peers-b2 peers-b3 peers-b4)
addrs=(127.78.0.1 127.78.0.2 127.78.0.3 127.78.0.4 127.78.0.5)
for i in "${!hosts[@]}"; do
    add_host "${addrs[$i]}" "${hosts[$i]}"
done
etc=$work/peers-etc
mkdir -p "$etc"
[ -f "$etc/bench.key" ] || "$ours" -k "$etc/bench.key"

# write_cfg N: a group of the client and N peers, on every node
write_cfg() {
    local n=$1 list="peers-a"
    for k in $(seq "$n"); do list="$list peers-b$k"; done
    for h in "${hosts[@]}"; do
        mkdir -p "$etc/$h"
        cp "$etc/bench.key" "$etc/$h/"
        cat > "$etc/$h/csync2.cfg" <<CFG
nossl * *;
group bench {
    host $list;
    key bench.key;
    include $tree;
    exclude *~ .*;
}
CFG
    done
}


# cpu_of FILE: user+system seconds from a `time -f "%U %S"` file (its last
# line: a failed command gets a status line first)
cpu_of() { tail -n1 "$1" | awk '{ printf "%.2f", $1 + $2 }'; }

# push N HUNG LABEL: one `-x` from the client to peers 1..N (-iii each);
# with HUNG=1 the last of them is a listener that never answers.
# Prints "wall client_cpu servers_cpu".
push() {
    local n=$1 hung=$2 pids=() k
    for k in $(seq "$n"); do
        local h=peers-b$k addr=${addrs[$k]}
        if [ "$hung" = 1 ] && [ "$k" = "$n" ]; then
            python3 - "$addr" "$port" <<'PY' & pids+=($!)
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
held, end = [], time.time() + 600
s.settimeout(1)
while time.time() < end:
    try:
        held.append(s.accept()[0])
    except socket.timeout:
        pass
PY
        else
            mkdir -p "$work/peers-db-$k"
            CSYNC2_SYSTEM_DIR=$etc/$h ns_run "$work/peer-$k" \
                /usr/bin/time -f "%U %S" -o "$work/server-$k.time" \
                "$ours" -N "$h" -D "$work/peers-db-$k" -p $port -iii >"$work/server-$k.log" 2>&1 &
            pids+=($!)
        fi
        for _ in $(seq 200); do
            ss -Hltn "src $addr:$port" | grep -q . && break
            sleep 0.05
        done
    done
    local t0 t1
    t0=$(date +%s.%N)
    CSYNC2_SYSTEM_DIR=$etc/peers-a /usr/bin/time -f "%U %S" -o "$work/client.time" \
        "$ours" -N peers-a -D "$work/peers-db-a" -p $port -x --timeout "$hang_timeout" \
        >"$work/client.log" 2>&1 || true
    t1=$(date +%s.%N)
    # a silent listener may still wait for its second connection
    for p in "${pids[@]}"; do
        if [ "$hung" = 1 ] && [ "$p" = "${pids[-1]}" ]; then kill "$p" 2>/dev/null || true; fi
        wait "$p" 2>/dev/null || true
    done
    local scpu=0
    for k in $(seq "$n"); do
        [ -f "$work/server-$k.time" ] && scpu=$(awk -v a="$scpu" -v b="$(cpu_of "$work/server-$k.time")" 'BEGIN { printf "%.2f", a + b }')
        rm -f "$work/server-$k.time"
    done
    printf '%s %s %s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" \
        "$(cpu_of "$work/client.time")" "$scpu"
}

modify_one_percent() {
    { find "$tree" -type f -name "file0$1[0-4]*.c" -print0 || true; } | head -z -n $((files / 100)) |
        xargs -0 sh -c 'for f; do echo "// changed $RANDOM" >> "$f"; done' sh
}

# Each peer's tree is its own ext4 image, as on a machine of its own: a
# server's syncfs then flushes its peer's writes only, not the others'.
img_size=$(( files / 1000 * 40 + 512 ))M
unmount_peers() {
    for k in 1 2 3 4; do
        mountpoint -q "$work/peer-$k" && umount "$work/peer-$k"
    done
    return 0
}
trap unmount_peers EXIT
fresh() {
    unmount_peers
    rm -rf "$work"/peer-* "$work"/peers-db-*
    mkdir -p "$work/peers-db-a"
    for k in 1 2 3 4; do
        mkdir -p "$work/peer-$k"
        rm -f "$work/peer-$k.img"
        truncate -s "$img_size" "$work/peer-$k.img"
        mkfs.ext4 -q -F "$work/peer-$k.img"
        mount -o loop "$work/peer-$k.img" "$work/peer-$k"
        rm -rf "$work/peer-$k/lost+found"
    done
    sync
}

rows=()
round=0
for n in $counts; do
    # a fresh database: the check of -x finds every file new
    fresh
    write_cfg "$n"
    read -r w c s < <(push "$n" 0)
    grep -q "Finished with" "$work/client.log" && { echo "push to $n failed:"; tail "$work/client.log"; exit 1; }
    for k in $(seq "$n"); do
        d=$(diff -r "$tree" "$work/peer-$k" 2>&1 | head -2 || true)
        [ -z "$d" ] || { echo "peer $k differs after the push to $n: $d"; exit 1; }
    done
    rows+=("| full push | $n | ${w}s | ${c}s | ${s}s |")
    round=$((round + 1))
    modify_one_percent $((round % 5))
    read -r w c s < <(push "$n" 0)
    rows+=("| -x after 1% modified | $n | ${w}s | ${c}s | ${s}s |")
done
# 4 peers, the last one silent: the rows towards it stay dirty
fresh
write_cfg 4
read -r w c s < <(push 4 1)
grep -q "sent nothing for" "$work/client.log" || { echo "the silent peer was not named:"; tail "$work/client.log"; exit 1; }
rows+=("| full push, 1 of 4 peers silent (--timeout $hang_timeout) | 4 | ${w}s | ${c}s | ${s}s |")

printf '\n%d files; one client, peers served at once (CPU: user+system seconds)\n\n' "$files"
printf '| run | peers | wall | client CPU | servers CPU |\n|---|---|---|---|---|\n'
printf '%s\n' "${rows[@]}"
