#!/usr/bin/env bash
# CoAP devices, client side: build/fieldmq observes RESOURCES resources of the
# CoAP simulator (build/sim/coap_sim --bench RESOURCES: /r/0 .. /r/N-1, text
# counters, every one changed and notified every PERIOD ms), one point each
# (observe = yes, publish = every_poll), one device, on 127.0.0.1.
# After WARM s (registrations), a window of SECONDS:
#   notif/s   notifications the adapter took ($SYS/fieldmq/coap/client/notifications, delta)
#   read/s    readings it produced ($SYS/fieldmq/coap/client/readings, delta)
#   mqtt/s    readings that reached a mosquitto_sub on fieldmq/bench/# (by receive count)
#   CPU%      fieldmq's utime+stime (/proc/PID/stat) over the window, % of one core
#   RSS       fieldmq's VmRSS at the end of the window
#   sim CPU%  the simulator's, for scale (libcoap's server does the same work per notification)
# SIMFLAGS=--non makes the simulator's notifications always NON (see coap_sim.c: with
# libcoap's default pacing the server, not the client, limits the rate to one client).
# Usage: bench/coap_client_bench.sh [RESOURCES] [SECONDS] ["PERIOD_MS ..."] (one row per period and sim mode)
set -eu
: "${BUILD:=build}"
N=${1:-1000}
SECS=${2:-10}
PERIODS=${3:-"1000 200"}
WARM=${WARM:-5}

tcpport() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
udpport() { /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
out=$(mktemp -d)
sim= fq= sub= sys=
stop() {
	local p
	for p in "$@"; do kill "$p" 2>/dev/null || true; done
	for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
trap 'stop $sys $sub $fq $sim; rm -rf "$out"' EXIT
waitfor() { # FILE PATTERN: up to 10 s
	local _
	for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "coap_client_bench: no '$2' in $1" >&2
	return 1
}
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks=$(getconf CLK_TCK)

one() { # PERIOD SIMFLAGS: one row
	PERIOD=$1 SIMFLAGS=$2
	uport=$(udpport)
	mport=$(tcpport)
	"$BUILD/sim/coap_sim" --listen 127.0.0.1:$uport --bench "$N" --period "$PERIOD" $SIMFLAGS >"$out/sim.out" 2>&1 &
	sim=$!
	waitfor "$out/sim.out" ready
	mkdir -p "$out/devices.d"
	{
		printf '[device:dev]\nprotocol = coap\nurl = coap://127.0.0.1:%d\npoll = 10s\ntimeout = 10s\n' "$uport"
		for i in $(seq 0 $((N - 1))); do
			printf '[point:dev/r%d]\npath = /r/%d\nobserve = yes\ntype = uint32\npublish = every_poll\n' "$i" "$i"
		done
	} >"$out/devices.d/bench.ini"
	printf '[gateway]\nid = bench\ndata_dir = %s\nlog_level = warning\n[broker]\nlisten = 127.0.0.1:%d\npersist = no\nsys_interval = 1s\n' \
		"$out" "$mport" >"$out/fieldmq.ini"
	"$BUILD/fieldmq" -c "$out/fieldmq.ini" >"$out/fq.log" 2>&1 &
	fq=$!
	for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$mport) 2>/dev/null && break; sleep 0.1; done
	mosquitto_sub -p "$mport" -t 'fieldmq/bench/dev/#' >"$out/sub" 2>/dev/null &
	sub=$!
	mosquitto_sub -p "$mport" -v -t '$SYS/fieldmq/coap/client/#' >"$out/sys" 2>/dev/null &
	sys=$!
	sleep "$WARM"
	fig() { grep "^\$SYS/fieldmq/coap/client/$1 " "$out/sys" | tail -1 | awk '{ print $2 }'; }
	sleep 1.1 # a fresh $SYS round
	n0=$(fig notifications) r0=$(fig readings) m0=$(wc -l <"$out/sub") c0=$(cputicks $fq) s0=$(cputicks $sim)
	t0=$(date +%s.%N)
	sleep "$SECS"
	sleep 1.1
	n1=$(fig notifications) r1=$(fig readings) m1=$(wc -l <"$out/sub") c1=$(cputicks $fq) s1=$(cputicks $sim)
	t1=$(date +%s.%N)
	rss=$(awk '/^VmRSS:/ { print $2 }' /proc/$fq/status)
	regs=$(fig registrations) fails=$(fig failures)
	/usr/bin/python3 - "$N" "$PERIOD" "$t0" "$t1" "$n0" "$n1" "$r0" "$r1" "$m0" "$m1" "$c0" "$c1" "$s0" "$s1" "$ticks" "$rss" "$regs" "$fails" "${SIMFLAGS:-con-every-5}" <<-'PY'
	import sys
	(n, period, t0, t1, n0, n1, r0, r1, m0, m1, c0, c1, s0, s1, tk, rss, regs, fails, mode) = sys.argv[1:]
	dt = float(t1) - float(t0)
	f = lambda a, b: (int(b) - int(a)) / dt
	print("%9s %10.0f %8.0f %8.0f %8.0f %5.1f %8.1f %9.1f %14s %9s" % (
	    n, int(n) * 1000.0 / int(period), f(n0, n1), f(r0, r1), f(m0, m1),
	    100.0 * (int(c1) - int(c0)) / int(tk) / dt, int(rss) / 1024.0,
	    100.0 * (int(s1) - int(s0)) / int(tk) / dt, regs, fails) + "  %-9s %.1f s" % (mode, dt))
	PY
	stop $sys $sub $fq $sim
	sim= fq= sub= sys=
}

echo "resources  offered/s  notif/s   read/s   mqtt/s  CPU%  RSS(MB)  sim CPU%  registrations  failures  sim-mode  window"
for p in $PERIODS; do
	one "$p" ""
	one "$p" --non
done
echo "sim-mode: con-every-5 = libcoap's default (every fifth notification CON); --non = always NON."
echo "The \$SYS figures are published 1 s apart: rates carry +-1 s of jitter over the window."
