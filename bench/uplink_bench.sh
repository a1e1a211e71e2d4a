#!/usr/bin/env bash
# uplink_bench.sh - how fast the uplink drains its store queue to a real
# Mosquitto at QoS 1 (msgs/s).
#
#   bench/uplink_bench.sh            N=50000 messages of 64 bytes, max_inflight 32
#   N=100000 INFLIGHT=256 SIZE=200 bench/uplink_bench.sh
#
# 1. fieldmq runs with the cloud down and N QoS 1 messages are published
#    locally (queued in the store); fieldmq stops.
# 2. Mosquitto starts with a subscriber (mosquitto_sub -C N), then fieldmq
#    starts again and drains. The figure is N / (time from the uplink's
#    CONNACK to the subscriber's N-th message).
set -u
: "${BUILD:=build}"
: "${N:=50000}"
: "${INFLIGHT:=32}"
: "${SIZE:=64}"
FIELDMQ=$(realpath "${FIELDMQ:-$BUILD/fieldmq}")
T=$(mktemp -d /tmp/fieldmq-ubench.XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
	local i
	for i in $(seq 1 100); do
		/usr/bin/python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

LPORT=$(port)
CPORT=$(port)
cat > "$T/fieldmq.ini" <<INI
[gateway]
id = bench
data_dir = data
devices =
[broker]
listen = 127.0.0.1:$LPORT
max_inflight = 1000
[store]
sync_interval = 20ms
[uplink]
enabled = yes
url = mqtt://127.0.0.1:$CPORT
forward = bench/# 1
max_inflight = $INFLIGHT
reconnect_min = 50ms
reconnect_max = 200ms
INI
cat > "$T/cloud.conf" <<CONF
listener $CPORT 127.0.0.1
allow_anonymous true
max_queued_messages 0
max_inflight_messages $INFLIGHT
CONF

cd "$T" || exit 1
"$FIELDMQ" -c fieldmq.ini >> fieldmq.log 2>&1 &
FPID=$!
PIDS+=("$FPID")
wait_port "$LPORT" || { echo "fieldmq did not start"; exit 1; }
/usr/bin/python3 - "$LPORT" "$N" "$SIZE" <<'PY'
import sys, time
import paho.mqtt.client as mqtt
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = mqtt.Client(client_id="bench-pub")
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port, 60)
c.loop_start()
payload = b"x" * size
t0 = time.time()
infos = [c.publish("bench/t%d" % (i % 16), payload, qos=1) for i in range(n)]
for i in infos:
    i.wait_for_publish(120)
print("queued %d QoS 1 messages of %d bytes in %.1f s (local publish, PUBACK after commit)"
      % (n, size, time.time() - t0))
c.disconnect()
c.loop_stop()
PY
kill -TERM "$FPID"
wait "$FPID"

/usr/sbin/mosquitto -c cloud.conf > cloud.log 2>&1 &
PIDS+=($!)
wait_port "$CPORT" || { echo "mosquitto did not start"; exit 1; }
mosquitto_sub -p "$CPORT" -q 1 -t 'bench/#' -C "$N" > /dev/null &
SUB=$!
PIDS+=("$SUB")
sleep 0.5
"$FIELDMQ" -c fieldmq.ini >> fieldmq.log 2>&1 &
PIDS+=($!)
for i in $(seq 1 600); do
	kill -0 "$SUB" 2>/dev/null || break
	sleep 0.1
done
end=$(date +%s.%N)
if kill -0 "$SUB" 2>/dev/null; then
	echo "the subscriber did not get $N messages within 60 s"
	exit 1
fi
# The CONNACK time is in the log (UTC, ms).
start=$(grep 'uplink: connected to' fieldmq.log | tail -1 | cut -c1-23)
start_s=$(date -u -d "${start/T/ } UTC" +%s.%N)
/usr/bin/python3 -c "
n, t = $N, $end - $start_s
print('uplink drain: %d QoS 1 messages to Mosquitto in %.2f s = %.0f msgs/s (max_inflight $INFLIGHT)' % (n, t, n / t))"
