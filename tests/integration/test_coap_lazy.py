#!/usr/bin/python3
"""libcoap is loaded only when the configuration has CoAP (adapters/coap/coap_lib.h):
build/fieldmq is not linked with libcoap, so a configuration without CoAP maps
neither libcoap nor the OpenSSL that Debian's libcoap-3-openssl brings (about
1.7 MB of resident pages); coap:// alone maps the flavour without DTLS;
coaps:// maps one with DTLS. FIELDMQ_LIBCOAP picks a file: one without DTLS
makes --check-config refuse coaps://, one that is missing makes the start fail
with a clear line. The daemon runs on free ports, stopped by PID.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker_harness import T, run  # noqa: E402
from itlib import free_port, stop_proc, wait_port  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
FIELDMQ = os.path.abspath(os.environ.get("FIELDMQ", os.path.join(BUILD, "fieldmq")))
PSK = "psk_identity = dev1\npsk_key = secret-key-1\n"


def config(d, coap):
    port = free_port()
    ini = os.path.join(d, "fieldmq.ini")
    with open(ini, "w") as f:
        f.write("[gateway]\nid = lazy\ndata_dir = data\ndevices =\n"
                "[broker]\nlisten = 127.0.0.1:%d\n%s" % (port, coap))
    return ini, port


def libraries(coap, env=None):
    """Starts fieldmq with the [coap] lines @coap, returns the file names of
    the libraries it maps once its broker listens (then stops it)."""
    d = tempfile.mkdtemp(prefix="fieldmq-lazy.")
    ini, port = config(d, coap)
    log = open(os.path.join(d, "log"), "w")
    p = subprocess.Popen([FIELDMQ, "-c", ini], stdout=log, stderr=subprocess.STDOUT, cwd=d,
                         env=dict(os.environ, **(env or {})))
    try:
        if not wait_port(port, T):
            raise AssertionError("fieldmq did not listen: %s" % open(log.name).read())
        time.sleep(0.3)  # the CoAP server starts after the broker listens
        with open("/proc/%d/maps" % p.pid) as f:
            return {os.path.basename(l.split()[5]) for l in f if len(l.split()) > 5}
    finally:
        stop_proc(p)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def has(libs, prefix):
    return any(n.startswith(prefix) for n in libs)


def test_no_coap_no_libcoap():
    libs = libraries("")
    assert not has(libs, "libcoap"), sorted(libs)
    assert not has(libs, "libssl") and not has(libs, "libcrypto"), sorted(libs)
    assert has(libs, "libuv"), sorted(libs)  # the check can see libraries at all


def test_coap_without_dtls():
    libs = libraries("[coap]\nenabled = yes\nlisten = 127.0.0.1:%d\n" % free_port())
    assert has(libs, "libcoap-3-notls") or has(libs, "libcoap-3.so"), sorted(libs)
    assert not has(libs, "libssl"), sorted(libs)


def test_coaps_loads_dtls():
    libs = libraries("[coap]\nenabled = yes\nlisten = coaps://127.0.0.1:%d\n%s"
                     % (free_port(), PSK))
    coap = [n for n in libs if n.startswith("libcoap")]
    assert len(coap) == 1 and "notls" not in coap[0], sorted(libs)


def test_forced_notls_refuses_coaps():
    d = tempfile.mkdtemp(prefix="fieldmq-lazy.")
    try:
        ini, _ = config(d, "[coap]\nenabled = yes\nlisten = coaps://127.0.0.1:%d\n%s"
                        % (free_port(), PSK))
        r = subprocess.run([FIELDMQ, "--check-config", "-c", ini], capture_output=True,
                           text=True, timeout=T, cwd=d,
                           env=dict(os.environ, FIELDMQ_LIBCOAP="libcoap-3-notls.so.3"))
        assert r.returncode == 2 and "no DTLS" in r.stderr, (r.returncode, r.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_missing_libcoap_fails_clearly():
    d = tempfile.mkdtemp(prefix="fieldmq-lazy.")
    try:
        ini, _ = config(d, "[coap]\nenabled = yes\nlisten = 127.0.0.1:%d\n" % free_port())
        r = subprocess.run([FIELDMQ, "-c", ini], capture_output=True, text=True, timeout=T,
                           cwd=d, env=dict(os.environ, FIELDMQ_LIBCOAP="/nonexistent/libcoap.so"))
        assert r.returncode == 1 and "libcoap cannot be loaded" in r.stderr, \
            (r.returncode, r.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run([test_no_coap_no_libcoap, test_coap_without_dtls, test_coaps_loads_dtls,
                  test_forced_notls_refuses_coaps, test_missing_libcoap_fails_clearly]))
