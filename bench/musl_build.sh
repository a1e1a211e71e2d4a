#!/usr/bin/env bash
# Builds fieldmq against musl libc (issue 15 item 4: what the idle footprint is
# on OpenWrt's libc), for bench/footprint.sh (MUSL=1). Not part of make test.
#
#  1. Debian's source packages of the dependencies, downloaded with a private
#     apt configuration (the system's apt sources are left alone): bookworm's
#     libuv1, sqlite3, libmodbus, mbedtls (2.28), cjson, libcoap3; libinih from
#     trixie (59: bookworm's 55 is listed but its files are gone from the
#     mirror).
#  2. each built with musl-gcc (Debian's musl-tools) as shared libraries with
#     Debian's patches applied and, for SQLite, Debian's compile options, into
#     build/musl/prefix (nothing goes to the system's paths). libcoap without
#     DTLS, as OpenWrt builds it.
#  3. build/musl/fieldmq: `make` with CC=musl-gcc, PKG_CONFIG_PATH on the prefix,
#     an rpath to build/musl/prefix/lib; it runs with /lib/ld-musl-x86_64.so.1.
#
# Needs root for apt-get install musl-tools (only if missing). About 10 minutes
# on 2 cores. Rerun: steps already done are skipped (delete build/musl to redo).
set -eu
cd "$(dirname "$0")/.."
top=$PWD
M=$top/build/musl
P=$M/prefix
S=$M/src
J=${JOBS:-2}
mkdir -p "$M" "$S" "$P/lib" "$P/include"

command -v musl-gcc >/dev/null || apt-get install -y -q musl musl-dev musl-tools
export CC=musl-gcc
# musl-gcc sees only musl's headers; libuv and libcoap need the kernel's.
mkdir -p "$M/kinc"
for d in linux asm-generic mtd; do ln -sfn "/usr/include/$d" "$M/kinc/$d"; done
ln -sfn "/usr/include/$(gcc -dumpmachine)/asm" "$M/kinc/asm"
export CFLAGS="-O2 -g -fPIC -isystem $M/kinc"
export LDFLAGS="-L$P/lib -Wl,-rpath,$P/lib"
export PKG_CONFIG_PATH=$P/lib/pkgconfig PKG_CONFIG_LIBDIR=$P/lib/pkgconfig

fetch() { # SUITE PKG...: Debian source packages into $S (dpkg-source -x)
	local suite=$1 a=$M/apt-$1
	shift
	mkdir -p "$a/lists/partial"
	echo "deb-src http://deb.debian.org/debian $suite main" >"$a/sources.list"
	local o=(-o "Dir::Etc::SourceList=$a/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$a/lists" -o Debug::NoLocking=1)
	[ -e "$a/lists/.done" ] || { apt-get "${o[@]}" update -q >/dev/null && touch "$a/lists/.done"; }
	(cd "$S" && apt-get "${o[@]}" source --download-only -q "$@" >/dev/null 2>&1) || true
	for p in "$@"; do
		ls -d "$S/$p"-[0-9]*/ >/dev/null 2>&1 && continue
		(cd "$S" && dpkg-source -x --no-check "$(ls "$p"_*.dsc | tail -1)" >/dev/null)
	done
}
srcdir() { ls -d "$S/$1"-[0-9]*/ | tail -1; }
done_() { [ -e "$M/.done-$1" ]; }
mark() { touch "$M/.done-$1"; echo "musl_build: $1 built" >&2; }

fetch bookworm libuv1 sqlite3 libmodbus mbedtls cjson libcoap3
fetch trixie libinih

cmk() { # NAME SRC ARGS...
	local n=$1 s=$2
	shift 2
	cmake -S "$s" -B "$M/b-$n" -G Ninja -DCMAKE_C_COMPILER=musl-gcc -DCMAKE_BUILD_TYPE=None \
		-DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_INSTALL_PREFIX="$P" -DCMAKE_INSTALL_LIBDIR=lib \
		-DCMAKE_SHARED_LINKER_FLAGS="$LDFLAGS" "$@" >"$M/log-$n" 2>&1
	ninja -C "$M/b-$n" -j"$J" install >>"$M/log-$n" 2>&1 || { tail -30 "$M/log-$n" >&2; exit 1; }
}
acf() { # NAME SRC CONFIGURE-ARGS...
	local n=$1 s=$2
	shift 2
	rm -rf "$M/b-$n" && mkdir -p "$M/b-$n"
	(cd "$s" && { [ -x configure ] || autoreconf -fi; }) >"$M/log-$n" 2>&1
	(cd "$M/b-$n" && "$s/configure" --prefix="$P" --libdir="$P/lib" --enable-shared --disable-static "$@" &&
		make -j"$J" && make install) >>"$M/log-$n" 2>&1 || { tail -30 "$M/log-$n" >&2; exit 1; }
}

done_ libuv || { cmk libuv "$(srcdir libuv1)" -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF; mark libuv; }
done_ cjson || { cmk cjson "$(srcdir cjson)" -DENABLE_CJSON_TEST=OFF -DBUILD_SHARED_LIBS=ON \
	-DENABLE_CJSON_UTILS=OFF -DENABLE_CUSTOM_COMPILER_FLAGS=OFF; mark cjson; }
# Debian's config.h patches are applied by dpkg-source (threading, ...).
done_ mbedtls || { cmk mbedtls "$(srcdir mbedtls)" -DUSE_SHARED_MBEDTLS_LIBRARY=ON \
	-DUSE_STATIC_MBEDTLS_LIBRARY=OFF -DENABLE_TESTING=OFF -DENABLE_PROGRAMS=OFF \
	-DMBEDTLS_FATAL_WARNINGS=OFF; mark mbedtls; }
done_ inih || { # Debian builds it with meson (not installed here): the same one file.
	s=$(srcdir libinih)
	$CC $CFLAGS -shared -Wl,-soname,libinih.so.1 $LDFLAGS -o "$P/lib/libinih.so.1" "$s/ini.c"
	ln -sfn libinih.so.1 "$P/lib/libinih.so"
	cp "$s/ini.h" "$P/include/"
	mkdir -p "$P/lib/pkgconfig"
	printf 'prefix=%s\nName: inih\nDescription: inih (musl)\nVersion: 59\nLibs: -L${prefix}/lib -linih\nCflags: -I${prefix}/include\n' \
		"$P" >"$P/lib/pkgconfig/inih.pc"
	mark inih
}
done_ libmodbus || { acf libmodbus "$(srcdir libmodbus)" --without-documentation --disable-tests; mark libmodbus; }
done_ sqlite || { # Debian's CFLAGS (debian/rules), but -O2 -g as above.
	d=$(grep -A18 '^export CFLAGS += ' "$(srcdir sqlite3)/debian/rules" | grep -o -- '-DSQLITE_[A-Z0-9_]*\(=[0-9]*\)\?' | tr '\n' ' ')
	CFLAGS="$CFLAGS -fno-strict-aliasing $d" acf sqlite "$(srcdir sqlite3)" --disable-tcl --disable-readline \
		--enable-threadsafe --enable-load-extension
	mark sqlite
}
done_ libcoap || { acf libcoap "$(srcdir libcoap3)" --disable-dtls --disable-documentation --disable-examples \
	--disable-tests --disable-doxygen --disable-manpages; mark libcoap; }

make -s BUILD="$M/obj" CC=musl-gcc CFLAGS="-O2 -g -isystem $M/kinc" LDFLAGS="$LDFLAGS" \
	PKG_CONFIG_PATH="$PKG_CONFIG_PATH" "$M/obj/fieldmq" >"$M/log-fieldmq" 2>&1 ||
	{ tail -30 "$M/log-fieldmq" >&2; exit 1; }
cp "$M/obj/fieldmq" "$M/fieldmq"
echo "musl_build: $M/fieldmq" >&2
