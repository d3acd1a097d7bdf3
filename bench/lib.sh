# Shared by the bench/*.sh scripts (sourced, not run): the binaries, the
# synthetic tree, host names, private mount namespaces and medians.
# Expects $files to be set and the current directory to be the source tree.

cargo build --release --quiet
ours=$PWD/target/release/csync2
real=/usr/sbin/csync2
work=/tmp/csync2-bench
# BENCH_SMALL=1: a tree of small files (the million-file profile), in a
# place of its own
size=source
[ "${BENCH_SMALL:-0}" = 1 ] && work=/tmp/csync2-bench-small && size=small
tree=$work/tree

# the synthetic tree of $files files, made once and kept between runs
if [ ! -f "$work/.tree-$files" ]; then
    rm -rf "$work"; mkdir -p "$tree"
    python3 bench/mktree.py "$tree" "$files" "$size"
    touch "$work/.tree-$files"
fi

# add_host ADDR NAME: a loopback name in /etc/hosts
add_host() {
    grep -q "^$1[[:space:]]\+$2\$" /etc/hosts || echo "$1 $2" >> /etc/hosts
}

# ns_run NODE_TREE CMD... : run in a private mount namespace with NODE_TREE
# mounted over $tree (each node sees its own tree at the configured path)
ns_run() {
    local priv=$1; shift
    PRIV=$priv SYNC=$tree unshare -m --propagation private \
        sh -c 'mount --bind "$PRIV" "$SYNC" && exec "$@"' sh "$@"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
