#!/usr/bin/env bash
# Modbus adapter throughput against the simulator: DEVICES TCP devices (each
# its own connection and worker) x POINTS uint16 points polled every POLL ms
# for SECONDS, once coalesced and once with one request per point. Prints
# points/s, requests per poll, the probe's CPU% and peak RSS.
# Usage: bench/modbus_bench.sh [DEVICES] [POINTS] [POLL_MS] [SECONDS]
set -eu
: "${BUILD:=build}"
DEVICES=${1:-100}
POINTS=${2:-100}
POLL=${3:-1000}
SECS=${4:-10}
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$(mktemp -d)
"$BUILD/sim/modbus_sim" --tcp 127.0.0.1:$port --regs tests/sim/modbus_regs.ini >"$out/sim.out" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 50); do grep -q ready "$out/sim.out" && break; sleep 0.1; done

run() { # label one_request_per_point
	local args=(--seconds "$SECS")
	local d p
	for d in $(seq 1 "$DEVICES"); do
		args+=(--bus "b$d,type=tcp,port=$port,timeout=1000" --dev "d$d,bus=b$d,poll=$POLL,one=$2")
		for p in $(seq 0 $((POINTS - 1))); do args+=(--pt "d$d/p$p,addr=$p"); done
	done
	/usr/bin/time -f "%e %U %S %M" -o "$out/time" "$BUILD/sim/modbus_probe" "${args[@]}" >"$out/ev" 2>"$out/err"
	read -r el us sy rss <"$out/time"
	tail -1 "$out/ev" | /usr/bin/python3 -c '
import json, sys
s = json.loads(sys.stdin.read()); el, us, sy, rss, secs, label = sys.argv[1:7]
polls = max(s["polls"], 1)
print("%-22s %8.0f points/s  %6.1f requests/poll  %5.1f%% CPU  %6.1f MB RSS  (%d polls, %d failures, %d overruns)"
      % (label, s["readings"] / float(secs), s["requests"] / polls,
         100 * (float(us) + float(sy)) / float(el), int(rss) / 1024.0, s["polls"], s["failures"], s["overruns"]))
' "$el" "$us" "$sy" "$rss" "$SECS" "$1"
}
echo "modbus: $DEVICES devices x $POINTS points every ${POLL} ms for ${SECS} s"
run coalesced 0
run one_request_per_point 1
