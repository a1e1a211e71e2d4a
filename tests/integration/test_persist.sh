#!/usr/bin/env bash
# persist = yes: retained messages and persistent sessions (subscriptions and
# queued QoS 1 messages) survive a clean restart and a kill -9.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
cat > "$T/fieldmq.ini" <<INI
[gateway]
id = p1
data_dir = data
devices =
[broker]
listen = 127.0.0.1:$PORT
persist = yes
[store]
sync_interval = 50ms
INI

start() {
	"$FIELDMQ" -c "$T/fieldmq.ini" >> "$T/log" 2>&1 &
	FPID=$!
	PIDS+=("$FPID")
	wait_port "$PORT"
}

start
check "the store file is created under data_dir" test -f "$T/data/fieldmq.db"
mosquitto_pub -p "$PORT" -q 1 -r -t 'keep/a' -m 'hello'
mosquitto_pub -p "$PORT" -q 1 -r -t 'keep/b' -m 'gone'
mosquitto_pub -p "$PORT" -q 1 -r -t 'keep/b' -n
# A persistent session subscribes, goes away, and misses two messages.
timeout 5 mosquitto_sub -p "$PORT" -i sess1 -c -q 1 -t 'q/#' -W 1 > /dev/null 2>&1
mosquitto_pub -p "$PORT" -q 1 -t 'q/1' -m 'first'
mosquitto_pub -p "$PORT" -q 1 -t 'q/2' -m 'second'
# Message expiry counts the time fieldmq is stopped.
mosquitto_pub -p "$PORT" -V 5 -q 1 -r -t 'exp/short' -m 'soon gone' -D publish message-expiry-interval 2
mosquitto_pub -p "$PORT" -V 5 -q 1 -r -t 'exp/long' -m 'still here' -D publish message-expiry-interval 600
kill -TERM "$FPID"
wait_exit "$FPID" 30
check "clean stop" test "$EXIT_STATUS" = 0
sleep 2.5

start
timeout 5 mosquitto_sub -p "$PORT" -t 'keep/#' -v -W 2 > "$T/ret.out" 2>&1
check "a retained message survives a restart" grep -qx 'keep/a hello' "$T/ret.out"
check "a cleared retained message stays cleared" bash -c "! grep -q 'keep/b' '$T/ret.out'"
timeout 5 mosquitto_sub -p "$PORT" -V 5 -t 'exp/#' -v -W 2 -F '%t %p %E' > "$T/exp.out" 2>&1
check "a retained message whose expiry ran out while stopped is gone" bash -c "! grep -q 'exp/short' '$T/exp.out'"
check "one with time left survives, with less time left" \
	awk '$1 == "exp/long" && $4 < 600 && $4 > 500 { ok = 1 } END { exit !ok }' "$T/exp.out"
timeout 5 mosquitto_sub -p "$PORT" -i sess1 -c -q 1 -t 'q/#' -v -C 2 -W 3 > "$T/q.out" 2>&1
check "queued messages of a persistent session survive a restart" \
	bash -c "grep -qx 'q/1 first' '$T/q.out' && grep -qx 'q/2 second' '$T/q.out'"

# kill -9 after the group-commit window: nothing acknowledged is lost.
mosquitto_pub -p "$PORT" -q 1 -r -t 'keep/c' -m 'crash-safe'
sleep 0.5
kill -KILL "$FPID"
wait "$FPID" 2>/dev/null
start
timeout 5 mosquitto_sub -p "$PORT" -t 'keep/c' -C 1 -W 3 > "$T/c.out" 2>&1
check "a retained message survives kill -9" grep -qx 'crash-safe' "$T/c.out"
check "no error in the log" bash -c "! grep ' error ' '$T/log'"
finish
