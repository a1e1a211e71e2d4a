#!/usr/bin/env bash
# fetch.sh DIR - mbedTLS 3.6 for the TLS tests, from Debian 13 (trixie):
# libmbedtls-dev and its runtime libraries are fetched with `apt-get download`
# into DIR and unpacked with `dpkg -x` into DIR/root. Nothing is installed and
# the system's apt configuration is not changed: apt runs on a private sources
# list, state and cache under DIR, with the mirror the system's own sources
# name and the suite switched to trixie. Run again, it does nothing.
set -euo pipefail
dir=$(realpath -m "${1:?usage: fetch.sh DIR}")
root=$dir/root
[ -f "$root/usr/include/mbedtls/build_info.h" ] && exit 0
mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/debs"

# The system's mirror (deb822 or one-line format), not a host of our own.
uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
	grep -v security | head -n 1 || true)
[ -n "$uri" ] || uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++)
	if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$uri" ] || { echo "fetch.sh: no Debian mirror in the apt sources" >&2; exit 1; }
# Only this machine's architecture (CI adds foreign ones for cross builds).
echo "deb [arch=$(dpkg --print-architecture) signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" \
	>"$dir/apt/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$dir/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
	-o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache"
	-o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" -qq update
# libmbedtls-dev and the runtime libraries it depends on (their names carry the sonames).
pkgs=$(apt-cache "${apt_opts[@]}" depends libmbedtls-dev | awk '/Depends: libmbed/ { print $2 }' |
	sort -u | tr '\n' ' ')
(cd "$dir/debs" && apt-get "${apt_opts[@]}" -qq download libmbedtls-dev $pkgs)
rm -rf "$root.tmp"
for d in "$dir"/debs/*.deb; do
	dpkg -x "$d" "$root.tmp"
done
mv "$root.tmp" "$root"
ls "$dir"/debs
