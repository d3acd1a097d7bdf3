#!/usr/bin/env bash
# Walks the README's "Quickstart: a two-node cluster from nothing" on two
# fresh Debian bookworm "hosts".
#
#   sudo bash tests/pkg/quickstart-chroot.sh [path/to/built/csync2]
#
# Needs root, debootstrap, iproute2 (ip netns), util-linux (unshare,
# nsenter) and network access to deb.debian.org; without an argument also
# crates.io and a rustup toolchain in /root/.rustup (+ /root/.cargo/bin),
# to build the binary as README "Install" says. Not part of cargo test or
# tests/run-all.sh.
#
# The hosts: two minbase chroots, node1 and node2, each in its own network
# namespace (a veth pair, 10.231.0.1/24 and 10.231.0.2/24) and UTS
# namespace (hostname node1 / node2), with an /etc/hosts naming both. Each
# gets a clean clone of this repository's committed HEAD in
# /root/csync2-rs (WORKTREE=1 applies the uncommitted changes of README.md
# and contrib/ on top). Packages come from deb.debian.org before the
# namespaces are entered; from then on the nodes only see each other.
#
#  Install  node1: cargo build --release (skipped when a binary is given,
#           which is then put into target/release/); both nodes:
#           install -m 0755 target/release/csync2 /usr/sbin/csync2
#  1. node1: csync2 -k /etc/csync2.key; copied to node2 (cp -p)
#  2. both:  csync2 --gen-cert
#  3. both:  the README's /etc/csync2.cfg, taken from the README itself;
#           /etc/myapp with a few files on node1 (and a stale one on node2)
#  4. both:  no systemd in a chroot: contrib/xinetd.d/csync2 with Debian's
#           xinetd, started with /etc/init.d/xinetd start
#  5. node1: csync2 -x pushes /etc/myapp to node2 over TLS; a change, a
#           new file, a deletion, csync2 -x again; a conflict (node2
#           changed the file while node1 was down) settled with csync2 -f
#  6. csync2 -M (and --json) with node2 down and after; csync2 -T both
#     ways; contrib/cron.d/csync2 checked as a cron.d file and run by
#     Debian's cron (every minute instead of every five)
#
# Prints PASS/FAIL per check and a summary; exit status 0 only if all
# passed. KEEP=1 keeps the chroots (their paths are printed).

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=chroot-lib.sh
. "$here/chroot-lib.sh"

need_root_and debootstrap ip nsenter unshare
bin=${1:-}
if [ -n "$bin" ]; then
	[ -x "$bin" ] || die "$bin: not an executable"
	bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
else
	have_toolchain || die "no binary given and no rustup toolchain in /root/.rustup and /root/.cargo/bin"
fi

work=$(mktemp -d /var/tmp/csync2-rs-quickstart.XXXXXX)
tag=$$
ns=(x "c2qs1-$tag" "c2qs2-$tag")
veth=(x "c2qa$tag" "c2qb$tag")
addr=(x 10.231.0.1 10.231.0.2)
R=(x "$work/node1" "$work/node2")

# a root shell's environment on the node; "host" = outside the namespaces
# (for apt-get), otherwise in node N's network and UTS namespaces
ENVV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
on_host() { local n=$1; shift; chroot "${R[n]}" /usr/bin/env -i "${ENVV[@]}" DEBIAN_FRONTEND=noninteractive "$@"; }
on() {
	local n=$1; shift
	nsenter --net="/run/netns/${ns[n]}" --uts="$work/uts$n" \
		chroot "${R[n]}" /usr/bin/env -i "${ENVV[@]}" "$@"
}
# a command line typed at node N's prompt, from /root/csync2-rs
sh_on() { local n=$1; shift; on "$n" sh -c "cd /root/csync2-rs && $*"; }

cleanup() {
	local n
	cleanup_roots "$work" "${R[1]}" "${R[2]}"
	for n in 1 2; do
		ip netns del "${ns[n]}" 2>/dev/null
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- hosts
for n in 1 2; do
	r=${R[n]}
	make_root "$r" "$work" "$work"
	mount -t proc proc "$r/proc"
	mount --bind /dev "$r/dev"
	setup_root "$r"  # apt starts no daemon
	echo "node$n" > "$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n%s\tnode1\n%s\tnode2\n' "${addr[1]}" "${addr[2]}" > "$r/etc/hosts"
	copy_host_cas "$r"  # for crates.io
	restore_archives "$r"
done

pkgs=(x "xinetd cron sqlite3" "xinetd sqlite3")  # sqlite3: for the checks
[ -z "$bin" ] && pkgs[1]+=" gcc git ca-certificates"
for n in 1 2; do
	log "node$n: apt-get install ${pkgs[n]}"
	on_host "$n" apt-get -q update > "$work/apt-update$n.log" 2>&1 \
		|| { tail "$work/apt-update$n.log"; die "apt-get update failed"; }
	# shellcheck disable=SC2086
	on_host "$n" apt-get -q -y install ${pkgs[n]} > "$work/apt$n.log" 2>&1 \
		|| { tail "$work/apt$n.log"; die "apt-get install ${pkgs[n]} failed"; }
	save_archives "${R[n]}"
done

# the network: node1 10.231.0.1 <-veth-> node2 10.231.0.2; hostnames
ip link add "${veth[1]}" type veth peer name "${veth[2]}" || die "ip link add veth failed"
for n in 1 2; do
	ip netns add "${ns[n]}" || die "ip netns add failed"
	ip link set "${veth[n]}" netns "${ns[n]}"
	ip -n "${ns[n]}" addr add "${addr[n]}/24" dev "${veth[n]}"
	ip -n "${ns[n]}" link set lo up
	ip -n "${ns[n]}" link set "${veth[n]}" up
	touch "$work/uts$n"
	unshare --uts="$work/uts$n" hostname "node$n" || die "unshare --uts failed"
done
check "node1 is called node1, node2 node2" [ "$(on 1 hostname)/$(on 2 hostname)" = node1/node2 ]
check "node1 has no route but to node2" [ -z "$(ip -n "${ns[1]}" route show default)" ]

# ----------------------------------------------------- the source trees
head=$(git -C "$src" rev-parse --short HEAD)
for n in 1 2; do
	git clone -q "$src" "${R[n]}/root/csync2-rs" || die "git clone failed"
	if [ "${WORKTREE:-0}" = 1 ]; then
		git -C "$src" diff HEAD -- README.md contrib | git -C "${R[n]}/root/csync2-rs" apply --allow-empty \
			|| die "applying the worktree's README.md/contrib changes failed"
	fi
done
readme=${R[1]}/root/csync2-rs/README.md
quick=$(sed -n '/^## Quickstart/,/^## /p' "$readme")
in_quick() { grep -qF -- "$1" <<< "$quick"; }

# --------------------------------------------------------------- Install
log "Install"
# the indented command lines of README "Install", in order
mapfile -t install_cmds < <(sed -n '/^## Install/,/^## /p' "$readme" | sed -n 's/^    //p')
printf '    %s\n' "${install_cmds[@]}"
check "README Install: cargo build --release, then install" \
	[ "${install_cmds[0]:-}" = "cargo build --release" ]
if [ -z "$bin" ]; then
	bind_toolchain "${R[1]}"
	log "node1: cargo build --release"
	t0=$SECONDS
	on_host 1 env PATH="/root/.cargo/bin:${ENVV[0]#PATH=}" RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo \
		sh -c 'cd /root/csync2-rs && cargo build --release' > "$work/build.log" 2>&1
	rc=$?
	check "node1: cargo build --release (exit $rc, $((SECONDS - t0))s)" [ "$rc" = 0 ]
	[ "$rc" = 0 ] || { tail -30 "$work/build.log"; exit 1; }
else
	mkdir -p "${R[1]}/root/csync2-rs/target/release"
	cp "$bin" "${R[1]}/root/csync2-rs/target/release/csync2"
fi
# node2 gets the binary that node1 built, as an admin would copy it
mkdir -p "${R[2]}/root/csync2-rs/target/release"
cp -p "${R[1]}/root/csync2-rs/target/release/csync2" "${R[2]}/root/csync2-rs/target/release/csync2"
for n in 1 2; do
	for c in "${install_cmds[@]:1}"; do
		sh_on "$n" "$c"; rc=$?
		check "node$n: $c (exit $rc)" [ "$rc" = 0 ]
	done
	check "node$n: /usr/sbin/csync2 mode 755" [ "$(stat -c %a "${R[n]}/usr/sbin/csync2")" = 755 ]
	check "node$n: /var/lib/csync2 exists, mode 700" [ "$(stat -c %a "${R[n]}/var/lib/csync2" 2>&1)" = 700 ]
done

# ---------------------------------------------- 1. the key, 2. the certs
log "1. csync2 -k /etc/csync2.key on node1, copied to node2"
check "README step 1 shows: csync2 -k /etc/csync2.key" in_quick "csync2 -k /etc/csync2.key"
on 1 csync2 -k /etc/csync2.key
rc=$?
check "node1: csync2 -k /etc/csync2.key (exit $rc)" [ "$rc" = 0 ]
check "key is 64 characters" [ "$(tr -d '\n' < "${R[1]}/etc/csync2.key" | wc -c)" = 64 ]
echo "key mode: $(stat -c %a "${R[1]}/etc/csync2.key")"
cp -p "${R[1]}/etc/csync2.key" "${R[2]}/etc/csync2.key"

log "2. csync2 --gen-cert on both"
for n in 1 2; do
	out=$(on "$n" csync2 --gen-cert 2>&1)
	rc=$?
	check "node$n: csync2 --gen-cert (exit $rc: $out)" [ "$rc" = 0 ]
	check "node$n: /etc/csync2_ssl_key.pem mode 600, cert 644" \
		[ "$(stat -c %a "${R[n]}/etc/csync2_ssl_key.pem" "${R[n]}/etc/csync2_ssl_cert.pem" | tr '\n' ' ')" = "600 644 " ]
done

# -------------------------------------------------------------- 3. config
log "3. the README's /etc/csync2.cfg on both"
# the indented block after "the same `/etc/csync2.cfg`:" in the README
cfg=$(awk '/the same `\/etc\/csync2.cfg`/ { on = 1; next }
	on && /^[0-9]+\./ { exit }
	on && /^       / { sub(/^       /, ""); print }' <<< "$quick")
echo "$cfg" | sed 's/^/    /'
check "README step 3 has a config block" grep -q '^group cluster' <<< "$cfg"
for n in 1 2; do
	printf '%s\n' "$cfg" > "${R[n]}/etc/csync2.cfg"
done
# node1's application files
m=${R[1]}/etc/myapp
mkdir -p "$m/conf.d" "$m/data/deep"
echo "listen 8080" > "$m/app.conf"
echo "password=s3cret" > "$m/secret.conf"; chmod 0600 "$m/secret.conf"
echo "include more" > "$m/conf.d/more.conf"
head -c 200000 /dev/urandom > "$m/data/deep/blob.bin"
printf '#!/bin/sh\necho hi\n' > "$m/run.sh"; chmod 0750 "$m/run.sh"
ln -s app.conf "$m/current.conf"
echo "editor backup" > "$m/app.conf~"
echo "hidden" > "$m/.hidden"
chown 1234:1234 "$m/conf.d/more.conf"
# node2 already has an older app.conf, never checked by csync2 there
mkdir -p "${R[2]}/etc/myapp"
echo "listen 80 (old)" > "${R[2]}/etc/myapp/app.conf"

# -------------------------------------------------------------- 4. server
log "4. the server: contrib/xinetd.d/csync2 with xinetd on both"
check "README step 4 names contrib/xinetd.d/csync2" in_quick "contrib/xinetd.d/csync2"
listening() { ip netns exec "${ns[$1]}" ss -ltnH 2>/dev/null | awk '$4 ~ /:30865$/ { f = 1 } END { exit !f }'; }
start_xinetd() {
	on "$1" /etc/init.d/xinetd start > "$work/xinetd-start$1.log" 2>&1
	local i
	for i in $(seq 50); do listening "$1" && return 0; sleep 0.1; done
	cat "$work/xinetd-start$1.log"
	return 1
}
stop_xinetd() {
	on "$1" /etc/init.d/xinetd stop > /dev/null 2>&1
	local i
	for i in $(seq 50); do listening "$1" || return 0; sleep 0.1; done
	return 1
}
for n in 1 2; do
	sh_on "$n" "cp contrib/xinetd.d/csync2 /etc/xinetd.d/"
	check "node$n: xinetd starts and listens on port 30865" start_xinetd "$n"
done
for n in 1 2; do
	o=$((3 - n))
	check "node$n connects to node$o:30865" \
		on "$n" timeout 5 bash -c "exec 3<>/dev/tcp/node$o/30865"
done

# ------------------------------------------------------------- 5. csync2 -x
log "5. csync2 -x on node1"
check "README step 5 shows: csync2 -x" in_quick "       csync2 -x"
out=$(on 1 csync2 -x 2>&1); rc=$?
[ -n "$out" ] && echo "$out" | sed 's/^/    /'
m2=${R[2]}/etc/myapp
same() { # same REL: content, mode, owner equal on both nodes
	cmp -s "$m/$1" "$m2/$1" &&
		[ "$(stat -c '%a %u %g' "$m/$1")" = "$(stat -c '%a %u %g' "$m2/$1")" ]
}
# node2's own, different app.conf is a conflict (README step 5)
check "node1: first csync2 -x: one conflict, exit 1 (exit $rc)" \
	eval '[ "$rc" = 1 ] && [ "$out" = "Finished with 1 errors." ]'
check "conflict: node2 keeps its own app.conf" grep -qx "listen 80 (old)" "$m2/app.conf"
out=$(on 1 csync2 -M 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "conflict: csync2 -M lists app.conf (exit $rc)" \
	eval '[ "$rc" = 0 ] && [ "$out" = "$(printf "chary\tnode1\tnode2\t/etc/myapp/app.conf")" ]'
out=$(on 1 csync2 -xv 2>&1); rc=$?
check "conflict: csync2 -xv says 'File stays in dirty state' after app.conf (exit $rc)" \
	bash -c "grep -A1 -x 'Updating /etc/myapp/app.conf on node2 ...' <<< \"\$1\" | grep -qx 'File stays in dirty state. Try again later...'" _ "$out"
for f in secret.conf conf.d/more.conf data/deep/blob.bin run.sh; do
	check "node2 has /etc/myapp/$f (content, mode, owner)" same "$f"
done
check "README step 5 shows: -fr DIR" in_quick '`-fr DIR`'
out=$(on 1 csync2 -fr /etc/myapp 2>&1); rc=$?
check "node1: csync2 -fr /etc/myapp (exit $rc${out:+: $out})" [ "$rc" = 0 ]
out=$(on 1 csync2 -x 2>&1); rc=$?
[ -n "$out" ] && echo "$out" | sed 's/^/    /'
check "node1: csync2 -x after -fr (exit $rc)" [ "$rc" = 0 ]
check "node2's old app.conf was replaced by node1's" same app.conf
check "node2 has the symlink current.conf -> app.conf" [ "$(readlink "$m2/current.conf")" = app.conf ]
check "node2 has mode 600 on secret.conf" [ "$(stat -c %a "$m2/secret.conf")" = 600 ]
check "excluded *~ not sent" [ ! -e "$m2/app.conf~" ]
check "excluded .* not sent" [ ! -e "$m2/.hidden" ]
check "node1's database is /var/lib/csync2/node1.db3" [ -s "${R[1]}/var/lib/csync2/node1.db3" ]
check "node2's database is /var/lib/csync2/node2.db3" [ -s "${R[2]}/var/lib/csync2/node2.db3" ]
# TLS: each node pinned the other's certificate (x509_cert)
pinned() { # pinned N PEER: PEER's certificate in node N's x509_cert table
	[ "$(on "$1" sqlite3 "/var/lib/csync2/node$1.db3" "select count(*) from x509_cert where peername = '$2'")" = 1 ]
}
check "TLS: node1 pinned node2's certificate" pinned 1 node2
check "TLS: node2 pinned node1's certificate" pinned 2 node1

log "5. a change, a new file, a deletion; csync2 -x"
# (every change below also changes the size: csync2, like the C program,
# sees a change by mtime in whole seconds, size and mode, and the walk
# writes within seconds)
echo "listen 8081 # changed" > "$m/app.conf"
echo "new" > "$m/conf.d/new.conf"
rm "$m/run.sh"
chmod 0640 "$m/secret.conf"
out=$(on 1 csync2 -x 2>&1); rc=$?
[ -n "$out" ] && echo "$out" | sed 's/^/    /'
check "node1: second csync2 -x (exit $rc)" [ "$rc" = 0 ]
check "change arrived" same app.conf
check "new file arrived" same conf.d/new.conf
check "deletion arrived" [ ! -e "$m2/run.sh" ]
check "mode change arrived" [ "$(stat -c %a "$m2/secret.conf")" = 640 ]

# ------------------------------------------------------------- 6. -M, -T
log "6. csync2 -M and -T"
check "README step 6 names csync2 -M and csync2 -T" bash -c "grep -qF 'csync2 -M' <<< \"\$1\" && grep -qF 'csync2 -T' <<< \"\$1\"" _ "$quick"
out=$(on 1 csync2 -M 2>&1); rc=$?
check "node1: csync2 -M after the sync: empty, exit 2 (exit $rc${out:+: $out})" eval '[ "$rc" = 2 ] && [ -z "$out" ]'
for n in 1 2; do
	out=$(on "$n" csync2 -T 2>&1); rc=$?
	[ -n "$out" ] && echo "$out" | sed 's/^/    /'
	check "node$n: csync2 -T: no differences (exit $rc)" [ -z "$out" ]
	echo "    node$n: csync2 -T exit status $rc"
done
check "node2 down: xinetd stopped" stop_xinetd 2
echo "listen 8082 # changed while node2 is down" > "$m/app.conf"
out=$(on 1 csync2 -x 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "node1: csync2 -x with node2 down fails (exit $rc)" [ "$rc" != 0 ]
out=$(on 1 csync2 -M 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "node1: csync2 -M lists app.conf for node2 (exit $rc)" \
	eval '[ "$rc" = 0 ] && [ "$out" = "$(printf "chary\tnode1\tnode2\t/etc/myapp/app.conf")" ]'
out=$(on 1 csync2 -M --json 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "node1: csync2 -M --json (exit $rc)" \
	bash -c "[ $rc = 0 ] && grep -qF '{\"file\":\"/etc/myapp/app.conf\",\"myname\":\"node1\",\"peer\":\"node2\",\"force\":false}' <<< \"\$1\"" _ "$out"
out=$(on 1 csync2 -T 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "node1: csync2 -T with node2 down fails (exit $rc)" [ "$rc" != 0 ]
check "node2 up again" start_xinetd 2
out=$(on 1 csync2 -T 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "node1: csync2 -T shows app.conf differs (X line; exit $rc)" \
	bash -c "grep -qP '^X\tnode1\tnode2\t/etc/myapp/app.conf$' <<< \"\$1\"" _ "$out"
out=$(on 1 csync2 -x 2>&1); rc=$?
check "node1: csync2 -x with node2 back (exit $rc)" [ "$rc" = 0 ]
check "app.conf arrived" same app.conf
out=$(on 1 csync2 -M 2>&1); rc=$?
check "node1: csync2 -M empty again (exit $rc${out:+: $out})" eval '[ "$rc" = 2 ] && [ -z "$out" ]'

# ------------------------------------------------------------ 5. conflict
log "5. a conflict: node2 changes app.conf while node1 is down; node1 changes it too"
check "node1 down" stop_xinetd 1
echo "listen 9000 (node2's)" > "$m2/app.conf"
out=$(on 2 csync2 -x 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "node2: csync2 -x with node1 down fails, app.conf stays dirty (exit $rc)" [ "$rc" != 0 ]
check "node1 up again" start_xinetd 1
echo "listen 9001 (node1's, the right one)" > "$m/app.conf"
out=$(on 1 csync2 -x 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
echo "    node1: csync2 -x exit status $rc"
check "node1: csync2 -x: one conflict, exit 1 (exit $rc)" \
	eval '[ "$rc" = 1 ] && [ "$out" = "Finished with 1 errors." ]'
out=$(on 1 csync2 -M 2>&1); rc=$?
check "node1: csync2 -M lists the conflict (exit $rc)" \
	eval '[ "$rc" = 0 ] && [ "$out" = "$(printf "chary\tnode1\tnode2\t/etc/myapp/app.conf")" ]'
check "conflict left alone: node2 keeps its app.conf" grep -qx "listen 9000 (node2's)" "$m2/app.conf"
check "conflict left alone: node1 keeps its app.conf" grep -qx "listen 9001 (node1's, the right one)" "$m/app.conf"
check "README step 5 shows: csync2 -f FILE" in_quick 'csync2 -f FILE'
out=$(on 1 csync2 -f /etc/myapp/app.conf 2>&1); rc=$?
check "node1: csync2 -f /etc/myapp/app.conf (exit $rc${out:+: $out})" [ "$rc" = 0 ]
out=$(on 1 csync2 -x 2>&1); rc=$?
[ -n "$out" ] && echo "$out" | sed 's/^/    /'
check "node1: csync2 -x after -f (exit $rc)" [ "$rc" = 0 ]
check "conflict settled: node2 has node1's app.conf" same app.conf
out=$(on 2 csync2 -x 2>&1); rc=$?
[ -n "$out" ] && echo "$out" | sed 's/^/    /'
check "node2: csync2 -x afterwards (exit $rc)" [ "$rc" = 0 ]
check "node1's app.conf still the winner" grep -qx "listen 9001 (node1's, the right one)" "$m/app.conf"
check "both app.conf equal" same app.conf
for n in 1 2; do
	out=$(on "$n" csync2 -M 2>&1); rc=$?
	check "node$n: csync2 -M empty (exit $rc${out:+: $out})" eval '[ "$rc" = 2 ] && [ -z "$out" ]'
	out=$(on "$n" csync2 -T 2>&1); rc=$?
	check "node$n: csync2 -T: no differences (exit $rc${out:+: $out})" [ -z "$out" ]
done

# ---------------------------------------------------------------- 6. cron
log "6. contrib/cron.d/csync2"
check "README step 6 names contrib/cron.d/csync2" in_quick "contrib/cron.d/csync2"
sh_on 1 "cp contrib/cron.d/csync2 /etc/cron.d/csync2"
c=${R[1]}/etc/cron.d/csync2
check "cron.d file name is valid for cron (letters, digits, - and _)" bash -c '[[ csync2 =~ ^[A-Za-z0-9_-]+$ ]]'
check "cron.d file: owned by root, not writable by group/other, ends in a newline" \
	bash -c "[ \"\$(stat -c %u '$c')\" = 0 ] && [ \$(( 0\$(stat -c %a '$c') & 022 )) = 0 ] && [ -z \"\$(tail -c1 '$c')\" ]"
jobs=$(grep -vE '^[[:space:]]*(#|$)|^[A-Za-z_]+=' "$c")
check "cron.d file: one job line" [ "$(wc -l <<< "$jobs")" = 1 ]
read -r j_min j_hour j_dom j_mon j_dow j_user j_cmd <<< "$jobs"
check "cron.d job: schedule '$j_min $j_hour $j_dom $j_mon $j_dow' (every 5 minutes)" \
	[ "$j_min $j_hour $j_dom $j_mon $j_dow" = "*/5 * * * *" ]
check "cron.d job: user field '$j_user' is a user on the node" on 1 getent passwd "$j_user"
check "cron.d job: command 'csync2 -x'" [ "$j_cmd" = "csync2 -x" ]
cron_path=$(sed -n 's/^PATH=//p' "$c")
check "cron.d PATH finds /usr/sbin/csync2" \
	[ "$(on 1 env -i PATH="$cron_path" sh -c 'command -v csync2')" = /usr/sbin/csync2 ]
# let cron run it: every minute instead of every five
sed -i 's|^\*/5 |* |' "$c"
echo "listen 9100 (sent by cron)" > "$m/app.conf"
on 1 /etc/init.d/cron start > "$work/cron-start.log" 2>&1
log "waiting up to 130 s for cron's csync2 -x"
for i in $(seq 130); do
	same app.conf && break
	sleep 1
done
check "cron's csync2 -x (contrib/cron.d/csync2, every minute) pushed app.conf (${i}s)" same app.conf
on 1 /etc/init.d/cron stop > /dev/null 2>&1

# ---------------------------------------------------------------- summary
for n in 1 2; do stop_xinetd "$n"; done
summary "quickstart-chroot.sh: README Quickstart at $head${WORKTREE:+ + worktree README/contrib}, node1 -> node2 over a veth"
