#!/usr/bin/env bash
# Package test: csync2-rs's .deb replaces Debian's csync2 in place.
#
#   sudo bash tests/pkg/deb-chroot.sh [path/to/csync2-rs_*.deb]
#
# Needs root, debootstrap and network access to deb.debian.org. Not part of
# cargo test or tests/run-all.sh. Without an argument it takes the newest
# ../csync2-rs_*_amd64.deb next to the source tree (dpkg-buildpackage -b
# puts it there).
#
# What it does, in a Debian bookworm minbase chroot (the debootstrap
# tarball is cached in /var/cache/csync2-rs-pkgtest, so reruns only need
# apt-get update and the csync2 packages):
#
#  1. installs Debian's csync2 (with its Recommends: openbsd-inetd);
#  2. sets up two nodes sharing one config, with TLS and a group key:
#     - the chroot's node: /etc/csync2.cfg, /var/lib/csync2/<hostname>.db3,
#       data in /srv/data, name = the machine's hostname (127.0.0.1);
#     - the peer "peer" (127.0.0.2): a copy of Debian's csync2 binary
#       running as stand-alone server (-ii) with its own system directory
#       (CSYNC2_SYSTEM_DIR), database directory (-D) and data directory
#       (/srv/peer-data, through a prefix), so it stays real csync2 after
#       the switch;
#  3. first sync with Debian's csync2 (csync2 -x), so the node's .db3 exists;
#  4. dpkg -i csync2-rs over Debian's csync2, stdin closed (a conffile
#     prompt would fail it); checks that /usr/sbin/csync2 is ours and that
#     /etc/csync2.cfg, the .db3 and an enabled csync2.socket are untouched,
#     and where everything went;
#  5. changes, adds and deletes files, runs csync2 -x (ours, old cfg and
#     db) to the real csync2 peer and checks the peer's files, and csync2 -T;
#  6. dpkg -r csync2-rs: only the config and the state remain;
#  7. Debian's csync2 installs again and syncs with the database csync2-rs
#     wrote; dpkg --purge csync2-rs then leaves its state alone;
#  8. a fresh install (no /etc/csync2.cfg) gets the example config, and
#     dpkg --purge removes everything of ours.
#
# Prints PASS/FAIL per check and a summary; exit status 0 only if all
# passed. KEEP=1 keeps the chroot (its path is printed).

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=chroot-lib.sh
. "$here/chroot-lib.sh"

need_root_and debootstrap

deb=${1:-}
if [ -z "$deb" ]; then
	# shellcheck disable=SC2012  # the newest one; names without blanks
	deb=$(ls -t "$src"/../csync2-rs_*_amd64.deb 2>/dev/null | head -n1)
	[ -n "$deb" ] || die "no ../csync2-rs_*_amd64.deb; build it with dpkg-buildpackage -b -us -uc"
fi
[ -f "$deb" ] || die "$deb: no such file"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")

work=$(mktemp -d /var/tmp/csync2-rs-pkgtest.XXXXXX)
R=$work/root
peer_pid=

in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

stop_peer() {
	if [ -n "$peer_pid" ]; then
		kill "$peer_pid" 2>/dev/null
		wait "$peer_pid" 2>/dev/null
		peer_pid=
	fi
}

cleanup() {
	stop_peer
	cleanup_roots "$work" "$R"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- chroot
make_root "$R" "$work" "$work"
mount -t proc proc "$R/proc"
# the chroot shares the host's network: no daemon may start
setup_root "$R"

node=$(hostname | tr '[:upper:]' '[:lower:]')
node=${node%%.*}
cat > "$R/etc/hosts" <<EOF
127.0.0.1	localhost $node
127.0.0.2	peer
EOF

restore_archives "$R"

log "apt-get update; apt-get install csync2"
in_root apt-get -q update > "$work/apt-update.log" 2>&1 || { tail "$work/apt-update.log"; die "apt-get update failed"; }
in_root apt-get -q -y install csync2 > "$work/apt-csync2.log" 2>&1 || { tail "$work/apt-csync2.log"; die "apt-get install csync2 failed"; }
save_archives "$R"
debver=$(in_root dpkg-query -W -f='${Version}' csync2)
echo "Debian's csync2 $debver installed"
check "Debian's csync2 registered its inetd entry" \
	grep -Eq '^csync2[[:space:]].*/usr/sbin/csync2' "$R/etc/inetd.conf"

# ----------------------------------------------------------- two nodes
# the peer: Debian's binary, kept outside dpkg's files so that it stays
mkdir -p "$R/opt/csync2-debian" "$R/srv/peer/etc" "$R/srv/peer/db" "$R/srv/data/sub" "$R/srv/peer-data"
cp -p "$R/usr/sbin/csync2" "$R/opt/csync2-debian/csync2"

# one certificate for both (real csync2 servers only accept client
# certificates issued by their own one); made by csync2-rs --gen-cert
mkdir -p "$work/deb-x" "$work/cert"
dpkg-deb -x "$deb" "$work/deb-x"
CSYNC2_SYSTEM_DIR=$work/cert "$work/deb-x/usr/sbin/csync2" --gen-cert --rsa > /dev/null \
	|| die "csync2-rs --gen-cert failed"
for d in "$R/etc" "$R/srv/peer/etc"; do
	install -m 0600 "$work/cert/csync2_ssl_key.pem" "$d/csync2_ssl_key.pem"
	install -m 0644 "$work/cert/csync2_ssl_cert.pem" "$d/csync2_ssl_cert.pem"
done
in_root csync2 -k /etc/csync2.key_pkgtest || die "csync2 -k failed"

cat > "$R/etc/csync2.cfg" <<EOF
# pkgtest cluster: this node ($node, 127.0.0.1) and a real csync2 peer
group pkgtest
{
	host $node peer;
	key /etc/csync2.key_pkgtest;
	include %data%;
	exclude *~;
}

prefix data
{
	on peer: /srv/peer-data;
	on *: /srv/data;
}
EOF
cp "$R/etc/csync2.cfg" "$R/srv/peer/etc/csync2.cfg"

# port 30865 (/etc/services) unless something on this machine has it
port=30865
if ss -ltnH 2>/dev/null | awk '{print $4}' | grep -Eq '(^|[:.])30865$'; then
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2",0)); print(s.getsockname()[1])' 2>/dev/null || echo 30999)
	echo "port 30865 is in use here; the test uses port $port"
fi
if [ "$port" = 30865 ]; then portopt=(); else portopt=(-p "$port"); fi

start_peer() {
	chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CSYNC2_SYSTEM_DIR=/srv/peer/etc \
		/opt/csync2-debian/csync2 -ii -N peer -D /srv/peer/db "${portopt[@]}" \
		>> "$work/peer.log" 2>&1 &
	peer_pid=$!
	for _ in $(seq 50); do
		ss -ltnH 2>/dev/null | awk '{print $4}' | grep -qx "127.0.0.2:$port" && return 0
		sleep 0.1
	done
	cat "$work/peer.log"
	die "the peer did not start listening on 127.0.0.2:$port"
}
start_peer
echo "peer (Debian's csync2 -ii, pid $peer_pid) listens on 127.0.0.2:$port"

node_csync2() { in_root csync2 "${portopt[@]}" "$@"; }

# -------------------------------------------- first sync, Debian's csync2
echo "one" > "$R/srv/data/one.txt"
echo "two" > "$R/srv/data/sub/two.txt"
echo "gone soon" > "$R/srv/data/old.txt"
ln -s one.txt "$R/srv/data/link"
log "first sync with Debian's csync2: csync2 -x"
node_csync2 -x > "$work/sync1.log" 2>&1
rc=$?
check "first csync2 -x with Debian's csync2 (exit $rc)" [ "$rc" = 0 ]
check "peer received the first files" \
	cmp -s "$R/srv/data/sub/two.txt" "$R/srv/peer-data/sub/two.txt"
db=$R/var/lib/csync2/$node.db3
check "node database /var/lib/csync2/$node.db3 exists" [ -s "$db" ]
[ "$rc" = 0 ] || cat "$work/sync1.log"

# the admin enabled the socket unit (what "systemctl enable csync2.socket"
# makes; there is no systemd in the chroot)
wants=$R/etc/systemd/system/sockets.target.wants
mkdir -p "$wants"
ln -s /lib/systemd/system/csync2.socket "$wants/csync2.socket"

cfg_sum=$(md5sum < "$R/etc/csync2.cfg")
db_sum=$(md5sum < "$db")
keep_files=(/etc/cron.d/csync2 /etc/xinetd.d/csync2 /etc/init.d/csync2)

# ------------------------------------------------ switch: dpkg -i ours
log "dpkg -i $(basename "$deb") over Debian's csync2"
cp "$deb" "$R/tmp/csync2-rs.deb"
in_root dpkg -i /tmp/csync2-rs.deb < /dev/null > "$work/dpkg-i.log" 2>&1
rc=$?
sed 's/^/    /' "$work/dpkg-i.log"
check "dpkg -i csync2-rs over csync2 succeeds with stdin closed (exit $rc)" [ "$rc" = 0 ]
check "no conffile prompt" bash -c "! grep -q 'Configuration file' '$work/dpkg-i.log'"
status() { in_root dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null; }
check "csync2-rs is installed" [ "$(status csync2-rs)" = installed ]
check "Debian's csync2 is removed (config-files)" [ "$(status csync2)" = config-files ]

ours_sum=$(md5sum < "$work/deb-x/usr/sbin/csync2")
check "/usr/sbin/csync2 is csync2-rs's binary" [ "$(md5sum < "$R/usr/sbin/csync2")" = "$ours_sum" ]
check "/usr/sbin/csync2 belongs to csync2-rs" \
	bash -c "chroot '$R' dpkg -S /usr/sbin/csync2 | grep -qx 'csync2-rs: /usr/sbin/csync2'"
json_ok() { # exit 0 (listed) or 2 (nothing dirty), no usage text
	{ [ "$1" = 0 ] || [ "$1" = 2 ]; } && ! grep -q 'invalid option' <<< "$2"
}
out=$(node_csync2 -M --json 2>&1); rc=$?
check "csync2 -M --json works (only csync2-rs has --json; exit $rc)" json_ok "$rc" "$out"
check "/etc/csync2.cfg untouched" [ "$(md5sum < "$R/etc/csync2.cfg")" = "$cfg_sum" ]
check "no /etc/csync2.cfg.dpkg-* files" bash -c "! ls '$R'/etc/csync2.cfg.* 2>/dev/null | grep -q ."
check "node database untouched" [ "$(md5sum < "$db")" = "$db_sum" ]
for f in "${keep_files[@]}"; do
	check "$f (Debian's conffile) still there" [ -e "$R$f" ]
done
check "inetd entry for the server is back (csync2 -i -l)" \
	grep -Eq '^csync2[[:space:]]+stream[[:space:]]+tcp[[:space:]]+nowait[[:space:]]+root[[:space:]]+/usr/sbin/csync2[[:space:]]+csync2 -i -l$' "$R/etc/inetd.conf"
check "/etc/services has csync2 30865/tcp" grep -Eq '^csync2[[:space:]]+30865/tcp' "$R/etc/services"
check "man page csync2(8) from csync2-rs" \
	bash -c "chroot '$R' dpkg -S /usr/share/man/man8/csync2.8.gz | grep -q '^csync2-rs:'"
check "man page is csync2-rs's, section 8" \
	bash -c "zcat '$R/usr/share/man/man8/csync2.8.gz' | grep -q '^\.TH CSYNC2 8 .*csync2-rs'"
for u in csync2.socket csync2@.service csync2.service; do
	check "unit /lib/systemd/system/$u from csync2-rs" \
		bash -c "chroot '$R' dpkg -S /lib/systemd/system/$u | grep -q '^csync2-rs:'"
done
check "an enabled csync2.socket stays enabled (now csync2-rs's unit)" \
	bash -c "[ \"\$(readlink '$wants/csync2.socket')\" = /lib/systemd/system/csync2.socket ] && grep -q 'csync2 cluster file synchronisation' '$R/lib/systemd/system/csync2.socket'"
check "/var/lib/csync2 belongs to csync2-rs" \
	bash -c "chroot '$R' dpkg -S /var/lib/csync2 | grep -q 'csync2-rs'"
check "example config shipped" [ -s "$R/usr/share/csync2-rs/csync2.cfg" ]

# ----------------------------------- csync2 -x with ours, old cfg and db
log "change, add, delete; csync2 -x with csync2-rs to the real csync2 peer"
echo "one, changed by csync2-rs's node" >> "$R/srv/data/one.txt"
head -c 300000 /dev/urandom > "$R/srv/data/sub/new.bin"
rm "$R/srv/data/old.txt"
chmod 0600 "$R/srv/data/sub/two.txt"
node_csync2 -x > "$work/sync2.log" 2>&1
rc=$?
check "csync2 -x (csync2-rs, previous cfg and db) exit $rc" [ "$rc" = 0 ]
[ "$rc" = 0 ] || { cat "$work/sync2.log"; tail -20 "$work/peer.log"; }
check "changed file arrived at the peer" cmp -s "$R/srv/data/one.txt" "$R/srv/peer-data/one.txt"
check "new file arrived at the peer" cmp -s "$R/srv/data/sub/new.bin" "$R/srv/peer-data/sub/new.bin"
check "deleted file deleted at the peer" [ ! -e "$R/srv/peer-data/old.txt" ]
check "mode change arrived at the peer" \
	[ "$(stat -c %a "$R/srv/peer-data/sub/two.txt")" = 600 ]
check "symlink still at the peer" [ "$(readlink "$R/srv/peer-data/link")" = one.txt ]
node_csync2 -T > "$work/compare.log" 2>&1
rc=$?
# The real csync2 records a symlink below a prefix with an empty target
# and csync2-rs with its real one (doc/differences.md, "Symlinks under a
# prefix record their target"), so -T against a real peer lists such links
# as different; anything else would be a real difference.
others=$(grep -v -P '^X\t[^\t]+\tpeer\t%data%/link$' "$work/compare.log")
check "csync2 -T: node and peer in sync but for the prefixed symlink (exit $rc)" \
	bash -c "{ [ $rc = 2 ] || [ $rc = 0 ]; } && [ -z \"\$1\" ]" _ "$others"
[ -z "$others" ] || cat "$work/compare.log"
check "node database still /var/lib/csync2/$node.db3, no other" \
	bash -c "[ \"\$(ls '$R/var/lib/csync2')\" = '$node.db3' ]"

# ------------------------------------------------------- dpkg -r ours
log "dpkg -r csync2-rs"
ours_files=$(in_root dpkg -L csync2-rs)
in_root dpkg -r csync2-rs < /dev/null > "$work/dpkg-r.log" 2>&1
rc=$?
sed 's/^/    /' "$work/dpkg-r.log"
check "dpkg -r csync2-rs (exit $rc)" [ "$rc" = 0 ]
check "csync2-rs state after remove: config-files" [ "$(status csync2-rs)" = config-files ]
# what of csync2-rs's files is still there: files and links, and the
# directories of its own (not shared ones such as /usr/share/lintian)
leftovers() {
	local f
	while read -r f; do
		if [ -d "$R$f" ]; then  # also /lib -> usr/lib
			[[ $f == *csync2* ]] && echo "$f"
		elif [ -e "$R$f" ] || [ -L "$R$f" ]; then
			echo "$f"
		fi
	done <<< "$ours_files"
}
mapfile -t left < <(leftovers | grep -vx /var/lib/csync2)  # /var/lib/csync2 holds the database: stays
check "no file of csync2-rs left after remove (left: ${left[*]:-none})" [ ${#left[@]} = 0 ]
check "/etc/csync2.cfg kept" [ "$(md5sum < "$R/etc/csync2.cfg")" = "$cfg_sum" ]
check "node database kept" [ -s "$db" ]
check "inetd entry removed" bash -c "! grep -Eq '^(#<off># *)?csync2[[:space:]]' '$R/etc/inetd.conf'"

# ------------------------------------- back to Debian's csync2, then purge
log "apt-get install csync2 (Debian's) again"
in_root apt-get -q -y install csync2 < /dev/null > "$work/apt-csync2-again.log" 2>&1
rc=$?
save_archives "$R"
check "Debian's csync2 installs again (exit $rc)" [ "$rc" = 0 ]
[ "$rc" = 0 ] || tail "$work/apt-csync2-again.log"
check "Debian's csync2 is installed" [ "$(status csync2)" = installed ]
check "/usr/sbin/csync2 is Debian's again" \
	cmp -s "$R/usr/sbin/csync2" "$R/opt/csync2-debian/csync2"
check "/etc/csync2.cfg still the admin's" [ "$(md5sum < "$R/etc/csync2.cfg")" = "$cfg_sum" ]
echo "changed again, by Debian's csync2" >> "$R/srv/data/sub/two.txt"
node_csync2 -x > "$work/sync3.log" 2>&1
rc=$?
check "Debian's csync2 -x with the database csync2-rs wrote (exit $rc)" [ "$rc" = 0 ]
[ "$rc" = 0 ] || cat "$work/sync3.log"
check "change arrived at the peer" cmp -s "$R/srv/data/sub/two.txt" "$R/srv/peer-data/sub/two.txt"

log "dpkg --purge csync2-rs while Debian's csync2 is installed"
in_root dpkg --purge csync2-rs < /dev/null > "$work/dpkg-purge1.log" 2>&1
rc=$?
sed 's/^/    /' "$work/dpkg-purge1.log"
check "dpkg --purge csync2-rs (exit $rc)" [ "$rc" = 0 ]
check "csync2-rs is gone from dpkg's database" [ -z "$(status csync2-rs)" ]
check "Debian's csync2 database not touched by the purge" [ -s "$db" ]
check "Debian's /etc/csync2.cfg not touched by the purge" [ "$(md5sum < "$R/etc/csync2.cfg")" = "$cfg_sum" ]

# --------------------------------------- fresh install, then purge
log "fresh install: dpkg --purge csync2, then dpkg -i csync2-rs without /etc/csync2.cfg"
stop_peer
in_root dpkg --purge csync2 > "$work/dpkg-purge-debian.log" 2>&1 || { cat "$work/dpkg-purge-debian.log"; bad "dpkg --purge csync2"; }
rm -f "$R/etc/csync2.cfg" "$wants/csync2.socket"
in_root dpkg -i /tmp/csync2-rs.deb < /dev/null > "$work/dpkg-i2.log" 2>&1
rc=$?
check "fresh dpkg -i csync2-rs (exit $rc)" [ "$rc" = 0 ]
[ "$rc" = 0 ] || cat "$work/dpkg-i2.log"
check "fresh install put the example /etc/csync2.cfg there" \
	cmp -s "$R/etc/csync2.cfg" "$R/usr/share/csync2-rs/csync2.cfg"
out=$(in_root csync2 -cr / 2>&1); rc=$?
check "example config: no group for this host (exit $rc: $out)" \
	[ "$out" = "This host ($node) is not a member of any configured group." ]
# the example with its comment signs removed is a valid configuration
mkdir -p "$R/tmp/example/db"
sed -n '/^# group mycluster/,$p' "$R/etc/csync2.cfg" | sed -e 's/^# \{0,1\}//' \
	-e 's|/etc/csync2.key_mycluster|/tmp/example/key|' > "$R/tmp/example/csync2.cfg"
mkdir -p "$R/etc/apache2" && echo x > "$R/etc/apache2/x.conf"
in_root csync2 -k /tmp/example/key
out=$(in_root env CSYNC2_SYSTEM_DIR=/tmp/example csync2 -N node1 -D /tmp/example/db -cr /etc/apache2 2>&1); rc=$?
check "the example config uncommented is valid (csync2 -cr exit $rc)" [ "$rc" = 0 ]
[ "$rc" = 0 ] || echo "$out"
check "... and includes /etc/apache2" \
	bash -c "chroot '$R' env CSYNC2_SYSTEM_DIR=/tmp/example csync2 -N node1 -D /tmp/example/db -L | grep -q '/etc/apache2/x.conf'"
rm -rf "$R/etc/apache2"
check "fresh install added the inetd entry" grep -Eq '^csync2[[:space:]]' "$R/etc/inetd.conf"
check "fresh install: /var/lib/csync2 is mode 0700" \
	bash -c "[ \"\$(stat -c %a '$R/var/lib/csync2')\" = 700 ]"
check "socket unit not enabled by the package" \
	bash -c "[ ! -e '$wants/csync2.socket' ] && [ ! -L '$wants/csync2.socket' ]"
log "dpkg --purge csync2-rs"
in_root dpkg --purge csync2-rs < /dev/null > "$work/dpkg-purge2.log" 2>&1
rc=$?
sed 's/^/    /' "$work/dpkg-purge2.log"
check "dpkg --purge csync2-rs (exit $rc)" [ "$rc" = 0 ]
check "csync2-rs is gone from dpkg's database" [ -z "$(status csync2-rs)" ]
mapfile -t left < <(leftovers)
check "no file of csync2-rs left after purge (left: ${left[*]:-none})" [ ${#left[@]} = 0 ]
check "/var/lib/csync2 removed by purge" [ ! -e "$R/var/lib/csync2" ]
check "unedited example /etc/csync2.cfg removed by purge" [ ! -e "$R/etc/csync2.cfg" ]
check "inetd entry removed" bash -c "! grep -Eq '^(#<off># *)?csync2[[:space:]]' '$R/etc/inetd.conf'"

# ---------------------------------------------------------------- summary
summary "deb-chroot.sh: $(basename "$deb") replacing Debian's csync2 ${debver:-?}"
