#!/usr/bin/env bash
# test_deb.sh - the Debian package built by `make deb`, installed on this
# machine with apt as a user would, then purged:
#   - contents, conffiles, Depends;
#   - `apt install ./fieldmq_*.deb`: the fieldmq user (in dialout), the config
#     root:fieldmq 0640, the installed fieldmq --check-config (as fieldmq)
#     passes on the shipped config;
#   - the unit: `systemd-analyze verify` clean, `systemd-analyze security`
#     exposure <= 2.9 ("OK" or better);
#   - the installed daemon under a NOTIFY_SOCKET of the test's own
#     (tests/integration/test_notify.py: READY=1, STATUS=, WATCHDOG=1,
#     STOPPING=1), as the fieldmq user;
#   - an upgrade (the same package as version -2) keeps the data dir and a
#     locally changed config;
#   - purge removes the data dir and the user.
# Needs root (CI runs as root). Closes with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
root=$PWD
version=$(cat VERSION)
arch=$(dpkg --print-architecture)
deb=$root/build/deb/fieldmq_${version}-1_${arch}.deb
tmp=$(mktemp -d /tmp/fieldmq-deb.XXXXXX)
pass=0
fail=0
export DEBIAN_FRONTEND=noninteractive

ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAILED: $*"; }
purge() { apt-get purge -y fieldmq >"$tmp/purge.log" 2>&1; }
cleanup() { dpkg -s fieldmq >/dev/null 2>&1 && purge; rm -rf "$tmp"; }
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "test_deb.sh: needs root (apt install)"; echo "0 passed, 1 failed"; exit 1; }
[ -f "$deb" ] || { echo "test_deb.sh: $deb missing (make deb)"; echo "0 passed, 1 failed"; exit 1; }
if dpkg -s fieldmq >/dev/null 2>&1; then
	echo "test_deb.sh: fieldmq is already installed here; not touching it"
	echo "0 passed, 1 failed"
	exit 1
fi

# ------------------------------------------------------------- contents
dpkg-deb -c "$deb" | awk '{print $1, $6}' >"$tmp/contents"
for f in '-rwxr-xr-x ./usr/sbin/fieldmq' '-rw-r--r-- ./lib/systemd/system/fieldmq.service' \
	'-rw-r----- ./etc/fieldmq/fieldmq.ini' '-rw-r--r-- ./etc/fieldmq/devices.d/demo.ini.example'; do
	grep -qxF -- "$f" "$tmp/contents" && ok "contains $f" || bad "missing $f"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$tmp/conffiles"
grep -qx /etc/fieldmq/fieldmq.ini "$tmp/conffiles" && ok "fieldmq.ini is a conffile" || bad "conffiles: $(cat "$tmp/conffiles")"
depends=$(dpkg-deb -f "$deb" Depends)
# libmbed*: not linked (loaded with dlopen), added by debian/rules from the Makefile's probe.
for l in libuv1 libmodbus5 libsqlite3-0 libinih1 libcjson1 libmbedtls14 libmbedx509-1 libmbedcrypto7 adduser; do
	case "$depends" in *"$l"*) ok "Depends on $l" ;; *) bad "Depends lacks $l: $depends" ;; esac
done

# -------------------------------------------------------------- install
if apt-get install -y "$deb" >"$tmp/install.log" 2>&1; then
	ok "apt install ./$(basename "$deb")"
else
	bad "apt install"; tail -20 "$tmp/install.log"
fi
id fieldmq >"$tmp/id" 2>&1 && ok "user fieldmq made: $(cat "$tmp/id")" || bad "no fieldmq user"
grep -q '(dialout)' "$tmp/id" && ok "fieldmq is in dialout" || bad "fieldmq not in dialout"
perm=$(stat -c '%U:%G %a' /etc/fieldmq/fieldmq.ini)
[ "$perm" = "root:fieldmq 640" ] && ok "config root:fieldmq 640" || bad "config is $perm"
if runuser -u fieldmq -- /usr/sbin/fieldmq --check-config -c /etc/fieldmq/fieldmq.ini >"$tmp/cc" 2>&1; then
	ok "installed fieldmq --check-config (as fieldmq): $(cat "$tmp/cc")"
else
	bad "--check-config of the installed config"; cat "$tmp/cc"
fi
grep -q '^data_dir = /var/lib/fieldmq$' /etc/fieldmq/fieldmq.ini && ok "data_dir = /var/lib/fieldmq" ||
	bad "data_dir: $(grep '^data_dir' /etc/fieldmq/fieldmq.ini)"

# ----------------------------------------------------------------- unit
unit=/lib/systemd/system/fieldmq.service
if systemd-analyze verify "$unit" >"$tmp/verify" 2>&1 && [ ! -s "$tmp/verify" ]; then
	ok "systemd-analyze verify: clean"
else
	bad "systemd-analyze verify"; cat "$tmp/verify"
fi
(cd / && systemd-analyze security --offline=true "$unit") >"$tmp/security" 2>&1
score=$(sed -n 's/.*Overall exposure level for fieldmq.service: \([0-9.]*\).*/\1/p' "$tmp/security")
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.9) }'; then
	ok "systemd-analyze security: $(grep 'Overall exposure' "$tmp/security")"
else
	bad "systemd-analyze security: '$score'"; tail -5 "$tmp/security"
fi
for k in 'Type=notify' 'ExecReload=/bin/kill -HUP $MAINPID' 'StateDirectory=fieldmq' 'User=fieldmq' \
	'SupplementaryGroups=dialout' 'WatchdogSec=30s' 'ExecStartPre=/usr/sbin/fieldmq --check-config -c /etc/fieldmq/fieldmq.ini'; do
	grep -qxF -- "$k" "$unit" && ok "unit: $k" || bad "unit lacks $k"
done

# ----------------------- the installed daemon and systemd's notifications
# As the fieldmq user, in a folder of its own (the test writes its configs there).
chmod 0755 "$tmp"
mkdir -m 0777 "$tmp/notify"
cp tests/integration/test_notify.py tests/integration/itlib.py "$tmp/notify/"
if runuser -u fieldmq -- env FIELDMQ=/usr/sbin/fieldmq TMPDIR="$tmp/notify" \
	/usr/bin/python3 "$tmp/notify/test_notify.py" >"$tmp/notify.log" 2>&1; then
	ok "installed daemon: READY=1, STATUS=, WATCHDOG=1, STOPPING=1 on its NOTIFY_SOCKET"
else
	bad "installed daemon notifications"; cat "$tmp/notify.log"
fi

# -------------------------------------------------------------- upgrade
# The data dir systemd would have made, with a database in it, and a local
# change to the config; then the same package as version -2.
install -d -o fieldmq -g fieldmq -m 0750 /var/lib/fieldmq
echo keep >/var/lib/fieldmq/fieldmq.db
sed -i 's/^log_level = info/log_level = debug/' /etc/fieldmq/fieldmq.ini
dpkg-deb -R "$deb" "$tmp/v2"
sed -i "s/^Version: .*/Version: ${version}-2/" "$tmp/v2/DEBIAN/control"
dpkg-deb -b "$tmp/v2" "$tmp/fieldmq_${version}-2_${arch}.deb" >/dev/null
if apt-get install -y "$tmp/fieldmq_${version}-2_${arch}.deb" >"$tmp/upgrade.log" 2>&1; then
	ok "upgrade to ${version}-2"
else
	bad "upgrade"; tail -20 "$tmp/upgrade.log"
fi
[ "$(dpkg-query -W -f='${Version}' fieldmq)" = "${version}-2" ] && ok "version ${version}-2 installed" || bad "version"
[ "$(cat /var/lib/fieldmq/fieldmq.db 2>/dev/null)" = keep ] && ok "upgrade kept the data dir" || bad "data dir lost"
grep -q '^log_level = debug$' /etc/fieldmq/fieldmq.ini && ok "upgrade kept the changed config" || bad "config replaced"
perm=$(stat -c '%U:%G %a' /etc/fieldmq/fieldmq.ini)
[ "$perm" = "root:fieldmq 640" ] && ok "config still root:fieldmq 640" || bad "config is $perm after upgrade"

# ---------------------------------------------------------------- purge
if purge; then ok "apt purge"; else bad "apt purge"; cat "$tmp/purge.log"; fi
[ ! -e /var/lib/fieldmq ] && ok "purge removed /var/lib/fieldmq" || bad "/var/lib/fieldmq left"
[ ! -e /etc/fieldmq/fieldmq.ini ] && ok "purge removed the config" || bad "config left"
id fieldmq >/dev/null 2>&1 && bad "user fieldmq left" || ok "purge removed the user"

echo
echo "deb: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
