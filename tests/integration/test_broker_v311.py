#!/usr/bin/python3
"""The broker with MQTT 3.1.1 clients (python3-paho-mqtt and raw sockets):
QoS 0/1/2, downgrade, retained, wildcards and $-topics, wills, clean and
persistent sessions with offline queueing, redelivery with DUP, takeover,
keepalive, empty client ids, anonymous refusal, shared subscriptions,
overlapping subscriptions, queue bounds and bad input; topic access control
(-A ACLFILE, [broker] acl_file): subscriptions refused and allowed, PUBLISH
refused (acknowledged and dropped), deny on delivery and on retained
messages, user sections, %c / %u patterns, wills, the $SYS figure, and a bad
acl file reported with its file:line by fieldmq --check-config."""
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker_harness import Broker, Client, Raw, packet, parse_publish, run, s16  # noqa: E402


# The ACL of the access control tests: every line kind.
ACL = """# fieldmq test ACL
topic read $SYS/#
topic readwrite pub/#
topic read ro/#
topic write wo/#
topic deny pub/secret/#

pattern readwrite dev/%c/#
pattern read users/%u/#
user alice
topic readwrite alice/#
user bob
topic deny pub/hidden
"""


def test_acl_subscribe():
    with Broker(acl=ACL) as b:
        c = Client(b, "anon")
        c.connect()
        assert c.sub("pub/#", 1) == (1,)
        assert c.sub("pub/+/x", 2) == (2,)
        assert c.sub("ro/+", 0) == (0,)
        assert c.sub("$SYS/broker/+", 0) == (0,)
        assert c.sub("wo/#", 1) == (128,), "write-only"
        assert c.sub("#", 1) == (128,), "wider than any grant"
        assert c.sub("other", 1) == (128,), "not granted"
        assert c.sub("pub/secret/x", 1) == (128,), "covered by a deny rule"
        assert c.sub("alice/#", 1) == (128,), "alice's rule"
        assert c.sub("users/+/x", 1) == (128,), "%u without a user name"
        # One refused filter does not affect the others of the same SUBSCRIBE.
        rc, mid = c.c.subscribe([("pub/a", 1), ("nope/#", 1), ("ro/b", 2)])
        deadline = time.time() + 5
        while mid not in c.subacks and time.time() < deadline:
            time.sleep(0.02)
        assert c.subacks.get(mid) == (1, 128, 2), c.subacks.get(mid)
        c.disconnect()
        a = Client(b, "alice-c", username="alice")
        a.connect()
        assert a.sub("alice/#", 2) == (2,)
        assert a.sub("users/alice/+", 1) == (1,)
        assert a.sub("users/bob/+", 1) == (128,)
        assert a.sub("pub/#", 1) == (1,), "the rules before any user line apply to alice too"
        a.disconnect()
        bob = Client(b, "bob-c", username="bob")
        bob.connect()
        assert bob.sub("alice/#", 1) == (128,)
        assert bob.sub("pub/hidden", 1) == (128,)
        bob.disconnect()


def test_acl_publish_refused_dropped():
    with Broker("-s", "200", acl=ACL) as b:
        s = Client(b, "sub")
        s.connect()
        assert s.sub("ro/#", 1) == (1,)
        assert s.sub("pub/#", 1) == (1,)
        p = Client(b, "pub")
        p.connect()
        # 3.1.1 cannot say no: acknowledged normally (wait_for_publish), dropped.
        for q in (0, 1, 2):
            p.pub("ro/x", b"no%d" % q, qos=q)
            p.pub("pub/secret/x", b"no", qos=q)
        p.pub("pub/ok", b"yes", qos=1)
        m = s.get()
        assert (m.topic, m.payload) == ("pub/ok", b"yes")
        s.none()
        # Raw: PUBACK and PUBREC / PUBCOMP of a refused message, in order.
        r = Raw(b)
        r.connect("raw")
        r.publish("ro/y", b"x", qos=1, pid=7)
        assert r.expect(4)[2] == b"\x00\x07"
        r.publish("ro/y", b"x", qos=2, pid=8)
        assert r.expect(5)[2] == b"\x00\x08"
        r.ack(6, 8)
        assert r.expect(7)[2] == b"\x00\x08"
        r.close()
        s.none(0.3)
        # 3 to ro/x and 3 to pub/secret/x (QoS 0, 1, 2) + 2 raw = 8 refusals.
        w = Client(b, "sysw")
        w.connect()
        assert w.sub("$SYS/fieldmq/broker/acl_denied", 0) == (0,)
        deadline = time.time() + 5
        seen = None
        while time.time() < deadline:
            seen = int(w.get().payload)
            if seen >= 8:
                break
        assert seen == 8, seen
        w.disconnect()
        s.disconnect()
        p.disconnect()


def test_acl_deny_on_delivery_and_retained():
    with Broker(acl=ACL) as b:
        p = Client(b, "pub")
        p.connect()
        p.pub("pub/hidden", b"r-hidden", qos=1, retain=True)
        p.pub("pub/r", b"r-ok", qos=1, retain=True)
        bob = Client(b, "bob-c", username="bob")
        bob.connect()
        # pub/# is granted; bob's deny of pub/hidden is left to delivery.
        assert bob.sub("pub/#", 1) == (1,)
        m = bob.get()
        assert (m.topic, m.payload, m.retain) == ("pub/r", b"r-ok", True)
        bob.none(0.3)
        anon = Client(b, "anon")
        anon.connect()
        assert anon.sub("pub/#", 1) == (1,)
        assert len(anon.take(2)) == 2, "the deny is bob's only"
        p.pub("pub/hidden", b"live", qos=1)
        p.pub("pub/x", b"live", qos=1)
        m = bob.get()
        assert m.topic == "pub/x"
        bob.none(0.3)
        assert sorted(x.topic for x in anon.take(2)) == ["pub/hidden", "pub/x"]
        bob.disconnect()
        anon.disconnect()
        p.disconnect()


def test_acl_patterns():
    with Broker(acl=ACL) as b:
        d = Client(b, "d1")
        d.connect()
        assert d.sub("dev/d1/#", 1) == (1,)
        assert d.sub("dev/d2/#", 1) == (128,)
        assert d.sub("dev/+/x", 1) == (128,)
        d2 = Client(b, "d2")
        d2.connect()
        assert d2.sub("dev/d2/#", 1) == (1,)
        d.pub("dev/d1/up", b"mine", qos=1)
        d.pub("dev/d2/cmd", b"not mine", qos=1)  # refused: dropped
        assert d.get().payload == b"mine"
        d2.none(0.3)
        d.none(0.1)
        u = Client(b, "cu", username="carol")
        u.connect()
        assert u.sub("users/carol/#", 1) == (1,)
        assert u.sub("users/dave/#", 1) == (128,)
        d.disconnect()
        d2.disconnect()
        u.disconnect()


def test_acl_will_not_writable_dropped():
    with Broker(acl=ACL) as b:
        s = Client(b, "s")
        s.connect()
        assert s.sub("ro/#", 1) == (1,)
        assert s.sub("pub/#", 1) == (1,)
        bad = Client(b, "bad", will={"topic": "ro/will", "payload": b"gone", "qos": 1})
        bad.connect()
        good = Client(b, "good", will={"topic": "pub/will", "payload": b"gone", "qos": 1})
        good.connect()
        bad.drop()
        good.drop()
        m = s.get()
        assert m.topic == "pub/will"
        s.none(0.5)
        s.disconnect()


def test_acl_no_file_everything_allowed():
    # An empty acl file: what is not granted is denied (everything).
    with Broker(acl="# nothing\n") as b:
        c = Client(b, "c")
        c.connect()
        assert c.sub("a", 1) == (128,)
        c.disconnect()
    # No acl file: everything allowed as before.
    with Broker() as b:
        c = Client(b, "c")
        c.connect()
        assert c.sub("#", 1) == (1,)
        assert c.sub("$SYS/#", 1) == (1,)
        c.disconnect()


def test_acl_file_errors():
    d = tempfile.mkdtemp(prefix="fieldmq-acl-")
    try:
        with open(os.path.join(d, "bad.acl"), "w") as f:
            f.write("# header\ntopic read a/#\ntopic raed b\n")
        ini = os.path.join(d, "main.ini")
        with open(ini, "w") as f:
            f.write("[gateway]\ndevices = %s/none/*.ini\n[broker]\nacl_file = bad.acl\n" % d)
        fieldmq = os.path.join(os.environ.get("BUILD", "build"), "fieldmq")
        r = subprocess.run([fieldmq, "--check-config", "-c", ini], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
        want = "%s/bad.acl:3: [broker] acl_file: 'raed': unknown access" % d
        assert want in r.stderr, r.stderr
        with open(os.path.join(d, "bad.acl"), "w") as f:
            f.write("topic read a/#\n")
        r = subprocess.run([fieldmq, "--check-config", "-c", ini], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        # brokerd -A: the same parser, the same file:line, exit 2.
        with open(os.path.join(d, "bad.acl"), "w") as f:
            f.write("user\n")
        r = subprocess.run([os.environ.get("BROKERD", os.path.join(
            os.environ.get("BUILD", "build"), "sim", "brokerd")), "-p", "1", "-A",
            os.path.join(d, "bad.acl")], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "bad.acl:1: expected user USERNAME" in r.stderr, r.stderr
    finally:
        subprocess.run(["rm", "-rf", d])


def test_qos_levels_and_downgrade():
    with Broker() as b:
        s = Client(b, "sub")
        s.connect()
        assert s.sub("t/#", 1) == (1,)
        p = Client(b, "pub")
        p.connect()
        for q in (0, 1, 2):
            p.pub("t/%d" % q, b"m%d" % q, qos=q)
        got = {m.topic: m for m in s.take(3)}
        assert got["t/0"].qos == 0 and got["t/0"].payload == b"m0"
        assert got["t/1"].qos == 1
        assert got["t/2"].qos == 1, "QoS 2 must be downgraded to the subscription's 1"
        assert s.sub("u", 2) == (2,)
        p.pub("u", b"two", qos=2)
        m = s.get()
        assert m.qos == 2 and m.payload == b"two"
        s.none()
        s.disconnect()
        p.disconnect()


def test_retained_set_replace_clear():
    with Broker() as b:
        p = Client(b, "pub")
        p.connect()
        p.pub("r/a", b"one", qos=1, retain=True)
        p.pub("r/a", b"two", qos=1, retain=True)
        p.pub("r/b", b"bee", qos=1, retain=True)
        s = Client(b, "s1")
        s.connect()
        s.sub("r/+", 1)
        got = {m.topic: m for m in s.take(2)}
        assert got["r/a"].payload == b"two" and got["r/a"].retain
        assert got["r/b"].payload == b"bee"
        # Live messages reach existing subscribers with retain 0 in 3.1.1.
        p.pub("r/a", b"three", qos=1, retain=True)
        m = s.get()
        assert m.payload == b"three" and not m.retain
        p.pub("r/a", b"", qos=1, retain=True)  # clears
        assert s.get().payload == b""
        s2 = Client(b, "s2")
        s2.connect()
        s2.sub("r/#", 0)
        m = s2.get()
        assert m.topic == "r/b", m.topic
        s2.none()
        for c in (p, s, s2):
            c.disconnect()


def test_wildcards_and_dollar_topics():
    with Broker("-s", "1000") as b:
        s = Client(b, "w")
        s.connect()
        s.sub("#", 0)
        s.sub("+/x", 0)
        s.none(1.5)  # $SYS is retained but '#' must not see it
        d = Client(b, "d")
        d.connect()
        d.sub("$SYS/broker/uptime", 0)
        m = d.get()
        assert m.payload.endswith(b" seconds"), m.payload
        d.sub("$SYS/broker/clients/connected", 0)
        while True:  # the retained value may predate us: wait for an update
            m = d.get(3)
            if m.topic.endswith("connected") and int(m.payload) >= 2:
                break
        p = Client(b, "p")
        p.connect()
        p.pub("a/x", b"1")
        m = s.get()
        assert m.topic == "a/x"
        s.none(0.3)  # one copy for two matching subscriptions
        for c in (s, d, p):
            c.disconnect()


def test_will_abnormal_not_on_disconnect():
    with Broker() as b:
        w = Client(b, "watch")
        w.connect()
        w.sub("will/#", 1)
        c1 = Client(b, "dies", will=dict(topic="will/dies", payload=b"gone", qos=1))
        c1.connect()
        c1.drop()
        m = w.get()
        assert m.topic == "will/dies" and m.payload == b"gone"
        c2 = Client(b, "polite", will=dict(topic="will/polite", payload=b"gone", qos=1))
        c2.connect()
        c2.disconnect()
        w.none(0.7)
        w.disconnect()


def test_will_goes_out_at_once():
    """The will of a connection lost to EOF is sent in the same loop turn, not at the
    next 1 s tick (it waited 0.65-0.83 s, seen by the Paho Go suite's Test_Will)."""
    with Broker() as b:
        w = Raw(b)
        w.connect("will-watch")
        w.subscribe(1, "lat/#", 0)
        worst = 0.0
        for i in range(3):
            c = Raw(b)
            body = s16("MQTT") + bytes([4, 0x02 | 0x04]) + struct.pack("!H", 60) + \
                s16("lat%d" % i) + s16("lat/%d" % i) + s16("bye")
            c.send(packet(1, 0, body))
            c.expect(2)
            time.sleep(0.05)
            t0 = time.time()
            c.close()
            p = w.expect(3)
            worst = max(worst, time.time() - t0)
            assert parse_publish(p)[0] == "lat/%d" % i
        print("  slowest will: %.0f ms" % (worst * 1000))
        assert worst < 0.3, "a will took %.0f ms" % (worst * 1000)


def test_persistent_session_offline_queue():
    with Broker() as b:
        s = Client(b, "persist", clean=False)
        s.connect()
        assert not s.session_present()
        s.sub("q/#", 2)
        s.disconnect()
        p = Client(b, "pub")
        p.connect()
        for i in range(5):
            p.pub("q/%d" % i, b"%d" % i, qos=1 if i % 2 else 2)
        p.pub("q/zero", b"z", qos=0)  # QoS 0 is not queued for offline sessions
        time.sleep(0.3)  # let it arrive before the subscriber is back
        s = Client(b, "persist", clean=False)
        s.connect()
        assert s.session_present()
        # paho hands QoS 2 messages over at PUBREL: compare as a set.
        got = sorted(m.payload for m in s.take(5))
        assert got == [b"0", b"1", b"2", b"3", b"4"], got
        s.none()
        s.disconnect()
        # A clean session discards it.
        c = Client(b, "persist", clean=True)
        c.connect()
        assert not c.session_present()
        c.disconnect()
        p.pub("q/late", b"x", qos=1)
        s = Client(b, "persist", clean=False)
        s.connect()
        assert not s.session_present()
        s.none()
        s.disconnect()
        p.disconnect()


def test_queue_bound():
    with Broker("-q", "3") as b:
        s = Client(b, "bounded", clean=False)
        s.connect()
        s.sub("b", 1)
        s.disconnect()
        p = Client(b, "pub")
        p.connect()
        for i in range(10):
            p.pub("b", b"%d" % i, qos=1)
        s = Client(b, "bounded", clean=False)
        s.connect()
        got = [m.payload for m in s.take(3)]
        assert got == [b"0", b"1", b"2"], got
        s.none()
        s.disconnect()
        p.disconnect()


def test_redelivery_with_dup():
    with Broker() as b:
        r = Raw(b)
        r.connect("dup", clean=False)
        r.subscribe(1, "d", 1)
        p = Client(b, "pub")
        p.connect()
        p.pub("d", b"x", qos=1)
        topic, pid, payload, _, qos, dup, _ = parse_publish(r.expect(3))
        assert (topic, payload, qos, dup) == ("d", b"x", 1, False)
        r.close()  # no PUBACK
        time.sleep(0.2)
        r = Raw(b)
        t, f, body = r.connect("dup", clean=False)
        assert body[0] == 1, "session present"
        topic, pid2, payload, _, qos, dup, _ = parse_publish(r.expect(3))
        assert dup and pid2 == pid and payload == b"x"
        r.ack(4, pid2)
        # QoS 2 outbound: PUBREC then PUBREL is resent after a reconnect.
        r.subscribe(2, "e", 2)
        p.pub("e", b"y", qos=2)
        _, pid, _, _, qos, _, _ = parse_publish(r.expect(3))
        assert qos == 2
        r.ack(5, pid)  # PUBREC
        assert r.expect(6)[2][:2] == pid.to_bytes(2, "big")
        r.close()
        time.sleep(0.2)
        r = Raw(b)
        r.connect("dup", clean=False)
        assert r.expect(6)[2][:2] == pid.to_bytes(2, "big"), "PUBREL resent"
        r.ack(7, pid)
        r.close()
        p.disconnect()


def test_inbound_qos2_exactly_once():
    with Broker() as b:
        s = Client(b, "s")
        s.connect()
        s.sub("x", 2)
        r = Raw(b)
        r.connect("q2")
        r.publish("x", b"once", qos=2, pid=7)
        r.expect(5)
        r.publish("x", b"once", qos=2, pid=7, dup=True)  # resent before PUBREL
        r.expect(5)
        r.ack(6, 7)
        r.expect(7)
        assert s.get().payload == b"once"
        s.none()
        r.close()
        s.disconnect()


def test_takeover():
    with Broker() as b:
        a = Client(b, "same")
        a.connect()
        c = Client(b, "same")
        c.connect()
        assert a.disconnected.wait(5), "old connection closed on takeover"
        c.sub("t", 0)
        c.pub("t", b"still")
        assert c.get().payload == b"still"
        c.disconnect()


def test_keepalive_timeout_publishes_will():
    with Broker() as b:
        w = Client(b, "w")
        w.connect()
        w.sub("ka", 0)
        r = Raw(b)
        body = s16("MQTT") + bytes([4, 0x02 | 0x04]) + (1).to_bytes(2, "big") + s16("ka1") + \
            s16("ka") + s16("expired")
        r.send(packet(1, 0, body))
        r.expect(2)
        t0 = time.time()
        assert r.closed(4), "closed after 1.5 x keepalive"
        assert time.time() - t0 >= 1.0
        assert w.get().payload == b"expired"
        w.disconnect()


def test_empty_client_id():
    with Broker() as b:
        r = Raw(b)
        _, _, body = r.connect("", clean=False)
        assert body[1] == 2, "identifier rejected"
        r.close()
        c = Client(b, "", clean=True)
        c.connect()
        c.sub("e", 0)
        c.pub("e", b"ok")
        assert c.get().payload == b"ok"
        c.disconnect()


def test_anonymous_refused():
    with Broker("-a") as b:
        c = Client(b, "anon")
        c.connect(expect_rc=5)
        c.c.loop_stop()
        u = Client(b, "named", username="user")
        u.connect()
        u.disconnect()


def test_shared_subscription_round_robin():
    with Broker() as b:
        m1 = Client(b, "m1")
        m1.connect()
        m1.sub("$share/g/job/+", 1)
        m2 = Client(b, "m2")
        m2.connect()
        m2.sub("$share/g/job/+", 1)
        p = Client(b, "p")
        p.connect()
        for i in range(10):
            p.pub("job/%d" % i, b"%d" % i, qos=1)
        a = m1.take(5)
        c = m2.take(5)
        m1.none(0.3)
        m2.none(0.1)
        assert sorted(int(x.payload) for x in a + c) == list(range(10))
        m2.disconnect()
        for i in range(4):
            p.pub("job/x", b"%d" % i, qos=1)
        assert len(m1.take(4)) == 4
        m1.disconnect()
        p.disconnect()


def test_overlapping_one_copy_highest_qos():
    with Broker() as b:
        s = Client(b, "ov")
        s.connect()
        s.sub("o/+", 0)
        s.sub("o/#", 1)
        p = Client(b, "p")
        p.connect()
        p.pub("o/1", b"x", qos=1)
        m = s.get()
        assert m.qos == 1
        s.none()
        s.disconnect()
        p.disconnect()


def test_bad_input_closes_only_that_connection():
    with Broker() as b:
        good = Client(b, "good")
        good.connect()
        good.sub("g", 0)
        r = Raw(b)
        r.send(b"\x10\xff\xff\xff\xff\xff")  # bad remaining length
        assert r.closed(3)
        r = Raw(b)
        r.send(b"\x30\x02\x00\x00")  # PUBLISH before CONNECT
        assert r.closed(3)
        r = Raw(b)
        r.connect("twice")
        r.send(packet(1, 0, s16("MQTT") + bytes([4, 2, 0, 60]) + s16("twice")))
        assert r.closed(3), "second CONNECT closes"
        r = Raw(b)
        r.connect("badtopic")
        r.publish("a/+", b"x")
        assert r.closed(3), "wildcard in a topic name closes"
        good.pub("g", b"alive")
        assert good.get().payload == b"alive"
        assert b.alive()
        good.disconnect()


def test_oversize_packet():
    with Broker("-m", "1000") as b:
        r = Raw(b)
        r.connect("big")
        r.publish("x", b"y" * 2000)
        assert r.closed(3)
        c = Client(b, "ok")
        c.connect()
        c.disconnect()


def test_ipv6_listener():
    import socket
    with Broker("-6") as b:
        try:
            s = socket.create_connection(("::1", b.port), 2)
        except OSError:
            print("  (no IPv6 loopback, skipped)")
            return
        s.sendall(packet(1, 0, s16("MQTT") + bytes([4, 2, 0, 60]) + s16("v6")))
        assert s.recv(4) == b"\x20\x02\x00\x00"
        s.close()


if __name__ == "__main__":
    sys.exit(run([
        test_qos_levels_and_downgrade,
        test_retained_set_replace_clear,
        test_wildcards_and_dollar_topics,
        test_will_abnormal_not_on_disconnect,
        test_will_goes_out_at_once,
        test_persistent_session_offline_queue,
        test_queue_bound,
        test_redelivery_with_dup,
        test_inbound_qos2_exactly_once,
        test_takeover,
        test_keepalive_timeout_publishes_will,
        test_empty_client_id,
        test_anonymous_refused,
        test_shared_subscription_round_robin,
        test_overlapping_one_copy_highest_qos,
        test_bad_input_closes_only_that_connection,
        test_oversize_packet,
        test_ipv6_listener,
        test_acl_subscribe,
        test_acl_publish_refused_dropped,
        test_acl_deny_on_delivery_and_retained,
        test_acl_patterns,
        test_acl_will_not_writable_dropped,
        test_acl_no_file_everything_allowed,
        test_acl_file_errors,
    ]))
