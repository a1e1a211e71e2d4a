#!/usr/bin/env python3
"""fieldmq speaks systemd's notification protocol (gateway/notify.c) to a
NOTIFY_SOCKET of the test's own - a unix datagram socket in a temporary
folder, and one in the abstract namespace - as systemd would give it:

- READY=1 arrives, and only once the broker's listener accepts connections;
- STATUS= tells the devices online and the uplink's state;
- with WATCHDOG_USEC=300000, WATCHDOG=1 arrives about every 150 ms; with a
  WATCHDOG_PID of another process, none;
- after SIGTERM, STOPPING=1 arrives and the daemon exits 0;
- without NOTIFY_SOCKET the daemon runs as before.
Every wait is bounded; the daemon is stopped by its PID.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itlib  # noqa: E402

FIELDMQ = os.environ.get("FIELDMQ", "build/fieldmq")
fails = 0


def check(desc, cond, detail=""):
    global fails
    print(("ok   " if cond else "FAIL ") + desc + ("" if cond else " " + str(detail)))
    if not cond:
        fails += 1


def write_ini(d, port):
    os.makedirs(os.path.join(d, "devices.d"))
    path = os.path.join(d, "fieldmq.ini")
    with open(path, "w") as f:
        f.write("[gateway]\nid = notifytest\ndata_dir = data\n[broker]\nlisten = 127.0.0.1:%d\n"
                "persist = no\n" % port)
    return path


def collect(sock, until, pred=None):
    """Datagrams received until the deadline (or until pred(msgs) holds)."""
    msgs = []
    while time.time() < until:
        sock.settimeout(max(0.01, until - time.time()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            break
        msgs.append((time.time(), data.decode()))
        if pred and pred(msgs):
            break
    return msgs


def run(d, addr, env_extra, watchdog_expected):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    port = itlib.free_port()
    ini = write_ini(d, port)
    env = dict(os.environ)
    env.update(env_extra)
    env["NOTIFY_SOCKET"] = addr if addr[0] != "\0" else "@" + addr[1:]
    p = subprocess.Popen([FIELDMQ, "-c", ini], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        msgs = collect(sock, time.time() + 10, lambda m: any("READY=1" in x for _, x in m))
        ready = [x for _, x in msgs if "READY=1" in x]
        check("READY=1 arrives (%s)" % env["NOTIFY_SOCKET"], len(ready) == 1, msgs)
        with socket.socket() as c:
            c.settimeout(1)
            check("the listener is up when READY=1 arrives", c.connect_ex(("127.0.0.1", port)) == 0)
        msgs += collect(sock, time.time() + 1.0)
        status = [x for _, x in msgs if x.startswith("STATUS=")]
        check("STATUS= with devices and uplink",
              "STATUS=0/0 devices online, uplink off" in status, status)
        dogs = [t for t, x in msgs if x == "WATCHDOG=1"]
        if watchdog_expected:
            gaps = [b - a for a, b in zip(dogs, dogs[1:])]
            check("WATCHDOG=1 about every 150 ms (%d in about 1 s)" % len(dogs),
                  len(dogs) >= 4 and all(g < 0.3 for g in gaps), gaps)
        else:
            check("no WATCHDOG=1 without a watchdog for us", not dogs, msgs)
        p.send_signal(signal.SIGTERM)
        msgs = collect(sock, time.time() + 10, lambda m: any("STOPPING=1" in x for _, x in m))
        check("STOPPING=1 after SIGTERM", any("STOPPING=1" in x for _, x in msgs), msgs)
        rc = p.wait(10)
        check("exit status 0", rc == 0, rc)
    finally:
        itlib.stop_proc(p)
        sock.close()


def main():
    with tempfile.TemporaryDirectory(prefix="fieldmq-notify.") as d:
        path = os.path.join(d, "notify.sock")
        run(os.path.join(d, "a"), path, {"WATCHDOG_USEC": "300000"}, True)
        abstract = "\0fieldmq-notify-test-%d" % os.getpid()
        run(os.path.join(d, "b"), abstract,
            {"WATCHDOG_USEC": "300000", "WATCHDOG_PID": "1"}, False)
        # Without NOTIFY_SOCKET: starts and stops as ever.
        port = itlib.free_port()
        ini = write_ini(os.path.join(d, "c"), port)
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        p = subprocess.Popen([FIELDMQ, "-c", ini], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        check("without NOTIFY_SOCKET the daemon starts", itlib.wait_port(port, 10))
        check("and stops with 0", itlib.stop_proc(p) == 0)
    print("test_notify: %s" % ("FAILED" if fails else "ok"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
