#!/usr/bin/env bash
# test_openwrt.sh - the OpenWrt package (openwrt/net/fieldmq) checked without
# the real SDK, with the stand-in in sdk-standin/ (a copy of the one in
# shared/openwrt-sdk-standin: OpenWrt's rules.mk meanings, BuildPackage,
# fake-dump/fake-build/fake-install/fake-check):
#   1. `make dist` is reproducible and its tarball builds;
#   2. the package's metadata: DEPENDS, USERID, conffiles, version;
#   3. Build/Compile runs our Makefile from the tarball with the SDK's CC,
#      TARGET_CFLAGS, TARGET_LDFLAGS and pkg-config; Package/install puts
#      every file where it belongs with its mode; the installed binary accepts
#      the installed config;
#   4. the procd init script, sourced with stand-ins of procd's functions:
#      what it passes to procd, the data dir it makes, a refused config.
# Closes with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/tests/packaging
pkg=$root/openwrt/net/fieldmq
tmp=$(mktemp -d /tmp/fieldmq-openwrt.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAILED: $*"; }
# expect NAME FILE PATTERN: a line of FILE matches the extended regex PATTERN.
expect() { if grep -Eq -- "$3" "$2"; then ok "$1"; else bad "$1: no line matching '$3' in:"; sed 's/^/    /' "$2"; fi; }
refuse() { if grep -Eq -- "$3" "$2"; then bad "$1: '$3' found in:"; sed 's/^/    /' "$2"; else ok "$1"; fi; }

version=$(cat VERSION)

# ---------------------------------------------------------------- 1. dist
make -s dist >"$tmp/dist1" 2>&1 || { cat "$tmp/dist1"; bad "make dist"; }
h1=$(cut -d' ' -f1 "build/fieldmq-$version.tar.gz.sha256")
make -s dist >"$tmp/dist2" 2>&1
h2=$(cut -d' ' -f1 "build/fieldmq-$version.tar.gz.sha256")
[ -n "$h1" ] && [ "$h1" = "$h2" ] && ok "make dist is reproducible ($h1)" || bad "make dist: $h1 then $h2"
tar -C "$tmp" -xzf "build/fieldmq-$version.tar.gz"
src=$tmp/fieldmq-$version
[ -f "$src/Makefile" ] && [ -f "$src/gateway/main.c" ] && [ ! -e "$src/openwrt" ] &&
	ok "the tarball holds the sources under fieldmq-$version/ and not openwrt/" ||
	bad "tarball layout: $(ls "$src" 2>&1 | tr '\n' ' ')"
grep -Eq '^PKG_HASH:=[0-9a-f]{64}$' "$pkg/Makefile" && ok "PKG_HASH is a sha256" || bad "PKG_HASH"
grep -q "^PKG_VERSION:=$version\$" "$pkg/Makefile" && ok "PKG_VERSION is VERSION ($version)" ||
	bad "PKG_VERSION differs from VERSION $version"
refuse "no git source or placeholder URL" "$pkg/Makefile" 'PKG_SOURCE_PROTO|PKG_MIRROR_HASH|example\.invalid'

# ------------------------------------------------------------ 2. metadata
cp -r "$here/sdk-standin" "$tmp/sdk"
chmod -R u+w "$tmp/sdk"
sdk() { make --no-print-directory -C "$pkg" -f Makefile TOPDIR="$tmp/sdk" FAKE_SRC="$src" "$@"; }
sdk fake-dump >"$tmp/dump" 2>&1 || bad "fake-dump"
expect "Depends lists OpenWrt's package names" "$tmp/dump" \
	'^Depends: .*\+libuv .*\+libmodbus .*\+libsqlite3 .*\+libinih .*\+cJSON .*\+libmbedtls .*\+libcoap'
expect "Userid: fieldmq user and group, in dialout (gid 20)" "$tmp/dump" '^Userid: fieldmq:fieldmq:dialout=20$'
expect "conffiles" "$tmp/dump" '^Conffiles: /etc/config/fieldmq /etc/fieldmq/fieldmq.ini /etc/fieldmq/devices.d/$'
expect "version" "$tmp/dump" "^Version: $version-r[0-9]+\$"

# --------------------------------------------------- 3. build and install
# A pkg-config that logs its calls, where the SDK keeps its wrapper.
mkdir -p "$tmp/host/bin"
printf '#!/bin/sh\necho "$*" >> %s/pkg-config.log\nexec /usr/bin/pkg-config "$@"\n' "$tmp" >"$tmp/host/bin/pkg-config"
chmod +x "$tmp/host/bin/pkg-config"
if sdk STAGING_DIR_HOST="$tmp/host" TARGET_CFLAGS="-Os -pipe -DFIELDMQ_SDK_CFLAGS" \
	TARGET_LDFLAGS="-Wl,--as-needed -Wl,-z,now" fake-check >"$tmp/check" 2>&1; then
	ok "fake-check (build from the tarball, install, conffiles, init script)"
else
	bad "fake-check"; tail -40 "$tmp/check"
fi
expect "compiled with TARGET_CFLAGS" "$tmp/check" '^(cc|gcc) .*-Os -pipe -DFIELDMQ_SDK_CFLAGS .*-c -o build/obj/gateway/main.o'
expect "linked with TARGET_LDFLAGS" "$tmp/check" '^(cc|gcc) .*-Wl,--as-needed -Wl,-z,now +-o build/fieldmq'
[ -s "$tmp/pkg-config.log" ] && grep -q -- '--libs' "$tmp/pkg-config.log" &&
	ok "the SDK's pkg-config was used" || bad "the SDK's pkg-config was not called"
expect "binary 0755" "$tmp/check" '^755 fieldmq/usr/sbin/fieldmq$'
expect "init script 0755" "$tmp/check" '^755 fieldmq/etc/init.d/fieldmq$'
expect "fieldmq.ini 0640 (group fieldmq set by the init script)" "$tmp/check" '^640 fieldmq/etc/fieldmq/fieldmq.ini$'
expect "UCI config 0600" "$tmp/check" '^600 fieldmq/etc/config/fieldmq$'
expect "demo map as an example" "$tmp/check" '^644 fieldmq/etc/fieldmq/devices.d/demo.ini.example$'
inst=$tmp/sdk/build/root/fieldmq
expect "installed config: data_dir in RAM" "$inst/etc/fieldmq/fieldmq.ini" '^data_dir = /var/lib/fieldmq$'
expect "installed config: the queue in RAM bounded to 16M" "$inst/etc/fieldmq/fieldmq.ini" '^queue_max_bytes = 16M$'
expect "installed config: the data_dir trade-off explained" "$inst/etc/fieldmq/fieldmq.ini" '^;   a USB stick or SD card'
expect "installed config: logs to syslog (logread)" "$inst/etc/fieldmq/fieldmq.ini" '^log_target = syslog$'
expect "installed config: id defaults to the host name" "$inst/etc/fieldmq/fieldmq.ini" '^;id = gw1$'
if "$inst/usr/sbin/fieldmq" --check-config -c "$inst/etc/fieldmq/fieldmq.ini" >"$tmp/cc" 2>&1; then
	ok "the installed fieldmq accepts the installed config"
else
	bad "--check-config of the installed config"; cat "$tmp/cc"
fi

# ------------------------------------------------------ 4. the init script
# A config tree, a fieldmq stub recording its arguments, and stubs for what
# needs root or a router (chown, chgrp, logger).
etc=$tmp/etc
mkdir -p "$etc/devices.d" "$tmp/stub"
cp "$inst/etc/fieldmq/fieldmq.ini" "$etc/fieldmq.ini"
sed -i "s|^data_dir = .*|data_dir = ../data|" "$etc/fieldmq.ini"
printf '[bus:rs485]\ntype = rtu\ndevice = /dev/ttyUSB0 ; the RS-485 adapter\n[bus:gps]\ntype = serial\n  device=/dev/ttyS1\n' \
	>"$etc/devices.d/lines.ini"
cat >"$tmp/stub/fieldmq" <<STUB
#!/bin/sh
echo "fieldmq \$*" >> $tmp/calls
[ -f $tmp/invalid ] && { echo "fieldmq.ini:7: [gateway] dta_dir: unknown key" >&2; exit 2; }
exit 0
STUB
for c in chown chgrp; do printf '#!/bin/sh\necho "%s $*" >> %s/calls\n' "$c" "$tmp" >"$tmp/stub/$c"; done
printf '#!/bin/sh\necho "logger $* $(cat)" >> %s/calls\n' "$tmp" >"$tmp/stub/logger"
chmod +x "$tmp/stub/"*
sed "s|^PROG=/usr/sbin/fieldmq|PROG=$tmp/stub/fieldmq|" "$pkg/files/fieldmq.init" >"$tmp/fieldmq.init"
mkdir -p "$tmp/lib" && : >"$tmp/lib/libcoap-3.so.3"
mock() { LIBDIR="$tmp/lib" PATH="$tmp/stub:$PATH" PROCD_MOCK="$here/sdk-standin/procd-mock.sh" \
	sh "$here/procd-mock-more.sh" "$tmp/fieldmq.init" "$@" UCI_main_config="$etc/fieldmq.ini"; }

: >"$tmp/calls"
mock reload UJAIL=/bin/true >"$tmp/procd" 2>&1
cat "$tmp/procd" "$tmp/calls" | sed 's/^/    | /'
expect "START/STOP/USE_PROCD" "$tmp/procd" '^START=95 STOP=10 USE_PROCD=1$'
expect "--check-config before start" "$tmp/calls" "^fieldmq --check-config -c $etc/fieldmq.ini\$"
expect "command" "$tmp/procd" "^set_param command $tmp/stub/fieldmq -c $etc/fieldmq.ini\$"
expect "runs as fieldmq" "$tmp/procd" '^set_param user fieldmq$'
expect "respawn" "$tmp/procd" '^set_param respawn 3600 5 0$'
expect "stderr to the log" "$tmp/procd" '^set_param stderr 1$'
expect "restart when a config file changed" "$tmp/procd" "^set_param file $etc/fieldmq.ini $etc/devices.d/lines.ini\$"
expect "reload trigger on the UCI config" "$tmp/procd" '^reload_trigger fieldmq$'
expect "jail with the log socket" "$tmp/procd" '^jail fieldmq log$'
expect "jail: config read-only" "$tmp/procd" "^jail_mount $etc\$"
expect "jail: data dir writable" "$tmp/procd" "^jail_mount_rw $etc/../data\$"
expect "jail: serial ports of the device maps" "$tmp/procd" '^jail_mount_rw /dev/ttyS1$'
expect "jail: serial port with a comment" "$tmp/procd" '^jail_mount_rw /dev/ttyUSB0$'
expect "jail: libcoap (loaded with dlopen, not a DT_NEEDED)" "$tmp/procd" "^jail_mount $tmp/lib/libcoap-3.so.3\$"
expect "data dir made (relative to the config) and given to fieldmq" "$tmp/calls" "^chown fieldmq:fieldmq $etc/../data\$"
[ -d "$tmp/data" ] && ok "data dir exists" || bad "data dir $tmp/data not made"
expect "config readable by group fieldmq" "$tmp/calls" "^chgrp -R fieldmq $etc\$"
expect "reload checks the config" "$tmp/calls" "^fieldmq --check-config -c $etc/fieldmq.ini\$"
expect "reload = SIGHUP" "$tmp/procd" "^send_signal fieldmq \\* HUP\$"

: >"$tmp/calls"
mock start UJAIL=/nonexistent UCI_main_jail=0 >"$tmp/procd" 2>&1
refuse "no jail when disabled" "$tmp/procd" '^jail'

# A refused config: nothing is started, the error is in logread.
: >"$tmp/calls"
touch "$tmp/invalid"
mock reload UJAIL=/bin/true >"$tmp/procd" 2>&1
refuse "an invalid config starts nothing" "$tmp/procd" '^(open_instance|set_param command)'
expect "its errors go to logread" "$tmp/calls" '^logger -t fieldmq -p daemon.err fieldmq.ini:7: \[gateway\] dta_dir: unknown key$'
refuse "reload with an invalid config sends no SIGHUP" "$tmp/procd" '^send_signal'
rm -f "$tmp/invalid"

: >"$tmp/calls"
mock start UCI_main_enabled=0 >"$tmp/procd" 2>&1
refuse "enabled=0 starts nothing" "$tmp/procd" '^open_instance'

echo
echo "openwrt: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
