"""Shared helpers of the Modbus integration tests (test_modbus_*.py).

Not a test itself (not executable; run directly it does nothing). Starts the
simulator and the probe from $BUILD, bounds every wait, kills what it started
by PID.
"""
import atexit
import json
import os
import select
import subprocess
import sys
import time

from itlib import free_port, stop_proc as stop  # noqa: F401 (re-exported)

BUILD = os.environ.get("BUILD", "build")
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SIM = os.path.join(BUILD, "sim", "modbus_sim")
PROBE = os.path.join(BUILD, "sim", "modbus_probe")
REGS = os.path.join(ROOT, "tests", "sim", "modbus_regs.ini")

_procs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_cleanup)


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


def wait_line(p, want, timeout=5.0):
    """Read p.stdout until a line contains want; fail after timeout."""
    deadline = time.time() + timeout
    buf = b""
    fd = p.stdout.fileno()
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.time()))
        if not r:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        if want.encode() in buf:
            return
    raise AssertionError("no %r from %s within %.1fs (got %r)" % (want, p.args[0], timeout, buf))


def start_sim(*args, regs=REGS):
    """Start the simulator with args (e.g. '--tcp', '127.0.0.1:PORT'); returns the Popen."""
    cmd = [SIM] + list(args)
    if regs:
        cmd += ["--regs", regs]
    p = spawn(cmd, stdout=subprocess.PIPE)
    wait_line(p, "ready")
    return p


def run_probe(args, seconds, log="warning"):
    """Run the probe for `seconds`, return its events (list of dicts)."""
    cmd = [PROBE, "--seconds", str(seconds), "--log", log] + list(args)
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=seconds + 15)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("probe did not stop: %s" % err.decode(errors="replace"))
    if p.returncode != 0:
        raise AssertionError("probe exit %d: %s" % (p.returncode, err.decode(errors="replace")))
    sys.stderr.write(err.decode(errors="replace"))
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def readings(evs, dev=None, pt=None, q=None):
    return [e for e in evs if e["ev"] == "reading" and (dev is None or e["dev"] == dev)
            and (pt is None or e["pt"] == pt) and (q is None or e["q"] == q)]


def last_value(evs, dev, pt):
    good = readings(evs, dev, pt, "good")
    assert good, "no good reading of %s/%s" % (dev, pt)
    return good[-1]["v"]


def statuses(evs, dev):
    return [e["online"] for e in evs if e["ev"] == "status" and e["dev"] == dev]


def stats(evs):
    s = [e for e in evs if e["ev"] == "stats"]
    assert s, "no stats line"
    return s[-1]


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print("ok:", msg)


# Points covering every type and byte order of tests/sim/modbus_regs.ini
# (unit 1), with the values the file sets: (probe --pt spec, expected value).
ALL_TYPES = [
    ("u16,addr=0", 1234),
    ("i16,addr=1,type=int16", -123),
    ("bit0,addr=2,type=bit,bit=0", True),
    ("bit1,addr=2,type=bit,bit=1", False),
    ("bit15,addr=2,type=bit,bit=15", True),
    ("i32abcd,addr=10,type=int32,bo=ABCD", -123456),
    ("i32badc,addr=12,type=int32,bo=BADC", -123456),
    ("i32cdab,addr=14,type=int32,bo=CDAB", -123456),
    ("i32dcba,addr=16,type=int32,bo=DCBA", -123456),
    ("u32abcd,addr=20,type=uint32", 3000000000),
    ("u32cdab,addr=22,type=uint32,bo=CDAB", 3000000000),
    ("f32abcd,addr=30,type=float32", 21.5),
    ("f32badc,addr=32,type=float32,bo=BADC", 21.5),
    ("f32cdab,addr=34,type=float32,bo=CDAB", 21.5),
    ("f32dcba,addr=36,type=float32,bo=DCBA", 21.5),
    ("i64abcd,addr=40,type=int64", -1234567890123),
    ("i64badc,addr=44,type=int64,bo=BADC", -1234567890123),
    ("i64cdab,addr=48,type=int64,bo=CDAB", -1234567890123),
    ("i64dcba,addr=52,type=int64,bo=DCBA", -1234567890123),
    ("u64abcd,addr=60,type=uint64", 18000000000000000000),
    ("u64dcba,addr=64,type=uint64,bo=DCBA", 18000000000000000000),
    ("f64abcd,addr=70,type=float64", -2.25),
    ("f64badc,addr=74,type=float64,bo=BADC", -2.25),
    ("f64cdab,addr=78,type=float64,bo=CDAB", -2.25),
    ("f64dcba,addr=82,type=float64,bo=DCBA", -2.25),
    ("str,addr=90,type=string,len=6", "fieldmq-sim"),
    ("strswap,addr=100,type=string,len=4,swap=1", "swapped"),
    ("scaled,addr=110,scale=0.1", 21.5),
    ("offset,addr=110,scale=0.1,offset=-1.5", 20.0),
    ("in10,area=input,addr=10,type=int16", -40),
    ("coil0,area=coil,addr=0,type=bool", True),
    ("coil1,area=coil,addr=1,type=bool", False),
    ("coil2,area=coil,addr=2,type=bool", True),
    ("di0,area=discrete,addr=0,type=bool", True),
    ("di1,area=discrete,addr=1,type=bool", False),
    ("di5,area=discrete,addr=5,type=bool", True),
]


def check_all_types(evs, dev):
    for spec, want in ALL_TYPES:
        name = spec.split(",")[0]
        good = readings(evs, dev, name, "good")
        check(bool(good), "%s/%s has a good reading" % (dev, name))
        got = good[0]["v"]
        if isinstance(want, float):
            ok = isinstance(got, (int, float)) and abs(got - want) < 1e-9
        else:
            ok = got == want and type(got) == type(want)
        check(ok, "%s/%s = %r (want %r)" % (dev, name, got, want))


def all_type_args(dev):
    return sum([["--pt", "%s/%s" % (dev, spec)] for spec, _ in ALL_TYPES], [])


if __name__ == "__main__":
    sys.exit(0)
