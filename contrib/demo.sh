#!/usr/bin/env bash
# A two-node csync2 cluster on this machine, from nothing: node1
# (127.0.0.1) pushes to node2 (127.0.0.2), a standalone server. Both share
# one config; a `prefix` maps the synced tree to a directory per node, so
# no root and no /etc/hosts change are needed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/csync2
demo=$(mktemp -d /tmp/csync2-demo.XXXXXX)
port=${CSYNC2_DEMO_PORT:-30999}
mkdir -p "$demo/etc" "$demo/db1" "$demo/db2" "$demo/node1/docs" "$demo/node2"
export CSYNC2_SYSTEM_DIR=$demo/etc
"$bin" -k "$demo/etc/demo.key"
cat > "$demo/etc/csync2.cfg" <<CFG
nossl * *;
prefix data {
    on 127.0.0.1: $demo/node1;
    on 127.0.0.2: $demo/node2;
}
group demo {
    host 127.0.0.1 127.0.0.2;
    key demo.key;
    include %data%;
    exclude *~ .*;
}
CFG
"$bin" -N 127.0.0.2 -D "$demo/db2" -p "$port" -ii > "$demo/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 0.5
node1() { echo "node1\$ csync2 $*"; "$bin" -N 127.0.0.1 -D "$demo/db1" -p "$port" "$@" || true; }
show() { echo "--- node2 now has:"; (cd "$demo/node2" && find . -mindepth 1 | sort | sed 's/^/    /'); }

echo hello > "$demo/node1/hello.txt"
echo "some notes" > "$demo/node1/docs/notes.txt"
ln -s hello.txt "$demo/node1/link"
node1 -xv
show
echo "more" >> "$demo/node1/hello.txt"
rm "$demo/node1/docs/notes.txt"
echo new > "$demo/node1/docs/new.txt"
node1 -xv
show
echo "--- node2's hello.txt:"; sed 's/^/    /' "$demo/node2/hello.txt"
echo "(demo files are in $demo)"
