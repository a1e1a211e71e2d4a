#!/usr/bin/env bash
# The daemon as a user meets it: --check-config, config errors with file:line
# and exit 2, serving MQTT, SIGHUP reloads (a bad map is refused and the old
# one keeps running), SIGTERM stops cleanly with exit 0 within 2 s, a port in
# use is exit 1.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
mkdir -p "$T/devices.d"
cat > "$T/fieldmq.ini" <<INI
[gateway]
id = it1
data_dir = data
[broker]
listen = 127.0.0.1:$PORT
sys_interval = 1s
INI
cat > "$T/devices.d/a.ini" <<INI
[device:dev1]
host = 127.0.0.1
port = 1
poll = 200ms
[point:dev1/p1]
address = 0
INI

# --- configuration checks
check "--check-config accepts the shipped example" "$FIELDMQ" --check-config -c etc/fieldmq.ini
sed 's|^data_dir = ../var|data_dir = /var/lib/fieldmq|; s|^log_target = stderr|log_target = syslog|; s|^id = gw1$|;id = gw1|' \
	etc/fieldmq.ini > "$T/openwrt.ini"
check "--check-config accepts the OpenWrt default (as openwrt/Makefile writes it)" "$FIELDMQ" --check-config -c "$T/openwrt.ini"
make -s install DESTDIR="$T/root" PREFIX=/usr BUILD="$BUILD" > /dev/null 2>&1
check "make install puts the binary in sbin" test -x "$T/root/usr/sbin/fieldmq"
check "... and a valid config in /etc/fieldmq" "$FIELDMQ" --check-config -c "$T/root/etc/fieldmq/fieldmq.ini"
check "... whose data_dir is /var/lib/fieldmq" grep -qx "data_dir = /var/lib/fieldmq" "$T/root/etc/fieldmq/fieldmq.ini"
"$FIELDMQ" --check-config -c "$T/fieldmq.ini" > "$T/check.out" 2>&1
check "--check-config accepts a valid file" test $? -eq 0
"$FIELDMQ" --check-config -v -c "$T/fieldmq.ini" > "$T/effective.ini" 2>&1
check "--check-config -v prints defaults of the main file" grep -qx "max_inflight = 32" "$T/effective.ini"
check "... and of the device map (poll, the adapter's timeout)" bash -c "grep -qx 'poll = 200ms' '$T/effective.ini' && grep -qx 'timeout = 500ms' '$T/effective.ini'"
check "--version prints the version" bash -c "'$FIELDMQ' --version | grep -q '^fieldmq [0-9]'"

sed 's/^sys_interval/sys_intervall/' "$T/fieldmq.ini" > "$T/bad.ini"
"$FIELDMQ" --check-config -c "$T/bad.ini" > "$T/bad.out" 2>&1
rc=$?
check "a misspelt key exits 2" test $rc -eq 2
check "a misspelt key names file:line and the key" grep -q "bad.ini:6: \[broker\] sys_intervall: unknown key" "$T/bad.out"
"$FIELDMQ" -c "$T/bad.ini" > "$T/bad2.out" 2>&1
check "starting with a bad config exits 2" test $? -eq 2
"$FIELDMQ" -c "$T/nonexistent.ini" > /dev/null 2>&1
check "a missing config file exits 2" test $? -eq 2
"$FIELDMQ" --bogus > /dev/null 2>&1
check "an unknown option exits 2" test $? -eq 2

# --- run, watch, reload, stop
"$FIELDMQ" -c "$T/fieldmq.ini" > "$T/log" 2>&1 &
FPID=$!
PIDS+=("$FPID")
check "the broker listens" wait_port "$PORT"
timeout 5 mosquitto_sub -p "$PORT" -t 'fieldmq/it1/status' -C 1 -W 4 > "$T/status.out" 2>&1
check "the gateway status is retained online" grep -qx online "$T/status.out"
timeout 5 mosquitto_sub -p "$PORT" -t 'fieldmq/it1/dev1/status' -C 1 -W 4 > "$T/dev.out" 2>&1
check "a dead device is reported offline" grep -qx offline "$T/dev.out"
timeout 5 mosquitto_sub -p "$PORT" -t 'fieldmq/it1/dev1/p1' -C 1 -W 4 > "$T/p1.out" 2>&1
check "its point has quality bad" grep -q '"quality":"bad"' "$T/p1.out"
timeout 5 mosquitto_sub -p "$PORT" -t '$SYS/broker/uptime' -C 1 -W 4 > "$T/sys.out" 2>&1
check "\$SYS topics are served" test -s "$T/sys.out"

# A client that resets its connection while the broker still writes to it
# costs that connection only: SIGPIPE is ignored, so the write fails with
# EPIPE (found by the Paho Go suite, test_paho_go_fvt.sh: brokerd died with
# status 141 about once in 45 runs).
SIGIGN=$(awk '/^SigIgn:/ {print $2}' /proc/$FPID/status)
check "SIGPIPE is ignored by the daemon (SigIgn $SIGIGN)" test $(( 0x$SIGIGN >> 12 & 1 )) = 1

# SIGHUP with a broken new map: refused, the old map keeps running.
echo "[device:dev2]" >> "$T/devices.d/a.ini"
echo "hots = x" >> "$T/devices.d/a.ini"
kill -HUP "$FPID"
check "a bad map on SIGHUP is logged with file:line" wait_grep "a.ini:8: \[device:dev2\] hots: unknown key" "$T/log"
check "... and the daemon keeps running" kill -0 "$FPID"
# SIGHUP with a good new map: dev2 appears.
sed -i 's/^hots = x/host = 127.0.0.1\nport = 1\n[point:dev2\/p]\naddress = 5/' "$T/devices.d/a.ini"
kill -HUP "$FPID"
check "a good map on SIGHUP is loaded" wait_grep "reloaded (2 devices" "$T/log"
timeout 5 mosquitto_sub -p "$PORT" -t 'fieldmq/it1/dev2/status' -C 1 -W 4 > "$T/dev2.out" 2>&1
check "the new device is served" grep -qx offline "$T/dev2.out"

# A second instance on the same port fails with exit 1.
"$FIELDMQ" -c "$T/fieldmq.ini" > "$T/log2" 2>&1
check "a port in use exits 1" test $? -eq 1
check "... naming the cause" grep -qi "address already in use" "$T/log2"

t0=$(date +%s%N)
kill -TERM "$FPID"
wait_exit "$FPID" 20
t1=$(date +%s%N)
check "SIGTERM exits 0 (got $EXIT_STATUS)" test "$EXIT_STATUS" = 0
check "SIGTERM stops within 2 s ($(((t1 - t0) / 1000000)) ms)" test $(((t1 - t0) / 1000000)) -lt 2000
check "no error was logged but the refused reload" bash -c "! grep ' error ' '$T/log' | grep -v 'new device maps rejected'"
finish
