#!/usr/bin/python3
"""The end-to-end promise (DESIGN.md section 1) for MQTT-SN publishers, through the
broker's brk_client_publish_acked(): a QoS 1 / QoS 2 PUBLISH that matches an uplink
`forward` filter gets its PUBACK / PUBREC only once the store has committed it
(sync_interval = 1 s here, the cloud unreachable so the uplink queues); one that
matches no forward filter is acknowledged at once. A retransmitted QoS 2 PUBLISH
while its PUBREC is held gets no early PUBREC."""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mqttsn_client as sn  # noqa: E402
from broker_harness import free_port  # noqa: E402
from test_mqttsn_lib import Fieldmq, run  # noqa: E402

SYNC = 1.0


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


def test_puback_after_commit():
    with fieldmq() as f:
        c = f.sn("sn-ack")
        c.connect()
        fwd = c.register("fwd/a")
        local = c.register("local/a")
        # Not forwarded: nothing holds it.
        _, dt = timed(lambda: c.publish(local, b"l1", qos=1))
        assert dt < 0.5 * SYNC, "PUBACK of an unheld message took %.2fs" % dt
        # Forwarded: the PUBACK waits for the store's commit (up to one sync_interval).
        delays = []
        for i in range(3):
            _, dt = timed(lambda: c.publish(fwd, b"f%d" % i, qos=1))
            delays.append(dt)
        assert max(delays) >= 0.3 * SYNC, "PUBACK before the commit: %r" % delays
        assert max(delays) < 3 * SYNC + 1, delays
        # QoS 2: the PUBREC is held the same way, and a retransmission gets no early one.
        mid = c.send_publish(fwd, b"q2", qos=2)
        t0 = time.time()
        c.send_publish(fwd, b"q2", qos=2, mid=mid, dup=True)
        m = c.expect(sn.PUBREC, timeout=3 * SYNC + 1, skip=(sn.PUBLISH, sn.REGISTER))
        dt = time.time() - t0
        assert m.msg_id == mid and dt >= 0.2 * SYNC, (m, dt)
        c.send(sn.PUBREL, struct.pack(">H", mid))
        m = c.expect(sn.PUBCOMP, skip=(sn.PUBLISH, sn.REGISTER, sn.PUBREC))
        assert m.msg_id == mid
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
        time.sleep(SYNC + 0.5)
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
