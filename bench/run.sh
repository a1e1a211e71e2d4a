#!/usr/bin/env bash
# bench/run.sh - the broker benchmarks of `make bench`: build/fieldmq against
# Mosquitto, both on 127.0.0.1, driven by build/bench/mqtt_load (one process,
# epoll, pipelined; see its header for the scenarios s1..s6).
#
# Runs are interleaved fieldmq / mosquitto / fieldmq / mosquitto so that the
# noise of a shared machine falls on both. s6 (idle connections, RSS) and the
# idle RSS use freshly started brokers; s1..s5 run against one instance of each.
# Writes every raw result to $BUILD/bench/broker_results.txt and rewrites the
# part of BENCHMARKS.md between <!-- broker-bench:start --> and
# <!-- broker-bench:end --> (everything else in the file is kept).
#
# Environment: BUILD (build), ROUNDS (3), DUR seconds measured per run (4),
# WARMUP seconds per run (1), IDLE connections in s6 (5000), SCENARIOS
# ("s1 s2 s3 s4 s5 s6"), MOSQUITTO (/usr/sbin/mosquitto), OUT (BENCHMARKS.md;
# empty: do not touch it), NICE (-10: brokers and load generator alike run at
# this niceness, so that the other jobs of a shared machine disturb them less;
# 0 or a non-root user: as they are).
set -euo pipefail
: "${BUILD:=build}"
: "${ROUNDS:=3}"
: "${DUR:=4}"
: "${WARMUP:=1}"
: "${IDLE:=5000}"
: "${SCENARIOS:=s1 s2 s3 s4 s5 s6}"
: "${MOSQUITTO:=/usr/sbin/mosquitto}"
: "${NICE:=-10}"
OUT=${OUT-BENCHMARKS.md}
LOAD=$BUILD/bench/mqtt_load
FIELDMQ=$BUILD/fieldmq
RESULTS=$BUILD/bench/broker_results.txt

cd "$(dirname "$0")/.."
if [ ! -x "$LOAD" ] || [ ! -x "$FIELDMQ" ]; then
	make -j2 "BUILD=$BUILD" "$FIELDMQ" "$LOAD"
fi
[ -x "$MOSQUITTO" ] || { echo "run.sh: $MOSQUITTO not found (apt-get install mosquitto)" >&2; exit 1; }

# 5000 connections in one load generator, and as many in each broker.
ulimit -n 20000
NICE_CMD=()
if [ "$NICE" != 0 ] && nice -n "$NICE" true 2>/dev/null; then
	NICE_CMD=(nice -n "$NICE")
else
	NICE=0
fi

T=$(mktemp -d /tmp/fieldmq-bench.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port below the ephemeral range (so no client socket holds it) that nothing listens on.
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
			echo "$p"
			return 0
		fi
	done
	echo "run.sh: no free port" >&2
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

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

FM_PORT=$(free_port)
MQ_PORT=$(free_port)
while [ "$MQ_PORT" = "$FM_PORT" ]; do MQ_PORT=$(free_port); done

mkdir -p "$T/fieldmq/data"
cat >"$T/fieldmq/fieldmq.ini" <<EOF
[gateway]
id = bench
data_dir = data
devices =
log_level = warning
[broker]
listen = 127.0.0.1:$FM_PORT
persist = no
sys_interval = 0
max_inflight = 65535
max_connections = 20000
max_queued_messages = 1000000
EOF
# Mosquitto as fair as it goes: no persistence, no \$SYS, no inflight or queue
# limit that would drop or stall a scenario, TCP_NODELAY like fieldmq.
cat >"$T/mosquitto.conf" <<EOF
listener $MQ_PORT 127.0.0.1
allow_anonymous true
persistence false
sys_interval 0
max_inflight_messages 0
max_queued_messages 1000000
max_connections -1
set_tcp_nodelay true
log_dest none
EOF

PID=
start_broker() { # fieldmq|mosquitto -> PID
	if [ "$1" = fieldmq ]; then
		"${NICE_CMD[@]}" "$FIELDMQ" -c "$T/fieldmq/fieldmq.ini" >>"$T/fieldmq.log" 2>&1 &
		PID=$!
		PIDS+=("$PID")
		wait_listen "$FM_PORT" "$PID" || { cat "$T/fieldmq.log" >&2; exit 1; }
	else
		"${NICE_CMD[@]}" "$MOSQUITTO" -c "$T/mosquitto.conf" >>"$T/mosquitto.log" 2>&1 &
		PID=$!
		PIDS+=("$PID")
		wait_listen "$MQ_PORT" "$PID" || { cat "$T/mosquitto.log" >&2; exit 1; }
	fi
}

stop_broker() { # pid
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

port_of() { if [ "$1" = fieldmq ]; then echo "$FM_PORT"; else echo "$MQ_PORT"; fi; }

mkdir -p "$BUILD/bench"
: >"$RESULTS"
run_load() { # broker round pid scenario
	local line
	if ! line=$("${NICE_CMD[@]}" "$LOAD" -p "$(port_of "$1")" -B "$3" -s "$4" -d "$DUR" -u "$WARMUP" \
		-n "$IDLE" 2>"$T/load.err" | grep '^RESULT'); then
		line="RESULT scen=$4 error=$(tr ' \n' '_ ' <"$T/load.err" | cut -c1-120)"
	fi
	echo "$1 $2 $line" | tee -a "$RESULTS"
}

has() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

echo "fieldmq on 127.0.0.1:$FM_PORT, mosquitto on 127.0.0.1:$MQ_PORT, $ROUNDS rounds," \
	"${DUR}s measured after ${WARMUP}s warm-up, nice $NICE"
T0=$(date +%s)

# Idle RSS and s6 on fresh brokers: fieldmq, mosquitto, fieldmq, mosquitto.
for r in $(seq "$ROUNDS"); do
	for br in fieldmq mosquitto; do
		start_broker "$br"
		sleep 1
		echo "$br $r RESULT scen=idle rss_kb=$(rss_kb "$PID")" | tee -a "$RESULTS"
		if has s6; then run_load "$br" "$r" "$PID" s6; fi
		stop_broker "$PID"
	done
done

# Throughput and latency: both brokers up, each scenario A/B/A/B.
start_broker fieldmq
FM_PID=$PID
start_broker mosquitto
MQ_PID=$PID
for s in s1 s2 s3 s4 s5; do
	has "$s" || continue
	for r in $(seq "$ROUNDS"); do
		run_load fieldmq "$r" "$FM_PID" "$s"
		run_load mosquitto "$r" "$MQ_PID" "$s"
	done
done
stop_broker "$FM_PID"
stop_broker "$MQ_PID"

# Sizes: a stripped copy of fieldmq; the packaged mosquitto is stripped already.
strip -o "$T/fieldmq.stripped" "$FIELDMQ"
{
	echo "fieldmq 0 RESULT scen=size bytes=$(stat -c %s "$T/fieldmq.stripped") libs=$(ldd "$FIELDMQ" | wc -l)"
	echo "mosquitto 0 RESULT scen=size bytes=$(stat -c %s "$(readlink -f "$MOSQUITTO")") libs=$(ldd "$MOSQUITTO" | wc -l)"
} | tee -a "$RESULTS"

ELAPSED=$(($(date +%s) - T0))
MACHINE="$(nproc) CPUs, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), Linux $(uname -r)"
MOSQ_VERSION=$({ "$MOSQUITTO" -h 2>/dev/null || true; } | sed -n 's/^mosquitto version //p' | head -1)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- broker gateway 2>/dev/null; then COMMIT="$COMMIT + uncommitted changes"; fi

awk -v machine="$MACHINE" -v date="$(date -u '+%Y-%m-%d %H:%M UTC')" -v rounds="$ROUNDS" \
	-v dur="$DUR" -v warmup="$WARMUP" -v idle="$IDLE" -v mosq="$MOSQ_VERSION" \
	-v commit="$COMMIT" -v elapsed="$ELAPSED" -v nice="$NICE" -f bench/broker_report.awk "$RESULTS" >"$T/section.md"

echo
cat "$T/section.md"

if [ -n "$OUT" ]; then
	if [ ! -f "$OUT" ]; then
		printf '# fieldmq benchmarks\n\n' >"$OUT"
	fi
	if grep -q '<!-- broker-bench:start -->' "$OUT"; then
		awk -v f="$T/section.md" '
			/<!-- broker-bench:start -->/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
			/<!-- broker-bench:end -->/ { skip = 0 }
			!skip' "$OUT" >"$T/out.md"
	else
		{
			cat "$OUT"
			echo '<!-- broker-bench:start -->'
			cat "$T/section.md"
			echo '<!-- broker-bench:end -->'
		} >"$T/out.md"
	fi
	cp "$T/out.md" "$OUT"
	echo "run.sh: wrote $OUT (raw results in $RESULTS)"
fi
