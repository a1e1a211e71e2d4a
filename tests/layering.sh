#!/usr/bin/env bash
# layering.sh - `make layering`: the rules of DESIGN.md section 2, checked.
#
#  1. Includes by folder: gateway/base includes libc only; broker/ only
#     broker/ and gateway/base/ (its glue, *_uv.c, gateway/tls/ too:
#     the TLS listeners; every file gateway/tls/mbed_lib.h, mbedTLS's headers
#     with calls through the table of the library loaded when needed); gateway/tls/ only itself and gateway/base/; store/ only store/ and gateway/base/; an
#     adapter only its own folder, adapters/adapter.h, broker/broker.h and
#     gateway/base/. <uv.h> only in glue (*_uv.c) in broker/ and adapters/;
#     <sqlite3.h> only in store/store_db.c; <modbus.h> only in the Modbus
#     glue; <ini.h> only in gateway/config.c.
#  2. Pure files (codecs, the Modbus poller) and core headers compile with a
#     poisoned <uv.h>, <sqlite3.h>, <modbus.h>, <ini.h> and <cJSON.h> in
#     front of the real ones, so a header that drags one in transitively is
#     caught too.
#  3. Calls, from the symbols each object file leaves undefined (nm): a pure
#     file calls no allocator, no clock, no logger and no libuv; a sans-I/O
#     core (CORES) may allocate and log but reads no clock and calls no libuv.
#
# Environment: BUILD (objects in $BUILD/obj), CC, CPPFLAGS, CFLAGS (as the
# build uses them). A new codec named *_codec.c is pure without being listed;
# other new pure files or cores go into PURE / CORES below.
set -u
cd "$(dirname "$0")/.."
: "${BUILD:=build}" "${CC:=cc}" "${CPPFLAGS:=-I. -D_GNU_SOURCE}" "${CFLAGS:=-std=gnu11}"

PURE="gateway/base/rw.c adapters/modbus/mbus_codec.c adapters/modbus/mbus_plan.c
	adapters/modbus/mbus_rtu.c adapters/modbus/mbus_poll.c broker/http.c broker/ws.c
	adapters/serial/serial_frame.c adapters/serial/serial_nmea.c adapters/serial/serial_value.c
	adapters/serial/serial_parse.c adapters/serial/serial_port.c adapters/serial/serial_keys.c
	adapters/coap/coap_srv_uri.c adapters/coap/coap_value.c"
PURE="$PURE $(ls broker/*_codec.c adapters/*/*_codec.c 2>/dev/null | tr '\n' ' ')"
# The metrics exposition writer and its histogram (the HTTP listener's /metrics).
PURE="$PURE gateway/base/hist.c gateway/metrics.c"
CORES="broker/topic.c broker/acl.c broker/broker.c broker/session.c broker/conn.c broker/conn_out.c
	adapters/mqttsn/mqttsn_gw.c adapters/mqttsn/mqttsn_client.c adapters/mqttsn/mqttsn_out.c
	gateway/uplink.c adapters/coap/coap_srv.c adapters/coap/coap_dev.c adapters/serial/serial_build.c"
CORES="$CORES broker/limits.c broker/session_life.c broker/client.c"
CORES="$CORES broker/auth.c broker/passwd.c gateway/base/arena.c"
CORES="$CORES gateway/uplink_queue.c gateway/uplink_drain.c"
CORES="$CORES gateway/uplink_forward.c gateway/uplink_session.c gateway/uplink_down.c"
CORE_HEADERS="gateway/base/base.h broker/broker.h broker/broker_int.h broker/mqtt_codec.h
	broker/mqtt_codec_int.h
	broker/http.h broker/ws.h broker/limits.h broker/proxy_codec.h gateway/tls/tls.h
	adapters/adapter.h adapters/modbus/modbus_adapter.h adapters/modbus/mbus_int.h
	adapters/modbus/mbus_poll.h adapters/mqttsn/mqttsn_codec.h adapters/mqttsn/mqttsn_int.h
	adapters/mqttsn/mqttsn_gw_int.h adapters/serial/serial_setup.h
	adapters/coap/coap_srv.h adapters/coap/coap_srv_int.h
	gateway/config.h gateway/reading.h adapters/coap/coap_adapter.h adapters/coap/coap_int.h
	adapters/coap/coap_uv.h"
CORE_HEADERS="$CORE_HEADERS gateway/base/hist.h gateway/metrics.h gateway/base/arena.h"
CORE_HEADERS="$CORE_HEADERS gateway/uplink_int.h"

ALLOC='malloc|calloc|realloc|free|strdup|strndup|gw_malloc|gw_calloc|gw_realloc|gw_free|gw_strdup'
CLOCK='gw_mono_ms|gw_now_ms|clock_gettime|time|gettimeofday|clock'
LOGGER='gw_log|gw_vlog|printf|fprintf|vfprintf|puts|fputs|syslog|vsyslog|perror'

fails=0
bad() {
	echo "layering: $*"
	fails=$((fails + 1))
}

# ------------------------------------------------------------- 1. includes
# quoted_ok FILE TARGET: may FILE include "TARGET" (resolved from the root)?
quoted_ok() {
	local f=$1 t=$2 dir=${1%/*}
	case $f in
	gateway/base/*) [[ $t == gateway/base/* ]] ;;
	# The broker's glue runs its TLS listeners on gateway/tls (shared with the uplink).
	broker/*_uv.c) [[ $t == broker/* || $t == gateway/base/* || $t == gateway/tls/* ]] ;;
	# mbed_lib.h stands in for <mbedtls/*.h> (mbedTLS loaded when first needed).
	broker/*) [[ $t == broker/* || $t == gateway/base/* || $t == gateway/tls/mbed_lib.h ]] ;;
	gateway/tls/*) [[ $t == gateway/tls/* || $t == gateway/base/* ]] ;;
	store/*) [[ $t == store/* || $t == gateway/base/* ]] ;;
	adapters/*/*)
		local own=${f#adapters/}
		own=adapters/${own%%/*}/
		[[ $t == "$own"* || $t == adapters/adapter.h || $t == broker/broker.h ||
			$t == gateway/base/* ]]
		;;
	*) true ;;
	esac
}

for f in $(git ls-files 'gateway/*.[ch]' 'broker/*.[ch]' 'store/*.[ch]' 'adapters/*.[ch]' 2>/dev/null); do
	[ -f "$f" ] || continue
	dir=${f%/*}
	while IFS= read -r line; do
		if [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
			t=${BASH_REMATCH[1]}
			[[ $t == */* ]] || t=$dir/$t
			quoted_ok "$f" "$t" || bad "$f includes \"${BASH_REMATCH[1]}\" (DESIGN.md section 2)"
		elif [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\<([^\>]+)\> ]]; then
			t=${BASH_REMATCH[1]}
			case $t in
			uv.h)
				case $f in
				gateway/base/*) bad "$f includes <uv.h>: gateway/base is libc only" ;;
				broker/* | adapters/*) [[ $f == *_uv.c ]] ||
					bad "$f includes <uv.h>: only glue (*_uv.c) may" ;;
				esac
				;;
			sqlite3.h) [ "$f" = store/store_db.c ] || bad "$f includes <sqlite3.h>: only store/store_db.c may" ;;
			modbus.h | modbus/*) [[ $f == adapters/modbus/*_uv.c ]] ||
				bad "$f includes <modbus.h>: only the Modbus glue may" ;;
			ini.h) [ "$f" = gateway/config.c ] || bad "$f includes <ini.h>: only gateway/config.c may" ;;
			*)
				[[ $f == gateway/base/* && $t != std*.h && $t != sys/* && $t != *.h ]] &&
					bad "$f includes <$t>"
				;;
			esac
		fi
	done <"$f"
done

# ------------------------------------------------- 2. poisoned compilation
poison=$BUILD/layering/poison
mkdir -p "$poison"
for h in uv.h sqlite3.h modbus.h ini.h cJSON.h; do
	printf '#error "<%s> reached a pure file or core header (DESIGN.md section 2)"\n' "$h" >"$poison/$h"
done
# The version macro loses its quotes on the way through make and the shell.
cppflags="-DFIELDMQ_VERSION=\"layering\""
for w in $CPPFLAGS; do
	[[ $w == -DFIELDMQ_VERSION=* ]] || cppflags="$cppflags $w"
done
compile() { # FILE: syntax check with the poisoned headers first
	local out
	if ! out=$($CC -I"$poison" $cppflags $CFLAGS -fsyntax-only -x c "$1" 2>&1); then
		bad "$1 does not compile without libuv/sqlite3/libmodbus/inih/cJSON:"
		echo "$out" | grep -m3 -E 'error|included from' | sed 's/^/    /'
	fi
}
for f in $PURE $CORES $CORE_HEADERS; do
	[ -f "$f" ] && compile "$f"
done

# ----------------------------------------------------------------- 3. calls
calls() { # FILE REGEX WHAT
	local o=$BUILD/obj/${1%.c}.o syms
	if [ ! -f "$o" ]; then
		bad "$o missing (build first)"
		return
	fi
	syms=$(nm -u "$o" | awk '{ print $NF }' | grep -E "^($2)$" | tr '\n' ' ')
	[ -z "$syms" ] || bad "$1 calls $syms($3)"
}
for f in $PURE; do
	[ -f "$f" ] || continue
	calls "$f" "$ALLOC|$CLOCK|$LOGGER|uv_.*" "a pure file: no allocation, clock, logging or libuv"
done
for f in $CORES; do
	[ -f "$f" ] || continue
	calls "$f" "$CLOCK|uv_.*" "a sans-I/O core takes the time from its glue and never calls libuv"
done

n=$(echo $PURE | wc -w)
c=$(echo $CORES | wc -w)
h=$(echo $CORE_HEADERS | wc -w)
if [ $fails -ne 0 ]; then
	echo "layering: $fails violation(s)"
	exit 1
fi
echo "layering: ok ($n pure files, $c cores, $h core headers; includes of every source file)"
