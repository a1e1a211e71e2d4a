#!/usr/bin/env bash
# How much fieldmq writes to the disk holding data_dir (flash wear on a
# router), at RATE readings/s: one Modbus TCP device of the simulator with
# RATE uint16 points polled every 1 s, publish = every_poll (so every poll is
# RATE readings), the default sync_interval (100ms) and synchronous = normal,
# persist = yes (readings are retained: the retained table is written too).
# Cases:
#   no-uplink   [uplink] off: only retained messages are persisted
#   uplink-up   [uplink] on, connected to a Mosquitto on loopback, queue =
#               always: every reading is appended, then deleted on PUBACK
#   uplink-down [uplink] on, its cloud unreachable: every reading is appended
#               and stays (the queue grows)
# For each, after WARM s (default 5), a window of SECS s (default 60):
# write_bytes (bytes the process caused to be sent to the block layer) and
# wchar (bytes passed to write()/pwrite()) from /proc/PID/io, also as a day
# (x 86400 / SECS); the readings a subscriber saw in the window, per second.
# write_bytes is what wears a block device (eMMC, SD card, USB stick); on
# raw flash (jffs2/ubifs, no block layer) wchar is the closer figure.
# SYNC=1s sets [store] sync_interval (default: the default, 100ms).
# Usage: bench/flash_bench.sh [RATE] [SECS]; data_dir under $DIR (default
# a fresh folder in /var/tmp, which must be on a disk, not a tmpfs).
set -eu
: "${BUILD:=build}"
: "${FIELDMQ:=$BUILD/fieldmq}"
RATE=${1:-100}
SECS=${2:-60}
WARM=${WARM:-5}
: "${CASES:=no-uplink uplink-up uplink-down}"
SYNC=${SYNC:-}
freeport() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
out=$(mktemp -d "${DIR:-/var/tmp}/fieldmq-flash.XXXXXX")
sim= fq= sub= mq=
stop() { local p; for p in "$@"; do kill "$p" 2>/dev/null || true; done; for p in "$@"; do wait "$p" 2>/dev/null || true; done; }
trap 'stop $fq $sub $mq $sim; rm -rf "$out"' EXIT
iof() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/io"; }

fs=$(stat -f -c %T "$out")
[ "$fs" = tmpfs ] && { echo "flash_bench: $out is on a tmpfs: write_bytes would be 0; set DIR" >&2; exit 1; }
sport=$(freeport)
"$BUILD/sim/modbus_sim" --tcp 127.0.0.1:$sport --regs tests/sim/modbus_regs.ini >"$out/sim.out" 2>&1 &
sim=$!
for _ in $(seq 50); do grep -q ready "$out/sim.out" && break; sleep 0.1; done

printf "%-12s %10s %12s %14s %12s %14s\n" case readings/s write_bytes write_bytes/day wchar wchar/day
for c in $CASES; do
	dir=$out/$c
	mkdir -p "$dir/devices.d"
	bport=$(freeport)
	cport=$(freeport)
	up="enabled = no"
	if [ "$c" = uplink-up ]; then
		printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$cport" >"$dir/mosquitto.conf"
		mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
		mq=$!
		up="enabled = yes
url = mqtt://127.0.0.1:$cport"
	elif [ "$c" = uplink-down ]; then
		up="enabled = yes
url = mqtt://127.0.0.1:$cport
reconnect_min = 1m
reconnect_max = 1m"
	fi
	cat >"$dir/fieldmq.ini" <<-INI
	[gateway]
	id = flash
	data_dir = data
	devices = devices.d/*.ini
	publish = every_poll
	log_level = warning
	[broker]
	listen = 127.0.0.1:$bport
	[uplink]
	$up
	INI
	[ -z "$SYNC" ] || printf '[store]\nsync_interval = %s\n' "$SYNC" >>"$dir/fieldmq.ini"
	{
		printf '[device:d]\nprotocol = modbus\nhost = 127.0.0.1\nport = %s\nunit_id = 1\npoll = 1s\n' "$sport"
		for p in $(seq 0 $((RATE - 1))); do printf '[point:d/p%d]\narea = holding\naddress = %d\ntype = uint16\n' "$p" "$p"; done
	} >"$dir/devices.d/d.ini"
	"$FIELDMQ" -c "$dir/fieldmq.ini" >"$dir/log" 2>&1 &
	fq=$!
	for _ in $(seq 50); do mosquitto_pub -p "$bport" -t probe -n 2>/dev/null && break; sleep 0.1; done
	mosquitto_sub -p "$bport" -t 'fieldmq/flash/d/#' -F '%U %t' >"$dir/sub" 2>/dev/null &
	sub=$!
	sleep "$WARM"
	w0=$(iof $fq write_bytes) c0=$(iof $fq wchar) t0=$(date +%s.%N)
	sleep "$SECS"
	w1=$(iof $fq write_bytes) c1=$(iof $fq wchar) t1=$(date +%s.%N)
	stop $fq $sub $mq
	fq= sub= mq=
	awk -v c="$c" -v t0="$t0" -v t1="$t1" -v w="$((w1 - w0))" -v ch="$((c1 - c0))" '
		$1 >= t0 && $1 < t1 && $2 !~ /\/status$/ { n++ }
		function h(b) { return b >= 1e9 ? sprintf("%.2f GB", b / 1e9) : sprintf("%.1f MB", b / 1e6) }
		END {
			s = t1 - t0
			printf "%-12s %10.0f %12s %14s %12s %14s\n", c, n / s, h(w), h(w * 86400 / s), h(ch), h(ch * 86400 / s)
		}' "$dir/sub"
done
echo "(sync_interval ${SYNC:-100ms}; window $SECS s after $WARM s; data_dir on $fs; /proc/PID/io of fieldmq)"
