#!/usr/bin/env bash
# CoAP server figures for BENCHMARKS.md: publishes per second into the broker
# from N CoAP clients (POST ps/bench/I, one outstanding each), NON and CON,
# with fieldmq's CPU and its RSS growth per client, and the same with an MQTT
# subscriber to the topics (so every publish is also delivered). Starts its
# own fieldmq on free 127.0.0.1 ports (persist = no, log_level = warning) for
# each measurement and stops it by PID.
#
# Usage: bench/coap_server_bench.sh [CLIENTS [SECONDS]]   (100 5)
# Needs build/fieldmq and build/bench/coap_bench.
set -u
: "${BUILD:=build}"
N=${1:-100}
SECS=${2:-5}
FIELDMQ=${FIELDMQ:-$BUILD/fieldmq}
BENCH=$BUILD/bench/coap_bench
T=$(mktemp -d /tmp/fieldmq-coapbench.XXXXXX)
FPID=
SPID=
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; [ -n "$FPID" ] && kill -TERM "$FPID" 2>/dev/null; rm -rf "$T"' EXIT

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
[coap]
enabled = yes
listen = 127.0.0.1:$UP
max_clients = $((N + 10))
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
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null
	SPID=
	kill -TERM "$FPID"
	wait "$FPID"
	FPID=
}

echo "== $(date -u +%Y-%m-%dT%H:%MZ) $(uname -sr), $(nproc) CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); libcoap $(pkg-config --modversion libcoap-3-openssl 2>/dev/null)"
for mode in NON CON; do
	flag=
	[ $mode = NON ] && flag=-N
	echo "== $mode, $N clients, ${SECS}s, no subscriber"
	start
	sleep 0.3
	"$BENCH" -u "$UP" -P "$FPID" -n "$N" -t "$SECS" $flag
	stop
	echo "== $mode, $N clients, ${SECS}s, an MQTT subscriber to bench/#"
	start
	mosquitto_sub -h 127.0.0.1 -p "$TP" -t 'bench/#' > /dev/null &
	SPID=$!
	sleep 0.5
	"$BENCH" -u "$UP" -P "$FPID" -n "$N" -t "$SECS" $flag
	stop
done
