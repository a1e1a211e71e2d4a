#!/usr/bin/python3
"""mbedTLS is loaded only when the configuration needs it (gateway/tls/mbed_lib.h):
build/fieldmq is not linked with mbedTLS, so a configuration without TLS,
password_file or WebSocket listener maps none of libmbedtls, libmbedx509 and
libmbedcrypto (344 KB of resident pages with Debian's 2.28); a password_file
or a ws:// listener maps libmbedcrypto alone; an mqtts:// listener maps all
three. A library that cannot be loaded (FIELDMQ_LIBMBEDTLS /
FIELDMQ_LIBMBEDCRYPTO naming a missing file) is a configuration error of
--check-config and of the start, with the line that needs it. The daemon runs
on free ports, stopped by PID.
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
from tls_lib import make_pki  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
FIELDMQ = os.path.abspath(os.environ.get("FIELDMQ", os.path.join(BUILD, "fieldmq")))


def config(d, broker, listen=""):
    """fieldmq.ini in @d: a loopback listener on a free port (then @listen's
    URLs), then @broker's lines."""
    port = free_port()
    ini = os.path.join(d, "fieldmq.ini")
    with open(ini, "w") as f:
        f.write("[gateway]\nid = lazy\ndata_dir = data\ndevices =\n"
                "[broker]\nlisten = 127.0.0.1:%d%s\n%s"
                % (port, ", " + listen if listen else "", broker))
    return ini, port


def passwd_file(d):
    open(os.path.join(d, "pw"), "w").close()
    r = subprocess.run(["mosquitto_passwd", "-b", "pw", "alice", "secret"], cwd=d,
                       capture_output=True, text=True, timeout=T)
    assert r.returncode == 0, r.stdout + r.stderr


def libraries(broker, prepare=None, listen=""):
    """Starts fieldmq with the [broker] lines @broker (after @prepare(dir)),
    returns the file names of the libraries it maps once it listens."""
    d = tempfile.mkdtemp(prefix="fieldmq-mbed.")
    try:
        if prepare:
            prepare(d)
        ini, port = config(d, broker, listen)
        log = open(os.path.join(d, "log"), "w")
        p = subprocess.Popen([FIELDMQ, "-c", ini], stdout=log, stderr=subprocess.STDOUT, cwd=d)
        try:
            if not wait_port(port, T):
                raise AssertionError("fieldmq did not listen: %s" % open(log.name).read())
            time.sleep(0.2)
            with open("/proc/%d/maps" % p.pid) as f:
                return {os.path.basename(l.split()[5]) for l in f if len(l.split()) > 5}
        finally:
            stop_proc(p)
            log.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def mbed(libs):
    return sorted(n for n in libs if n.startswith("libmbed"))


def test_plain_maps_no_mbedtls():
    libs = libraries("")
    assert mbed(libs) == [], sorted(libs)
    assert any(n.startswith("libuv") for n in libs), sorted(libs)  # the check sees libraries


def test_password_file_maps_crypto_only():
    libs = mbed(libraries("password_file = pw\n", passwd_file))
    assert [n.split(".")[0] for n in libs] == ["libmbedcrypto"], libs


def test_ws_listener_maps_crypto_only():
    libs = mbed(libraries("", listen="ws://127.0.0.1:%d" % free_port()))
    assert [n.split(".")[0] for n in libs] == ["libmbedcrypto"], libs


def test_tls_listener_maps_all_three():
    tls = "cert_file = server.crt\nkey_file = server.key\n"
    libs = mbed(libraries(tls, make_pki, "mqtts://127.0.0.1:%d" % free_port()))
    assert sorted({n.split(".")[0] for n in libs}) == \
        ["libmbedcrypto", "libmbedtls", "libmbedx509"], libs


def refused(broker, env, prepare=None, check=True, listen=""):
    """--check-config (or the start) of @broker with @env: (exit status, stderr)."""
    d = tempfile.mkdtemp(prefix="fieldmq-mbed.")
    try:
        if prepare:
            prepare(d)
        ini, _ = config(d, broker, listen)
        r = subprocess.run([FIELDMQ] + (["--check-config"] if check else []) + ["-c", ini],
                           capture_output=True, text=True, timeout=T, cwd=d,
                           env=dict(os.environ, **env))
        return r.returncode, r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_missing_mbedtls_refuses_tls():
    tls = "cert_file = server.crt\nkey_file = server.key\n"
    for check in (True, False):
        rc, err = refused(tls, {"FIELDMQ_LIBMBEDTLS": "/nonexistent/libmbedtls.so"}, make_pki,
                          check, "mqtts://127.0.0.1:%d" % free_port())
        assert rc == 2 and "needs mbed TLS, which cannot be loaded" in err \
            and "/nonexistent/libmbedtls.so" in err and "fieldmq.ini:" in err, (check, rc, err)
    # The uplink's mqtts:// and the HTTP listener's https:// need it too.
    for sect in ("[uplink]\nenabled = yes\nurl = mqtts://127.0.0.1:1\n",
                 "[http]\nenabled = yes\nlisten = https://127.0.0.1:%d\n" % free_port()):
        rc, err = refused(tls + sect, {"FIELDMQ_LIBMBEDTLS": "/nonexistent/libmbedtls.so"},
                          make_pki)
        what = sect.split("]")[0] + "]"
        assert rc == 2 and what + " " in err \
            and "needs mbed TLS, which cannot be loaded" in err, (sect, rc, err)
    # The same library missing does not matter to a configuration without TLS.
    rc, err = refused("", {"FIELDMQ_LIBMBEDTLS": "/nonexistent/libmbedtls.so"})
    assert rc == 0, (rc, err)


def test_missing_crypto_refuses_password_file():
    rc, err = refused("password_file = pw\n",
                      {"FIELDMQ_LIBMBEDCRYPTO": "/nonexistent/libmbedcrypto.so"}, passwd_file)
    assert rc == 2 and "password_file: mbed TLS cannot be loaded" in err, (rc, err)


def test_missing_crypto_refuses_ws():
    rc, err = refused("", {"FIELDMQ_LIBMBEDCRYPTO": "/nonexistent/libmbedcrypto.so"},
                      listen="ws://127.0.0.1:%d" % free_port())
    assert rc == 2 and "needs mbed TLS, which cannot be loaded" in err, (rc, err)


if __name__ == "__main__":
    sys.exit(run([test_plain_maps_no_mbedtls, test_password_file_maps_crypto_only,
                  test_ws_listener_maps_crypto_only, test_tls_listener_maps_all_three,
                  test_missing_mbedtls_refuses_tls, test_missing_crypto_refuses_password_file,
                  test_missing_crypto_refuses_ws]))
