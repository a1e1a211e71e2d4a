# fieldmq - one non-recursive GNU Makefile.
#
#   make            build build/fieldmq (and the test simulators)
#   make run        deps + build + run with etc/fieldmq.ini, data under ./var/
#   make test       test-deps + build + unit tests, fuzz corpus replay, integration tests, format and layering checks
#   make asan       the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      benchmarks against Mosquitto (writes BENCHMARKS.md figures to build/bench/)
#   make soak       SOAK_MINUTES (30) of load with a cloud outage: RSS, fds, CPU, queue, loss (build/soak/)
#   make install    $(DESTDIR)$(PREFIX)/sbin/fieldmq and $(DESTDIR)/etc/fieldmq/
#
# Honours CC CFLAGS CPPFLAGS LDFLAGS PKG_CONFIG PREFIX DESTDIR (OpenWrt and cross builds).

.DEFAULT_GOAL := all

PKG_CONFIG ?= pkg-config
PREFIX ?= /usr
BUILD ?= build
CFLAGS ?= -O2 -g
SAN ?=
PYTHON ?= /usr/bin/python3

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.1.0)

# Debian ships libcoap in three variants and no plain libcoap-3.pc: take the first present.
# The daemon takes only its headers and loads a flavour with dlopen() when the configuration
# has CoAP, one with DTLS for coaps:// (adapters/coap/coap_lib.h): no CoAP, no libcoap (nor
# OpenSSL) in memory. Programs that call libcoap directly (the CoAP simulator) link COAP_LIBS.
COAP_PC = $(firstword $(foreach p,libcoap-3 libcoap-3-openssl libcoap-3-gnutls libcoap-3-notls,\
	$(shell $(PKG_CONFIG) --exists $(p) 2>/dev/null && echo $(p))))
PKGS = libuv libmodbus sqlite3 inih libcjson
COAP_LIBS = $(shell $(PKG_CONFIG) --libs $(COAP_PC))
# mbedTLS 2.28 on Debian ships no .pc file; 3.x on OpenWrt links the same way. The daemon
# does not link it: it loads libmbedcrypto / libmbedtls with dlopen() when the configuration
# has TLS, a password_file or a WebSocket listener (gateway/tls/mbed_lib.h), by the sonames of
# the libraries these flags make the linker take: a probe program linked with them, its
# DT_NEEDED read with READELF (binutils' readelf reads every target's ELF).
MBEDTLS_LIBS ?= -lmbedtls -lmbedx509 -lmbedcrypto
READELF ?= readelf

WARN := -std=gnu11 -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-declarations -Werror
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) $(COAP_PC))
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS))
ALL_CPPFLAGS = -I. -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DFIELDMQ_VERSION='"$(VERSION)"' $(CPPFLAGS)
ALL_CFLAGS = $(WARN) $(CFLAGS) $(SAN) $(PKG_CFLAGS)
ALL_LIBS = $(PKG_LIBS) -ldl -lpthread -lm
CMOCKA_CFLAGS = $(shell $(PKG_CONFIG) --cflags cmocka)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka)

# ------------------------------------------------------------------ modules
# Each module is a folder compiled into one static library. Link order is
# top to bottom: a module may use only those listed after it.
MODULES := gw ad_modbus ad_mqttsn ad_coap ad_serial store broker tls base
gw_DIR := gateway
ad_modbus_DIR := adapters/modbus
ad_mqttsn_DIR := adapters/mqttsn
ad_coap_DIR := adapters/coap
ad_serial_DIR := adapters/serial
store_DIR := store
broker_DIR := broker
tls_DIR := gateway/tls
base_DIR := gateway/base

# Which libraries the tests of a folder link (the folder's module and what it may use).
TESTLIBS_tests/base := base
TESTLIBS_tests/broker := broker base
TESTLIBS_tests/store := store base
TESTLIBS_tests/adapters/modbus := ad_modbus broker base
TESTLIBS_tests/adapters/mqttsn := ad_mqttsn broker base
TESTLIBS_tests/adapters/coap := ad_coap broker base
TESTLIBS_tests/adapters/serial := ad_serial broker base
TESTLIBS_tests/gateway := $(MODULES)

# Generated sources a module compiles too (MODULE_GEN_<module>, under $(BUILD)/gen).
MODULE_GEN_gw := $(BUILD)/gen/status_page.c
define module_rules
$(1)_SRCS := $$(filter-out gateway/main.c,$$(wildcard $$($(1)_DIR)/*.c)) $$(MODULE_GEN_$(1))
$(1)_OBJS := $$(patsubst %.c,$(BUILD)/obj/%.o,$$($(1)_SRCS))
$(BUILD)/lib$(1).a: $$($(1)_OBJS)
	@mkdir -p $$(@D)
	@rm -f $$@
	$$(AR) rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

LIBFILES := $(foreach m,$(MODULES),$(BUILD)/lib$(m).a)

# The status page of the HTTP listener as a C array (no external assets; status.h).
$(BUILD)/gen/status_page.c: gateway/status_page.html
	@mkdir -p $(@D)
	{ echo '/* Generated from gateway/status_page.html by the Makefile. */'; \
	  echo '#include "gateway/status.h"'; echo 'const char gw_status_page[] = {'; \
	  od -An -v -tx1 $< | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; echo '0 };'; \
	  echo 'const size_t gw_status_page_len = sizeof(gw_status_page) - 1;'; } > $@
# The sonames of mbedTLS that MBEDTLS_LIBS and LDFLAGS link (mbed_lib.h). Fails when the
# probe does not need both libraries (e.g. static ones only): no guess is made.
$(BUILD)/gen/mbed_sonames.h: Makefile
	@mkdir -p $(@D)
	printf 'int main(void)\n{\n\treturn 0;\n}\n' > $(@D)/mbed_probe.c
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $(@D)/mbed_probe $(@D)/mbed_probe.c \
		-Wl,--no-as-needed $(MBEDTLS_LIBS)
	$(READELF) -d $(@D)/mbed_probe | sed -n \
		-e 's/.*(NEEDED).*\[\(libmbedcrypto\.so[^]]*\)\].*/#define GW_MBEDCRYPTO_SONAME "\1"/p' \
		-e 's/.*(NEEDED).*\[\(libmbedx509\.so[^]]*\)\].*/#define GW_MBEDX509_SONAME "\1"/p' \
		-e 's/.*(NEEDED).*\[\(libmbedtls\.so[^]]*\)\].*/#define GW_MBEDTLS_SONAME "\1"/p' > $@.tmp
	@for n in MBEDCRYPTO MBEDX509 MBEDTLS; do grep -q GW_$${n}_SONAME $@.tmp || \
		{ echo "$@: no lib$$n soname in the probe's DT_NEEDED" | tr A-Z a-z; exit 1; }; done
	mv $@.tmp $@
$(BUILD)/obj/gateway/tls/mbed_lib.o: $(BUILD)/gen/mbed_sonames.h
$(BUILD)/obj/gateway/tls/mbed_lib.o: ALL_CPPFLAGS += -I$(BUILD)/gen
# A module's own dependencies come right after it: the broker's TLS transports use tls.
MODULE_DEPS_broker := tls
libs_of = $(foreach m,$(1),$(BUILD)/lib$(m).a $(foreach d,$(MODULE_DEPS_$(m)),$(BUILD)/lib$(d).a))

# ------------------------------------------------------------------- daemon
all: $(BUILD)/fieldmq sims

$(BUILD)/fieldmq: $(BUILD)/obj/gateway/main.o $(LIBFILES)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# Test sources get cmocka's flags too.
$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -MMD -MP -c -o $@ $<

# ------------------------------------------------------------------- tests
UNIT_SRCS := $(sort $(wildcard tests/*/test_*.c tests/adapters/*/test_*.c))
UNIT_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

# A test may carry extra link flags (e.g. -Wl,--wrap=...) in test_x.ldflags.
define unit_rules
$(patsubst tests/%.c,$(BUILD)/tests/%,$(1)): $(patsubst %.c,$(BUILD)/obj/%.o,$(1)) \
		$$(call libs_of,$$(TESTLIBS_$(patsubst %/,%,$(dir $(1)))))
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_CFLAGS) $$(LDFLAGS) -o $$@ $$^ $$(CMOCKA_LIBS) $$(ALL_LIBS) \
		$$(shell cat $(1:.c=.ldflags) 2>/dev/null)
endef
$(foreach t,$(UNIT_SRCS),$(eval $(call unit_rules,$(t))))

# Fuzz targets: tests/fuzz/fuzz_NAME.c defines LLVMFuzzerTestOneInput. For
# `make test` each is linked with a replay driver that runs its corpus
# (tests/fuzz/corpus/NAME/); `make fuzz` builds real libFuzzer binaries with clang.
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/replay.o $(LIBFILES)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LIBS)

# Simulators and load generators: tests/sim/*.c and bench/*.c, one program each.
SIM_SRCS := $(sort $(wildcard tests/sim/*.c))
SIM_BINS := $(patsubst tests/sim/%.c,$(BUILD)/sim/%,$(SIM_SRCS))
$(BUILD)/sim/%: $(BUILD)/obj/tests/sim/%.o $(LIBFILES)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LIBS) $(COAP_LIBS)
sims: $(SIM_BINS)

BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBFILES)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(ALL_LIBS) $(MBEDTLS_LIBS)

fuzz-libs: $(LIBFILES)

test-bins: $(BUILD)/fieldmq sims $(UNIT_BINS) $(FUZZ_BINS)

# The runner prints every cmocka summary and a closing "N passed, N failed".
check: test-bins
	BUILD=$(BUILD) PYTHON=$(PYTHON) tests/run_tests.sh $(UNIT_BINS) -- $(FUZZ_BINS)

test: test-deps
	$(MAKE) test-bins
	$(MAKE) format-check
	$(MAKE) layering
	$(MAKE) test-mbedtls3
	$(MAKE) check

# mbedTLS 3.6 (OpenWrt's) beside Debian 12's 2.28: Debian 13's libmbedtls-dev and
# runtime libraries, fetched with apt-get download and unpacked with dpkg -x into
# build/mbedtls3/root (tests/mbedtls3/fetch.sh; never installed), fieldmq and the
# TLS / WebSocket tests built against them in build/mbedtls3/build and run there.
MBEDTLS3_ROOT = $(abspath build/mbedtls3/root)
MBEDTLS3_LIB = $(MBEDTLS3_ROOT)/usr/lib/$(shell $(CC) -dumpmachine)
MBEDTLS3_BUILD = build/mbedtls3/build
MBEDTLS3_UNITS = $(MBEDTLS3_BUILD)/tests/broker/test_ws $(MBEDTLS3_BUILD)/tests/broker/test_http \
	$(MBEDTLS3_BUILD)/tests/broker/test_passwd $(MBEDTLS3_BUILD)/tests/broker/test_auth \
	$(MBEDTLS3_BUILD)/tests/gateway/test_mbed_lib
MBEDTLS3_FUZZ = $(MBEDTLS3_BUILD)/fuzz/fuzz_ws_frame $(MBEDTLS3_BUILD)/fuzz/fuzz_http_request \
	$(MBEDTLS3_BUILD)/fuzz/fuzz_passwd
test-mbedtls3:
	tests/mbedtls3/fetch.sh build/mbedtls3
	$(MAKE) BUILD=$(MBEDTLS3_BUILD) CPPFLAGS="-I$(MBEDTLS3_ROOT)/usr/include" \
		LDFLAGS="-L$(MBEDTLS3_LIB) -Wl,-rpath,$(MBEDTLS3_LIB)" \
		$(MBEDTLS3_BUILD)/fieldmq $(MBEDTLS3_UNITS) $(MBEDTLS3_FUZZ)
	$(MBEDTLS3_BUILD)/fieldmq --version | grep -qi 'mbed TLS 3\.6'
	BUILD=$(MBEDTLS3_BUILD) PYTHON=$(PYTHON) INTEGRATION="tests/integration/test_broker_tls.py \
		tests/integration/test_broker_ws.py tests/integration/test_uplink_tls.py \
		tests/integration/test_broker_auth.py tests/integration/test_mbed_lazy.py" \
		tests/run_tests.sh $(MBEDTLS3_UNITS) -- $(MBEDTLS3_FUZZ)

# DESIGN.md section 2 checked: includes by folder, pure files and core headers
# without libuv/sqlite3/libmodbus, no clock/malloc/logger calls in pure files.
layering: $(LIBFILES)
	@BUILD=$(BUILD) CC="$(CC)" CPPFLAGS="$(ALL_CPPFLAGS)" CFLAGS="$(WARN) $(PKG_CFLAGS)" tests/layering.sh

ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
asan: test-deps
	$(MAKE) BUILD=build/asan SAN="$(ASAN_FLAGS)" CFLAGS="-O1 -g" test-bins
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
		$(MAKE) BUILD=build/asan SAN="$(ASAN_FLAGS)" CFLAGS="-O1 -g" check

FUZZ_CC ?= clang
fuzz:
	$(MAKE) BUILD=build/libfuzzer CC=$(FUZZ_CC) SAN="-fsanitize=fuzzer-no-link,address,undefined" \
		CFLAGS="-O1 -g" fuzz-libs
	@for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
		echo "$(FUZZ_CC) $$f -> build/libfuzzer/$$n"; \
		$(FUZZ_CC) -I. -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -o build/libfuzzer/$$n \
			$$f $(foreach m,$(MODULES),build/libfuzzer/lib$(m).a) $(ALL_LIBS) || exit 1; done
	@echo "run e.g.: build/libfuzzer/fuzz_mqtt_codec tests/fuzz/corpus/mqtt_codec -max_total_time=60"

bench: test-deps all $(BENCH_BINS)
	BUILD=$(BUILD) bench/all.sh

# Not in `make test` or CI: it takes SOAK_MINUTES (default 30). See bench/soak.sh.
soak: test-deps all sims $(BUILD)/bench/mqtt_load
	BUILD=$(BUILD) bench/soak.sh

# ----------------------------------------------------------------- running
# The demo device maps (etc/devices.d/demo.ini, demo_coap.ini) poll the Modbus
# simulator and observe the CoAP one, started here beside the daemon and stopped with it.
run: deps all
	@mkdir -p var
	@$(BUILD)/sim/modbus_sim --tcp 127.0.0.1:15020 --regs tests/sim/modbus_regs.ini --animate & \
	sim=$$!; $(BUILD)/sim/coap_sim --listen 127.0.0.1:15683 --period 2000 >/dev/null & \
	csim=$$!; $(BUILD)/sim/serial_sim --pty /tmp/fieldmq-demo-serial --mode mixed --rate 2 >/dev/null & \
	ssim=$$!; trap 'kill $$sim $$csim $$ssim 2>/dev/null' EXIT; \
	echo "fieldmq: broker on 127.0.0.1:1883 - watch it with: mosquitto_sub -t 'fieldmq/#' -v"; \
	$(BUILD)/fieldmq -c etc/fieldmq.ini

# -------------------------------------------------------------- dependencies
# What building and running needs (make run, make): nothing test-only.
RUN_DEB_PKGS := gcc make pkg-config libuv1-dev libmodbus-dev libcoap3-dev libmbedtls-dev \
	libsqlite3-dev libinih-dev libcjson-dev mosquitto-clients
# What the tests and benchmarks need on top (make test, make bench, .ci/run).
TEST_DEB_PKGS := libcmocka-dev libcoap3-bin sqlite3 mosquitto python3 python3-paho-mqtt \
	python3-pymodbus python3-scapy socat openssl clang-format iproute2 procps \
	golang-go golang-github-eclipse-paho.mqtt.golang-dev nodejs chromium haproxy \
	prometheus python3-prometheus-client python3-jinja2 python3-nmea2 gnuplot-nox curl systemd
# npm packages of the tests (MQTT.js): tests/integration/node/package-lock.json.
NODE_TEST_DIR := tests/integration/node
NODE_MODULES := $(NODE_TEST_DIR)/node_modules/.package-lock.json

# install_pkgs PACKAGES: install what is missing (as root) or print the command.
define install_pkgs
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing: $$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
		echo "missing packages; run as root:"; \
		echo "  apt-get install -y $$missing"; exit 1; \
	fi
endef
deps:
	$(call install_pkgs,$(RUN_DEB_PKGS))
test-deps:
	$(call install_pkgs,$(RUN_DEB_PKGS) $(TEST_DEB_PKGS))
	@# npm comes with Debian's npm package, or inside a nodejs that provides it.
	@command -v npm >/dev/null || { if [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y npm; else \
		echo "missing npm; run as root: apt-get install -y npm"; exit 1; fi; }
	$(MAKE) node-deps
node-deps: $(NODE_MODULES)
$(NODE_MODULES): $(NODE_TEST_DIR)/package.json $(NODE_TEST_DIR)/package-lock.json
	cd $(NODE_TEST_DIR) && npm ci --no-audit --no-fund
	touch $@

# ---------------------------------------------------- packages and platforms
# make cross ARCH=arm64|armhf|s390x   build/cross-ARCH/: the daemon, every unit test and fuzz replay,
#                                     built with Debian's cross compiler against Debian's ARCH libraries
# make cross-test ARCH=...            run them all under qemu-user-static
# make dist                           build/fieldmq-VERSION.tar.gz (the OpenWrt package's source)
# make deb                            build/deb/fieldmq_VERSION-1_ARCH.deb (dpkg-buildpackage, debian/)
# make package-test                   OpenWrt package checks, .deb build + install + systemd checks
ARCH ?= armhf
CROSS_TRIPLET_arm64 := aarch64-linux-gnu
CROSS_TRIPLET_armhf := arm-linux-gnueabihf
CROSS_TRIPLET_s390x := s390x-linux-gnu
CROSS_QEMU_arm64 := qemu-aarch64-static
CROSS_QEMU_armhf := qemu-arm-static
CROSS_QEMU_s390x := qemu-s390x-static
CROSS_T = $(CROSS_TRIPLET_$(ARCH))
CROSS_BUILD = build/cross-$(ARCH)
CROSS_SYSROOT = $(CURDIR)/$(CROSS_BUILD)/sysroot
CROSS_LIBDIR = $(CROSS_SYSROOT)/usr/lib/$(CROSS_T)
# What a cross build needs on the host (the ARCH libraries are unpacked by tests/cross/sysroot.sh).
CROSS_DEB_PKGS = qemu-user-static $(foreach a,armhf s390x arm64,gcc-$(CROSS_TRIPLET_$(a)) libc6-dev-$(a)-cross)
# The sub-make's environment carries pkg-config's sysroot, so $(shell $(PKG_CONFIG) ...) sees it.
CROSS_ENV = PKG_CONFIG_SYSROOT_DIR=$(CROSS_SYSROOT) \
	PKG_CONFIG_LIBDIR=$(CROSS_LIBDIR)/pkgconfig:$(CROSS_SYSROOT)/usr/share/pkgconfig
CROSS_OUT = $(CROSS_BUILD)
CROSS_VARS = BUILD=$(CROSS_OUT) CC=$(CROSS_T)-gcc AR=$(CROSS_T)-ar CFLAGS="$(CROSS_CFLAGS)" \
	CPPFLAGS="-isystem $(CROSS_SYSROOT)/usr/include -isystem $(CROSS_SYSROOT)/usr/include/$(CROSS_T)" \
	LDFLAGS="-L$(CROSS_LIBDIR) -Wl,-rpath-link,$(CROSS_LIBDIR)"
CROSS_CFLAGS ?= -O2 -g
# qemu-user runs a foreign binary with the cross C library and the unpacked libraries.
CROSS_RUN = $(CROSS_QEMU_$(ARCH)) -L /usr/$(CROSS_T) -E LD_LIBRARY_PATH=$(CROSS_LIBDIR)

cross-check-arch:
	@test -n "$(CROSS_T)" || { echo "ARCH must be arm64, armhf or s390x"; exit 1; }
$(CROSS_BUILD)/sysroot/.done: tests/cross/sysroot.sh
	tests/cross/sysroot.sh $(ARCH) $(CROSS_SYSROOT)
	touch $@
cross: cross-check-arch cross-deps
	$(MAKE) $(CROSS_BUILD)/sysroot/.done
	$(CROSS_ENV) $(MAKE) $(CROSS_VARS) $(CROSS_BUILD)/fieldmq $(UNIT_BINS:$(BUILD)/%=$(CROSS_BUILD)/%) \
		$(FUZZ_BINS:$(BUILD)/%=$(CROSS_BUILD)/%)
	file $(CROSS_BUILD)/fieldmq
# make cross-daemon ARCH=... [CROSS_CFLAGS=-Os CROSS_OUT=build/os-ARCH]: the daemon alone.
cross-daemon: cross-check-arch cross-deps
	$(MAKE) $(CROSS_BUILD)/sysroot/.done
	$(CROSS_ENV) $(MAKE) $(CROSS_VARS) $(CROSS_OUT)/fieldmq
cross-test: cross
	BUILD=$(CROSS_BUILD) PYTHON=$(PYTHON) SKIP_INTEGRATION=1 TEST_WRAPPER="$(CROSS_RUN)" \
		tests/run_tests.sh $(UNIT_BINS:$(BUILD)/%=$(CROSS_BUILD)/%) -- $(FUZZ_BINS:$(BUILD)/%=$(CROSS_BUILD)/%)
cross-deps:
	@added=; for a in armhf s390x arm64; do dpkg --print-foreign-architectures | grep -qx $$a && continue; \
		[ "$$(id -u)" = 0 ] || { echo "run as root: dpkg --add-architecture $$a"; exit 1; }; \
		dpkg --add-architecture $$a; added=1; done; \
	if [ -n "$$added" ]; then apt-get update; fi
	$(call install_pkgs,$(CROSS_DEB_PKGS) file)


# The release tarball: the tracked files but openwrt/ (whose PKG_HASH is this tarball's sha256),
# reproducible (names sorted, owner 0, mtime of the last commit, gzip without a time stamp).
DIST = build/fieldmq-$(VERSION).tar.gz
dist:
	@mkdir -p build
	git ls-files -z | grep -zv '^openwrt/' | LC_ALL=C tar --null -T - --sort=name \
		--transform 's|^|fieldmq-$(VERSION)/|' --owner=0 --group=0 --numeric-owner --mode=go-w \
		--mtime=@$$(git log -1 --format=%ct 2>/dev/null || echo 0) -cf - | gzip -9n > $(DIST).tmp
	mv $(DIST).tmp $(DIST)
	cd build && sha256sum fieldmq-$(VERSION).tar.gz | tee fieldmq-$(VERSION).tar.gz.sha256
# Writes the tarball's version and sha256 into the OpenWrt package (at a release).
openwrt-hash: dist
	sed -i -e "s|^PKG_VERSION:=.*|PKG_VERSION:=$(VERSION)|" \
		-e "s|^PKG_HASH:=.*|PKG_HASH:=$$(cut -d' ' -f1 $(DIST).sha256)|" openwrt/net/fieldmq/Makefile

# The Debian package, built from the dist tarball in build/deb/ (dpkg-buildpackage puts its
# output beside the source folder).
DEB_DEB_PKGS := debhelper dpkg-dev
deb: dist
	$(call install_pkgs,$(DEB_DEB_PKGS))
	rm -rf build/deb && mkdir -p build/deb
	tar -C build/deb -xzf $(DIST)
	cd build/deb/fieldmq-$(VERSION) && dpkg-buildpackage -us -uc -b
	ls -l build/deb/*.deb

package-test: all
	tests/packaging/test_openwrt.sh
	$(MAKE) deb
	tests/packaging/test_deb.sh

.PHONY: cross-check-arch cross cross-daemon cross-test cross-deps dist openwrt-hash package-test deb
# ------------------------------------------------ end of packages and platforms

# --------------------------------------------------------------------- style
FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format-check:
	@out=$$(clang-format --dry-run $(FORMAT_SRCS) 2>&1); \
	if [ -n "$$out" ]; then echo "$$out" | head -40; \
		echo "format-check: run 'make format'"; exit 1; fi; echo "format-check: ok"
format:
	clang-format -i $(FORMAT_SRCS)

# ------------------------------------------------------------------ install
install: $(BUILD)/fieldmq
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)/etc/fieldmq/devices.d
	install -m 0755 $(BUILD)/fieldmq $(DESTDIR)$(PREFIX)/sbin/fieldmq
	sed 's|^data_dir = ../var|data_dir = /var/lib/fieldmq|' etc/fieldmq.ini > $(DESTDIR)/etc/fieldmq/fieldmq.ini
	chmod 0644 $(DESTDIR)/etc/fieldmq/fieldmq.ini
	# The demo map is installed as an example, not enabled (it polls a simulator).
	install -m 0644 etc/devices.d/demo.ini $(DESTDIR)/etc/fieldmq/devices.d/demo.ini.example
	install -m 0644 etc/devices.d/demo_coap.ini $(DESTDIR)/etc/fieldmq/devices.d/demo_coap.ini.example
	install -m 0644 etc/devices.d/demo_serial.ini $(DESTDIR)/etc/fieldmq/devices.d/demo_serial.ini.example

clean:
	rm -rf build

.PHONY: layering fuzz-libs all sims test-bins check test test-mbedtls3 asan fuzz bench soak run deps test-deps node-deps format-check format install clean
.SECONDARY:
.DELETE_ON_ERROR:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
