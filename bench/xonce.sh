#!/bin/bash
# One `csync2 -x` after appending to 1% of the files of the in-sync bench
# tree left by bench/push.sh (ours -> ours), timed on both sides; repeat it
# for medians: for i in 1 2 3 4 5; do MODE=tls bash bench/xonce.sh; done
# MODE=plain|tls; BIN overrides the binary; CLIWRAP/SRVWRAP wrap the client
# or the server (e.g. "perf record -g").

work=/tmp/csync2-bench; tree=$work/tree; peer=$work/peer; etc=$work/push-etc; port=30977
bin=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/csync2}
for n in a b; do
  if [ "$MODE" = plain ]; then grep -q nossl $etc/$n/csync2.cfg || sed -i '1i nossl * *;' $etc/$n/csync2.cfg
  else sed -i '/nossl/d' $etc/$n/csync2.cfg; fi
done
r=$((RANDOM % 5))
{ find "$tree" -type f -name "file0$r[0-4]*.c" -print0 || true; } | head -z -n 1280 |
    xargs -0 sh -c 'for f; do echo "// changed $RANDOM" >> "$f"; done' sh
sync
CSYNC2_SYSTEM_DIR=$etc/b PRIV=$peer SYNC=$tree unshare -m --propagation private sh -c 'mount --bind "$PRIV" "$SYNC" && exec "$@"' sh \
  $SRVWRAP /usr/bin/time -f "server %e s %U u %S s %M KiB" $bin -N bench-b -D $work/push-db-b -p $port -iii &
for _ in $(seq 200); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.05; done
CSYNC2_SYSTEM_DIR=$etc/a $CLIWRAP /usr/bin/time -f "client %e s %U u %S s %M KiB" $bin -N bench-a -D $work/push-db-a -p $port ${ARGS:--x}
wait
