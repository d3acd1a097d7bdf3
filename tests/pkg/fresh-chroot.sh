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

SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${CACHE:-/var/cache/csync2-rs-pkgtest}
TARBALL=$CACHE/$SUITE-minbase.tgz
MARK=/tmp/fresh-walk.running

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)

die() { echo "fresh-chroot.sh: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "must run as root"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
[ -d /root/.rustup ] && [ -x /root/.cargo/bin/cargo ] || die "no rustup toolchain in /root/.rustup and /root/.cargo/bin"
git -C "$src" rev-parse HEAD >/dev/null 2>&1 || die "$src is not a git repository"

work=$(mktemp -d /var/tmp/csync2-rs-fresh.XXXXXX)
R=$work/root
LOGDIR=${LOGDIR:-$(mktemp -d /var/tmp/csync2-rs-fresh-logs.XXXXXX)}
mkdir -p "$LOGDIR"
made_mark=0

pass=0
fail=0
failed=()
ok()  { pass=$((pass + 1)); echo "PASS: $*"; }
bad() { fail=$((fail + 1)); failed+=("$*"); echo "FAIL: $*"; }
check() { # check "description" command...
	local what=$1; shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
log() { echo "---- $(date +%T) $*"; }

# a login-like environment of the fresh machine, with the toolchain on PATH
in_root() { chroot "$R" /usr/bin/env -i \
	PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo \
	DEBIAN_FRONTEND=noninteractive "$@"; }

# mount points of this test, deepest first
mounts_below() { awk -v r="$R" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r; }

cleanup() {
	[ "$made_mark" = 1 ] && rm -f "$MARK"
	# any process still running inside the chroot (started by this test)
	local p m
	for _ in 1 2 3; do
		local left=0
		for p in /proc/[0-9]*; do
			if [ "$(readlink "$p/root" 2>/dev/null)" = "$R" ]; then
				kill "${p#/proc/}" 2>/dev/null && left=1
			fi
		done
		[ "$left" = 0 ] && break
		sleep 1
	done
	for m in $(mounts_below); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "chroot kept in $R (unmounted)"
	elif [ -z "$(mounts_below)" ]; then
		rm -rf --one-file-system "$work"
	else
		echo "fresh-chroot.sh: mounts left below $R; not removed" >&2
	fi
	echo "logs in $LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- chroot
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
	log "debootstrap tarball (first run only): $TARBALL"
	debootstrap --variant=minbase --make-tarball="$TARBALL.tmp" \
		"$SUITE" "$work/tarball-build" "$MIRROR" > "$LOGDIR/debootstrap-tarball.log" 2>&1 \
		|| { tail -20 "$LOGDIR/debootstrap-tarball.log"; die "debootstrap --make-tarball failed"; }
	mv "$TARBALL.tmp" "$TARBALL"
	rm -rf --one-file-system "$work/tarball-build"
fi
log "debootstrap $SUITE minbase into $R"
debootstrap --variant=minbase --unpack-tarball="$TARBALL" "$SUITE" "$R" "$MIRROR" \
	> "$LOGDIR/debootstrap.log" 2>&1 || { tail -20 "$LOGDIR/debootstrap.log"; die "debootstrap failed"; }

# / must be a mount point, as on a real machine (unshare -m --propagation
# private, used by the tests, changes the propagation of /)
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --bind /dev "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
mountpoint -q /dev/shm && mount --bind /dev/shm "$R/dev/shm"
cp /etc/resolv.conf "$R/etc/resolv.conf"
# no daemon may start from a maintainer script (Debian's csync2 recommends
# openbsd-inetd): the chroot shares the host's network
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"
# /etc/hosts as the Debian installer writes it; the tests append their
# 127.x.y.z names themselves
name=$(hostname)
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
	"$name" > "$R/etc/hosts"

# apt downloads are kept between runs (shared with deb-chroot.sh)
mkdir -p "$CACHE/archives"
cp "$CACHE"/archives/*.deb "$R/var/cache/apt/archives/" 2>/dev/null
save_archives() { cp -u "$R"/var/cache/apt/archives/*.deb "$CACHE/archives/" 2>/dev/null; }

# ------------------------------------------------------- prerequisites
pkgs=(gcc git ca-certificates)
# this machine's local CAs (e.g. a TLS-inspecting proxy in front of
# crates.io), picked up when ca-certificates is installed, as on any
# machine of this network
mkdir -p "$R/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/" 2>/dev/null
log "apt-get install ${pkgs[*]}"
in_root apt-get -q update > "$LOGDIR/apt-update.log" 2>&1 || { tail "$LOGDIR/apt-update.log"; die "apt-get update failed"; }
in_root apt-get -q -y install "${pkgs[@]}" > "$LOGDIR/apt-prereq.log" 2>&1 \
	|| { tail "$LOGDIR/apt-prereq.log"; die "apt-get install ${pkgs[*]} failed"; }
save_archives
check "no csync2 installed before run-all.sh" [ ! -e "$R/usr/sbin/csync2" ]

# the toolchain, read-only; CARGO_HOME=/root/.cargo stays the chroot's own
mkdir -p "$R/root/.rustup" "$R/root/.cargo/bin"
mount --bind /root/.rustup "$R/root/.rustup"
mount -o remount,bind,ro "$R/root/.rustup"
mount --bind /root/.cargo/bin "$R/root/.cargo/bin"
mount -o remount,bind,ro "$R/root/.cargo/bin"
ver=$(in_root cargo --version 2>&1)
check "cargo runs in the chroot ($ver)" bash -c "[[ '$ver' == cargo\ 1.* ]]"

# ------------------------------------------------------------- the clone
head=$(git -C "$src" rev-parse --short HEAD)
mkdir -p "$R/mnt/csync2-rs-src"
mount --bind "$src" "$R/mnt/csync2-rs-src"
mount -o remount,bind,ro "$R/mnt/csync2-rs-src"
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
echo
echo "==== fresh-chroot.sh: clean clone of $head on bare $SUITE + ${pkgs[*]}; $ver"
echo "==== demo.sh ${demo_time}s, run-all.sh ${runall_time}s"
if [ "$fail" = 0 ]; then
	echo "==== PASS: all $pass checks passed (${SECONDS}s)"
	exit 0
fi
echo "==== FAIL: $fail of $((pass + fail)) checks failed (${SECONDS}s):"
printf '====   %s\n' "${failed[@]}"
exit 1
