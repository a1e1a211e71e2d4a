#!/usr/bin/env bash
# MQTT-SN gateway figures for BENCHMARKS.md: QoS 0 and QoS 1 publishes per
# second from N MQTT-SN clients through fieldmq to one MQTT subscriber, and
# RSS per connected MQTT-SN client. Starts its own fieldmq on free 127.0.0.1
# ports (persist = no, log_level = warning) for each measurement and stops it
# by PID.
#
# Usage: bench/mqttsn_bench.sh [CLIENTS [SECONDS [RSS_CLIENTS]]]   (100 5 1000)
# Needs build/fieldmq and build/bench/mqttsn_bench (make all build/bench/mqttsn_bench).
set -u
: "${BUILD:=build}"
N=${1:-100}
SECS=${2:-5}
RSS_N=${3:-1000}
FIELDMQ=${FIELDMQ:-$BUILD/fieldmq}
BENCH=$BUILD/bench/mqttsn_bench
T=$(mktemp -d /tmp/fieldmq-snbench.XXXXXX)
FPID=
trap '[ -n "$FPID" ] && kill -TERM "$FPID" 2>/dev/null; rm -rf "$T"' EXIT

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
	TP=$(free_port)
	UP=$(free_port)
	cat > "$T/fieldmq.ini" <<INI
[gateway]
id = bench
data_dir = data
devices =
log_level = warning
[broker]
listen = 127.0.0.1:$TP
persist = no
max_queued_messages = 100000
[mqttsn]
enabled = yes
listen = 127.0.0.1:$UP
max_clients = $((RSS_N + N + 10))
advertise_interval = 1h
INI
	"$FIELDMQ" -c "$T/fieldmq.ini" >> "$T/log" 2>&1 &
	FPID=$!
	for _ in $(seq 1 50); do
		/usr/bin/python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$TP)))" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "fieldmq did not start:" >&2
	cat "$T/log" >&2
	exit 1
}

stop() {
	kill -TERM "$FPID"
	wait "$FPID"
	FPID=
}

echo "== $(date -u +%Y-%m-%dT%H:%MZ) $(uname -sr), $(nproc) CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "== QoS 0, $N clients, ${SECS}s"
start
"$BENCH" -u "$UP" -p "$TP" -n "$N" -q 0 -t "$SECS" ${WINDOW:+-w "$WINDOW"}
echo "fieldmq rss after: $(awk '/VmRSS/ {print $2, $3}' /proc/$FPID/status)"
stop
echo "== QoS 1, $N clients, ${SECS}s"
start
"$BENCH" -u "$UP" -p "$TP" -n "$N" -q 1 -t "$SECS"
stop
echo "== RSS, $RSS_N clients"
start
sleep 0.5
"$BENCH" -u "$UP" -n "$RSS_N" -P "$FPID"
stop
