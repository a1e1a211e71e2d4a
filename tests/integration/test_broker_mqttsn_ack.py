#!/usr/bin/python3
"""The end-to-end promise (DESIGN.md section 1) for MQTT-SN publishers, through the
broker's brk_client_publish_acked(): a QoS 1 / QoS 2 PUBLISH that matches an uplink
`forward` filter gets its PUBACK / PUBREC only once the store has committed it (the
cloud unreachable so the uplink queues); one that matches no forward filter is
acknowledged at once. A retransmitted QoS 2 PUBLISH while its PUBREC is held gets no
early PUBREC.

Issue 10: the commit starts as soon as an ack waits on it, not at the end of
sync_interval (10 s here: readings nobody waits for may wait that long). So each
PUBACK comes well within a second, and when it comes the message is already in the
database file (read with SQLite beside the daemon)."""
import os
import sqlite3
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mqttsn_client as sn  # noqa: E402
from broker_harness import free_port  # noqa: E402
from test_mqttsn_lib import Fieldmq, run  # noqa: E402

SYNC = 10.0


def fieldmq():
    dead = free_port()  # nothing listens there: the uplink keeps queueing in the store
    # Extra sections after [broker]'s keys; [mqttsn] follows them.
    return Fieldmq(broker="[store]\nsync_interval = %dms\n"
                   "[uplink]\nenabled = yes\nurl = mqtt://127.0.0.1:%d\nprotocol = 3.1.1\n"
                   "forward = fwd/# 1\nqueue = always\n" % (int(SYNC * 1000), dead))


def timed(fn):
    t0 = time.time()
    r = fn()
    return r, time.time() - t0


def stored(f, payload):
    """How many records of the uplink queue in the database file carry payload."""
    db = sqlite3.connect(os.path.join(f.dir, "data", "fieldmq.db"), timeout=5)
    try:
        return db.execute("SELECT count(*) FROM queue WHERE payload = ?",
                          (payload,)).fetchone()[0]
    finally:
        db.close()


def test_puback_after_commit():
    with fieldmq() as f:
        c = f.sn("sn-ack")
        c.connect()
        fwd = c.register("fwd/a")
        local = c.register("local/a")
        # Not forwarded: nothing holds it.
        _, dt = timed(lambda: c.publish(local, b"l1", qos=1))
        assert dt < 0.5, "PUBACK of an unheld message took %.2fs" % dt
        # Forwarded: the PUBACK waits for the store's commit, which starts at once.
        delays = []
        for i in range(3):
            _, dt = timed(lambda: c.publish(fwd, b"f%d" % i, qos=1))
            delays.append(dt)
            assert stored(f, b"f%d" % i) == 1, "PUBACK before the commit"
        assert max(delays) < 1.0, "PUBACK waited for sync_interval: %r" % delays
        # QoS 2: the PUBREC is held the same way, and a retransmission gets no early one.
        mid = c.send_publish(fwd, b"q2", qos=2)
        c.send_publish(fwd, b"q2", qos=2, mid=mid, dup=True)
        m = c.expect(sn.PUBREC, timeout=5, skip=(sn.PUBLISH, sn.REGISTER))
        assert m.msg_id == mid, m
        assert stored(f, b"q2") == 1, "PUBREC before the commit, or stored twice"
        c.send(sn.PUBREL, struct.pack(">H", mid))
        m = c.expect(sn.PUBCOMP, skip=(sn.PUBLISH, sn.REGISTER, sn.PUBREC))
        assert m.msg_id == mid
        # The retransmission is answered by the held PUBREC, or, when the commit
        # was done before the gateway read it, by one more PUBREC of its own.
        m = c.recv(0.3)
        if m is not None:
            assert m.type == sn.PUBREC and m.msg_id == mid, m
        c.nothing(0.3)
        c.disconnect()
        # Everything forwarded reached the uplink's queue, the QoS 2 message once.
        q = uplink_queued(f, lambda v: v >= 4)
        assert q == 4, q


def uplink_queued(f, pred, timeout=5.0):
    """$SYS/fieldmq/uplink/queued once pred holds (bounded), or the last value."""
    deadline = time.time() + timeout
    v = None
    while time.time() < deadline:
        c = f.mqtt()
        try:
            c.sub("$SYS/fieldmq/uplink/queued", 0)
            v = int(c.get(1.5).payload)
        except AssertionError:
            v = None
        finally:
            c.disconnect()
        if v is not None and pred(v):
            return v
        time.sleep(0.3)
    return v


def test_disconnect_while_held():
    """The client goes away while its PUBACK is held: nothing breaks, the daemon exits 0."""
    with fieldmq() as f:
        c = f.sn("sn-gone")
        c.connect()
        fwd = c.register("fwd/b")
        c.send_publish(fwd, b"x", qos=1)
        c.disconnect()
        c.close()
        time.sleep(1.0)
        c2 = f.sn("sn-after")
        c2.connect()
        t = c2.register("fwd/c")
        c2.publish(t, b"y", qos=1)
        c2.disconnect()


if __name__ == "__main__":
    sys.exit(run([
        test_puback_after_commit,
        test_disconnect_while_held,
    ]))
