#!/usr/bin/python3
"""Durability of persistent sessions in the daemon (build/fieldmq, persist = yes):
QoS 1/2 messages queued for, or in flight to, an ONLINE persistent session
that has not acknowledged them survive kill -9 and are redelivered after the
restart; acknowledged ones are not redelivered; a clean session's are never
stored. The message expiry restored is what was left of it, not the full
interval again."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker_harness import (T, Client, Raw, free_port, packet, parse_publish,  # noqa: E402
                            props, run, s16)

BUILD = os.environ.get("BUILD", "build")
FIELDMQ = os.environ.get("FIELDMQ", os.path.join(BUILD, "fieldmq"))


class Daemon:
    """fieldmq with only its broker and store, restartable on the same data directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fieldmq-dur.")
        self.port = free_port()
        self.ini = os.path.join(self.dir, "fieldmq.ini")
        with open(self.ini, "w") as f:
            f.write("[gateway]\nid = dur\ndata_dir = %s\ndevices =\n"
                    "[broker]\nlisten = 127.0.0.1:%d\npersist = yes\nsys_interval = 0\n"
                    "[store]\nsync_interval = 50ms\n" % (os.path.join(self.dir, "data"),
                                                         self.port))
        self.logf = open(os.path.join(self.dir, "log"), "a")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen([FIELDMQ, "-c", self.ini], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + T
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fieldmq exited %s: %s" % (self.proc.returncode, self.log()))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("fieldmq did not listen")

    def crash(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(T)

    def stop(self):
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(T)
        self.logf.close()
        return rc

    def log(self):
        with open(os.path.join(self.dir, "log")) as f:
            return f.read()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def drain(r, n, timeout=T):
    """n PUBLISH packets from raw client r, parsed."""
    out = []
    while len(out) < n:
        p = r.recv_pkt(timeout)
        assert p is not None, "closed after %d of %d" % (len(out), n)
        if p[0] == 3:
            out.append(parse_publish(p, r.v))
    return out


def test_unacked_survive_kill9():
    d = Daemon()
    try:
        sub = Raw(d, 4)
        sub.connect("dur-sub", clean=False)
        sub.subscribe(1, "d/#", 1)
        clean = Raw(d, 4)
        clean.connect("clean-sub", clean=True)
        clean.subscribe(1, "d/#", 1)
        pub = Client(d, "dur-pub")
        pub.connect()
        for i in range(6):
            pub.pub("d/%d" % i, b"m%d" % i, qos=1).wait_for_publish(T)
        got = drain(sub, 6)
        assert [g[2] for g in got] == [b"m%d" % i for i in range(6)], got
        drain(clean, 6)
        # The first two are acknowledged; four stay in flight, unacknowledged.
        sub.ack(4, got[0][1])
        sub.ack(4, got[1][1])
        time.sleep(0.5)  # several group commits
        d.crash()
        d.start()
        sub = Raw(d, 4)
        p = sub.connect("dur-sub", clean=False)
        assert p[2][0] == 1, "session present %r" % (p,)
        again = drain(sub, 4)
        assert sorted(g[2] for g in again) == [b"m2", b"m3", b"m4", b"m5"], again
        for g in again:
            sub.ack(4, g[1])
        # Nothing else: not the acknowledged two, nothing twice.
        sub.s.settimeout(0.7)
        try:
            extra = sub.recv_pkt(0.7)
        except AssertionError:
            extra = None
        assert extra is None or extra[0] != 3, extra
        clean = Raw(d, 4)
        p = clean.connect("clean-sub", clean=False)
        assert p[2][0] == 0, "a clean session was kept %r" % (p,)
        try:
            extra = clean.recv_pkt(0.5)
        except AssertionError:
            extra = None
        assert extra is None, extra
        sub.close()
        clean.close()
        pub.disconnect()
        assert d.stop() == 0
    finally:
        d.stop()
        d.cleanup()


def test_expiry_counts_on_after_restart():
    """A 5.0 message with a 30 s expiry, queued 3 s before a crash, is redelivered with
    at most 27 s left (the clock is not restarted from 30)."""
    d = Daemon()
    try:
        sub = Raw(d, 5)
        sub.connect("exp-sub", clean=False, prop=b"\x11" + struct.pack("!I", 3600))
        sub.subscribe(1, "e/#", 1)
        sub.close()  # offline: the message is queued, not in flight
        pub = Client(d, "exp-pub", v5=True)
        pub.connect()
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        pp = Properties(PacketTypes.PUBLISH)
        pp.MessageExpiryInterval = 30
        pub.pub("e/1", b"x", qos=1, props=pp).wait_for_publish(T)
        time.sleep(3)
        # A clean stop saves what is left of the expiry; then a crash after the restart.
        pub.disconnect()
        assert d.stop() == 0
        d.logf = open(os.path.join(d.dir, "log"), "a")
        d.start()
        time.sleep(0.3)
        d.crash()
        d.start()
        sub = Raw(d, 5)
        p = sub.connect("exp-sub", clean=False, prop=b"\x11" + struct.pack("!I", 3600))
        got = drain(sub, 1)
        praw = got[0][3]
        assert praw[:1] == b"\x02", praw
        left = struct.unpack("!I", praw[1:5])[0]
        assert 20 <= left <= 27, left
        sub.close()
        assert d.stop() == 0
    finally:
        d.stop()
        d.cleanup()


def restart(d, how):
    """Stop the daemon cleanly (SIGTERM) or kill -9 it, then start it again."""
    if how == "kill":
        d.crash()
    else:
        assert d.stop() == 0
        d.logf = open(os.path.join(d.dir, "log"), "a")
    d.start()


def nothing_more(r, timeout=0.7):
    try:
        p = r.recv_pkt(timeout)
    except AssertionError:
        p = None
    return p


def test_pubrel_survives_restart():
    """[MQTT-4.4.0-1] A QoS 2 message whose PUBREC came and whose PUBCOMP did not:
    after a restart (SIGTERM, kill -9) the PUBREL for the same packet id is sent
    again on reconnection, and the message itself is not (exactly once)."""
    for how in ("term", "kill"):
        d = Daemon()
        try:
            sub = Raw(d, 4)
            sub.connect("rel-sub", clean=False)
            sub.subscribe(1, "r/#", 2)
            pub = Client(d, "rel-pub")
            pub.connect()
            pub.pub("r/1", b"once", qos=2).wait_for_publish(T)
            got = drain(sub, 1)[0]
            assert got[4] == 2 and got[2] == b"once", got
            pid = got[1]
            sub.ack(5, pid)  # PUBREC
            p = sub.expect(6)
            assert struct.unpack("!H", p[2][:2])[0] == pid, p
            time.sleep(0.5)  # several group commits; no PUBCOMP
            pub.disconnect()
            restart(d, how)
            sub = Raw(d, 4)
            p = sub.connect("rel-sub", clean=False)
            assert p[2][0] == 1, "%s: session present %r" % (how, p)
            p = sub.expect(6)
            assert p[1] == 2 and struct.unpack("!H", p[2][:2])[0] == pid, (how, p, pid)
            extra = nothing_more(sub)
            assert extra is None, (how, extra)
            sub.ack(7, pid)  # PUBCOMP: done, forgotten
            time.sleep(0.3)
            sub.close()
            restart(d, how)
            sub = Raw(d, 4)
            p = sub.connect("rel-sub", clean=False)
            assert p[2][0] == 1, p
            extra = nothing_more(sub)
            assert extra is None, (how, extra)
            sub.close()
            assert d.stop() == 0
        finally:
            d.stop()
            d.cleanup()


def test_inflight_resent_same_pid():
    """A PUBLISH sent and not acknowledged is sent again with the same packet id and
    DUP=1 after a clean stop with the client online, and after a kill -9 once the
    client went offline (its state is saved then); queued ones follow as new."""
    for how in ("term", "offline-kill"):
        d = Daemon()
        try:
            sub = Raw(d, 4)
            sub.connect("pid-sub", clean=False)
            sub.subscribe(1, "p/#", 2)
            pub = Client(d, "pid-pub")
            pub.connect()
            # One acknowledged first, so that the ids in flight are not those a
            # restarted broker would hand out anyway.
            pub.pub("p/0", b"zero", qos=1).wait_for_publish(T)
            sub.ack(4, drain(sub, 1)[0][1])
            pub.pub("p/2", b"two", qos=2).wait_for_publish(T)
            pub.pub("p/1", b"one", qos=1).wait_for_publish(T)
            got = drain(sub, 2)
            assert [(g[0], g[4], g[5]) for g in got] == [("p/2", 2, False), ("p/1", 1, False)]
            pub.disconnect()
            if how == "offline-kill":
                sub.close()
                time.sleep(0.5)  # the session's offline save is committed
                restart(d, "kill")
            else:
                restart(d, "term")
            sub = Raw(d, 4)
            p = sub.connect("pid-sub", clean=False)
            assert p[2][0] == 1, "%s: session present %r" % (how, p)
            again = drain(sub, 2)
            assert [(g[0], g[1], g[2], g[4], g[5]) for g in again] == \
                [(g[0], g[1], g[2], g[4], True) for g in got], (how, got, again)
            # QoS 2 goes on with the same id: PUBREC -> PUBREL -> PUBCOMP.
            sub.ack(5, again[0][1])
            p = sub.expect(6)
            assert struct.unpack("!H", p[2][:2])[0] == again[0][1], p
            sub.ack(7, again[0][1])
            sub.ack(4, again[1][1])
            # A new message does not reuse an id in use, and is not a duplicate.
            pub = Client(d, "pid-pub")
            pub.connect()
            pub.pub("p/3", b"three", qos=1).wait_for_publish(T)
            g3 = drain(sub, 1)[0]
            assert g3[0] == "p/3" and not g3[5], g3
            sub.ack(4, g3[1])
            pub.disconnect()
            time.sleep(0.3)
            sub.close()
            restart(d, "kill")
            sub = Raw(d, 4)
            p = sub.connect("pid-sub", clean=False)
            extra = nothing_more(sub)
            assert extra is None, (how, extra)
            sub.close()
            assert d.stop() == 0
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    if not os.access(FIELDMQ, os.X_OK):
        print("SKIP: %s not built" % FIELDMQ)
        sys.exit(0)
    sys.exit(run([
        test_unacked_survive_kill9,
        test_expiry_counts_on_after_restart,
        test_pubrel_survives_restart,
        test_inflight_resent_same_pid,
    ]))
