#!/usr/bin/env bash
# acks_ab.sh - fieldmq binaries against each other, interleaved in one run,
# on the forwarded QoS 1 path of acks_bench.sh (fieldmq -> a Mosquitto cloud,
# every PUBACK after the store's commit), with what each one costs per message:
# perf stat --per-thread on the daemon during each case (CPU ms and context
# switches, pwrite64 / fdatasync / futex system calls on the loop thread and
# on the pool threads) and /proc/PID/io (write_bytes, wchar).
#
#   bench/acks_ab.sh OUT ROUNDS DUR "CONNS:WINDOW:LABEL ..." BIN...
#   e.g. bench/acks_ab.sh /tmp/ab.txt 4 3 "1:1:1x1 1:16:1x16" /tmp/a/fieldmq build/fieldmq
#
# Each round runs every binary once (the order rotates by round, so a load
# that drifts within a round hits each alike), one RESULT line per case into
# OUT with the load average; STORE_EXTRA="synchronous = full" adds [store]
# keys. A binary's name in OUT is the folder above its folder (/tmp/acks-<hash>/build/fieldmq
# -> acks-<hash>). Needs perf with syscall tracepoints (root); without them
# the rates are still there.
set -u
OUT=$1; ROUNDS=$2; DUR=$3; CASES=$4; shift 4
: "${BUILD:=build}"
LOAD=$(realpath "$BUILD/bench/ack_load")
MOSQ=/usr/sbin/mosquitto
T=$(mktemp -d /tmp/fieldmq-acks-ab.XXXXXX)
. "$(dirname "$0")/lib.sh"
trap 'stop_pids; rm -rf "$T"' EXIT
iob() { awk '/^wchar|^write_bytes|^syscw/{printf "%s=%s ", $1, $2}' "/proc/$1/io" | tr -d ':'; }
# perf's per-thread CSV -> key=value sums for the loop thread (tid = pid) and the others
perfsum() {
	/usr/bin/python3 - "$1" "$2" <<'PY'
import collections, sys
path, pid = sys.argv[1], sys.argv[2]
agg = collections.defaultdict(float)
for line in open(path):
    f = line.strip().split(",")
    if len(f) < 4 or line.startswith("#"):
        continue
    try:
        v = float(f[1])
    except ValueError:
        continue
    where = "loop" if f[0].rsplit("-", 1)[-1] == pid else "pool"
    ev = f[3].replace("syscalls:sys_enter_", "").replace("context-switches", "cs").replace("task-clock", "cpu_ms")
    agg[ev + "_" + where] += v
print(" ".join("%s=%.0f" % (k, v) for k, v in sorted(agg.items())))
PY
}
for R in $(seq 1 "$ROUNDS"); do
	BINS=("$@")
	n=${#BINS[@]}
	for k in $(seq 0 $((n - 1))); do
		B=$(realpath "${BINS[$(((k + R) % n))]}")
		name=$(basename "$(dirname "$(dirname "$B")")")
		cp=$(port)
		fp=$(port)
		printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\nmax_inflight_messages 100\n' "$cp" > "$T/cloud.conf"
		$MOSQ -c "$T/cloud.conf" > "$T/cloud.log" 2>&1 &
		PIDS+=($!)
		wait_port "$cp" || exit 1
		rm -rf "$T/f"
		mkdir -p "$T/f"
		printf '[gateway]\nid = ab\ndata_dir = data\ndevices =\n[broker]\nlisten = 127.0.0.1:%s\n[store]\n%s\n[uplink]\nenabled = yes\nurl = mqtt://127.0.0.1:%s\nforward = bench/# 1\nreconnect_min = 50ms\nreconnect_max = 200ms\n' \
			"$fp" "${STORE_EXTRA:-}" "$cp" > "$T/f/fieldmq.ini"
		(cd "$T/f" && exec "$B" -c fieldmq.ini >> fieldmq.log 2>&1) &
		fpid=$!
		PIDS+=($fpid)
		wait_port "$fp" || exit 1
		sleep 0.5
		for c in $CASES; do
			IFS=: read -r conns win lab <<< "$c"
			io0=$(iob $fpid)
			perf stat --per-thread -x, -e task-clock,context-switches,syscalls:sys_enter_pwrite64,syscalls:sys_enter_fdatasync,syscalls:sys_enter_futex \
				-p $fpid -o "$T/perf" -- sleep $((DUR + 1)) 2>/dev/null &
			sp=$!
			r=$("$LOAD" -p "$fp" -c "$conns" -w "$win" -d "$DUR" -u 1 -t "bench/$lab" -i "ab$lab" 2>&1 | grep RESULT)
			wait $sp
			io1=$(iob $fpid)
			echo "$(date +%T) round=$R sys=$name case=$lab load=$(cut -d' ' -f1 /proc/loadavg) $r $(perfsum "$T/perf" $fpid) io0: $io0 io1: $io1 wal=$(stat -c %s "$T/f/data/fieldmq.db-wal" 2>/dev/null)" >> "$OUT"
		done
		stop_pids
	done
done
