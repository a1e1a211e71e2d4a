#!/usr/bin/env bash
# An upgrade keeps what the previous release stored: this build opens a copy of
# tests/store/fixtures/fieldmq-*.db (written by a released fieldmq, see
# make_release_db.sh and the .txt beside each), migrates its schema to this
# build's, and then serves the retained messages, delivers the messages queued
# for a persistent session and forwards the uplink queue to a real Mosquitto
# in order, each once.
. "$(dirname "$0")/lib.sh"

fixtures=$(ls tests/store/fixtures/fieldmq-*.db)
check "there is a release fixture" test -n "$fixtures"
for fx in $fixtures; do
	rel=$(basename "$fx" .db)
	PORT=$(free_port)
	CLOUD=$(free_port)
	d=$T/$rel
	mkdir -p "$d/data"
	cp "$fx" "$d/data/fieldmq.db"
	old_schema=$(sqlite3 "$d/data/fieldmq.db" 'PRAGMA user_version')
	printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$CLOUD" >"$d/mosquitto.conf"
	mosquitto -c "$d/mosquitto.conf" >"$d/mosquitto.log" 2>&1 &
	PIDS+=($!)
	wait_port "$CLOUD"
	timeout 10 mosquitto_sub -p "$CLOUD" -q 1 -t 'up/#' -v -C 3 -W 8 >"$d/cloud.out" 2>&1 &
	SUB=$!
	PIDS+=($SUB)
	sleep 0.3
	cat >"$d/fieldmq.ini" <<INI
[gateway]
id = fixture
data_dir = data
devices =
[broker]
listen = 127.0.0.1:$PORT
persist = yes
[uplink]
enabled = yes
url = mqtt://127.0.0.1:$CLOUD
forward = up/# 1
INI
	"$FIELDMQ" -c "$d/fieldmq.ini" >"$d/log" 2>&1 &
	FPID=$!
	PIDS+=($FPID)
	wait_port "$PORT"
	check "$rel: fieldmq starts on it" kill -0 "$FPID"
	timeout 5 mosquitto_sub -p "$PORT" -t 'keep/#' -v -W 2 >"$d/ret.out" 2>&1
	check "$rel: retained messages survive the upgrade" \
		bash -c "grep -qx 'keep/a hello' '$d/ret.out' && grep -qx 'keep/u ünïcode' '$d/ret.out'"
	timeout 5 mosquitto_sub -p "$PORT" -i sess1 -c -q 1 -t 'q/#' -v -C 2 -W 3 >"$d/q.out" 2>&1
	check "$rel: a persistent session's queued messages survive the upgrade" \
		bash -c "grep -qx 'q/1 first' '$d/q.out' && grep -qx 'q/2 second' '$d/q.out'"
	wait "$SUB"
	check "$rel: the uplink queue is forwarded in order, each once" \
		test "$(tr '\n' ' ' <"$d/cloud.out")" = "up/1 m1 up/2 m2 up/3 m3 "
	kill -TERM "$FPID"
	wait_exit "$FPID" 30
	check "$rel: clean stop" test "$EXIT_STATUS" = 0
	new_schema=$(sqlite3 "$d/data/fieldmq.db" 'PRAGMA user_version')
	want=$(sed -n 's/^#define ST__SCHEMA_VERSION \([0-9]*\)$/\1/p' store/store_int.h)
	check "$rel: schema $old_schema -> $new_schema (this build: $want)" test "$new_schema" = "$want"
	if [ "$old_schema" != "$want" ]; then
		check "$rel: the migration is logged" grep -q "migrated .* from schema $old_schema" "$d/log"
	fi
	check "$rel: the queue is empty once acknowledged" \
		test "$(sqlite3 "$d/data/fieldmq.db" 'SELECT count(*) FROM queue')" = 0
	check "$rel: no error in the log" bash -c "! grep -i ' error ' '$d/log'"
	[ "$FAILS" -gt 0 ] && sed 's/^/    | /' "$d/log" "$d/cloud.out"
done
finish
