#!/usr/bin/env bash
# Push benchmark: a full push of the synthetic tree to an empty peer, and a
# `-x` after modifying 1% of the files in place, for ours -> ours and
# real -> real, plain and TLS, with `rsync -a` to an rsync daemon as the
# reference row. Both nodes run on this machine (loopback addresses, the
# peer's tree bind-mounted over the same path in its own mount namespace).
#
# Usage: bash bench/push.sh [FILES] [RUNS] [WHO] [MODES]
#   FILES  tree size (default 128000, shared with bench/bench.sh)
#   RUNS   runs per row, medians printed (default 3)
#   WHO    "ours real rsync" (default) or a subset
#   MODES  "plain tls" (default) or a subset
# Needs root (unshare, mount, /etc/hosts).
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-128000}
runs=${2:-3}
who_list=${3:-ours real rsync}
modes=${4:-plain tls}
. bench/lib.sh
peer=$work/peer
a_addr=127.77.0.1; b_addr=127.77.0.2; port=30977
add_host $a_addr bench-a
add_host $b_addr bench-b
etc=$work/push-etc
mkdir -p "$etc"
[ -f "$etc/bench.key" ] || "$ours" -k "$etc/bench.key"
for n in a b; do
    mkdir -p "$etc/$n"
    if [ ! -f "$etc/$n/csync2_ssl_cert.pem" ]; then
        # one subject for both: a real GnuTLS client withholds its certificate
        # unless its issuer is among the names the server advertises
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=csync2 bench cluster" \
            -keyout "$etc/$n/csync2_ssl_key.pem" -out "$etc/$n/csync2_ssl_cert.pem" 2>/dev/null
    fi
    cp "$etc/bench.key" "$etc/$n/"
done
write_cfg() {
    local nossl=$1
    for n in a b; do
        {
            [ "$nossl" = plain ] && echo 'nossl * *;'
            cat <<CFG
group bench {
    host bench-a bench-b;
    key bench.key;
    include $tree;
    exclude *~ .*;
}
CFG
        } > "$etc/$n/csync2.cfg"
    done
}


# one_push BIN -> "client_s client_kib server_kib" for one `-x`
one_push() {
    local bin=$1
    CSYNC2_SYSTEM_DIR=$etc/b ns_run "$peer" /usr/bin/time -f "%e %M" -o "$work/server.time" \
        "$bin" -N bench-b -D "$work/push-db-b" -p $port -iii >"$work/server.log" 2>&1 &
    local spid=$!
    # wait for the listener (without connecting: -iii serves one connection)
    for _ in $(seq 200); do
        ss -Hltn "sport = :$port" | grep -q . && break
        sleep 0.05
    done
    CSYNC2_SYSTEM_DIR=$etc/a /usr/bin/time -f "%e %M" -o "$work/client.time" \
        "$bin" -N bench-a -D "$work/push-db-a" -p $port -x >"$work/client.log" 2>&1 || true
    wait $spid || true
    read -r ct cm < "$work/client.time"
    read -r _ sm < <(tail -n1 "$work/server.time")
    echo "$ct $cm $sm"
}

modify_one_percent() {
    # append to 1% of the files, in place (same inode)
    { find "$tree" -type f -name "file0$1[0-4]*.c" -print0 || true; } | head -z -n $((files / 100)) |
        xargs -0 sh -c 'for f; do echo "// changed $RANDOM" >> "$f"; done' sh
}

declare -A T
rows=()
for mode in $modes; do
    for who in $who_list; do
        [ "$who" = rsync ] && [ "$mode" = tls ] && continue
        full=(); upd=(); cm=(); sm=()
        for r in $(seq "$runs"); do
            rm -rf "$peer" "$work/push-db-a" "$work/push-db-b"
            mkdir -p "$peer" "$work/push-db-a" "$work/push-db-b"
            sync
            if [ "$who" = rsync ]; then
                cat > "$work/rsyncd.conf" <<RC
use chroot = no
[bench]
path = $peer
read only = no
uid = root
gid = root
RC
                rsync --daemon --no-detach --address=$b_addr --port=$port \
                    --config="$work/rsyncd.conf" & rpid=$!
                sleep 0.5
                t=$( { /usr/bin/time -f "%e" rsync -a "$tree/" "rsync://$b_addr:$port/bench/" ; } 2>&1 | tail -n1)
                full+=("$t")
                modify_one_percent $((r % 5))
                t=$( { /usr/bin/time -f "%e" rsync -a "$tree/" "rsync://$b_addr:$port/bench/" ; } 2>&1 | tail -n1)
                upd+=("$t")
                kill $rpid; wait $rpid 2>/dev/null || true
                continue
            fi
            if [ "$who" = ours ]; then bin=$ours; else bin=$real; fi
            write_cfg "$mode"
            read -r t c s < <(one_push "$bin")
            grep -q "Finished with" "$work/client.log" && { echo "push failed:"; cat "$work/client.log"; exit 1; }
            full+=("$t"); cm+=("$c"); sm+=("$s")
            modify_one_percent $((r % 5))
            read -r t c s < <(one_push "$bin")
            upd+=("$t"); cm+=("$c"); sm+=("$s")
            cmp_out=$(diff -r "$tree" "$peer" 2>&1 | head -3 || true)
            [ -z "$cmp_out" ] || { echo "trees differ after $who $mode: $cmp_out"; exit 1; }
        done
        T[$who,$mode,full]=$(printf '%s\n' "${full[@]}" | median)
        T[$who,$mode,upd]=$(printf '%s\n' "${upd[@]}" | median)
        if [ "$who" != rsync ]; then
            T[$who,$mode,cm]=$(( $(printf '%s\n' "${cm[@]}" | sort -n | tail -n1) / 1024 ))
            T[$who,$mode,sm]=$(( $(printf '%s\n' "${sm[@]}" | sort -n | tail -n1) / 1024 ))
        else
            T[$who,$mode,cm]=-; T[$who,$mode,sm]=-
        fi
        rows+=("$who,$mode")
    done
done
printf '\n%d files, %s runs each (medians; RSS is the peak over all runs)\n\n' "$files" "$runs"
printf '| pairing | transport | full push | -x after 1%% modified | client RSS | server RSS |\n|---|---|---|---|---|---|\n'
for row in "${rows[@]}"; do
    IFS=, read -r who mode <<<"$row"
    case $who in ours) name='ours → ours';; real) name='real → real';; rsync) name='rsync -a → rsync daemon';; esac
    printf '| %s | %s | %ss | %ss | %s MiB | %s MiB |\n' "$name" "$mode" "${T[$row,full]}" "${T[$row,upd]}" \
        "${T[$row,cm]}" "${T[$row,sm]}"
done
