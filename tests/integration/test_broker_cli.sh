#!/usr/bin/env bash
# The broker driven by mosquitto_pub / mosquitto_sub (3.1.1 and 5.0): QoS 0/1/2,
# retained set / clear, $SYS, v5 properties, a persistent session queued
# across a reconnect, and the broker surviving garbage. Every wait is bounded.
set -u
: "${BUILD:=build}"
BROKERD=${BROKERD:-$BUILD/sim/brokerd}
fail=0
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
}
trap cleanup EXIT

check() { # name expected actual
	if [ "$2" == "$3" ]; then
		echo "ok   $1"
	else
		echo "FAIL $1: expected [$2], got [$3]"
		fail=1
	fi
}

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BROKERD" -p "$PORT" -s 1000 >/dev/null &
BPID=$!
pids+=("$BPID")
for _ in $(seq 50); do
	(exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
	sleep 0.1
done

H=(-h 127.0.0.1 -p "$PORT")

# QoS 0/1/2 in both versions.
for v in mqttv311 mqttv5; do
	for q in 0 1 2; do
		out=$(mktemp)
		timeout 10 mosquitto_sub "${H[@]}" -V $v -q $q -t "cli/$v/$q" -C 1 -W 5 >"$out" &
		sp=$!
		sleep 0.3
		mosquitto_pub "${H[@]}" -V $v -q $q -t "cli/$v/$q" -m "hello $q"
		wait $sp
		check "pub/sub $v qos $q" "hello $q" "$(cat "$out")"
		rm -f "$out"
	done
done

# Retained: set, replace, delivered on subscribe, cleared by an empty payload.
mosquitto_pub "${H[@]}" -q 1 -r -t cli/ret -m one
mosquitto_pub "${H[@]}" -q 1 -r -t cli/ret -m two
check "retained replaced" "two" "$(timeout 10 mosquitto_sub "${H[@]}" -t cli/ret -C 1 -W 5)"
mosquitto_pub "${H[@]}" -q 1 -r -t cli/ret -n
check "retained cleared" "" "$(timeout 10 mosquitto_sub "${H[@]}" -t cli/ret -C 1 -W 1 2>/dev/null)"

# $SYS, with Mosquitto's names.
check "\$SYS version" "fieldmq" "$(timeout 10 mosquitto_sub "${H[@]}" -t '$SYS/broker/version' -C 1 -W 5 | cut -d' ' -f1)"
up=$(timeout 10 mosquitto_sub "${H[@]}" -t '$SYS/broker/uptime' -C 1 -W 5)
check "\$SYS uptime" "seconds" "${up#* }"
for t in clients/connected clients/total messages/received messages/sent bytes/received \
	bytes/sent subscriptions/count "retained messages/count" heap/current; do
	v=$(timeout 10 mosquitto_sub "${H[@]}" -t "\$SYS/broker/$t" -C 1 -W 5)
	[[ "$v" =~ ^[0-9]+$ ]] && r=number || r="[$v]"
	check "\$SYS $t" number "$r"
done

# MQTT 5 properties through the broker.
out=$(mktemp)
timeout 10 mosquitto_sub "${H[@]}" -V mqttv5 -t cli/props -C 1 -W 5 -F '%t %p %P' >"$out" &
sp=$!
sleep 0.3
mosquitto_pub "${H[@]}" -V mqttv5 -t cli/props -m body -D publish user-property k1 v1 \
	-D publish content-type text/plain
wait $sp
check "v5 user property" "cli/props body k1:v1" "$(cat "$out")"
rm -f "$out"

# A persistent session queues QoS 1 while offline.
timeout 10 mosquitto_sub "${H[@]}" -i cli-persist -c -q 1 -t cli/queue -C 1 -W 1 >/dev/null 2>&1
mosquitto_pub "${H[@]}" -q 1 -t cli/queue -m while-away
check "offline queue" "while-away" "$(timeout 10 mosquitto_sub "${H[@]}" -i cli-persist -c -q 1 -t cli/queue -C 1 -W 5)"

# Garbage does not hurt anyone else.
printf '\xff\xff\xff\xff\xff\xff' >/dev/tcp/127.0.0.1/"$PORT" 2>/dev/null
printf '\x10\x05\x00\x04MQT' >/dev/tcp/127.0.0.1/"$PORT" 2>/dev/null
sleep 0.2
out=$(mktemp)
timeout 10 mosquitto_sub "${H[@]}" -t cli/after -C 1 -W 5 >"$out" &
sp=$!
sleep 0.3
mosquitto_pub "${H[@]}" -t cli/after -m still-serving
wait $sp
check "serves after garbage" "still-serving" "$(cat "$out")"
rm -f "$out"

kill -TERM "$BPID"
for _ in $(seq 50); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$BPID" 2>/dev/null; then
	echo "FAIL brokerd did not stop on SIGTERM"
	fail=1
else
	wait "$BPID"
	check "clean stop" 0 $?
fi
exit $fail
