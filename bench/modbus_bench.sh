#!/usr/bin/env bash
# Modbus throughput against the simulator (build/sim/modbus_sim, Modbus TCP):
# DEVICES devices (each its own TCP connection and worker) x POINTS uint16
# holding registers polled every POLL ms, once coalesced and once with one
# request per point, measured two ways:
#   probe    build/sim/modbus_probe: the adapter alone (no broker, no readings
#            published) for SECONDS; its own counters give points/s and
#            requests per poll; CPU% and peak RSS from /usr/bin/time.
#   fieldmq  build/fieldmq, the real daemon with its broker, from a generated
#            fieldmq.ini + devices.d/*.ini (publish = every_poll). After WARM s
#            (default 3) a window of SECONDS: points/s = readings arriving at a
#            mosquitto_sub on fieldmq/bench/# (by receive time, status topics
#            excluded); requests/poll = requests the simulator logged in the
#            window (--verbose) / (readings / POINTS); CPU% = fieldmq's
#            utime+stime (/proc/PID/stat) over the window; RSS = its VmRSS at
#            the end of the window; threads = its Threads (/proc/PID/status) then.
# PROCS (default "probe fieldmq") and MODES (default "coalesced
# one_request_per_point") pick the rows; FIELDMQ (default $BUILD/fieldmq) the daemon.
# BEFORE=PATH (optional) is an older fieldmq measured the same way right after
# each fieldmq row, in a row of its own ("before"). Below the table, a verdict
# on the target of issue 11 for the fieldmq rows: <= 8 threads, < 10 % of a
# core, < 16 MB RSS. PERSIST=yes (default no) keeps [broker] persist on, as
# fieldmq's own default is: retained readings then also go to the SQLite store.
# "naive" requests/poll is POINTS (one request per point). Keep SECONDS a
# multiple of POLL: every device polls once per POLL, so a window of whole
# periods holds whole cycles.
# Usage: bench/modbus_bench.sh [DEVICES] [POINTS] [POLL_MS] [SECONDS]
set -eu
: "${BUILD:=build}"
: "${PROCS:=probe fieldmq}"
: "${MODES:=coalesced one_request_per_point}"
: "${FIELDMQ:=$BUILD/fieldmq}"
: "${BEFORE:=}"
: "${PERSIST:=no}"
verdicts=()
DEVICES=${1:-100}
POINTS=${2:-100}
POLL=${3:-1000}
SECS=${4:-10}
WARM=${WARM:-3}
freeport() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
out=$(mktemp -d)
sim= vsim= fq= sub=
stop() { # PID...: TERM, then wait for each
	local p
	for p in "$@"; do kill "$p" 2>/dev/null || true; done
	for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
trap 'stop $fq $sub $vsim $sim; rm -rf "$out"' EXIT
waitfor() { # FILE PATTERN: up to 5 s
	local _
	for _ in $(seq 50); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "modbus_bench: no '$2' in $1" >&2
	return 1
}
ticks=$(getconf CLK_TCK)
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime (after "(comm)": no spaces in "fieldmq")
simreqs() { tail -n 1 "$1" | sed -n 's/^modbus_sim: #\([0-9]*\) .*/\1/p'; } # its last request's number

port=$(freeport)
"$BUILD/sim/modbus_sim" --tcp 127.0.0.1:$port --regs tests/sim/modbus_regs.ini >"$out/sim.out" 2>&1 &
sim=$!
waitfor "$out/sim.out" ready

row() { # PROCESS MODE POINTS/S REQ/POLL CPU% RSS_MB THREADS NOTE...
	printf "%-8s %-22s %8.0f %9.1f %7.1f %7.1f %7s  %s\n" "$1" "$2" "$3" "$4" "$5" "$6" "$7" "${*:8}"
}

probe() { # mode one_request_per_point
	local args=(--seconds "$SECS")
	local d p
	for d in $(seq 1 "$DEVICES"); do
		args+=(--bus "b$d,type=tcp,port=$port,timeout=1000" --dev "d$d,bus=b$d,poll=$POLL,one=$2")
		for p in $(seq 0 $((POINTS - 1))); do args+=(--pt "d$d/p$p,addr=$p"); done
	done
	/usr/bin/time -f "%e %U %S %M" -o "$out/time" "$BUILD/sim/modbus_probe" "${args[@]}" >"$out/ev" 2>"$out/err" &
	local tp=$! thr=?
	sleep $((SECS / 2))
	thr=$(awk '/^Threads:/ { print $2 }' /proc/$(pgrep -P $tp modbus_probe | head -1)/status 2>/dev/null || echo ?)
	wait $tp
	read -r el us sy rss <"$out/time"
	IFS='|' read -r pps rpp cpu mb note < <(tail -1 "$out/ev" | /usr/bin/python3 -c '
import json, sys
s = json.loads(sys.stdin.read()); el, us, sy, rss, secs = map(float, sys.argv[1:6])
polls = max(s["polls"], 1)
print("%.1f|%.2f|%.2f|%.2f|peak RSS; %d polls in %.0f s, %d failures, %d overruns"
      % (s["readings"] / secs, s["requests"] / polls, 100 * (us + sy) / el, rss / 1024,
         s["polls"], secs, s["failures"], s["overruns"]))
' "$el" "$us" "$sy" "$rss" "$SECS")
	row probe "$1" "$pps" "$rpp" "$cpu" "$mb" "${thr:-?}" "$note"
}

# The daemon's simulator logs every request (--verbose): its request counter.
vport=$(freeport)
"$BUILD/sim/modbus_sim" --tcp 127.0.0.1:$vport --regs tests/sim/modbus_regs.ini --verbose >"$out/vsim.out" 2>"$out/vsim.err" &
vsim=$!
waitfor "$out/vsim.out" ready

daemon() { # mode yes|no [binary label]
	local bin=${3:-$FIELDMQ} label=${4:-fieldmq}
	local dir=$out/$label-$1 bport t0 t1 c0 c1 r0 r1 rss thr
	mkdir -p "$dir/devices.d" "$dir/data"
	bport=$(freeport)
	cat >"$dir/fieldmq.ini" <<-EOF
	[gateway]
	id = bench
	data_dir = data
	devices = devices.d/*.ini
	publish = every_poll
	log_level = warning

	[broker]
	listen = 127.0.0.1:$bport
	persist = $PERSIST
	sys_interval = 0
	EOF
	awk -v D="$DEVICES" -v P="$POINTS" -v port="$vport" -v poll="$POLL" -v one="$2" -v dir="$dir/devices.d" 'BEGIN {
		for (d = 1; d <= D; d++) {
			f = dir "/d" d ".ini"
			printf "[device:d%d]\nprotocol = modbus\nhost = 127.0.0.1\nport = %d\nunit_id = 1\npoll = %dms\none_request_per_point = %s\n", d, port, poll, one > f
			for (p = 0; p < P; p++)
				printf "\n[point:d%d/p%d]\narea = holding\naddress = %d\ntype = uint16\n", d, p, p > f
			close(f)
		}
	}'
	"$bin" -c "$dir/fieldmq.ini" >"$dir/fieldmq.log" 2>&1 &
	fq=$!
	# The broker listens first: on a loaded machine a subscriber started too
	# early may still be alive 0.2 s later and only then fail ("connection
	# refused"), which left a window with no readings.
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$bport") 2>/dev/null && break
		kill -0 "$fq" 2>/dev/null || { cat "$dir/fieldmq.log" >&2; return 1; }
		sleep 0.1
	done
	for _ in $(seq 50); do
		mosquitto_sub -p "$bport" -t 'fieldmq/bench/#' -F '%U %t' >"$dir/sub" 2>"$dir/sub.err" &
		sub=$!
		sleep 0.2
		kill -0 "$sub" 2>/dev/null && break
		wait "$sub" 2>/dev/null || true
		sub=
		kill -0 "$fq" 2>/dev/null || { cat "$dir/fieldmq.log" >&2; return 1; }
	done
	[ -n "$sub" ] || { echo "modbus_bench: no subscriber to fieldmq" >&2; return 1; }
	sleep "$WARM"
	if ! kill -0 "$sub" 2>/dev/null; then
		echo "modbus_bench: the subscriber to fieldmq ended: $(head -1 "$dir/sub.err")" >&2
		return 1
	fi
	r0=$(simreqs "$out/vsim.err") c0=$(cputicks $fq) t0=$(date +%s.%N)
	sleep "$SECS"
	r1=$(simreqs "$out/vsim.err") c1=$(cputicks $fq) t1=$(date +%s.%N)
	rss=$(awk '/^VmRSS:/ { print $2 }' /proc/$fq/status)
	thr=$(awk '/^Threads:/ { print $2 }' /proc/$fq/status)
	stop $fq $sub
	fq= sub=
	IFS='|' read -r pps rpp cpu mb note < <(awk -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
	    -v r0="$r0" -v r1="$r1" -v rss="$rss" -v hz="$ticks" -v P="$POINTS" '
		$1 >= t0 && $1 < t1 && $2 !~ /\/status$/ { n++ }
		END {
			secs = t1 - t0
			printf "%.1f|%.2f|%.2f|%.2f|VmRSS; %d readings, %d requests in %.1f s\n", n / secs,
			       n ? (r1 - r0) * P / n : 0, 100 * (c1 - c0) / hz / secs, rss / 1024, n, r1 - r0, secs
		}' "$dir/sub")
	row "$label" "$1" "$pps" "$rpp" "$cpu" "$mb" "$thr" "$note"
	if [ "$label" = fieldmq ]; then
		local v=met
		awk -v t="$thr" -v c="$cpu" -v m="$mb" 'BEGIN { exit !(t <= 8 && c < 10 && m < 16) }' || v=missed
		verdicts+=("$1: $thr threads, $cpu % CPU, $mb MB RSS: $v")
	fi
	if [ -s "$dir/fieldmq.log" ]; then sed "s/^/  $label log: /" "$dir/fieldmq.log" | head -5; fi
}

echo "modbus: $DEVICES devices x $POINTS uint16 points every ${POLL} ms, Modbus TCP to modbus_sim on 127.0.0.1;"
echo "naive (one request per point) = $POINTS requests/poll. probe: the adapter alone for ${SECS} s;"
echo "fieldmq: the daemon, readings counted at an MQTT subscriber over ${SECS} s after ${WARM} s of warm-up;"
echo "[broker] persist = $PERSIST."
printf "%-8s %-22s %8s %9s %7s %7s %7s  %s\n" process mode points/s req/poll "CPU %" "RSS MB" threads notes
for proc in $PROCS; do
	for mode in $MODES; do
		one=0
		[ "$mode" = one_request_per_point ] && one=1
		case $proc in
		probe) probe "$mode" $one ;;
		fieldmq)
			daemon "$mode" "$([ $one = 1 ] && echo yes || echo no)"
			[ -z "$BEFORE" ] || daemon "$mode" "$([ $one = 1 ] && echo yes || echo no)" "$BEFORE" before
			;;
		esac
	done
done
for v in "${verdicts[@]}"; do
	echo "target (<= 8 threads, < 10 % of a core, < 16 MB RSS), fieldmq $v"
done
