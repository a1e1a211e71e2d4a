#!/usr/bin/env bash
# acks_bench.sh - forwarded QoS 1 with durable acknowledgements (issue 10),
# fieldmq against what users would pick instead, side by side in one run:
#
#   fieldmq  local QoS 1 publishers -> fieldmq (default config, [uplink]
#            forward = bench/# 1, every PUBACK after the store's commit)
#            -> a Mosquitto "cloud"
#   bridge   local QoS 1 publishers -> Mosquitto with a bridge (topic bench/#
#            out 1) -> a second Mosquitto "cloud"; it acknowledges at once,
#            with no durability at all
#
# Each with build/bench/ack_load: 1 publisher stop-and-wait (msgs/s, PUBACK
# p50/p99), 1 publisher with 16 in flight, 4 publishers with 16 each; fieldmq
# also with [store] synchronous = full. A subscriber on each cloud counts
# what arrived: every acknowledged message must be there. Then the uplink's
# own ceiling: N messages queued while the cloud is down are drained to a
# fast cloud (a second fieldmq's broker), with the default window
# ([uplink] max_inflight = 32) and with 256.
#
#   bench/acks_bench.sh                 DUR=5 s per case, N=200000 for the drain,
#                                       ROUNDS=3 (medians reported)
#   DUR=3 N=100000 ROUNDS=1 bench/acks_bench.sh
#
# The machine is shared, so every figure is measured ROUNDS times, the
# systems taking turns within each round (bridge, fieldmq normal, full, the
# drains); the report gives the median of the rounds, each round's ratio
# (bridge and fieldmq in the same round) and the load average around it.
#
# Targets (issue 10), as ratios of the same run: stop-and-wait >= 0.5x the
# bridge with PUBACK p99 <= 2 ms; 16 in flight >= 1.5x; drain >= 100 000 msgs/s.
set -u
: "${BUILD:=build}"
: "${DUR:=5}"
: "${WARM:=1}"
: "${N:=200000}"
: "${ROUNDS:=3}"
FIELDMQ=$(realpath "${FIELDMQ:-$BUILD/fieldmq}")
LOAD=$(realpath "$BUILD/bench/ack_load")
MOSQ=/usr/sbin/mosquitto
T=$(mktemp -d /tmp/fieldmq-abench.XXXXXX)
chmod 755 "$T"
. "$(dirname "$0")/lib.sh"
trap 'stop_pids; rm -rf "$T"' EXIT
# kv LINE KEY: the value of KEY=... in a RESULT line
kv() { sed -n "s/.*[ ]$2=\([^ ]*\).*/\1/p" <<< " $1"; }

mosquitto_at() { # NAME PORT [EXTRA_CONF]
	cat > "$T/$1.conf" <<CONF
listener $2 127.0.0.1
allow_anonymous true
max_queued_messages 100000
max_inflight_messages 100
${3:-}
CONF
	$MOSQ -c "$T/$1.conf" > "$T/$1.log" 2>&1 &
	PIDS+=($!)
	wait_port "$2"
}

fieldmq_at() { # NAME PORT CLOUD_PORT [STORE_LINES] [UPLINK_LINES]
	mkdir -p "$T/$1"
	cat > "$T/$1/fieldmq.ini" <<INI
[gateway]
id = $1
data_dir = data
devices =
[broker]
listen = 127.0.0.1:$2
[store]
${4:-}
[uplink]
enabled = yes
url = mqtt://127.0.0.1:$3
forward = bench/# 1
reconnect_min = 50ms
reconnect_max = 200ms
${5:-}
INI
	(cd "$T/$1" && exec "$FIELDMQ" -c fieldmq.ini >> fieldmq.log 2>&1) &
	PIDS+=($!)
	wait_port "$2"
}

# case LABEL PORT CONNS WINDOW: one ack_load run, its RESULT line kept in $T/LABEL
run_case() {
	local out
	out=$("$LOAD" -p "$2" -c "$3" -w "$4" -d "$DUR" -u "$WARM" -t "bench/$1" -i "$1" 2>&1 | grep RESULT)
	echo "$out" > "$T/r.$1.$R"
	[ -n "$out" ] || { echo "  $1: ack_load failed"; return 1; }
}

# side SYSTEM PORT CLOUD_PORT: the three cases against one system, the cloud counting
side() {
	local sys=$1 p=$2 cp=$3 sub out
	"$LOAD" -p "$cp" -S 'bench/#' -q 0 -T 4 > "$T/sub.$sys" 2>&1 &
	sub=$!
	PIDS+=("$sub")
	sleep 0.3
	run_case "$sys.1x1" "$p" 1 1
	run_case "$sys.1x16" "$p" 1 16
	run_case "$sys.4x16" "$p" 4 16
	wait "$sub"
	out=$(grep RESULT "$T/sub.$sys")
	echo "$out" > "$T/cloud.$sys.$R"
}

load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------- drain to a fast cloud
drain() { # WINDOW
	local cport lport out epid
	cport=$(port)
	lport=$(port)
	rm -rf "$T/drain" "$T/fastcloud"
	# 1. The edge with its cloud down: N messages queue in the store; it stops.
	fieldmq_at drain "$lport" "$cport" "" "max_inflight = $1" || return 1
	epid=${PIDS[-1]}
	/usr/bin/python3 - "$lport" "$N" <<'PY' || return 1
import socket, struct, sys
# N QoS 1 PUBLISHes of 64 bytes on 16 topics, 1000 in flight, until every PUBACK came.
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
cid = b"filler"
var = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
s.sendall(bytes([0x10, len(var)]) + var)
assert s.recv(4)[:1] == b"\x20"
payload = b"x" * 64
def pub(i):
    topic = b"bench/d/%d" % (i % 16)
    body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", i % 65535 + 1) + payload
    return bytes([0x32, len(body)]) + body
sent = acked = 0
rb = b""
while acked < n:
    if sent < n and sent - acked < 500:
        top = min(n, acked + 1000)
        s.sendall(b"".join(pub(i) for i in range(sent, top)))
        sent = top
    d = s.recv(65536)
    if not d:
        sys.exit("fill: connection closed after %d acks" % acked)
    rb += d
    k = len(rb) // 4
    acked += k
    rb = rb[k * 4:]
s.close()
PY
	kill -TERM "$epid"
	wait "$epid"
	# 2. The fast cloud (fieldmq's own broker, no uplink) and a counting subscriber.
	mkdir -p "$T/fastcloud"
	cat > "$T/fastcloud/fieldmq.ini" <<INI
[gateway]
id = cloud
data_dir = data
devices =
[broker]
listen = 127.0.0.1:$cport
persist = no
INI
	(cd "$T/fastcloud" && exec "$FIELDMQ" -c fieldmq.ini >> fieldmq.log 2>&1) &
	PIDS+=($!)
	wait_port "$cport" || return 1
	"$LOAD" -p "$cport" -S 'bench/#' -q 0 -n "$N" -T 5 > "$T/drain.$1.$R" 2>&1 &
	out=$!
	PIDS+=("$out")
	sleep 0.5
	# 3. The edge again: it drains; the figure is first to last message at the subscriber.
	(cd "$T/drain" && exec "$FIELDMQ" -c fieldmq.ini >> fieldmq.log 2>&1) &
	PIDS+=($!)
	wait "$out"
	stop_pids
}
# One round: the bridge, fieldmq (normal, full), the drains.
round() {
	# ------------------------------------------------------------- the bridge
	cp1=$(port)
	ep=$(port)
	mosquitto_at bcloud "$cp1" || exit 1
	mosquitto_at bedge "$ep" "
connection cloud
address 127.0.0.1:$cp1
topic bench/# out 1
cleansession true
" || exit 1
	sleep 1 # the bridge connects
	side bridge "$ep" "$cp1"
	stop_pids

	# -------------------------------------------------------------- fieldmq
	for sync in normal full; do
		cp2=$(port)
		fp=$(port)
		mosquitto_at fcloud "$cp2" || exit 1
		rm -rf "$T/f$sync"
		fieldmq_at "f$sync" "$fp" "$cp2" "synchronous = $sync" || exit 1
		sleep 0.5
		side "$sync" "$fp" "$cp2"
		stop_pids
	done
	drain 32
	drain 256
}

echo "load average before: $(load_avg) (2 CPUs, shared with other sessions)"
for R in $(seq 1 "$ROUNDS"); do
	round
	echo "round $R done, load average $(load_avg)"
	load_avg > "$T/load.$R"
done

# ------------------------------------------------------------------ report
/usr/bin/python3 - "$T" "$DUR" "$N" "$ROUNDS" <<'PY'
import os, sys
t, dur, n, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def res(name):
    try:
        line = open(os.path.join(t, name)).read().split()
    except OSError:
        return {}
    return dict(kv.split("=", 1) for kv in line if "=" in kv)
def med(xs):
    xs = sorted(xs)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2
def runs(sysname, key):
    """The RESULT lines of every round that produced one."""
    return [r for r in (res("r.%s.%s.%d" % (sysname, key, i)) for i in range(1, rounds + 1)) if r]
cases = [("1x1", "1 publisher, stop-and-wait"), ("1x16", "1 publisher, 16 in flight"),
         ("4x16", "4 publishers, 16 in flight each")]
print("Forwarded QoS 1, %g s per case, 64-byte payloads, MQTT 3.1.1 publishers (bench/ack_load);"
      % dur)
print("median of %d rounds (each figure separately); ratio = fieldmq (normal) / bridge of the same"
      " round." % rounds)
for i in range(1, rounds + 1):
    try:
        print("round %d: load average after it %s" % (i, open(os.path.join(t, "load.%d" % i)).read().strip()))
    except OSError:
        pass
print("%-32s %-34s %-34s %-34s %s" % ("", "Mosquitto bridge", "fieldmq (normal)", "fieldmq (full)",
                                      "ratio: median (rounds)"))
def cell(rs):
    if not rs:
        return "failed"
    return "%6.0f msgs/s p50 %5.2f p99 %5.2f ms" % (med([float(r["rate"]) for r in rs]),
                                                    med([int(r["p50_us"]) for r in rs]) / 1e3,
                                                    med([int(r["p99_us"]) for r in rs]) / 1e3)
for key, label in cases:
    b, f, ff = runs("bridge", key), runs("normal", key), runs("full", key)
    ratios = []
    for i in range(1, rounds + 1):
        rb, rf = res("r.bridge.%s.%d" % (key, i)), res("r.normal.%s.%d" % (key, i))
        if rb and rf and float(rb["rate"]):
            ratios.append(float(rf["rate"]) / float(rb["rate"]))
    ratio = med(ratios) or 0
    rfull = [float(x["rate"]) / float(y["rate"]) for x, y in
             ((res("r.full.%s.%d" % (key, i)), res("r.bridge.%s.%d" % (key, i)))
              for i in range(1, rounds + 1)) if x and y and float(y["rate"])]
    print("%-32s %-34s %-34s %-34s %.2fx (%s)" % (label, cell(b), cell(f), cell(ff), ratio,
                                                " ".join("%.2f" % x for x in ratios)))
    print("%-32s full / bridge: %.2fx" % ("", med(rfull) or 0))
    p99 = med([int(r["p99_us"]) for r in f]) if f else None
    if key == "1x1":
        met = ratio >= 0.5 and p99 is not None and p99 <= 2000
        print("%-32s target >= 0.5x and p99 <= 2 ms: %s" % ("", "met" if met else "MISSED"))
    if key == "1x16":
        print("%-32s target >= 1.5x: %s" % ("", "met" if ratio >= 1.5 else "MISSED"))
for sysname in ("bridge", "normal", "full"):
    acked = sum(int(r.get("sent", 0)) for k, _ in cases for r in runs(sysname, k))
    got = sum(int(res("cloud.%s.%d" % (sysname, i)).get("received", 0)) for i in range(1, rounds + 1))
    print("cloud of %-7s: received %d of %d PUBLISHes sent (every acknowledged one must be there)%s"
          % (sysname, got, acked, "" if got >= acked - 16 * 4 * 3 * rounds else "  <- MISSING"))
for w in (32, 256):
    rs = [r for r in (res("drain.%d.%d" % (w, i)) for i in range(1, rounds + 1)) if r.get("received")]
    if rs:
        short = [int(r["received"]) for r in rs if int(r["received"]) < n]
        rate = med([float(r["rate"]) for r in rs])
        print("uplink drain of %d msgs to a fast cloud (fieldmq's broker), [uplink] max_inflight %d:"
              " %.0f msgs/s (rounds: %s)%s%s"
              % (n, w, rate, " ".join("%.0f" % float(r["rate"]) for r in rs),
                 "" if not short else "  <- only %s of %d" % (short, n),
                 "; target >= 100000: %s" % ("met" if rate >= 100000 else "MISSED")))
    else:
        print("uplink drain, max_inflight %d: failed" % w)
PY
echo "load average after: $(load_avg)"
