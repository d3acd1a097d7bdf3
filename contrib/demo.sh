#!/usr/bin/env bash
# A first look at csync2-rs on this machine, needing nothing but the build:
# makes a small tree and a config in a temporary directory, builds the
# database (-cIr), changes some files, detects the changes (-cr) and shows
# what would be pushed to the peer (-M), then the file table (-L).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/csync2
demo=$(mktemp -d /tmp/csync2-demo.XXXXXX)
mkdir -p "$demo/etc" "$demo/db" "$demo/tree/sub"
export CSYNC2_SYSTEM_DIR=$demo/etc
"$bin" -k "$demo/etc/demo.key"
cat > "$demo/etc/csync2.cfg" <<CFG
group demo {
    host node1 node2;
    key demo.key;
    include $demo/tree;
    exclude *~ .*;
}
CFG
echo hello > "$demo/tree/hello.txt"
echo world > "$demo/tree/sub/world.txt"
run() { echo "\$ csync2 $*"; "$bin" -N node1 -D "$demo/db" "$@" || true; }
run -cIr "$demo/tree"
echo changed >> "$demo/tree/hello.txt"
echo new > "$demo/tree/sub/new.txt"
rm "$demo/tree/sub/world.txt"
run -cr "$demo/tree"
run -M
run -L
echo "(demo files are in $demo)"
