"""Helpers shared by the integration tests and their helper modules
(broker_harness.py, test_*_lib.py, test_gateway_commands.py).

Not a test itself (not executable; the runner skips it). Only helpers that
behave the same everywhere live here.
"""
import os
import shutil
import socket
import subprocess
import sys
import time

BUILD = os.environ.get("BUILD", "build")
FIELDMQ = os.environ.get("FIELDMQ", os.path.join(BUILD, "fieldmq"))


class Checks:
    """check = Checks(); check(desc, cond) prints "ok - desc" or
    "NOT OK - desc" and counts the failures in check.fails; returns cond."""

    def __init__(self):
        self.fails = 0

    def __call__(self, desc, cond):
        print(("ok - " if cond else "NOT OK - ") + desc, flush=True)
        if not cond:
            self.fails += 1
        return cond


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_udp_port():
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=5.0):
    """pred()'s first true value, polled every 50 ms; None after timeout seconds."""
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return None


def wait_port(port, timeout=5.0):
    """True once 127.0.0.1:port accepts a connection; False after timeout seconds."""
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def stop_proc(p, timeout=5.0):
    """Stops the process p by PID: SIGTERM, SIGKILL if it is still there after
    timeout seconds. Returns its exit status."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout)
    return p.returncode


def check_device_map(check, tmp, devices, want):
    """fieldmq --check-config on one device map (tmp/cc/devices.d/a.ini, the
    text devices) under a minimal main file (tmp/cc/fieldmq.ini). want None:
    it must be accepted (exit 0); else refused (exit 2) with want in its
    output. Reports through check (a Checks)."""
    d = os.path.join(tmp, "cc")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "devices.d"))
    with open(os.path.join(d, "devices.d", "a.ini"), "w") as f:
        f.write(devices)
    with open(os.path.join(d, "fieldmq.ini"), "w") as f:
        f.write("[gateway]\nid = t\ndata_dir = .\n")
    r = subprocess.run([FIELDMQ, "--check-config", "-c", os.path.join(d, "fieldmq.ini")],
                       capture_output=True, text=True, timeout=10)
    out = (r.stdout + r.stderr).strip()
    if want is None:
        check("--check-config accepts: %s" % out[:120], r.returncode == 0)
    else:
        check("--check-config refuses with %r (exit %d): %s" % (want, r.returncode, out[:200]),
              r.returncode == 2 and want in out)


def finish(check, tmp, procs):
    """The end of a test that ran in the folder tmp: stops (by PID) every
    process of procs still running, writes the tail of tmp/log to stderr when
    a check failed, removes tmp and prints the count of failures. Returns the
    exit status (1 when a check failed)."""
    for p in procs:
        if p is not None and p.poll() is None:
            stop_proc(p)
    log = os.path.join(tmp, "log")
    if check.fails and os.path.exists(log):
        with open(log) as f:
            sys.stderr.write(f.read()[-4000:])
    shutil.rmtree(tmp, ignore_errors=True)
    print("%d failed" % check.fails)
    return 1 if check.fails else 0
