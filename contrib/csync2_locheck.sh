#!/bin/sh
# csync2 logout check: warns before an admin logs out of a cluster node
# with changes that have not been pushed to the peers yet.
#
# Source it from ~/.bash_logout (where it is installed may vary):
#
#     . /usr/local/share/csync2/csync2_locheck.sh
#
# At logout it checks the configured files (csync2 -cr), lists what is
# still dirty (csync2 -M) and asks what to do: "sync" runs csync2 -x and
# checks again, "yes" logs out anyway, anything else starts a new login
# shell so that the session goes on. Without a terminal it only warns.
#
# Settings (environment):
#   CSYNC2                csync2 binary (default: csync2)
#   CSYNC2_LOCHECK_OPTS   extra options for every call, e.g. "-C web"
#   CSYNC2_LOCHECK_PATHS  what to check (default: /)

csync2_locheck() {
	_c2=${CSYNC2:-csync2}
	# The options are a word list on purpose ("-C web -N node1").
	# shellcheck disable=SC2086
	while :; do
		$_c2 ${CSYNC2_LOCHECK_OPTS-} -cr ${CSYNC2_LOCHECK_PATHS:-/}
		# -M exits 0 when it listed dirty files, 2 when there are none
		$_c2 ${CSYNC2_LOCHECK_OPTS-} -M
		_rc=$?
		if [ "$_rc" -eq 2 ]; then
			return 0
		fi
		if [ "$_rc" -ne 0 ]; then
			echo "!! csync2 -M failed (exit $_rc): cannot tell whether all changes are synced." >&2
			return 0
		fi
		echo "!!"
		echo "!! There are unsynced changes (listed above)."
		if [ ! -t 0 ]; then
			echo "!!"
			return 0
		fi
		echo "!! Type 'sync' to run csync2 -x now, 'yes' to log out anyway,"
		echo "!! or anything else to start a new login shell instead."
		echo "!!"
		printf 'Do you really want to log out? '
		# end of input (^D) logs out, as 'yes' does
		if ! read -r _ans; then
			echo
			return 0
		fi
		case $_ans in
		yes)
			return 0
			;;
		sync)
			$_c2 ${CSYNC2_LOCHECK_OPTS-} -x
			# loop: check and list again
			;;
		*)
			# replaces the logging-out shell when sourced from a logout file
			exec "${SHELL:-/bin/sh}" -l
			;;
		esac
	done
}

csync2_locheck
unset -f csync2_locheck
unset _c2 _rc _ans
