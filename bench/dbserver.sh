#!/usr/bin/env bash
# The check on a PostgreSQL state database: ours against the real csync2;
# and a full push (`-x` of a fresh database to an empty peer) with both
# hosts' state on it, each binary on both sides.
# Usage: bash bench/dbserver.sh [FILES] [RUNS]   (default 20000 files, 3 runs)
# Starts a private PostgreSQL (as user postgres, in $work/pg, port 36999,
# fsync off) and prints medians of wall time for -cIr (fresh database) and
# -cr with nothing changed, each binary on its own database.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-20000}
runs=${2:-3}
. bench/lib.sh
ours=${CARGO_TARGET_DIR:-$PWD/target}/release/csync2
[ -x "$real" ] || { echo "install the real csync2 first (apt-get install csync2)" >&2; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=36999
pg=$work/pg
rm -rf "$pg"; mkdir -p "$pg"; chown postgres "$pg"
runuser -u postgres -- "$pgbin/initdb" --locale=C -U postgres -A trust -D "$pg/data" >/dev/null
runuser -u postgres -- "$pgbin/postgres" -D "$pg/data" -k "$pg" -p $port \
    -c listen_addresses=127.0.0.1 -c fsync=off >"$pg/log" 2>&1 &
pgpid=$!
trap 'kill -INT $pgpid; wait $pgpid 2>/dev/null || true' EXIT
until psql -h 127.0.0.1 -p $port -U postgres -Atc 'SELECT 1' postgres >/dev/null 2>&1; do sleep 0.2; done
mkdir -p "$work/etc"
[ -f "$work/etc/bench.key" ] || "$ours" -k "$work/etc/bench.key"
cat > "$work/etc/csync2.cfg" <<CFG
nossl * *;
group bench {
    host bench1 bench2;
    key bench.key;
    include $tree;
    exclude *~ .*;
}
CFG
export CSYNC2_SYSTEM_DIR=$work/etc

declare -A T
for who in real ours; do
    if [ $who = real ]; then bin=$real; else bin=$ours; fi
    cit=(); crt=()
    for r in $(seq "$runs"); do
        db=bench_${who}_$r
        url=pgsql://postgres@127.0.0.1:$port/$db
        /usr/bin/time -f %e -o "$work/time.out" "$bin" -N bench1 -D "$url" -cIr "$tree" >/dev/null 2>&1
        cit+=("$(cat "$work/time.out")")
        /usr/bin/time -f %e -o "$work/time.out" "$bin" -N bench1 -D "$url" -cr "$tree" >/dev/null 2>&1
        crt+=("$(cat "$work/time.out")")
    done
    T[$who,cIr]=$(printf '%s\n' "${cit[@]}" | median)
    T[$who,cr]=$(printf '%s\n' "${crt[@]}" | median)
done
# the full push: bench1 (this tree) to bench2 (an empty tree mounted over
# the same path in its own mount namespace), both states on PostgreSQL
add_host 127.80.0.1 bench1
add_host 127.80.0.2 bench2
cport=30980
for who in real ours; do
    if [ $who = real ]; then bin=$real; else bin=$ours; fi
    pt=()
    for r in $(seq "$runs"); do
        peer=$work/pgpeer
        rm -rf "$peer"; mkdir -p "$peer"
        ns_run "$peer" "$bin" -N bench2 -D "pgsql://postgres@127.0.0.1:$port/push_${who}_srv_$r" \
            -p $cport -iii >"$work/pgserver.log" 2>&1 &
        spid=$!
        for _ in $(seq 200); do
            ss -Hltn "src 127.80.0.2:$cport" | grep -q . && break
            sleep 0.05
        done
        /usr/bin/time -f %e -o "$work/time.out" "$bin" -N bench1 \
            -D "pgsql://postgres@127.0.0.1:$port/push_${who}_cli_$r" -p $cport -x >"$work/pgclient.log" 2>&1 || true
        wait $spid || true
        d=$(diff -r "$tree" "$peer" 2>&1 | head -2 || true)
        [ -z "$d" ] || { echo "$who push $r: the peer differs: $d"; tail -3 "$work/pgclient.log"; exit 1; }
        pt+=("$(cat "$work/time.out")")
    done
    T[$who,push]=$(printf '%s\n' "${pt[@]}" | median)
done

printf '\n%d files, PostgreSQL, %s runs each (medians)\n\n' "$files" "$runs"
printf '| operation | real csync2 | csync2-rs | speed-up |\n|---|---|---|---|\n'
for op in cIr cr push; do
    case $op in cIr) name='-cIr (fresh database)';; cr) name='-cr, nothing changed';;
        push) name='full push (-x, both hosts on PostgreSQL)';; esac
    printf '| %s | %ss | %ss | %sx |\n' "$name" "${T[real,$op]}" "${T[ours,$op]}" \
        "$(awk -v a="${T[real,$op]}" -v b="${T[ours,$op]}" 'BEGIN{ if (b>0) printf "%.1f", a/b; else print "inf" }')"
done
