#!/usr/bin/env bash
# `make bench`: every benchmark, one after the other, each writing its figures
# into its own marked section of BENCHMARKS.md:
#   broker   bench/run.sh            (fieldmq vs Mosquitto, s1-s6; writes its section itself)
#            bench/tls_bench.sh      (s1/s3 over TLS, handshakes/s, RSS per idle TLS and
#                                     WebSocket connection, vs Mosquitto over TLS)
#   store    build/bench/store_bench (append rate, open time, bytes per message, drain)
#   modbus   bench/modbus_all.sh     (points/s, requests per poll, CPU, RSS, threads; 100 x 100 and
#                                     1000 x 10 TCP devices, now and before the loop poller)
#   mqttsn   bench/mqttsn_bench.sh   (QoS 0/1 publishes/s from 100 clients, RSS per client)
#   uplink   bench/uplink_bench.sh   (drain rate to Mosquitto at QoS 1)
#   acks     bench/acks_bench.sh     (forwarded QoS 1, PUBACK after commit, vs a Mosquitto bridge;
#                                     the uplink's drain to a fast cloud)
#   serial   bench/serial_bench.sh   (lines/s per parser on one core; daemon CPU at 1000 lines/s
#                                     of NMEA + JSON through a pty)
#   coap     bench/coap_server_bench.sh (CoAP publishes/s into the broker from 100 clients, NON
#                                     and CON, CPU and RSS per client) and
#            bench/coap_client_bench.sh (CoAP devices: 1000 observed resources on coap_sim,
#                                     notifications/s turned into readings, CPU, RSS)
#   flash    bench/flash_bench.sh    (bytes written to data_dir's disk a day at 100 readings/s)
#   footprint bench/footprint.sh     (stripped -Os size x86-64/arm64/armhf; idle VmRSS, RssAnon,
#                                     RssFile, Pss, threads and Rss by library; EXTRA="NAME=PATH" more binaries,
#                                     against Mosquitto; Markdown tables, not fenced)
# ONLY="store modbus" runs a subset.
set -u
cd "$(dirname "$0")/.."
: "${BUILD:=build}"
export BUILD
ONLY=${ONLY:-"broker store modbus mqttsn uplink acks serial coap flash footprint"}
OUT=${OUT:-BENCHMARKS.md}
[ -f "$OUT" ] || echo "# fieldmq benchmarks" > "$OUT"

machine() {
	echo "Machine: $(nproc) CPUs, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), Linux $(uname -r); $(date -u '+%Y-%m-%d %H:%M UTC'); a shared, noisy 2-core VM."
}

# section NAME TITLE COMMAND... : runs COMMAND, puts its output in the NAME section.
section() {
	local name=$1 title=$2 out rc
	shift 2
	echo "=== $name: $*"
	out=$("$@" 2>&1)
	rc=$?
	echo "$out"
	BENCH_OUT=$out BENCH_MD=${BENCH_MD:-} /usr/bin/python3 - "$OUT" "$name" "$title" "$*" "$rc" "$(machine)" <<'PY'
import os, sys
path, name, title, cmd, rc, machine = sys.argv[1:7]
body = os.environ["BENCH_OUT"].rstrip("\n")
start, end = "<!-- %s-bench:start -->" % name, "<!-- %s-bench:end -->" % name
fence = "" if os.environ.get("BENCH_MD") else "```\n"
block = "%s\n## %s\n\nCommand: `%s` (exit %s). %s\n\n%s%s\n%s%s" % (
    start, title, cmd, rc, machine, fence, body, fence, end)
text = open(path).read()
if start in text and end in text:
    a = text.index(start)
    b = text.index(end) + len(end)
    text = text[:a] + block + text[b:]
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
}

for b in $ONLY; do
	case $b in
	broker)
		bench/run.sh
		section broker-tls "Broker over TLS and WebSocket, against Mosquitto over TLS" bench/tls_bench.sh
		;;
	store)
		d=$(mktemp -d /tmp/fieldmq-stbench.XXXXXX)
		section store "Store (SQLite queue)" "$BUILD/bench/store_bench" -n 1000000 -d "$d"
		rm -rf "$d"
		;;
	modbus) section modbus "Modbus adapter" bench/modbus_all.sh ;;
	mqttsn) section mqttsn-run "MQTT-SN gateway: the latest run" bench/mqttsn_bench.sh 100 5 1000 ;;
	uplink) [ -x bench/uplink_bench.sh ] && section uplink "Uplink drain to Mosquitto" bench/uplink_bench.sh ;;
	acks) section acks "Forwarded QoS 1 with durable acks, against a Mosquitto bridge" bench/acks_bench.sh ;;
	serial) section serial "Serial adapter" bench/serial_bench.sh 1000 10 1000000 ;;
	coap)
		section coap-server "CoAP server: publishes from 100 clients (server side)" \
			bench/coap_server_bench.sh 100 5
		section coap-client "CoAP devices (client side)" bench/coap_client_bench.sh 1000 10 "1000 200"
		;;
	flash) section flash "Disk writes (flash wear) at 100 readings/s" bench/flash_bench.sh 100 60 ;;
	footprint) BENCH_MD=1 section footprint "Footprint: binary size, idle memory and threads" bench/footprint.sh ;;
	esac
done
