#!/usr/bin/env bash
# Fresh-machine test: the README's two commands in a clean clone on a bare
# Debian bookworm.
#
#   sudo bash tests/pkg/fresh-chroot.sh
#
# Needs root, debootstrap, network access to deb.debian.org and crates.io,
# and a rustup toolchain in /root/.rustup (+ /root/.cargo/bin). Not part of
# cargo test or tests/run-all.sh. Takes about 17 minutes on 2 cores.
#
# What it does, in a Debian bookworm minbase chroot (the debootstrap
# tarball is shared with deb-chroot.sh in /var/cache/csync2-rs-pkgtest):
#
#  1. installs what "Needs a Rust toolchain" means on a fresh Debian:
#     apt-get install gcc git ca-certificates (a C compiler for the linker
#     and the bundled SQLite, git to clone, certificates for crates.io);
#  2. "installs" the toolchain: the host's rustup directories, bind-mounted
#     read-only (RUSTUP_HOME=/root/.rustup, /root/.cargo/bin on PATH); the
#     chroot's CARGO_HOME (/root/.cargo) is empty, so every crate is
#     fetched from crates.io as on a fresh machine;
#  3. git clone of this repository's committed HEAD into /root/csync2-rs;
#  4. from there, exactly the README's two commands:
#       bash contrib/demo.sh
#       bash tests/run-all.sh      (installs Debian's csync2 and groff)
#
# The chroot shares the host's network (the tests use 127.x addresses and
# loopback ports): /tmp/fresh-walk.running exists while run-all.sh runs.
# No daemon may start from a maintainer script (policy-rc.d).
#
# Prints PASS/FAIL per check and a summary; exit status 0 only if all
# passed. KEEP=1 keeps the chroot (its path is printed); SAVE_BIN=FILE
# copies the built target/release/csync2 there (for quickstart-chroot.sh).
# Logs are in $LOGDIR (default: a new /var/tmp/csync2-rs-fresh-logs.*).

set -uo pipefail

MARK=/tmp/fresh-walk.running

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=chroot-lib.sh
. "$here/chroot-lib.sh"

need_root_and debootstrap
have_toolchain || die "no rustup toolchain in /root/.rustup and /root/.cargo/bin"
git -C "$src" rev-parse HEAD >/dev/null 2>&1 || die "$src is not a git repository"

work=$(mktemp -d /var/tmp/csync2-rs-fresh.XXXXXX)
R=$work/root
LOGDIR=${LOGDIR:-$(mktemp -d /var/tmp/csync2-rs-fresh-logs.XXXXXX)}
mkdir -p "$LOGDIR"
made_mark=0

# a login-like environment of the fresh machine, with the toolchain on PATH
in_root() { chroot "$R" /usr/bin/env -i \
	PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo \
	DEBIAN_FRONTEND=noninteractive "$@"; }

cleanup() {
	[ "$made_mark" = 1 ] && rm -f "$MARK"
	cleanup_roots "$work" "$R"
	echo "logs in $LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- chroot
make_root "$R" "$work" "$LOGDIR"

# / must be a mount point, as on a real machine (unshare -m --propagation
# private, used by the tests, changes the propagation of /)
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --bind /dev "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
mountpoint -q /dev/shm && mount --bind /dev/shm "$R/dev/shm"
# the chroot shares the host's network: no daemon may start
setup_root "$R"
# /etc/hosts as the Debian installer writes it; the tests append their
# 127.x.y.z names themselves
name=$(hostname)
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
	"$name" > "$R/etc/hosts"

restore_archives "$R"

# ------------------------------------------------------- prerequisites
pkgs=(gcc git ca-certificates)
copy_host_cas "$R"  # for crates.io
log "apt-get install ${pkgs[*]}"
in_root apt-get -q update > "$LOGDIR/apt-update.log" 2>&1 || { tail "$LOGDIR/apt-update.log"; die "apt-get update failed"; }
in_root apt-get -q -y install "${pkgs[@]}" > "$LOGDIR/apt-prereq.log" 2>&1 \
	|| { tail "$LOGDIR/apt-prereq.log"; die "apt-get install ${pkgs[*]} failed"; }
save_archives "$R"
check "no csync2 installed before run-all.sh" [ ! -e "$R/usr/sbin/csync2" ]

# the toolchain, read-only; CARGO_HOME=/root/.cargo stays the chroot's own
bind_toolchain "$R"
ver=$(in_root cargo --version 2>&1)
check "cargo runs in the chroot ($ver)" bash -c "[[ '$ver' == cargo\ 1.* ]]"

# ------------------------------------------------------------- the clone
head=$(git -C "$src" rev-parse --short HEAD)
bind_ro "$src" "$R/mnt/csync2-rs-src"
log "git clone of $src (HEAD $head) into /root/csync2-rs"
in_root git clone -q --no-hardlinks /mnt/csync2-rs-src /root/csync2-rs > "$LOGDIR/clone.log" 2>&1
rc=$?
check "git clone in the chroot (exit $rc)" [ "$rc" = 0 ]
[ "$rc" = 0 ] || { cat "$LOGDIR/clone.log"; exit 1; }
umount "$R/mnt/csync2-rs-src"
check "clone is at $head" [ "$(git -C "$R/root/csync2-rs" rev-parse --short HEAD)" = "$head" ]

in_repo() { in_root bash -c 'cd /root/csync2-rs && exec "$@"' sh "$@"; }

# ------------------------------------------------ README: the two commands
log "bash contrib/demo.sh"
t0=$SECONDS
in_repo bash contrib/demo.sh < /dev/null > "$LOGDIR/demo.log" 2>&1
rc=$?
demo_time=$((SECONDS - t0))
sed 's/^/    /' "$LOGDIR/demo.log"
check "bash contrib/demo.sh (exit $rc, ${demo_time}s)" [ "$rc" = 0 ]
# what the demo promises: first sync, then a change and a deletion
demo_dir=$(sed -n 's/^(demo files are in \(.*\))$/\1/p' "$LOGDIR/demo.log")
if [ -n "$demo_dir" ] && [ -d "$R$demo_dir" ]; then
	d=$R$demo_dir
	check "demo: node2's hello.txt equals node1's" cmp -s "$d/node1/hello.txt" "$d/node2/hello.txt"
	check "demo: deletion arrived (no docs/notes.txt on node2)" [ ! -e "$d/node2/docs/notes.txt" ]
	check "demo: new file arrived (docs/new.txt)" cmp -s "$d/node1/docs/new.txt" "$d/node2/docs/new.txt"
	check "demo: symlink arrived" [ "$(readlink "$d/node2/link")" = hello.txt ]
else
	bad "demo: no '(demo files are in DIR)' line"
fi
[ -n "${SAVE_BIN:-}" ] && [ -x "$R/root/csync2-rs/target/release/csync2" ] \
	&& cp "$R/root/csync2-rs/target/release/csync2" "$SAVE_BIN" && echo "binary saved as $SAVE_BIN"

log "bash tests/run-all.sh (marker $MARK)"
touch "$MARK"
made_mark=1
t0=$SECONDS
in_repo bash tests/run-all.sh < /dev/null > "$LOGDIR/run-all.log" 2>&1
rc=$?
runall_time=$((SECONDS - t0))
rm -f "$MARK"
made_mark=0
totals=$(tail -n 1 "$LOGDIR/run-all.log")
grep -E '^test result:|FAILED|panicked' "$LOGDIR/run-all.log" | sed 's/^/    /'
tail -n 3 "$LOGDIR/run-all.log" | sed 's/^/    /'
check "bash tests/run-all.sh (exit $rc, ${runall_time}s: $totals)" [ "$rc" = 0 ]
check "run-all.sh installed Debian's csync2" \
	bash -c "chroot '$R' dpkg-query -W -f='\${db:Status-Status}' csync2 | grep -qx installed"
check "run-all.sh ends with the totals line" bash -c "[[ '$totals' =~ ^[0-9]+\ passed,\ 0\ failed$ ]]"

# ---------------------------------------------------------------- summary
summary "fresh-chroot.sh: clean clone of $head on bare $SUITE + ${pkgs[*]}; $ver" \
	"demo.sh ${demo_time}s, run-all.sh ${runall_time}s"
