#!/usr/bin/env bash
# Local-engine benchmark: ours against the real csync2 on the same tree.
# Usage: bash bench/bench.sh [FILES] [RUNS]   (default 128000 files, 5 runs)
# Prints medians of wall time and peak RSS for -cIr (fresh DB), -cr with
# nothing changed, and -cr after touching 1% of the files.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-128000}
runs=${2:-5}
. bench/lib.sh
[ -x "$real" ] || { echo "install the real csync2 first (apt-get install csync2)" >&2; exit 1; }
mkdir -p "$work/etc"
[ -f "$work/etc/bench.key" ] || "$ours" -k "$work/etc/bench.key"
cat > "$work/etc/csync2.cfg" <<CFG
group bench {
    host bench1 bench2;
    key bench.key;
    include $tree;
    exclude *~ .*;
}
CFG
export CSYNC2_SYSTEM_DIR=$work/etc

# time_cmd DB ARGS... -> "seconds maxrss_kib"
time_cmd() {
    local db=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time.out" "$bin" -N bench1 -D "$db" "$@" >/dev/null 2>&1 || true
    cat "$work/time.out"
}

declare -A T M
for who in real ours; do
    if [ $who = real ]; then bin=$real; else bin=$ours; fi
    db=$work/db-$who; cit=(); cim=(); crt=(); crm=(); ctt=(); ctm=()
    for r in $(seq "$runs"); do
        rm -rf "$db"; mkdir -p "$db"
        sync; read -r t m < <(time_cmd "$db" -cIr "$tree"); cit+=("$t"); cim+=("$m")
        read -r t m < <(time_cmd "$db" -cr "$tree"); crt+=("$t"); crm+=("$m")
        # touch 1% of the files (a different 1% each run)
        { find "$tree" -type f -name "file0$((r % 5))[0-4]*.c" -print0 || true; } | head -z -n $((files / 100)) | xargs -0 touch
        read -r t m < <(time_cmd "$db" -cr "$tree"); ctt+=("$t"); ctm+=("$m")
    done
    T[$who,cIr]=$(printf '%s\n' "${cit[@]}" | median); M[$who,cIr]=$(printf '%s\n' "${cim[@]}" | median)
    T[$who,cr]=$(printf '%s\n' "${crt[@]}" | median); M[$who,cr]=$(printf '%s\n' "${crm[@]}" | median)
    T[$who,touch]=$(printf '%s\n' "${ctt[@]}" | median); M[$who,touch]=$(printf '%s\n' "${ctm[@]}" | median)
done
find_t=$( { /usr/bin/time -f "%e" find "$tree" -printf '%s\n' >/dev/null ; } 2>&1 )
printf '\n%d files, %s runs each (medians); find stat walk: %ss\n\n' "$files" "$runs" "$find_t"
printf '| operation | real csync2 | csync2-rs | speed-up | real RSS | ours RSS |\n|---|---|---|---|---|---|\n'
for op in cIr cr touch; do
    case $op in cIr) name='-cIr (fresh DB)';; cr) name='-cr, nothing changed';; touch) name='-cr after touching 1%';; esac
    printf '| %s | %ss | %ss | %sx | %s MiB | %s MiB |\n' "$name" "${T[real,$op]}" "${T[ours,$op]}" \
        "$(awk -v a="${T[real,$op]}" -v b="${T[ours,$op]}" 'BEGIN{ if (b>0) printf "%.1f", a/b; else print "inf" }')" \
        "$((M[real,$op] / 1024))" "$((M[ours,$op] / 1024))"
done
