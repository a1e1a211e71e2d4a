#!/usr/bin/env bash
# soak.sh - `make soak` (issue 16 item 4; not part of `make test` or CI).
#
# SOAK_MINUTES (default 30) of everything at once, all on 127.0.0.1:
#   - fieldmq polling DEVICES (10) x POINTS (100) = 1000 uint16 holding
#     registers every 1 s from build/sim/modbus_sim (Modbus TCP), publish =
#     every_poll, so 1000 readings/s on fieldmq/soak/...;
#   - IDLE (2000) idle MQTT connections held open for the whole run
#     (build/bench/mqtt_load -s s6 -k);
#   - 10 000 msgs/s of local QoS 0 traffic, 50 publishers x 200 msgs/s to one
#     wildcard subscriber (mqtt_load -s s5), not forwarded;
#   - a QoS 1 publisher (paho) of SEQ_RATE (200) msgs/s on soak/seq whose
#     payloads are sequence numbers; it records every PUBACK (fieldmq sends it
#     after the store's commit, so an acknowledged message must reach the cloud);
#   - the uplink forwarding fieldmq/# and soak/# at QoS 1 to a real Mosquitto
#     (the "cloud", persistence on, so its persistent subscribers keep their
#     sessions across its restart), which is stopped for OUTAGE_SECONDS (default
#     a sixth of the run: 5 min of 30) in the middle of the run;
#   - two persistent QoS 1 mosquitto_sub at the cloud: soak/seq (payloads kept,
#     checked for loss and duplicates) and fieldmq/# (counted).
# Every SAMPLE (5) s: fieldmq's VmRSS, open fds and scheduler state
# (/proc/PID), its CPU (utime+stime over the interval, % of one core), the
# machine's load average, and from its Prometheus /metrics ([http]): uplink
# queued (the drain backlog), connected, dropped, sent, the broker's dropped
# messages (all, and QoS 0 dropped for a slow consumer), the heap fieldmq
# allocated itself (gw_malloc) and SQLite's (all of it, and its page cache).
# Of the loop thread (fieldmq's main thread) from /proc/PID/task/PID: the
# share of the interval it was on a CPU and the share it was runnable but
# waiting for one (schedstat: a starved process, not a blocked loop), and
# where it slept (wchan). After the run: the load stops, the backlog drains (up to
# 120 s), the subscribers get up to 60 s to catch up, everything is stopped by
# PID.
#
# Checks (exit 1 when one fails), printed with their figures:
#   RSS flat:  in two windows where only time passes - A from the end of the
#              warm-up (the first sixth of the run) to the outage, B from a
#              30th of the run (60 s of 30 min) after the drain to the end of
#              the load - RSS grows by at most
#              max(1 MB, 5 %) (the step across the outage is printed: what
#              queueing and draining left allocated); or, where it grew more,
#              by at most that beyond the growth of SQLite's page cache, which
#              must have stayed within its cap (the connections' cache_size,
#              384 KiB in all, + 25 %): a queue that grew past what the caches held
#              (a stall, the outage) fills them once, and they stay full;
#   fds flat:  fds equal (+/- 2) within A and B and from A's start to B's end;
#   no loss:   every soak/seq message fieldmq acknowledged reached the cloud
#              subscriber; duplicates are counted and reported (allowed by
#              at-least-once around the reconnect);
#   qos0:      every local QoS 0 message mqtt_load sent and did not get is one
#              the broker counted as dropped for a slow consumer (its output
#              past max_buffered_bytes, 1 MB by default: a bounded buffer, by
#              design), so sent = delivered + dropped;
#   drained:   the uplink queue is back to its steady level (at most
#              max(2000, the median pre-outage sample + 100)) after the cloud
#              came back;
#              the drain time is from the cloud's restart to the first such
#              sample (a second sampler reads the queue every 1 s).
# Output in OUT (default $BUILD/soak): samples.tsv, soak.png (gnuplot: RSS,
# CPU and queue depth over time, the outage shaded), summary.txt, the logs.
set -u
: "${BUILD:=build}"
: "${SOAK_MINUTES:=30}"
: "${DEVICES:=10}"
: "${POINTS:=100}"
: "${IDLE:=2000}"
: "${SEQ_RATE:=200}"
: "${SAMPLE:=5}"
BUILD=$(realpath "$BUILD")
: "${OUT:=$BUILD/soak}"
TOTAL=$((SOAK_MINUTES * 60))
: "${OUTAGE_SECONDS:=$((TOTAL / 6))}"
WARM=$((TOTAL / 6))
OUT_START=$(((TOTAL - OUTAGE_SECONDS) / 2))
OUT_END=$((OUT_START + OUTAGE_SECONDS))
FIELDMQ=$BUILD/fieldmq
SRC=$(pwd)
PY=/usr/bin/python3

mkdir -p "$OUT"
rm -rf "$OUT/run"
mkdir -p "$OUT/run/devices.d" "$OUT/run/data"
R=$OUT/run
# Mosquitto started as root runs as user mosquitto: its persistence directory
# must be writable (and reachable) by that user, so it lives in /tmp.
CLOUD_DIR=$(mktemp -d /tmp/fieldmq-soak-cloud.XXXXXX)
chmod 1777 "$CLOUD_DIR"
PIDS=()
cloud=
stop_all() {
	local p
	for p in "${PIDS[@]}" $cloud; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}" $cloud; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	PIDS=()
	cloud=
}
trap 'stop_all; rm -rf "$CLOUD_DIR"' EXIT
die() {
	echo "soak: $*" >&2
	exit 1
}
port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { # PORT: up to 10 s
	local _
	for _ in $(seq 100); do
		$PY -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
now() { date +%s.%N; }

simport=$(port) lport=$(port) cport=$(port) hport=$(port)

"$BUILD/sim/modbus_sim" --tcp "127.0.0.1:$simport" --regs "$SRC/tests/sim/modbus_regs.ini" >"$R/sim.log" 2>&1 &
PIDS+=($!)
wait_port "$simport" || die "modbus_sim did not start"

cat >"$R/cloud.conf" <<EOF
listener $cport 127.0.0.1
allow_anonymous true
persistence true
persistence_location $CLOUD_DIR/
autosave_interval 0
max_queued_messages 0
max_inflight_messages 32
EOF
start_cloud() {
	/usr/sbin/mosquitto -c "$R/cloud.conf" >>"$R/cloud.log" 2>&1 &
	cloud=$!
	wait_port "$cport" || die "mosquitto did not start"
}
start_cloud
# Persistent sessions (-c), so a subscriber misses nothing while it reconnects.
mosquitto_sub -p "$cport" -i soak-seq-sub -c -q 1 -t soak/seq -F '%p' >"$R/cloud-seq.txt" 2>"$R/sub-seq.err" &
PIDS+=($!)
subseq=$!
mosquitto_sub -p "$cport" -i soak-readings-sub -c -q 1 -t 'fieldmq/#' -F '%t' >"$R/cloud-readings.txt" 2>"$R/sub-readings.err" &
PIDS+=($!)
subrd=$!

cat >"$R/fieldmq.ini" <<EOF
[gateway]
id = soak
data_dir = data
devices = devices.d/*.ini
publish = every_poll
log_level = info

[broker]
listen = 127.0.0.1:$lport
max_connections = -1
sys_interval = 5s

[uplink]
enabled = yes
url = mqtt://127.0.0.1:$cport
protocol = 5
forward = fieldmq/# 1, soak/# 1
reconnect_min = 1s
reconnect_max = 5s

[http]
enabled = yes
listen = 127.0.0.1:$hport
EOF
awk -v D="$DEVICES" -v P="$POINTS" -v port="$simport" -v dir="$R/devices.d" 'BEGIN {
	for (d = 1; d <= D; d++) {
		f = dir "/d" d ".ini"
		printf "[device:d%d]\nprotocol = modbus\nhost = 127.0.0.1\nport = %d\nunit_id = 1\npoll = 1s\n", d, port > f
		for (p = 0; p < P; p++)
			printf "\n[point:d%d/p%d]\narea = holding\naddress = %d\ntype = uint16\n", d, p, p > f
		close(f)
	}
}'
(cd "$R" && exec "$FIELDMQ" -c fieldmq.ini >fieldmq.log 2>&1) &
fq=$!
PIDS+=("$fq")
wait_port "$lport" || die "fieldmq did not start"
wait_port "$hport" || die "fieldmq's http listener did not start"

t0=$(now)
"$BUILD/bench/mqtt_load" -p "$lport" -s s6 -n "$IDLE" -k "$TOTAL" >"$R/idle.out" 2>&1 &
PIDS+=($!)
idle=$!
"$BUILD/bench/mqtt_load" -p "$lport" -s s5 -r 200 -u 5 -d "$((TOTAL - 5))" >"$R/local.out" 2>&1 &
PIDS+=($!)
local=$!
$PY - "$lport" "$SEQ_RATE" "$TOTAL" >"$R/seq.out" 2>&1 <<'PY' &
import sys, time
import paho.mqtt.client as mqtt
port, rate, total = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
# (seq, MQTTMessageInfo) not yet acknowledged; is_published() turns true at the PUBACK.
pending, acked = [], []
def sweep():
    global pending
    left = []
    for s, info in pending:
        if info.is_published():
            acked.append(s)
        else:
            left.append((s, info))
    pending = left
c = mqtt.Client(client_id="soak-seq-pub")
c.max_inflight_messages_set(65535)
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port, 60)
c.loop_start()
t0 = time.monotonic()
seq = 0
while time.monotonic() - t0 < total:
    seq += 1
    pending.append((seq, c.publish("soak/seq", str(seq), qos=1)))
    if seq % 1000 == 0:
        sweep()
    time.sleep(max(0.0, t0 + seq / rate - time.monotonic()))
end = time.monotonic() + 30
sweep()
while pending and time.monotonic() < end:
    time.sleep(0.5)
    sweep()
c.disconnect()
c.loop_stop()
print("RESULT sent=%d acked=%d unacked=%d" % (seq, len(acked), len(pending)))
print("ACKED " + " ".join(map(str, sorted(acked))))
PY
PIDS+=($!)
seqpub=$!

ticks=$(getconf CLK_TCK)
metric() { # TEXT NAME: the sample's value
	awk -v n="$2" '$1 == n { print $2; f = 1 } END { if (!f) print "nan" }' <<<"$1"
}
echo "# t_s rss_kb fds cpu_pct load1 queued connected dropped phase state uplink_sent broker_dropped" \
	"gw_heap_kb sqlite_heap_kb sqlite_cache_kb slow_dropped loop_cpu_pct loop_rqwait_pct loop_wchan nice" \
	"rss_brk_heap_kb rss_anon_kb malloc_heap_kb malloc_in_use_kb" >"$R/samples.tsv"
kb() { awk -v v="$1" 'BEGIN { if (v == "nan") print "nan"; else printf "%.0f", v / 1024 }'; }
sample() { # PHASE
	local m rss fds c t cpu ss loop wchan maps
	t=$(now)
	c=$(awk '{ print $14 + $15 }' "/proc/$fq/stat" 2>/dev/null) || return 1
	cpu=$(awk -v c0="$c_prev" -v c1="$c" -v t0="$t_prev" -v t1="$t" -v hz="$ticks" \
		'BEGIN { printf "%.1f", 100 * (c1 - c0) / hz / (t1 - t0) }')
	# The loop thread: on a CPU / waiting for one, ns (schedstat).
	ss=$(cat "/proc/$fq/task/$fq/schedstat" 2>/dev/null) || ss="$ss_prev"
	loop=$(awk -v a="$ss_prev" -v b="$ss" -v t0="$t_prev" -v t1="$t" 'BEGIN {
		split(a, x, " "); split(b, y, " "); d = (t1 - t0) * 1e9
		printf "%.1f\t%.1f", 100 * (y[1] - x[1]) / d, 100 * (y[2] - x[2]) / d }')
	c_prev=$c t_prev=$t ss_prev=$ss
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$fq/status")
	fds=$(find "/proc/$fq/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	m=$(curl -s -m 2 "http://127.0.0.1:$hport/metrics")
	wchan=$(tr -c 'a-zA-Z0-9_' _ <"/proc/$fq/task/$fq/wchan" 2>/dev/null)
	# RSS of the main malloc arena ([heap]) and of the other anonymous
	# mappings (the pool threads' malloc arenas, stacks, large mmap'd blocks).
	maps=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { k = ($6 == "[heap]") ? "h" : ($6 == "" ? "a" : "f") }
		/^Rss:/ { r[k] += $2 } END { printf "%d\t%d", r["h"], r["a"] }' "/proc/$fq/smaps" 2>/dev/null)
	printf "%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" \
		"$(awk -v t="$t" -v t0="$t0" 'BEGIN { print t - t0 }')" \
		"$rss" "$fds" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)" \
		"$(metric "$m" fieldmq_uplink_queued_messages)" "$(metric "$m" fieldmq_uplink_connected)" \
		"$(metric "$m" fieldmq_uplink_dropped_messages_total)" "$1" \
		"$(awk '{ print $3 }' "/proc/$fq/stat" 2>/dev/null)" \
		"$(metric "$m" fieldmq_uplink_sent_messages_total)" \
		"$(metric "$m" fieldmq_broker_dropped_messages_total)" \
		"$(kb "$(metric "$m" fieldmq_memory_allocated_bytes)")" \
		"$(kb "$(metric "$m" fieldmq_store_sqlite_memory_bytes)")" \
		"$(kb "$(metric "$m" fieldmq_store_sqlite_page_cache_bytes)")" \
		"$(metric "$m" fieldmq_broker_slow_consumer_dropped_messages_total)" \
		"$loop" "${wchan:--}" "$(awk '{ print $19 }' "/proc/$fq/stat" 2>/dev/null)" \
		"${maps:-nan	nan}" "$(kb "$(metric "$m" fieldmq_malloc_heap_bytes)")" \
		"$(kb "$(metric "$m" fieldmq_malloc_in_use_bytes)")" >>"$R/samples.tsv"
}
c_prev=$(awk '{ print $14 + $15 }' "/proc/$fq/stat") t_prev=$t0
ss_prev=$(cat "/proc/$fq/task/$fq/schedstat")

# The queue alone every second (the drain lasts seconds): t_s queued.
(
	for _ in $(seq $((TOTAL + 240))); do
		q=$(curl -s -m 1 "http://127.0.0.1:$hport/metrics" | awk '$1 == "fieldmq_uplink_queued_messages" { print $2 }')
		awk -v t="$(now)" -v t0="$t0" -v q="${q:-nan}" 'BEGIN { printf "%.1f\t%s\n", t - t0, q }'
		sleep 1
	done
) >"$R/queue.tsv" &
qsampler=$!
PIDS+=("$qsampler")

echo "soak: ${SOAK_MINUTES} min (warm-up ${WARM} s, cloud down ${OUT_START}-${OUT_END} s), output in $OUT"
phase=run
cloud_down_at= cloud_up_at=
for i in $(seq 1 $((TOTAL / SAMPLE))); do
	# Sleep to the next sample time (no drift).
	sleep "$(awk -v t0="$t0" -v t="$(now)" -v n="$((i * SAMPLE))" 'BEGIN { d = t0 + n - t; print (d > 0 ? d : 0) }')"
	el=$((i * SAMPLE))
	if [ -z "$cloud_down_at" ] && [ "$el" -ge "$OUT_START" ]; then
		kill -TERM "$cloud" && wait "$cloud"
		cloud= cloud_down_at=$el phase=outage
		echo "soak: cloud stopped at ${el} s"
	elif [ -z "$cloud_up_at" ] && [ -n "$cloud_down_at" ] && [ "$el" -ge "$OUT_END" ]; then
		start_cloud
		cloud_up_at=$(awk -v t="$(now)" -v t0="$t0" 'BEGIN { printf "%.1f", t - t0 }') phase=after
		echo "soak: cloud started again at ${cloud_up_at} s"
	fi
	kill -0 "$fq" 2>/dev/null || die "fieldmq died; see $R/fieldmq.log"
	sample "$phase" || die "fieldmq died; see $R/fieldmq.log"
done
echo "soak: load ends; waiting for the seq publisher's acks and the drain"
for _ in $(seq 60); do kill -0 "$seqpub" 2>/dev/null || break; sleep 1; done
wait "$seqpub"
wait "$local"
for _ in $(seq $((120 / SAMPLE))); do
	sleep "$SAMPLE"
	sample tail
	q=$(tail -1 "$R/samples.tsv" | cut -f6)
	[ "$q" = 0 ] && break
done
# glibc's view of the heap once the load is gone: per arena, bytes taken
# from the system and bytes in use (the difference is freed memory malloc
# keeps: fragmentation). malloc_stats() prints to fieldmq's stderr; gdb stops
# fieldmq for a moment, which no longer disturbs anything here.
if command -v gdb >/dev/null; then
	timeout 30 gdb -p "$fq" -batch -ex 'call (void)malloc_stats()' >"$R/gdb.out" 2>&1
fi
acked=$(sed -n 's/^RESULT .*acked=\([0-9]*\).*/\1/p' "$R/seq.out")
for _ in $(seq 60); do
	[ "$(wc -l <"$R/cloud-seq.txt")" -ge "${acked:-0}" ] && break
	sleep 1
done
sleep 2
kill "$qsampler" 2>/dev/null
stop_all

# Figures and checks.
$PY - "$R" "$WARM" "$OUT_START" "$OUT_END" "${cloud_up_at:-nan}" "$SAMPLE" <<'PY' | tee "$OUT/summary.txt"
import sys, collections
R, warm, o0, o1, up, step = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
rows = []
for line in open(R + "/samples.tsv"):
    if line.startswith("#"):
        continue
    f = line.split("\t")
    rows.append(dict(t=float(f[0]), rss=int(f[1]), fds=int(f[2]), cpu=float(f[3]), load=float(f[4]),
                     q=float(f[5]), conn=f[6], drop=f[7], phase=f[8].strip(),
                     bdrop=f[11].strip() if len(f) > 11 else "?"))
    if len(f) > 19:
        num = lambda x: float(x) if x not in ("nan", "") else float("nan")
        rows[-1].update(state=f[9], sent=num(f[10]), gw=num(f[12]), sqh=num(f[13]), sqc=num(f[14]),
                        slow=num(f[15]), lcpu=num(f[16]), rqw=num(f[17]), wchan=f[18],
                        nice=f[19].strip())
    if len(f) > 21:
        rows[-1].update(brk=num(f[20]), anon=num(f[21]))
    if len(f) > 23:
        rows[-1].update(mheap=num(f[22]), muse=num(f[23]))
full = all("sqc" in r for r in rows)
ok = True
def check(name, good, text):
    global ok
    ok = ok and good
    print("%-8s %s  %s" % (name, "ok  " if good else "FAIL", text))
after_warm = [r for r in rows if r["t"] >= warm]
w = after_warm[0]
# The last sample under load (after it the load generators are gone).
last = [r for r in rows if r["phase"] != "tail"][-1]
tail = rows[-1]
steady = [r for r in rows if r["t"] >= warm and r["phase"] == "run"]
print("samples: %d every %.0f s over %.0f s" % (len(rows), step, rows[-1]["t"]))
print("RSS: start %.1f MB, warm-up end (%.0f s) %.1f MB, max %.1f MB (at %.0f s), end of the load (%.0f s) %.1f MB, "
      "after it (%.0f s) %.1f MB"
      % (rows[0]["rss"] / 1024, w["t"], w["rss"] / 1024, max(r["rss"] for r in rows) / 1024,
         max(rows, key=lambda r: r["rss"])["t"], last["t"], last["rss"] / 1024, tail["t"], tail["rss"] / 1024))
print("fds: start %d, warm-up end %d, min %d, max %d under load, end of the load %d, after it %d"
      % (rows[0]["fds"], w["fds"], min(r["fds"] for r in after_warm if r["phase"] != "tail"),
         max(r["fds"] for r in rows), last["fds"], tail["fds"]))
run = [r for r in rows if r["phase"] != "tail"]
cpus = sorted(r["cpu"] for r in run)
print("CPU (fieldmq, %% of one core, %.0f s samples): mean %.1f, median %.1f, max %.1f; load average %.1f-%.1f"
      % (step, sum(cpus) / len(cpus), cpus[len(cpus) // 2], cpus[-1],
         min(r["load"] for r in rows), max(r["load"] for r in rows)))
pre = [r["q"] for r in steady if r["t"] < o0]
qs = []
for line in open(R + "/queue.tsv"):
    t, q = line.split()
    if q != "nan":
        qs.append((float(t), float(q)))
peak = max(qs, key=lambda x: x[1])
# The steady level: live traffic keeps up to a window or so queued; a stall
# before the outage must not raise the bar, hence the median.
base = max(2000, sorted(pre)[len(pre) // 2] + 100) if pre else 2000
drained = [x for x in qs if x[0] > up and x[1] <= base]
print("queue (1 s samples): before the outage max %.0f, peak %.0f at %.0f s, dropped %s"
      % (max(pre) if pre else 0, peak[1], peak[0], last["drop"]))
# Two windows where nothing changes but time: A from the warm-up's end to
# the outage, B from a 30th of the run after the drain to the end of the load.
d_end = drained[0][0] if drained else float("inf")
A = [r for r in rows if warm <= r["t"] < o0]
# Not the last sample: the load generators' run ends about then, and their
# 51 connections may be closing while it is taken.
B = [r for r in rows if r["phase"] != "tail" and r["t"] >= d_end + max(2 * step, (o0 + o1) / 30)
     and r["t"] <= o0 + o1 - step / 2]
def growth(win, k):
    return (win[-1][k] - win[0][k]) if len(win) > 1 else 0
lim = lambda win: max(1024, 0.05 * win[0]["rss"]) if win else 0
for name, win in (("A", A), ("B", B)):
    if len(win) > 1:
        print("window %s %.0f-%.0f s: RSS %.1f -> %.1f MB (%+.0f kB), fds %d -> %d"
              % (name, win[0]["t"], win[-1]["t"], win[0]["rss"] / 1024, win[-1]["rss"] / 1024,
                 growth(win, "rss"), win[0]["fds"], win[-1]["fds"]))
if A and B:
    print("RSS step across the outage (window B start - window A end): %+.1f MB" % ((B[0]["rss"] - A[-1]["rss"]) / 1024))
# RSS beside what fieldmq allocated itself (gw_malloc) and SQLite's heap.
if full:
    print("memory (MB)        t     RSS  malloc held  in use  gw_malloc  SQLite  (page cache)")
    marks = [("start", rows[0]), ("warm-up end", w)]
    if A:
        marks.append(("window A end", A[-1]))
    if B:
        marks.append(("window B start", B[0]))
    marks += [("max RSS", max(rows, key=lambda r: r["rss"])), ("end of the load", last)]
    for name, r in marks:
        print("  %-15s %5.0f  %5.1f  %11.1f  %6.1f  %9.1f  %6.1f  %11.1f"
              % (name, r["t"], r["rss"] / 1024, r.get("mheap", float("nan")) / 1024,
                 r.get("muse", float("nan")) / 1024, r["gw"] / 1024, r["sqh"] / 1024, r["sqc"] / 1024))
# SQLite's page caches: writer 256 + reader 64 + checkpointer and check 32 KiB
# each (store_db.c), + 25 % (see st_stats): they fill once when the queue
# outgrows them and stay full.
CACHE_CAP = (256 + 64 + 32 + 32) * 1.25
# A window passes when RSS grew by at most the limit; or when what is
# allocated (malloc in use: everything, SQLite and the libraries included)
# grew by at most the limit and SQLite's caches stayed within their cap: then
# the growth is freed memory glibc keeps after a peak (a stall, a drain),
# bounded by the largest peak, not a leak. Which rule passed is printed.
def rss_rule(win):
    if growth(win, "rss") <= lim(win):
        return "RSS"
    if all("muse" in r for r in win) and growth(win, "muse") <= lim(win) and \
            max(r["sqc"] for r in win) <= CACHE_CAP:
        return "in use"
    return None
for name, win in (("A", A), ("B", B)):
    if full and len(win) > 1:
        print("window %s: RSS %+.0f kB, malloc held %+.0f kB, in use %+.0f kB, SQLite page cache %+.0f kB "
              "(max %.0f kB of a %.0f kB cap), SQLite heap %+.0f kB, gw_malloc %+.0f kB: passes by %s"
              % (name, growth(win, "rss"), growth(win, "mheap") if "mheap" in win[0] else float("nan"),
                 growth(win, "muse") if "muse" in win[0] else float("nan"), growth(win, "sqc"),
                 max(r["sqc"] for r in win), CACHE_CAP, growth(win, "sqh"), growth(win, "gw"),
                 rss_rule(win)))
check("rss", len(A) > 1 and len(B) > 1 and all(rss_rule(x) for x in (A, B)),
      "growth within each window <= max(1 MB, 5 %) of RSS, or of what is allocated with SQLite's "
      "caches within their cap")
check("fds", len(A) > 1 and len(B) > 1 and all(abs(growth(x, "fds")) <= 2 for x in (A, B))
      and abs(B[-1]["fds"] - A[0]["fds"]) <= 2, "fds equal (+/- 2) across and within the windows")
check("drain", bool(drained),
      "back to <= %.0f at %.0f s, %.0f s after the cloud came back (1 s resolution)"
      % (base, drained[0][0], drained[0][0] - up) if drained else "never back to <= %.0f" % base)
acked = set()
sent = 0
for line in open(R + "/seq.out"):
    if line.startswith("RESULT"):
        kv = dict(x.split("=") for x in line.split()[1:])
        sent = int(kv["sent"])
    elif line.startswith("ACKED"):
        acked = set(int(x) for x in line.split()[1:])
got = collections.Counter()
for line in open(R + "/cloud-seq.txt"):
    line = line.strip()
    if line.isdigit():
        got[int(line)] += 1
lost = sorted(acked - set(got))
dups = sum(n - 1 for n in got.values() if n > 1)
print("soak/seq: sent %d, acknowledged by fieldmq %d, received at the cloud %d (%d distinct), duplicates %d, lost %d%s"
      % (sent, len(acked), sum(got.values()), len(got), dups, len(lost),
         (" (first lost: %s)" % lost[:10]) if lost else ""))
check("loss", sent > 0 and not lost, "%d acknowledged messages missing at the cloud" % len(lost))
nread = sum(1 for _ in open(R + "/cloud-readings.txt"))
print("readings at the cloud (fieldmq/#): %d" % nread)
for name in ("local.out", "idle.out"):
    for line in open(R + "/" + name):
        if line.startswith("RESULT"):
            print("%s: %s" % (name, line.strip()))
print("broker dropped messages (fieldmq_broker_dropped_messages_total) at the end of the load: %s" % last["bdrop"])
# Local QoS 0: what mqtt_load did not get must be what the broker dropped
# for a slow consumer (the s5 subscriber is the only network client that is
# sent QoS 0).
lres = {}
for line in open(R + "/local.out"):
    if line.startswith("RESULT"):
        lres = dict(x.split("=", 1) for x in line.split()[1:])
if full and lres:
    slow = tail["slow"] - rows[0]["slow"]
    lost0 = int(lres["lost"])
    print("local QoS 0: sent %s = delivered %s + lost %d; the broker dropped %.0f for a slow consumer "
          "(max_buffered_bytes) meanwhile" % (lres["sent"], lres["delivered"], lost0, slow))
    check("qos0", lost0 == slow, "every lost QoS 0 message is one the broker counted as dropped "
          "(%d lost, %.0f counted)" % (lost0, slow))
if full:
    rq = [r["rqw"] for r in run if r["rqw"] == r["rqw"]]
    lc = [r["lcpu"] for r in run if r["lcpu"] == r["lcpu"]]
    print("loop thread: on a CPU %.1f %% of the time (max %.1f), waiting for a CPU %.1f %% (max %.1f), "
          "nice %s" % (sum(lc) / len(lc), max(lc), sum(rq) / len(rq), max(rq), rows[0]["nice"]))
    # Stalls: the queue grew by more than 2000 in a sample while connected.
    prev = None
    for r in rows:
        if prev and r["conn"].strip() == "1" and prev["conn"].strip() == "1" and r["q"] - prev["q"] > 2000:
            print("stall? %.0f-%.0f s: queue %.0f -> %.0f, uplink sent %.0f/s, fieldmq CPU %.1f %%, loop thread "
                  "on a CPU %.1f %% / waiting for one %.1f %%, state %s, wchan %s, load %.1f"
                  % (prev["t"], r["t"], prev["q"], r["q"], (r["sent"] - prev["sent"]) / (r["t"] - prev["t"]),
                     r["cpu"], r["lcpu"], r["rqw"], r["state"], r["wchan"], r["load"]))
        prev = r
if full and all("brk" in r for r in rows):
    print("RSS by mapping (MB)   t    [heap]  other anon (pool arenas, stacks)")
    for name, r in marks:
        print("  %-15s %5.0f  %6.1f  %6.1f" % (name, r["t"], r["brk"] / 1024, r["anon"] / 1024))
ms = [line.rstrip() for line in open(R + "/fieldmq.log", errors="replace")
      if line.startswith(("Arena", "Total", "system bytes", "in use bytes", "max mmap"))]
if ms:
    print("malloc_stats() after the load (glibc; system = taken from the OS, in use = allocated):")
    print("\n".join("  " + x for x in ms))
print("result: %s" % ("all checks passed" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
rc=${PIPESTATUS[0]}

gnuplot <<EOF
set terminal pngcairo noenhanced size 900,780 font ",9"
set output "$OUT/soak.png"
set multiplot layout 3,1 title "fieldmq soak $(date -u +%Y-%m-%d), ${SOAK_MINUTES} min: $((DEVICES * POINTS)) Modbus points/s, $IDLE idle + 51 busy MQTT connections,\n10k msgs/s local, $SEQ_RATE msgs/s QoS 1 + the readings to the cloud; cloud down (shaded) ${OUT_START}-${OUT_END} s"
set xrange [0:*]
set lmargin 10
set rmargin 10
set grid
set style rect fc rgb "#ffdddd" fs solid 1.0 noborder
set object 1 rect from $OUT_START/60.0, graph 0 to $OUT_END/60.0, graph 1 behind
set ylabel "memory (MB)"
set yrange [0:*]
set key left center
plot "$R/samples.tsv" using (\$1/60):(\$2/1024) with lines lw 2 title "fieldmq VmRSS", \
     "" using (\$1/60):(\$14/1024) with lines lw 1 title "SQLite heap (/metrics)", \
     "" using (\$1/60):(\$15/1024) with lines lw 1 dt 2 title "of it page cache", \
     "" using (\$1/60):(\$13/1024) with lines lw 1 title "gw_malloc (fieldmq's own)", \
     "" using (\$1/60):(\$23/1024) with lines lw 1 title "glibc malloc: held", \
     "" using (\$1/60):(\$24/1024) with lines lw 1 dt 3 title "glibc malloc: in use"
set key default
set ylabel "CPU (% of a core)"
set y2label "load average (2 cores)"
set y2range [0:*]
set y2tics
plot "$R/samples.tsv" using (\$1/60):4 with lines lw 2 title "fieldmq CPU (5 s)", \
     "" using (\$1/60):18 with lines lw 1 title "its loop thread waiting for a CPU (% of the time)", \
     "" using (\$1/60):5 axes x1y2 with lines dt 2 title "machine load average (right axis)"
unset y2label
unset y2tics
set ylabel "uplink queued (msgs)"
set xlabel "minutes"
plot "$R/queue.tsv" using (\$1/60):2 with lines lw 2 title "fieldmq_uplink_queued_messages (/metrics, 1 s)"
unset multiplot
EOF
cp "$R/samples.tsv" "$R/queue.tsv" "$OUT/"
echo "soak: plot $OUT/soak.png, samples $OUT/samples.tsv"
exit "$rc"
