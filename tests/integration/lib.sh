# lib.sh - helpers for the shell integration tests (sourced, not run).
# Every process a test starts is recorded and stopped by PID on exit.
set -u
: "${BUILD:=build}"
FIELDMQ=${FIELDMQ:-$BUILD/fieldmq}
T=$(mktemp -d /tmp/fieldmq-it.XXXXXX)
PIDS=()
FAILS=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

# A network namespace of the test's own, with only lo (up), deleted on exit:
# netns_add PREFIX sets NS and NSX (the "ip netns exec NS" prefix); it fails,
# with the reason in $T/netns.err, where none can be made (not root).
NS=
cleanup_ns() {
	cleanup
	[ -n "$NS" ] && ip netns del "$NS" 2>/dev/null
}
netns_add() {
	ip netns add "$1-$$" 2> "$T/netns.err" || return 1
	NS=$1-$$
	[ -n "${KEEP:-}" ] || trap cleanup_ns EXIT
	NSX=(ip netns exec "$NS")
	"${NSX[@]}" ip link set lo up
}

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

ok() { echo "ok - $*"; }
not_ok() { echo "NOT OK - $*"; FAILS=$((FAILS + 1)); }
check() { # description command...
	local d=$1; shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

# Waits (bounded) until a TCP port accepts connections.
wait_port() {
	local port=$1 i
	for i in $(seq 1 50); do
		if /usr/bin/python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

# Waits (bounded, in tenths of a second) until a file contains a pattern.
wait_grep() {
	local pat=$1 file=$2 tenths=${3:-50} i
	for i in $(seq 1 "$tenths"); do
		grep -q -- "$pat" "$file" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# Waits (bounded) for a child PID to exit; sets EXIT_STATUS ("timeout" if it did not).
wait_exit() {
	local pid=$1 tenths=${2:-30} i
	EXIT_STATUS=timeout
	for i in $(seq 1 "$tenths"); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			EXIT_STATUS=$?
			return 0
		fi
		sleep 0.1
	done
	return 1
}

finish() {
	if [ "$FAILS" -gt 0 ]; then echo "$FAILS check(s) failed"; exit 1; fi
	echo "all checks passed"
}
