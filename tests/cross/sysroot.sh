#!/bin/sh
# sysroot.sh ARCH DIR - unpack Debian's ARCH (armhf, arm64, s390x) builds of
# the libraries fieldmq links (their -dev packages and runtime libraries)
# into DIR, for `make cross` and `make cross-test`.
#
# The packages come from Debian's archive through apt (`dpkg --add-architecture
# ARCH` once, as root) and are unpacked, not installed: a multiarch install of
# a Multi-Arch: same package must have the very version installed for the
# host, so it breaks as soon as the two archives differ (bookworm-security
# carries no s390x builds, so libmodbus, libssl3 or sqlite can be a security
# update ahead on amd64), and it would tie every later host upgrade to them.
# The C library and the compiler come from gcc-TRIPLET and
# libc6-dev-ARCH-cross (Architecture: all, installed normally).
set -eu
arch=$1
dir=$2
pkgs="libuv1 libuv1-dev libmodbus5 libmodbus-dev libcoap3 libcoap3-dev libssl3
	libmbedcrypto7 libmbedx509-1 libmbedtls14 libmbedtls-dev libsqlite3-0 libsqlite3-dev
	libinih1 libinih-dev libcjson1 libcjson-dev libcmocka0 libcmocka-dev ${CROSS_EXTRA_PKGS:-}"

if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
	echo "sysroot.sh: $arch is not a dpkg architecture here; run as root:" >&2
	echo "  dpkg --add-architecture $arch && apt-get update" >&2
	exit 1
fi
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp/debs"
chmod 0777 "$dir.tmp/debs" # apt drops its privileges to _apt while downloading
cd "$dir.tmp/debs"
list=
for p in $pkgs; do list="$list $p:$arch"; done
# apt-get download fetches into the current directory, as any user.
apt-get download $list >/dev/null
cd ..
for d in debs/*.deb; do
	dpkg-deb -x "$d" .
done
rm -rf debs
cd ..
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "sysroot.sh: $arch libraries unpacked in $dir"
