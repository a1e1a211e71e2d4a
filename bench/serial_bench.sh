#!/usr/bin/env bash
# serial_bench.sh - the serial adapter's figures for BENCHMARKS.md:
#   1. build/bench/serial_bench: lines/s each parser (regex csv kv json nmea)
#      turns into readings on one core, through the framer, the parser, the
#      value conversion and the port machine (target: >= 200 000 each).
#   2. the fieldmq daemon fed RATE lines/s of mixed NMEA and rtl_433 JSON by
#      build/sim/serial_sim through a pty (a real tty), for SECONDS after a
#      warm-up, with a subscriber on fieldmq/#: lines/s the daemon parsed (from
#      $SYS/fieldmq/serial/lines), readings/s, CPU % of one core (utime+stime of
#      /proc/PID/stat over the window; target <= 5 % at 1000 lines/s), VmRSS.
#
#   bench/serial_bench.sh [RATE [SECONDS [UNIT_LINES]]]     (default 1000 10 1000000)
set -u
cd "$(dirname "$0")/.."
: "${BUILD:=build}"
RATE=${1:-1000}
SECS=${2:-10}
LINES=${3:-1000000}
WARM=2

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (rates are per CPU-second of the benchmark thread; wall-clock rates shown too)"
"$BUILD/bench/serial_bench" -n "$LINES" -m 200000
unit_rc=$?

tmp=$(mktemp -d /tmp/fieldmq-serbench.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/devices.d"
cat >"$tmp/fieldmq.ini" <<EOF
[gateway]
id = bench
data_dir = data
log_level = warning
[broker]
listen = 127.0.0.1:$port
persist = no
sys_interval = 1s
EOF
cat >"$tmp/devices.d/serial.ini" <<EOF
[bus:mixed]
device = $tmp/pty
baud = 115200
[device:gps]
protocol = serial
bus = mixed
parser = nmea
[point:gps/lat]
field = lat
[point:gps/lon]
field = lon
[point:gps/alt]
field = alt
[point:gps/speed]
field = speed
[point:gps/sats]
field = sats
type = uint16
[device:acurite]
protocol = serial
bus = mixed
parser = json
match = /model=Acurite-Tower,/id=1234
[point:acurite/temperature]
json_pointer = /temperature_C
[point:acurite/humidity]
json_pointer = /humidity
type = uint16
[device:lacrosse]
protocol = serial
bus = mixed
parser = json
match = /model=LaCrosse-TX141THBv2,/id=77
[point:lacrosse/temperature]
json_pointer = /temperature_C
EOF

"$BUILD/sim/serial_sim" --pty "$tmp/pty" --mode mixed --rate "$RATE" >"$tmp/sim.out" 2>"$tmp/sim.err" &
pids+=($!)
for _ in $(seq 50); do [ -e "$tmp/pty" ] && break; sleep 0.1; done
"$BUILD/fieldmq" -c "$tmp/fieldmq.ini" >"$tmp/fieldmq.log" 2>&1 &
fq=$!
pids+=($fq)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
mosquitto_sub -p "$port" -t 'fieldmq/#' -t '$SYS/fieldmq/serial/lines' -t '$SYS/fieldmq/serial/readings' -v \
	>"$tmp/sub.out" 2>/dev/null &
pids+=($!)
sleep "$WARM"

ticks=$(getconf CLK_TCK)
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
sysfig() { grep "^\\\$SYS/fieldmq/serial/$1 " "$tmp/sub.out" | tail -1 | awk '{ print $2 }'; }
# $SYS figures come every second: take the window between two of them.
l0=$(sysfig lines) r0=$(sysfig readings) c0=$(cputicks $fq) t0=$(date +%s.%N)
sleep "$SECS"
l1=$(sysfig lines) r1=$(sysfig readings) c1=$(cputicks $fq) t1=$(date +%s.%N)
rss=$(awk '/^VmRSS:/ { print $2 }' /proc/$fq/status)
msgs=$(grep -c '^fieldmq/bench/' "$tmp/sub.out")

echo
echo "daemon: $RATE lines/s of mixed NMEA (GGA RMC VTG GSA GSV ZDA) and rtl_433 JSON (2 sensors) through a pty, ${SECS}s window"
printf "%-12s %10s %12s %8s %16s %8s %s\n" target "lines/s" "readings/s" "CPU %" "CPU % per 1000/s" "RSS MB" note
awk -v l0="${l0:-0}" -v l1="${l1:-0}" -v r0="${r0:-0}" -v r1="${r1:-0}" -v c0="$c0" -v c1="$c1" \
	-v t0="$t0" -v t1="$t1" -v hz="$ticks" -v rss="$rss" -v rate="$RATE" -v msgs="$msgs" 'BEGIN {
	dt = t1 - t0
	lps = (l1 - l0) / dt
	cpu = (c1 - c0) / hz / dt * 100
	per = lps > 0 ? cpu / lps * 1000 : 0
	note = sprintf("%d MQTT messages at the subscriber; target <= 5 %% CPU at 1000 lines/s", msgs)
	if (lps < 0.9 * rate)
		note = note sprintf("; the simulator delivered only %.0f of %d lines/s (loaded machine)", lps, rate)
	printf "%-12s %10.0f %12.0f %8.2f %16.2f %8.1f %s\n", "fieldmq", lps, (r1 - r0) / dt, cpu, per,
		rss / 1024, note
	if (lps <= 0 || per > 5)
		exit 1
}'
daemon_rc=$?
echo "$BUILD/bench/serial_bench exit $unit_rc; daemon check exit $daemon_rc"
[ $unit_rc -eq 0 ] && [ $daemon_rc -eq 0 ]
