# Shared plumbing of the chroot tests in tests/pkg (deb-chroot.sh,
# fresh-chroot.sh, quickstart-chroot.sh); sourced by them, not run.
#
# Debian bookworm minbase chroots from a debootstrap tarball cached in
# $CACHE (made on the first run), apt downloads kept in $CACHE/archives,
# PASS/FAIL counting with a summary, and the cleanup that kills what runs
# in the chroots, unmounts everything below the scratch directory and
# removes it unless KEEP=1.
# shellcheck shell=bash

SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${CACHE:-/var/cache/csync2-rs-pkgtest}
TARBALL=$CACHE/$SUITE-minbase.tgz

# die MESSAGE: the script's name and MESSAGE on stderr, exit status 2
die() { echo "${0##*/}: $*" >&2; exit 2; }

# need_root_and TOOL...: dies unless run as root with every TOOL on PATH
need_root_and() {
	[ "$(id -u)" = 0 ] || die "must run as root"
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || die "$t is not installed"
	done
}

# have_toolchain: a rustup toolchain in /root/.rustup and /root/.cargo/bin
have_toolchain() { [ -d /root/.rustup ] && [ -x /root/.cargo/bin/cargo ]; }

# ------------------------------------------------------ checks, summary
pass=0
fail=0
failed=()
ok()  { pass=$((pass + 1)); echo "PASS: $*"; }
bad() { fail=$((fail + 1)); failed+=("$*"); echo "FAIL: $*"; }
# check "description" command...: PASS if the command succeeds
check() {
	local what=$1; shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
log() { echo "---- $(date +%T) $*"; }

# summary LINE...: the LINEs, then PASS or FAIL with the failed checks;
# exits 0 only if all checks passed
summary() {
	echo
	printf '==== %s\n' "$@"
	if [ "$fail" = 0 ]; then
		echo "==== PASS: all $pass checks passed (${SECONDS}s)"
		exit 0
	fi
	echo "==== FAIL: $fail of $((pass + fail)) checks failed (${SECONDS}s):"
	printf '====   %s\n' "${failed[@]}"
	exit 1
}

# ------------------------------------------------------------- chroots
# make_root DIR SCRATCH LOGDIR: a fresh minbase chroot in DIR, from the
# cached tarball (made first if missing, in SCRATCH/tarball-build);
# debootstrap's output goes to LOGDIR/debootstrap-tarball.log and
# LOGDIR/debootstrap-NAME.log (NAME: DIR's last component)
make_root() {
	local dir=$1 scratch=$2 logdir=$3
	local tlog=$logdir/debootstrap-tarball.log ulog=$logdir/debootstrap-${dir##*/}.log
	mkdir -p "$CACHE"
	if [ ! -s "$TARBALL" ]; then
		log "debootstrap tarball (first run only): $TARBALL"
		debootstrap --variant=minbase --make-tarball="$TARBALL.tmp" \
			"$SUITE" "$scratch/tarball-build" "$MIRROR" > "$tlog" 2>&1 \
			|| { tail -20 "$tlog"; die "debootstrap --make-tarball failed"; }
		mv "$TARBALL.tmp" "$TARBALL"
		rm -rf --one-file-system "$scratch/tarball-build"
	fi
	log "debootstrap $SUITE minbase into $dir"
	debootstrap --variant=minbase --unpack-tarball="$TARBALL" "$SUITE" "$dir" "$MIRROR" \
		> "$ulog" 2>&1 || { tail -20 "$ulog"; die "debootstrap failed"; }
}

# setup_root DIR: the host's resolv.conf (for apt-get), and a policy-rc.d
# so that no daemon starts from a maintainer script (Debian's csync2
# recommends openbsd-inetd; a chroot may share the host's network)
setup_root() {
	cp /etc/resolv.conf "$1/etc/resolv.conf"
	printf '#!/bin/sh\nexit 101\n' > "$1/usr/sbin/policy-rc.d"
	chmod 0755 "$1/usr/sbin/policy-rc.d"
}

# copy_host_cas DIR: this machine's local CAs (e.g. a TLS-inspecting proxy
# in front of crates.io), picked up when ca-certificates is installed, as
# on any machine of this network
copy_host_cas() {
	mkdir -p "$1/usr/local/share/ca-certificates"
	cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null
}

# restore_archives DIR / save_archives DIR: apt downloads are kept between
# runs in $CACHE/archives (shared by all the chroot tests)
restore_archives() {
	mkdir -p "$CACHE/archives"
	cp "$CACHE"/archives/*.deb "$1/var/cache/apt/archives/" 2>/dev/null
}
save_archives() { cp -u "$1"/var/cache/apt/archives/*.deb "$CACHE/archives/" 2>/dev/null; }

# bind_ro SRC DST: SRC bind-mounted read-only on DST (made if missing)
bind_ro() {
	mkdir -p "$2"
	mount --bind "$1" "$2" && mount -o remount,bind,ro "$2"
}

# bind_toolchain DIR: the host's rustup toolchain, read-only, in chroot
# DIR (/root/.rustup and /root/.cargo/bin; /root/.cargo stays DIR's own)
bind_toolchain() {
	bind_ro /root/.rustup "$1/root/.rustup" && bind_ro /root/.cargo/bin "$1/root/.cargo/bin"
}

# mounts_below DIR: the mount points at or below DIR, deepest first
mounts_below() { awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r; }

# cleanup_roots SCRATCH ROOT...: kills any process still running in one of
# the chroots ROOT (started by the test), unmounts everything below
# SCRATCH and removes SCRATCH, or keeps it if KEEP=1
cleanup_roots() {
	local scratch=$1; shift
	local p root r m left
	for _ in 1 2 3; do
		left=0
		for p in /proc/[0-9]*; do
			root=$(readlink "$p/root" 2>/dev/null) || continue
			for r in "$@"; do
				if [ "$root" = "$r" ]; then
					kill "${p#/proc/}" 2>/dev/null && left=1
				fi
			done
		done
		[ "$left" = 0 ] && break
		sleep 1
	done
	for m in $(mounts_below "$scratch"); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept (unmounted): $*"
	elif [ -z "$(mounts_below "$scratch")" ]; then
		rm -rf --one-file-system "$scratch"
	else
		echo "${0##*/}: mounts left below $scratch; not removed" >&2
	fi
}
