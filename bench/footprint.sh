#!/usr/bin/env bash
# Footprint (issue 15 item 4), printed as Markdown tables:
#  1. the stripped size of build/fieldmq built with -Os for x86-64 (this
#     host's gcc), arm64 and armhf (Debian's cross gcc, `make cross-daemon`):
#     the file after `strip`, and text/data/bss (`size`). Every adapter this
#     tree has is always built in; the shared libraries (libuv, libmodbus,
#     SQLite, inih, cJSON, mbedTLS, libcoap) are separate packages and not
#     counted (their sizes on this host are listed below the table).
#  2. the daemon idle: from /proc/PID/status after IDLE s (default 10),
#     VmRSS (every resident page mapped, shared library pages included:
#     what top and ps show), RssAnon (its own memory: heap, stacks, relocated
#     library data), RssFile (pages of files: the binary and the shared
#     libraries, shared with every process that maps them), Pss (smaps_rollup:
#     each shared page divided by the processes mapping it) and Threads, with
#       demo          etc/fieldmq.ini + etc/devices.d/demo.ini as shipped (one
#                     Modbus TCP device of the simulator, 7 points), on free
#                     ports (make run's demo_serial.ini and demo_coap.ini are
#                     left out: their simulators are make run's)
#       all-adapters  the demo device, a serial GPS (serial_sim --pty, the
#                     shipped serial-gps example), a CoAP device observed
#                     (libcoap's coap-server-notls, /time), the MQTT-SN
#                     gateway on UDP loopback and the uplink connected to a
#                     Mosquitto
#     for FIELDMQ (default $BUILD/fieldmq, the -O2 -g build of `make`) and,
#     when x86_64 is in ARCHS, the stripped -Os build of table 1; EXTRA
#     ("NAME=PATH ...") adds more binaries (e.g. main's, for a before/after
#     in one run); MUSL=1 adds build/musl/fieldmq, the same tree linked with
#     musl libc and dependencies built with musl-gcc (bench/musl_build.sh,
#     run first if that binary is missing; libcoap without DTLS there).
#     Then Mosquitto idle with a one-listener config (the
#     package users would otherwise install), measured the same way.
#  3. where the resident pages of each process go (smaps, KB): Rss and Pss by
#     mapping, grouped (libc = glibc's libc + libm + ld.so, or musl's
#     ld-musl, which is its libc, libm and loader in one file).
set -eu
cd "$(dirname "$0")/.."
: "${BUILD:=build}"
: "${FIELDMQ:=$BUILD/fieldmq}"
: "${ARCHS:=x86_64 arm64 armhf}"
IDLE=${IDLE:-10}
freeport() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
out=$(mktemp -d)
pids=
trap 'for p in $pids; do kill $p 2>/dev/null || true; done; rm -rf "$out"' EXIT

echo "| build | stripped bytes | KB | text | data | bss |"
echo "|---|---:|---:|---:|---:|---:|"
for a in $ARCHS; do
	case $a in
	x86_64) t= dir=build/os-x86_64
		make -s BUILD=$dir CFLAGS=-Os $dir/fieldmq >"$out/make-$a" 2>&1 ;;
	arm64) t=aarch64-linux-gnu- dir=build/os-arm64 ;;
	armhf) t=arm-linux-gnueabihf- dir=build/os-armhf ;;
	*) echo "footprint: unknown arch $a" >&2; exit 1 ;;
	esac
	[ $a = x86_64 ] || make -s cross-daemon ARCH=$a CROSS_CFLAGS=-Os CROSS_OUT=$dir >"$out/make-$a" 2>&1 ||
		{ cat "$out/make-$a" >&2; exit 1; }
	${t}strip -o "$dir/fieldmq.stripped" "$dir/fieldmq"
	sz=$(stat -c %s "$dir/fieldmq.stripped")
	read -r text data bss _ < <(${t}size "$dir/fieldmq.stripped" | tail -1)
	printf "| %s -Os | %d | %.0f | %d | %d | %d |\n" "$a" "$sz" "$(echo "$sz / 1024" | bc -l)" "$text" "$data" "$bss"
done
echo
echo -n "Shared libraries it links on this host (x86-64, stripped as Debian ships them, KB; not linked, loaded with dlopen only when the configuration needs them: libcoap (and the TLS library of its flavour) for CoAP, mbedTLS for TLS, a password_file or a WebSocket listener):"
for l in $(ldd "$FIELDMQ" | awk '$3 ~ /^\// { print $3 }' | grep -Ev 'libc\.so|libm\.so|ld-linux|libpthread|libdl|librt'); do
	printf " %s %.0f," "$(basename "$l")" "$(echo "$(stat -L -c %s "$l") / 1024" | bc -l)"
done
echo
echo

status() { # PID: VmRSS|RssAnon|RssFile|Pss|Threads, MB
	awk '/^(VmRSS|RssAnon|RssFile|Threads):/ { v[$1] = $2 } /^Pss:/ { v[$1] = $2 }
		END { printf "%.1f|%.1f|%.1f|%.1f|%d\n", v["VmRSS:"] / 1024, v["RssAnon:"] / 1024,
			v["RssFile:"] / 1024, v["Pss:"] / 1024, v["Threads:"] }' "/proc/$1/status" "/proc/$1/smaps_rollup"
}
row() { IFS='|' read -r rss anon file pss thr < <(status "$2")
	printf "| %s | %s | %s | %s | %s | %s |\n" "$1" "$rss" "$anon" "$file" "$pss" "$thr"; }
# NAME PID: Rss/Pss in KB by group of mappings, one line "NAME|group=rss/pss|..." into $out/groups.
groups() {
	python3 - "$1" "$2" >>"$out/groups" <<'PY'
import re, sys
name, pid = sys.argv[1:]
order = ["libc", "SQLite", "mbedTLS", "libcoap", "OpenSSL", "other libraries", "the binary",
         "heap", "other anonymous", "stack"]
g = {k: [0, 0] for k in order}
cur = None
for line in open("/proc/%s/smaps" % pid):
    f = line.split()
    if re.match(r"^[0-9a-f]+-[0-9a-f]+$", f[0]):
        path = f[5] if len(f) > 5 else ""
        base = path.rsplit("/", 1)[-1]
        if path == "[heap]":
            cur = "heap"
        elif path == "[stack]":
            cur = "stack"
        elif not path or path.startswith("["):
            cur = "other anonymous"
        elif re.match(r"(libc|libm|ld-linux.*|ld-musl.*|libpthread|libdl|librt)[.-]", base):
            cur = "libc"
        elif base.startswith("libsqlite3"):
            cur = "SQLite"
        elif base.startswith("libmbed"):
            cur = "mbedTLS"
        elif base.startswith("libcoap"):
            cur = "libcoap"
        elif re.match(r"lib(ssl|crypto|gnutls|nettle|hogweed|gmp)", base):
            cur = "OpenSSL"
        elif base.startswith("lib") and ".so" in base:
            cur = "other libraries"
        elif path.endswith(("fieldmq", "fieldmq.stripped", "mosquitto")):
            cur = "the binary"
        else:
            cur = "other anonymous"  # e.g. SQLite's -shm file
    elif f[0] in ("Rss:", "Pss:") and cur:
        g[cur][0 if f[0] == "Rss:" else 1] += int(f[1])
print(name + "|" + "|".join("%s=%d/%d" % (k, v[0], v[1]) for k, v in g.items()))
PY
}

sport=$(freeport)
"$BUILD/sim/modbus_sim" --tcp 127.0.0.1:$sport --regs tests/sim/modbus_regs.ini --animate >"$out/sim.out" 2>&1 &
pids="$pids $!"
"$BUILD/sim/serial_sim" --pty "$out/gps" --mode nmea --rate 5 >"$out/serial.out" 2>&1 &
pids="$pids $!"
for _ in $(seq 50); do grep -q ready "$out/sim.out" && grep -q ready "$out/serial.out" && break; sleep 0.1; done
coport=$(freeport)
coap-server-notls -A 127.0.0.1 -p "$coport" >"$out/coap.out" 2>&1 &
pids="$pids $!"

cport=$(freeport)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$cport" >"$out/mosquitto.conf"
mosquitto -c "$out/mosquitto.conf" >"$out/mosquitto.log" 2>&1 &
mq=$!
pids="$pids $mq"

daemon() { # NAME: a copy of etc/ with free ports and, for all-adapters, more
	local d=$out/$1 bport
	mkdir -p "$d/devices.d"
	cp etc/fieldmq.ini "$d/"
	cp etc/devices.d/demo.ini "$d/devices.d/"
	bport=$(freeport)
	sed -i -e "s|^listen = 127.0.0.1:1883|listen = 127.0.0.1:$bport|" -e "s|^data_dir = .*|data_dir = data|" "$d/fieldmq.ini"
	sed -i "s|^port = 15020|port = $sport|" "$d/devices.d/demo.ini"
	if [ "$1" = all-adapters ]; then
		sed "s|^device = /dev/serial/by-id/.*|device = $out/gps|" etc/devices.d/serial-gps.ini.example >"$d/devices.d/gps.ini"
		printf '[device:clock]\nprotocol = coap\nurl = coap://127.0.0.1:%s\npoll = 10s\n[point:clock/time]\npath = /time\nobserve = yes\nformat = text\ntype = string\n' "$coport" >"$d/devices.d/coap.ini"
		python3 - "$d/fieldmq.ini" "$(freeport)" "$cport" <<'PY'
import re, sys
path, sn, cloud = sys.argv[1:]
s = open(path).read()
def sect(name, body):
    global s
    s = re.sub(r"(?m)^\[%s\]\n" % re.escape(name), "[%s]\n%s\n" % (name, body), s, count=1)
sect("mqttsn", "enabled = yes\nlisten = 127.0.0.1:%s" % sn)
sect("uplink", "enabled = yes\nurl = mqtt://127.0.0.1:%s" % cloud)
s = re.sub(r"(?m)^(enabled = no|url = mqtts://cloud.example.com:8883|listen = 0.0.0.0:1884)$", r";\1", s)
open(path, "w").write(s)
PY
	fi
	"$FIELDMQ" --check-config -c "$d/fieldmq.ini" >"$d/check" 2>&1 || { cat "$d/check" >&2; return 1; }
	"$FIELDMQ" -c "$d/fieldmq.ini" >"$d/log" 2>&1 &
	echo $! >"$d/pid"
}
echo "| process, idle ${IDLE} s | VmRSS MB | RssAnon MB | RssFile MB | Pss MB | threads |"
echo "|---|---:|---:|---:|---:|---:|"
bins="fieldmq=$FIELDMQ"
[[ " $ARCHS " == *" x86_64 "* ]] && bins="$bins fieldmq-Os-stripped=build/os-x86_64/fieldmq.stripped"
if [ "${MUSL:-0}" = 1 ]; then
	[ -x build/musl/fieldmq ] || bench/musl_build.sh >&2
	bins="$bins fieldmq-musl=build/musl/fieldmq"
fi
bins="$bins ${EXTRA:-}"
for b in $bins; do
	bname=${b%%=*}
	FIELDMQ=${b#*=}
	for c in demo all-adapters; do
		rm -rf "${out:?}/$c"
		daemon $c
		p=$(cat "$out/$c/pid")
		pids="$pids $p"
		sleep "$IDLE"
		kill -0 "$p" 2>/dev/null || { cat "$out/$c/log" >&2; exit 1; }
		row "$bname, $c ($(cat "$out/$c"/devices.d/*.ini | grep -c '^\[device:') devices)" "$p"
		groups "$bname, $c" "$p"
		[ $c = demo ] || grep -i 'error\|offline' "$out/$c/log" >&2 || true
		kill "$p"
		wait "$p" 2>/dev/null || true
	done
done
sleep 1
mqname="mosquitto $(mosquitto -h 2>/dev/null | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p'), one listener"
row "$mqname" "$mq"
groups "$mqname" "$mq"
echo
echo "Where the resident pages go (KB, Rss / Pss; libc = glibc's libc + libm + ld.so, or musl's ld-musl; OpenSSL = libssl + libcrypto):"
echo
IFS='|' read -r -a first <"$out/groups"
printf "| process |"; for kv in "${first[@]:1}"; do printf " %s |" "${kv%%=*}"; done; echo
printf "|---|"; for _ in "${first[@]:1}"; do printf -- "---:|"; done; echo
while IFS='|' read -r -a f; do
	printf "| %s |" "${f[0]}"; for kv in "${f[@]:1}"; do printf " %s |" "${kv#*=}"; done; echo
done <"$out/groups"
