#!/bin/bash
# Builds one fuzz target with cargo-afl and fuzzes it with AFL++ for a time.
#
#   fuzz/run.sh TARGET SECONDS
#
# TARGET: config | tokenize | session | delta | checktxt
# Corpus, crashes and hangs go to fuzz/out/TARGET/default/ (not committed);
# a second run on the same target resumes from there (RESUME=0: start over
# from fuzz/seeds/TARGET). The fuzzer runs at nice 19 on one core.
# The session target changes files for real, so as root it is run as
# `nobody` (FUZZ_USER=name to choose another unprivileged user), from a
# copy of the binary in fuzz/out/session/, in a new network namespace
# without network (`unshare -n`: no DNS queries for the names in HELLO).
set -euo pipefail

target=${1:?usage: run.sh TARGET SECONDS}
secs=${2:?usage: run.sh TARGET SECONDS}
case $target in
config | tokenize | session | delta | checktxt) ;;
*)
    echo "unknown target '$target'" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

command -v cargo-afl >/dev/null || {
    echo "cargo-afl missing: cargo install cargo-afl && cargo afl config --build" >&2
    exit 1
}
nice -n 19 cargo afl build --release -j1 --bin "$target"

# the afl-fuzz that cargo-afl built for this toolchain
afl_fuzz=$(ls -d "$HOME"/.local/share/afl.rs/rustc-"$(rustc --version | awk '{print $2}')"-*/afl.rs-*/afl/bin/afl-fuzz 2>/dev/null | tail -1)
[ -x "$afl_fuzz" ] || {
    echo "afl-fuzz not found: run cargo afl config --build" >&2
    exit 1
}

out="$here/out/$target"
mkdir -p "$out"
bin="$here/target/release/$target"
input=(-i "$here/seeds/$target")
if [ "${RESUME:-1}" = 1 ] && [ -f "$out/default/fuzzer_stats" ]; then
    input=(-i -)
else
    rm -rf "$out/default"
fi
# AFL_SKIP_CPUFREQ, AFL_NO_AFFINITY: a shared machine, no CPU pinning;
# AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES: core_pattern is not ours to change
env=(AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
    AFL_NO_UI=1 AFL_TRY_AFFINITY=0 AFL_SHUFFLE_QUEUE=0)
run=()
timeout_ms=1000+
if [ "$target" = session ]; then
    timeout_ms=3000+
    if [ "$(id -u)" = 0 ]; then
        user=${FUZZ_USER:-nobody}
        # copies the user can run, an output directory it owns
        cp "$afl_fuzz" "$out/afl-fuzz"
        cp "$bin" "$out/session"
        rm -rf "$out/seeds"
        cp -r "$here/seeds/session" "$out/seeds"
        chown -R "$user" "$out"
        afl_fuzz="$out/afl-fuzz"
        bin="$out/session"
        [ "${input[1]}" = - ] || input=(-i "$out/seeds")
        # no network: HELLO looks the peer's name up, and the names in
        # the inputs must not become DNS queries (nor DNS timeouts);
        # /etc/hosts still resolves localhost
        run=(unshare -n runuser -u "$user" --)
        # the tree the session works in must be the user's
        dir=${C2FUZZ_DIR:-/dev/shm/c2fuzz}
        mkdir -p "$dir"
        chown -R "$user" "$dir"
        env+=(C2FUZZ_DIR="$dir")
    fi
fi

echo "fuzzing $target for $secs s: $afl_fuzz -o $out ${input[*]} -- $bin"
start=$(date +%s)
nice -n 19 "${run[@]}" env "${env[@]}" "$afl_fuzz" -V "$secs" -t "$timeout_ms" \
    "${input[@]}" -o "$out" -- "$bin" >"$out/afl.log" 2>&1 || {
    echo "afl-fuzz failed, see $out/afl.log:" >&2
    tail -30 "$out/afl.log" >&2
    exit 1
}
end=$(date +%s)

stats="$out/default/fuzzer_stats"
get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
echo "target:      $target"
echo "wall time:   $((end - start)) s"
echo "run_time:    $(get run_time) s (all runs on this output directory)"
echo "execs_done:  $(get execs_done)"
echo "execs/s:     $(get execs_per_sec)"
echo "corpus:      $(get corpus_count)"
echo "edges:       $(get edges_found) ($(get bitmap_cvg))"
echo "crashes:     $(get saved_crashes)"
echo "hangs:       $(get saved_hangs)"
echo "stability:   $(get stability)"
ls "$out/default/crashes" 2>/dev/null | grep -v README || true
