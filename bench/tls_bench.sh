#!/usr/bin/env bash
# bench/tls_bench.sh - the broker over TLS and WebSocket, against Mosquitto
# over TLS in the same run (part of the broker section of `make bench`):
#   s1, s3 over TLS   build/bench/mqtt_load -T ca.crt (mbedTLS client, TLS 1.2)
#   hs                new TLS connections a second (connect, full handshake,
#                     CONNECT/CONNACK, DISCONNECT), one after the other
#   idle-tls          RSS per idle TLS connection (IDLE of them, CONNECTed)
#   idle-ws           RSS per idle ws:// connection (fieldmq; Mosquitto only if
#                     its build has WebSocket support)
# Both brokers get the same certificates, made here with openssl (EC P-256:
# CA + server cert for localhost), and run at the same niceness; runs are
# interleaved fieldmq / mosquitto. Prints RESULT lines and a summary with the
# ratios against the targets of issue 14 (TLS throughput >= 1.5x Mosquitto's,
# RSS per idle TLS connection <= 0.5x Mosquitto's).
#
# Environment: BUILD (build), ROUNDS (2), DUR (4), WARMUP (1), IDLE (1000) TLS
# and IDLE_WS (200: Mosquitto's libwebsockets listener takes about 0.2 s per
# upgrade here) WebSocket idle connections, MOSQUITTO (/usr/sbin/mosquitto),
# NICE (-10 where allowed).
set -euo pipefail
: "${BUILD:=build}"
: "${ROUNDS:=2}"
: "${DUR:=4}"
: "${WARMUP:=1}"
: "${IDLE:=1000}"
: "${IDLE_WS:=200}"
: "${MOSQUITTO:=/usr/sbin/mosquitto}"
: "${NICE:=-10}"
cd "$(dirname "$0")/.."
LOAD=$BUILD/bench/mqtt_load
FIELDMQ=$BUILD/fieldmq
if [ ! -x "$LOAD" ] || [ ! -x "$FIELDMQ" ]; then
	make -j2 "BUILD=$BUILD" "$FIELDMQ" "$LOAD" >/dev/null
fi
[ -x "$MOSQUITTO" ] || { echo "tls_bench.sh: $MOSQUITTO not found" >&2; exit 1; }
ulimit -n 20000
NICE_CMD=()
if [ "$NICE" != 0 ] && nice -n "$NICE" true 2>/dev/null; then NICE_CMD=(nice -n "$NICE"); else NICE=0; fi

T=$(mktemp -d /tmp/fieldmq-tlsbench.XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then echo "$p"; return 0; fi
	done
	return 1
}
wait_listen() { # port pid
	for _ in $(seq 100); do
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# Certificates: one CA, one server certificate for localhost / 127.0.0.1.
(
	cd "$T"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-keyout ca.key -out ca.crt -subj /CN=bench-ca 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key \
		-out server.csr -subj /CN=localhost 2>/dev/null
	echo "subjectAltName=DNS:localhost,IP:127.0.0.1" >server.ext
	openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-extfile server.ext -out server.crt 2>/dev/null
	chmod 644 ./*.key
)

FM_TLS=$(free_port); FM_WS=$(free_port); MQ_TLS=$(free_port); MQ_WS=$(free_port)
mkdir -p "$T/fieldmq/data"
cat >"$T/fieldmq/fieldmq.ini" <<EOF
[gateway]
id = bench
data_dir = data
devices =
log_level = warning
[broker]
listen = mqtts://127.0.0.1:$FM_TLS, ws://127.0.0.1:$FM_WS
cert_file = $T/server.crt
key_file = $T/server.key
persist = no
sys_interval = 0
max_inflight = 65535
max_connections = 20000
max_queued_messages = 1000000
EOF
cat >"$T/mosquitto.conf" <<EOF
listener $MQ_TLS 127.0.0.1
certfile $T/server.crt
keyfile $T/server.key
allow_anonymous true
persistence false
sys_interval 0
max_inflight_messages 0
max_queued_messages 1000000
max_connections -1
set_tcp_nodelay true
log_dest none
EOF
# Mosquitto's WebSocket listener, where its build has libwebsockets.
MQ_HAS_WS=0
cp "$T/mosquitto.conf" "$T/mosquitto-ws.conf"
printf 'listener %s 127.0.0.1\nprotocol websockets\n' "$MQ_WS" >>"$T/mosquitto-ws.conf"
if timeout 3 "$MOSQUITTO" -c "$T/mosquitto-ws.conf" >"$T/mq-ws-probe.log" 2>&1 & then
	probe=$!
	if wait_listen "$MQ_WS" "$probe"; then MQ_HAS_WS=1; fi
	kill "$probe" 2>/dev/null || true
	wait "$probe" 2>/dev/null || true
fi
[ "$MQ_HAS_WS" = 1 ] && cp "$T/mosquitto-ws.conf" "$T/mosquitto.conf"

PID=
start() { # fieldmq|mosquitto
	if [ "$1" = fieldmq ]; then
		"${NICE_CMD[@]}" "$FIELDMQ" -c "$T/fieldmq/fieldmq.ini" >>"$T/fieldmq.log" 2>&1 &
		PID=$!
		PIDS+=("$PID")
		wait_listen "$FM_TLS" "$PID" || { cat "$T/fieldmq.log" >&2; exit 1; }
	else
		"${NICE_CMD[@]}" "$MOSQUITTO" -c "$T/mosquitto.conf" >>"$T/mosquitto.log" 2>&1 &
		PID=$!
		PIDS+=("$PID")
		wait_listen "$MQ_TLS" "$PID" || { cat "$T/mosquitto.log" >&2; exit 1; }
	fi
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
tls_port() { if [ "$1" = fieldmq ]; then echo "$FM_TLS"; else echo "$MQ_TLS"; fi; }
ws_port() { if [ "$1" = fieldmq ]; then echo "$FM_WS"; else echo "$MQ_WS"; fi; }

RES=$T/results.txt
: >"$RES"
load() { # broker round pid scen extra-args...
	local br=$1 r=$2 pid=$3 sc=$4 line
	shift 4
	if ! line=$("${NICE_CMD[@]}" "$LOAD" -B "$pid" -s "$sc" -d "$DUR" -u "$WARMUP" "$@" \
		2>"$T/load.err" | grep '^RESULT'); then
		line="RESULT scen=$sc error=$(tr ' \n' '_ ' <"$T/load.err" | cut -c1-120)"
	fi
	[ -n "${LABEL:-}" ] && line=${line/scen=s6/scen=$LABEL}
	echo "$br $r $line" | tee -a "$RES"
}

echo "fieldmq mqtts:$FM_TLS ws:$FM_WS, mosquitto $("$MOSQUITTO" -h 2>/dev/null | sed -n 's/^mosquitto version //p' | head -1) mqtts:$MQ_TLS (websockets: $([ $MQ_HAS_WS = 1 ] && echo yes || echo "not in this build")), $ROUNDS rounds, ${DUR}s after ${WARMUP}s warm-up, nice $NICE, $IDLE idle TLS / $IDLE_WS idle WebSocket connections"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"

# Idle connections on fresh brokers: TLS, then WebSocket.
for r in $(seq "$ROUNDS"); do
	for br in fieldmq mosquitto; do
		start "$br"
		sleep 1
		LABEL=idle-tls load "$br" "$r" "$PID" s6 -p "$(tls_port "$br")" -T "$T/ca.crt" -n "$IDLE"
		stop "$PID"
		if [ "$br" = fieldmq ] || [ "$MQ_HAS_WS" = 1 ]; then
			start "$br"
			sleep 1
			LABEL=idle-ws load "$br" "$r" "$PID" s6 -p "$(ws_port "$br")" -W -n "$IDLE_WS"
			stop "$PID"
		fi
	done
done

# Throughput and handshakes: both up, A/B/A/B.
start fieldmq
FM_PID=$PID
start mosquitto
MQ_PID=$PID
for sc in s1 s3 hs; do
	for r in $(seq "$ROUNDS"); do
		load fieldmq "$r" "$FM_PID" "$sc" -p "$FM_TLS" -T "$T/ca.crt"
		load mosquitto "$r" "$MQ_PID" "$sc" -p "$MQ_TLS" -T "$T/ca.crt"
	done
done
stop "$FM_PID"
stop "$MQ_PID"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at the end"

# Summary: medians over the rounds, ratios fieldmq / mosquitto.
echo
awk '
function val(line, key,   i, n, kv) {
	n = split(line, kv, " ")
	for (i = 1; i <= n; i++)
		if (index(kv[i], key "=") == 1)
			return substr(kv[i], length(key) + 2)
	return ""
}
function med(arr, n,   i, j, t) {
	for (i = 1; i <= n; i++)
		for (j = i + 1; j <= n; j++)
			if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
	return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
{
	br = $1; sc = val($0, "scen")
	key = sc ~ /^idle/ ? "per_conn_bytes" : "rate"
	v = val($0, key)
	if (v == "") next
	n[br, sc]++
	x[br, sc, n[br, sc]] = v + 0
	all[br, sc] = all[br, sc] " " v
	scens[sc] = key
}
END {
	printf "%-9s %-15s %-26s %-26s %s\n", "scenario", "figure", "fieldmq (median; runs)", "mosquitto (median; runs)", "fieldmq/mosquitto"
	split("s1 s3 hs idle-tls idle-ws", order, " ")
	for (o = 1; o <= 5; o++) {
		sc = order[o]
		if (!(sc in scens)) continue
		for (i = 1; i <= n["fieldmq", sc]; i++) a[i] = x["fieldmq", sc, i]
		f = n["fieldmq", sc] ? med(a, n["fieldmq", sc]) : 0
		for (i = 1; i <= n["mosquitto", sc]; i++) b[i] = x["mosquitto", sc, i]
		m = n["mosquitto", sc] ? med(b, n["mosquitto", sc]) : 0
		unit = sc ~ /^idle/ ? "bytes/conn" : sc == "hs" ? "conns/s" : "msgs/s"
		printf "%-9s %-15s %-26s %-26s %s\n", sc, unit, sprintf("%.0f;%s", f, all["fieldmq", sc]),
			m ? sprintf("%.0f;%s", m, all["mosquitto", sc]) : "n/a", m ? sprintf("%.2fx", f / m) : "-"
	}
}' "$RES"
