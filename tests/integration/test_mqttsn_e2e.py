#!/usr/bin/python3
"""MQTT-SN gateway end to end: our MQTT-SN client (mqttsn_client.py, raw UDP)
on one side of build/fieldmq, a paho MQTT client on the other.

Covers: CONNECT with clean session and the will handshake, a client as a
broker session (will on keepalive loss, persistent subscriptions and queued
messages with clean session 0), REGISTER both ways, predefined ids from the
config, short topic names, SUBSCRIBE by name / wildcard / predefined id /
short name with the id in SUBACK, PUBLISH QoS 0, 1, 2 both ways and QoS -1,
retained messages, return codes, the mountpoint, a sleeping client back to
active with CONNECT (6.14), and SEARCHGW on the multicast group answered on
the group (5.4.4, in a network namespace of its own).
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_mqttsn_lib import Fieldmq, mqtt_publish, run, sn  # noqa: E402

PRED = "1 = sensors/temperature\n7 = cmd/all\n"


def test_connect_will_handshake_and_keepalive_loss():
    with Fieldmq() as f:
        watch = f.mqtt("watch")
        watch.sub("will/#", 1)
        # A will handshake (6.3) then silence: the will goes out after 1.5 x keepalive.
        a = f.sn("dev-a")
        a.connect(keepalive=2, will=("will/dev-a", b"lost", 1, False))
        # A clean DISCONNECT: no will, even with one set.
        b = f.sn("dev-b")
        b.connect(keepalive=2, will=("will/dev-b", b"never", 1, False))
        b.disconnect()
        # PINGREQ keeps a client alive past its keepalive.
        c = f.sn("dev-c")
        c.connect(keepalive=2, will=("will/dev-c", b"never", 0, False))
        f.wait_sys("clients", lambda v: v == 2)
        t0 = time.time()
        while time.time() - t0 < 4.5:
            c.ping()
            c.expect(sn.PINGRESP)
            time.sleep(0.7)
        m = watch.get(3)
        assert (m.topic, m.payload, m.qos) == ("will/dev-a", b"lost", 1), (m.topic, m.payload)
        assert time.time() - t0 >= 1.5, "will too early"
        watch.none(1.0)
        # The lost client's session is gone: it must connect again.
        a.send_publish(sn.short_id("zz"), b"x", 1, topic_type=sn.TOPIC_SHORT)
        a.expect(sn.DISCONNECT)
        assert c.publish(sn.short_id("ok"), b"1", 1, topic_type=sn.TOPIC_SHORT) == 0
        f.wait_sys("clients", lambda v: v == 1)
        watch.disconnect()


def test_persistent_session_queues_messages():
    with Fieldmq() as f:
        # clean session 0: the subscription outlives the connection (a broker session).
        a = f.sn("keep-me")
        a.connect(clean=False)
        assert a.subscribe("q/#", qos=1).rc == 0
        a.disconnect()
        mqtt_publish(f, "q/1", b"first", 1)
        mqtt_publish(f, "q/2", b"second", 1)
        a = f.sn("keep-me")
        a.connect(clean=False)
        got = a.collect(2)
        assert [(t, d, q) for t, d, q, _, _ in got] == [("q/1", b"first", 1),
                                                       ("q/2", b"second", 1)], got
        # clean session 1 drops the session: no subscription any more.
        a.disconnect()
        a = f.sn("keep-me")
        a.connect(clean=True)
        mqtt_publish(f, "q/3", b"third", 1)
        a.nothing(0.7)
        # And a clean-session client's subscriptions end with it.
        b = f.sn("temp")
        b.connect(clean=True)
        b.subscribe("t/#", 1)
        b.disconnect()
        b = f.sn("temp")
        b.connect(clean=False)
        mqtt_publish(f, "t/1", b"x", 1)
        b.nothing(0.7)


def test_register_and_publish_qos_0_1_2_to_mqtt():
    with Fieldmq() as f:
        m = f.mqtt("sub")
        for t in ("sn/#", "sensors/#", "cmd/#", "ab"):
            m.sub(t, 2)
        a = f.sn("pub1")
        a.connect()
        tid = a.register("sn/data")
        assert tid not in (0, 0xFFFF)
        assert a.register("sn/data") == tid, "the same name gets the same id"
        assert a.register("sn/other") != tid
        for qos in (0, 1, 2):
            a.publish(tid, b"q%d" % qos, qos)
            r = m.get()
            assert (r.topic, r.payload, r.qos) == ("sn/data", b"q%d" % qos, qos), \
                (r.topic, r.payload, r.qos)
        # Predefined id from the config, shared by all clients; short topic names.
        a.publish(1, b"21.5", 1, topic_type=sn.TOPIC_PREDEFINED)
        r = m.get()
        assert (r.topic, r.payload) == ("sensors/temperature", b"21.5")
        b = f.sn("pub2")
        b.connect()
        b.publish(7, b"all", 2, topic_type=sn.TOPIC_PREDEFINED)
        r = m.get()
        assert (r.topic, r.payload, r.qos) == ("cmd/all", b"all", 2)
        b.publish(sn.short_id("ab"), b"short", 1, topic_type=sn.TOPIC_SHORT)
        r = m.get()
        assert (r.topic, r.payload) == ("ab", b"short")
        # A QoS 2 PUBLISH sent again before PUBREL is published once.
        mid = b.send_publish(1, b"once", 2, topic_type=sn.TOPIC_PREDEFINED)
        assert b.expect(sn.PUBREC).msg_id == mid
        b.send_publish(1, b"once", 2, topic_type=sn.TOPIC_PREDEFINED, mid=mid, dup=True)
        assert b.expect(sn.PUBREC).msg_id == mid
        b.send(sn.PUBREL, mid.to_bytes(2, "big"))
        assert b.expect(sn.PUBCOMP).msg_id == mid
        r = m.get()
        assert r.payload == b"once"
        m.none(0.5)
        # One client's topic ids are its own: pub2 never registered sn/data's id.
        b.publish(tid, b"x", 1, expect_rc=sn.RC_INVALID_TOPIC_ID)
        m.none(0.3)
        m.disconnect()


def test_subscribe_kinds_and_delivery_qos():
    with Fieldmq() as f:
        a = f.sn("sub1")
        a.connect()
        # A plain name: its topic id in SUBACK; a filter: 0 (5.4.17).
        plain = a.subscribe("plain/topic", qos=2)
        assert plain.topic_id not in (0, 0xFFFF) and plain.qos == 2, plain
        wild = a.subscribe("dev/+/x", qos=1)
        assert wild.topic_id == 0 and wild.qos == 1, wild
        multi = a.subscribe("deep/#", qos=0)
        assert multi.topic_id == 0
        pre = a.subscribe(7, qos=1, topic_type=sn.TOPIC_PREDEFINED)
        assert pre.topic_id == 7, pre
        short = a.subscribe(sn.short_id("zz"), qos=2, topic_type=sn.TOPIC_SHORT)
        assert short.rc == 0

        # The plain name is delivered with the SUBACK's id, no REGISTER first.
        mqtt_publish(f, "plain/topic", b"p", 1)
        p = a.expect(sn.PUBLISH)
        assert (p.topic_type, p.topic_id, bytes(p.data), p.qos) == (0, plain.topic_id, b"p", 1)
        a.handle(p)
        # A topic matched by a wildcard is registered by the gateway first (6.10).
        mqtt_publish(f, "dev/7/x", b"w", 2)
        r = a.expect(sn.REGISTER)
        assert r.topic == "dev/7/x" and r.topic_id not in (0, plain.topic_id), r
        # Until REGACK nothing is published on it.
        a.nothing(0.3)
        a.handle(r)
        p = a.expect(sn.PUBLISH)
        assert (p.topic_id, bytes(p.data), p.qos) == (r.topic_id, b"w", 1), p
        a.handle(p)
        # A second message on the same topic needs no new REGISTER.
        mqtt_publish(f, "dev/7/x", b"w2", 0)
        p = a.expect(sn.PUBLISH)
        assert (p.topic_id, bytes(p.data), p.qos) == (r.topic_id, b"w2", 0)
        # Predefined and short: delivered with their ids and types.
        mqtt_publish(f, "cmd/all", b"c", 1)
        p = a.expect(sn.PUBLISH)
        assert (p.topic_type, p.topic_id, bytes(p.data)) == (sn.TOPIC_PREDEFINED, 7, b"c")
        a.handle(p)
        mqtt_publish(f, "zz", b"s", 2)
        p = a.expect(sn.PUBLISH)
        assert (p.topic_type, p.topic_id, p.qos) == (sn.TOPIC_SHORT, sn.short_id("zz"), 2)
        # QoS 2 out: PUBREC -> PUBREL -> PUBCOMP.
        a.send(sn.PUBREC, p.msg_id.to_bytes(2, "big"))
        rel = a.expect(sn.PUBREL)
        assert rel.msg_id == p.msg_id
        a.send(sn.PUBCOMP, p.msg_id.to_bytes(2, "big"))
        # Delivered QoS is min(subscription, publication).
        mqtt_publish(f, "deep/a/b/c", b"d", 2)
        got = a.collect(1)
        assert got[0][:3] == ("deep/a/b/c", b"d", 0), got
        # UNSUBSCRIBE: nothing more.
        a.unsubscribe("deep/#")
        a.unsubscribe(7, topic_type=sn.TOPIC_PREDEFINED)
        mqtt_publish(f, "deep/x", b"no", 0)
        mqtt_publish(f, "cmd/all", b"no", 0)
        a.nothing(0.5)
        # MQTT-SN to MQTT-SN through the broker.
        b = f.sn("pub-b")
        b.connect()
        b.publish(b.register("dev/9/x"), b"sn2sn", 1)
        got = a.collect(1)
        assert got[0][:2] == ("dev/9/x", b"sn2sn"), got


def test_qos_minus_one_without_connecting():
    with Fieldmq() as f:
        m = f.mqtt("sub")
        for t in ("sensors/#", "cmd/#", "xy"):
            m.sub(t, 1)
        s = f.sn("")  # never connects
        s.send_publish(1, b"m1-pre", qos=-1, topic_type=sn.TOPIC_PREDEFINED)
        r = m.get()
        assert (r.topic, r.payload, r.qos) == ("sensors/temperature", b"m1-pre", 0)
        s.send_publish(sn.short_id("xy"), b"m1-short", qos=-1, topic_type=sn.TOPIC_SHORT)
        r = m.get()
        assert (r.topic, r.payload) == ("xy", b"m1-short")
        # Retained with QoS -1 (6.8 allows the flag).
        s.send_publish(7, b"m1-ret", qos=-1, retain=True, topic_type=sn.TOPIC_PREDEFINED)
        r = m.get()
        assert r.payload == b"m1-ret"
        late = f.mqtt("late")
        late.sub("cmd/all", 0)
        r = late.get()
        assert (r.payload, r.retain) == (b"m1-ret", 1)
        late.disconnect()
        # A normal topic id or an unknown predefined id with QoS -1: dropped, not answered.
        before = f.wait_sys("dropped/received", lambda v: True)
        s.send_publish(1, b"no", qos=-1, topic_type=sn.TOPIC_NORMAL)
        s.send_publish(99, b"no", qos=-1, topic_type=sn.TOPIC_PREDEFINED)
        s.nothing(0.3)
        m.none(0.3)
        f.wait_sys("dropped/received", lambda v: v >= before + 2)
        m.disconnect()


def test_retained_both_ways():
    with Fieldmq() as f:
        mqtt_publish(f, "ret/a", b"from-mqtt", 1, retain=True)
        a = f.sn("ret")
        a.connect()
        # SUBACK first, then the retained message (registered first).
        sub = a.subscribe("ret/#", 1)
        assert sub.rc == 0
        got = a.collect(1)
        assert got[0][:4] == ("ret/a", b"from-mqtt", 1, True), got
        # A live message is not flagged retained.
        mqtt_publish(f, "ret/a", b"live", 0, retain=False)
        got = a.collect(1)
        assert got[0][3] is False, got
        # Retained from MQTT-SN.
        a.publish(a.register("ret/b"), b"from-sn", 1, retain=True)
        a.collect(1)  # its own subscription
        m = f.mqtt("late")
        m.sub("ret/b", 1)
        r = m.get()
        assert (r.payload, r.retain) == (b"from-sn", 1)
        m.disconnect()


def test_return_codes():
    with Fieldmq() as f:
        a = f.sn("rc")
        a.connect()
        # PUBLISH on an id never registered: PUBACK "invalid topic id", for QoS 0 too (6.7).
        assert a.publish(4242, b"x", 1, expect_rc=None) == sn.RC_INVALID_TOPIC_ID
        a.send_publish(4243, b"x", 0)
        ack = a.expect(sn.PUBACK)
        assert (ack.topic_id, ack.rc) == (4243, sn.RC_INVALID_TOPIC_ID)
        assert a.publish(99, b"x", 1, topic_type=sn.TOPIC_PREDEFINED,
                         expect_rc=None) == sn.RC_INVALID_TOPIC_ID
        # REGISTER of a filter: "not supported".
        a.register("a/+/b", expect_rc=sn.RC_NOT_SUPPORTED)
        # SUBSCRIBE to an unknown predefined id: "invalid topic id"; a bad filter: "not supported".
        assert a.subscribe(98, topic_type=sn.TOPIC_PREDEFINED,
                           expect_rc=None).rc == sn.RC_INVALID_TOPIC_ID
        assert a.subscribe("a/#/b", expect_rc=None).rc == sn.RC_NOT_SUPPORTED
        # A PUBLISH the broker refuses (a wildcard in a short topic name): "congestion",
        # the return code MQTT-SN has for "not accepted now" (5.3.10).
        rc = a.publish(sn.short_id("a+"), b"x", 1, topic_type=sn.TOPIC_SHORT, expect_rc=None)
        assert rc == sn.RC_CONGESTION, rc
        # CONNECT with another protocol id: "not supported".
        b = f.sn("bad-proto")
        b.send(sn.CONNECT, bytes([sn.flags(clean=True), 0x02, 0, 60]) + b"bad-proto")
        assert b.expect(sn.CONNACK).rc == sn.RC_NOT_SUPPORTED
        # The good client is not affected.
        assert a.publish(sn.short_id("ok"), b"1", 1, topic_type=sn.TOPIC_SHORT) == 0


def test_mountpoint():
    with Fieldmq(mqttsn="mountpoint = edge/\n") as f:
        m = f.mqtt("sub")
        m.sub("edge/#", 1)
        m.sub("a/#", 1)
        a = f.sn("mnt")
        a.connect(will=("will/mnt", b"bye", 0, False), keepalive=60)
        a.publish(a.register("a/b"), b"1", 1)
        r = m.get()
        assert r.topic == "edge/a/b", r.topic
        a.publish(1, b"2", 1, topic_type=sn.TOPIC_PREDEFINED)
        r = m.get()
        assert r.topic == "edge/sensors/temperature", r.topic
        sn.SnClient(f.addr).send_publish(sn.short_id("cd"), b"3", -1, topic_type=sn.TOPIC_SHORT)
        r = m.get()
        assert r.topic == "edge/cd", r.topic
        # Subscriptions live under the mountpoint; topics reach the client without it.
        a.subscribe("#", 1)
        mqtt_publish(f, "outside/x", b"no", 1)
        mqtt_publish(f, "edge/in/x", b"yes", 1)
        got = a.collect(1)
        assert got[0][:2] == ("in/x", b"yes"), got
        a.nothing(0.3)
        assert m.get().topic == "edge/in/x"
        m.none(0.3)
        m.disconnect()


def test_sleeping_client_wakes_with_connect():
    """6.14: a CONNECT from the asleep state returns the client to the active
    state: its subscriptions stay and what was buffered while it slept is
    delivered, clean session on or not. Paho's GatewayTester (samples/ClientSub:
    subscribe, sleep, CONNECT with clean session on) lost both before."""
    with Fieldmq() as f:
        a = f.sn("sleeper")
        a.connect(keepalive=60, clean=True)
        assert a.subscribe("zz/#", qos=1).rc == 0
        a.disconnect(duration=60)
        mqtt_publish(f, "zz/1", b"while-asleep", 1)
        a.nothing(0.3)
        a.connect(keepalive=60, clean=True)
        got = a.collect(1)
        assert got[0][:3] == ("zz/1", b"while-asleep", 1), got
        mqtt_publish(f, "zz/2", b"awake", 1)
        got = a.collect(1)
        assert got[0][:3] == ("zz/2", b"awake", 1), got
        # One connection accepted all along (figures are published every second).
        f.wait_sys("clients/total", lambda v: v == 1)
        # Active, a CONNECT with clean session on is a new session: nothing any more.
        a.connect(keepalive=60, clean=True)
        mqtt_publish(f, "zz/3", b"gone", 1)
        a.nothing(0.5)
        a.disconnect()


GROUP = ("225.1.1.1", 1883)  # Paho's group and port


def group_searchgw_inner():
    """Run in a network namespace of its own (unshare -n): only lo, multicast on it.

    A client listening on the group port, bound there before fieldmq binds the
    same port (as Paho's GatewayTester started first is), searches on the group.
    A unicast GWINFO to that port goes to whichever socket the kernel picks, here
    fieldmq's own; 5.4.4 wants GWINFO on the broadcast service, which reaches it."""
    for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "set", "lo", "multicast", "on"],
                ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"]):
        subprocess.run(cmd, check=True)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", GROUP[1]))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(GROUP[0]) + socket.inet_aton("127.0.0.1"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    try:
        with Fieldmq(mqttsn="multicast = %s:%d\n" % GROUP) as f:
            s.sendto(sn.frame(sn.SEARCHGW, b"\x01"), GROUP)
            deadline = time.time() + 3
            seen = []
            while True:
                s.settimeout(max(deadline - time.time(), 0.01))
                try:
                    data, src = s.recvfrom(2000)
                except socket.timeout:
                    raise AssertionError("no GWINFO on the group port; heard %r" % seen)
                m = sn.parse(data)
                seen.append((sn.NAMES.get(m.type, m.type), src))
                if m.type == sn.GWINFO:
                    break
            assert src == f.addr, (src, f.addr)
            # The searcher connects where GWINFO came from.
            c = sn.SnClient(src, "grp")
            c.connect()
            c.disconnect()
            c.close()
    finally:
        s.close()


def test_searchgw_on_group_answered_on_group():
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        print("SKIP test_searchgw_on_group_answered_on_group: no network namespace (not root?)")
        return
    r = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__),
                        "--group-searchgw"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


if __name__ == "__main__" and sys.argv[1:] == ["--group-searchgw"]:
    group_searchgw_inner()
elif __name__ == "__main__":
    sys.exit(run([
        test_connect_will_handshake_and_keepalive_loss,
        test_persistent_session_queues_messages,
        test_register_and_publish_qos_0_1_2_to_mqtt,
        test_subscribe_kinds_and_delivery_qos,
        test_qos_minus_one_without_connecting,
        test_retained_both_ways,
        test_return_codes,
        test_mountpoint,
        test_sleeping_client_wakes_with_connect,
        test_searchgw_on_group_answered_on_group,
    ]))
