#!/usr/bin/python3
"""MQTT-SN gateway end to end, second part: sleeping clients, discovery on the
unicast port, retransmissions, limits (max_clients, the per-client queue),
malformed and unexpected datagrams ($SYS/fieldmq/mqttsn/... figures), and a
client whose address changes (NAT rebinding).
"""
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_mqttsn_lib import Fieldmq, mqtt_publish, run, sn  # noqa: E402

# mqttsn_config_defaults(): max_queued (not an INI key yet).
MAX_QUEUED = 100


def test_sleep_buffer_wake_and_supervision():
    with Fieldmq() as f:
        watch = f.mqtt("watch")
        watch.sub("will/#", 1)
        a = f.sn("sleepy")
        a.connect(keepalive=30, will=("will/sleepy", b"dead", 1, False))
        a.subscribe("s/#", 1)
        a.subscribe(sn.short_id("s0"), 0, topic_type=sn.TOPIC_SHORT)
        # 6.14: DISCONNECT with a duration; the gateway answers DISCONNECT.
        a.disconnect(duration=3)
        mqtt_publish(f, "s/1", b"one", 1)
        mqtt_publish(f, "s0", b"zero", 0)
        mqtt_publish(f, "s/2", b"two", 1)
        a.nothing(0.5)  # asleep: buffered, not sent
        # PINGREQ with the client id: the buffered messages, then PINGRESP.
        a.ping(b"sleepy")
        got = a.collect(3, until=sn.PINGRESP)
        assert [(t, d) for t, d, _, _, _ in got] == [("s/1", b"one"), ("s0", b"zero"),
                                                     ("s/2", b"two")], got
        a.expect(sn.PINGRESP)
        # Asleep again: nothing flows until the next PINGREQ; an empty buffer gives PINGRESP.
        mqtt_publish(f, "s/3", b"three", 1)
        a.nothing(0.5)
        a.ping(b"sleepy")
        got = a.collect(1, until=sn.PINGRESP)
        assert got[0][:2] == ("s/3", b"three"), got
        a.expect(sn.PINGRESP)
        a.ping(b"sleepy")
        a.expect(sn.PINGRESP)
        # The buffer is bounded: past max_queued messages are dropped and counted.
        dropped0 = f.wait_sys("dropped/sent", lambda v: True)
        m = f.mqtt("burst")
        for i in range(MAX_QUEUED + 20):
            m.pub("s/burst", b"%d" % i, 1)
        m.disconnect()
        f.wait_sys("dropped/sent", lambda v: v >= dropped0 + 20)
        a.ping(b"sleepy")
        got = a.collect(MAX_QUEUED, timeout=15, until=sn.PINGRESP)
        assert [d for _, d, _, _, _ in got] == [b"%d" % i for i in range(MAX_QUEUED)], \
            [d for _, d, _, _, _ in got][:5]
        a.expect(sn.PINGRESP)
        # CONNECT ends the sleep (6.14): messages flow at once again.
        # (each CONNECT sets the will anew: 6.3)
        a.connect(keepalive=30, clean=False, will=("will/sleepy", b"dead", 1, False))
        mqtt_publish(f, "s/4", b"four", 1)
        assert a.collect(1)[0][:2] == ("s/4", b"four")
        # The sleep is supervised like a keepalive: silent past 1.5 x duration, lost.
        a.disconnect(duration=2)
        t0 = time.time()
        m = watch.get(6)
        assert (m.topic, m.payload) == ("will/sleepy", b"dead"), (m.topic, m.payload)
        assert time.time() - t0 >= 2.5, "lost too early: %.1fs" % (time.time() - t0)
        # Its PINGREQ now finds no session: told to connect again.
        a.ping(b"sleepy")
        a.expect(sn.DISCONNECT)
        watch.disconnect()


def test_sleeping_client_wakes_from_new_address():
    with Fieldmq() as f:
        a = f.sn("roamer")
        a.connect()
        a.subscribe("r/#", 1)
        a.disconnect(duration=30)
        mqtt_publish(f, "r/1", b"x", 1)
        old = a.port()
        a.rebind()
        assert a.port() != old
        a.ping(b"roamer")
        got = a.collect(1, until=sn.PINGRESP)
        assert got[0][:2] == ("r/1", b"x"), got
        a.expect(sn.PINGRESP)


def test_nat_rebinding_on_connect():
    with Fieldmq() as f:
        a = f.sn("nat")
        a.connect(clean=False)
        sub = a.subscribe("n/#", 1)
        assert sub.rc == 0
        old = sn.SnClient(f.addr, "nat", sock=a.sock)  # keeps the old socket open
        a.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.sock.bind(("127.0.0.1", 0))
        # The same client id from a new port, clean session 0: the same session.
        a.connect(clean=False)
        mqtt_publish(f, "n/1", b"moved", 1)
        got = a.collect(1)
        assert got[0][:2] == ("n/1", b"moved"), got
        old.nothing(0.3)
        assert f.wait_sys("clients", lambda v: v == 1) == 1
        # The old address is no client any more: its PUBLISH is refused.
        old.send_publish(sn.short_id("zz"), b"x", 1, topic_type=sn.TOPIC_SHORT)
        old.expect(sn.DISCONNECT)
        old.close()


def test_retransmission_with_retry_interval():
    with Fieldmq(mqttsn="retry_interval = 1s\n") as f:
        a = f.sn("slow")
        a.connect()
        a.subscribe("rt/x", 1)
        mqtt_publish(f, "rt/x", b"again", 1)
        p = a.expect(sn.PUBLISH)
        assert not p.dup
        t0 = time.time()
        p2 = a.expect(sn.PUBLISH, timeout=3)
        assert p2.dup and p2.msg_id == p.msg_id and bytes(p2.data) == b"again", p2
        assert 0.8 <= time.time() - t0 <= 2.5, time.time() - t0
        a.handle(p2)
        a.nothing(1.5)  # acknowledged: no more retries
        # A REGISTER without REGACK is retried too.
        a.subscribe("rt/+", 1)
        mqtt_publish(f, "rt/y", b"r", 1)
        r = a.expect(sn.REGISTER)
        r2 = a.expect(sn.REGISTER, timeout=3)
        assert (r2.msg_id, r2.topic) == (r.msg_id, "rt/y"), r2
        a.handle(r2)
        assert a.collect(1)[0][:2] == ("rt/y", b"r")


def test_discovery_unicast():
    with Fieldmq(mqttsn="gateway_id = 42\n") as f:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        gi = sn.searchgw(s, f.addr)
        assert gi is not None and gi.gw_id == 42, gi
        # Radius is ignored; a SEARCHGW needs no connection.
        gi = sn.searchgw(s, f.addr, radius=0)
        assert gi is not None and gi.gw_id == 42
        s.close()


def test_max_clients():
    with Fieldmq(mqttsn="max_clients = 2\n") as f:
        a = f.sn("c1")
        a.connect()
        b = f.sn("c2")
        b.connect()
        c = f.sn("c3")
        c.connect(expect_rc=sn.RC_CONGESTION)
        # A client already connected may connect again (it takes no new place).
        a.connect()
        f.wait_sys("clients/refused", lambda v: v == 1)
        f.wait_sys("clients", lambda v: v == 2)
        b.disconnect()
        c.connect()
        assert c.publish(sn.short_id("ok"), b"1", 1, topic_type=sn.TOPIC_SHORT) == 0


def test_malformed_and_unexpected_datagrams():
    with Fieldmq() as f:
        m = f.mqtt("sub")
        m.sub("good/#", 1)
        good = f.sn("good")
        good.connect()
        tid = good.register("good/t")
        good.subscribe("good/#", 0)
        mal0 = f.wait_sys("malformed", lambda v: True)
        drop0 = f.wait_sys("dropped/received", lambda v: True)
        bad = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bad.bind(("127.0.0.1", 0))
        rnd = random.Random(6)
        malformed = [
            b"", b"\x00", b"\x01", b"\x02", b"\x05\x0c", b"\xff\x0c\x00",
            b"\x03\x04\x00",  # length too short for CONNECT
            b"\x01\x00\x09\x16\x00",  # 3-octet length that lies
            sn.frame(0x03), sn.frame(0x11), sn.frame(0x1e), sn.frame(0xfd),  # reserved types
            sn.frame(sn.CONNACK, b"\x07"),  # reserved return code
            sn.frame(sn.PUBLISH, b"\x03\x00\x01\x00\x01x"),  # topic id type 3
            sn.frame(sn.SUBSCRIBE, b"\x60\x00\x01a"),  # QoS -1 SUBSCRIBE
            sn.frame(sn.CONNECT, b"\x04\x01\x00\x3c"),  # empty client id
            sn.frame(sn.REGISTER, b"\x00\x00\x00\x01"),  # empty topic
            bytes([3, 0xfe, 0x00]),  # encapsulation without a message
        ]
        for d in malformed:
            bad.sendto(d, f.addr)
        # Each is counted once as malformed (an empty datagram included).
        f.wait_sys("malformed", lambda v: v >= mal0 + len(malformed))
        time.sleep(1.2)
        assert f.sys("malformed") == mal0 + len(malformed), (f.sys("malformed"), mal0)
        for _ in range(200):
            n = rnd.randrange(1, 40)
            bad.sendto(bytes(rnd.randrange(256) for _ in range(n)), f.addr)
        # Decodable but unexpected: acks from nobody, a gateway's own messages, out of order.
        unexpected = [
            sn.frame(sn.PUBACK, struct.pack(">HHB", 1, 1, 0)),
            sn.frame(sn.PUBREL, b"\x00\x01"),
            sn.frame(sn.REGACK, struct.pack(">HHB", 1, 1, 0)),
            sn.frame(sn.WILLTOPIC, b"\x00a/b"),
            sn.frame(sn.WILLMSG, b"x"),
            sn.frame(sn.DISCONNECT),
        ]
        for d in unexpected:
            bad.sendto(d, f.addr)
        # From the good client's own address: a gateway-only message, a stray ack.
        good.send(sn.CONNACK, b"\x00")
        good.send(sn.PUBACK, struct.pack(">HHB", 1, 999, 0))
        good.send(sn.WILLMSGREQ)
        # None of it was answered with anything but DISCONNECT, none crashed the gateway.
        bad.settimeout(0.5)
        try:
            while True:
                d, _ = bad.recvfrom(2000)
                assert sn.parse(d).type == sn.DISCONNECT, d
        except socket.timeout:
            pass
        assert f.alive()
        good.nothing(0.3)
        # The good client still works, both ways.
        good.publish(tid, b"still-here", 1)
        assert m.get().payload == b"still-here"
        assert good.collect(1)[0][:2] == ("good/t", b"still-here")
        f.wait_sys("malformed", lambda v: v >= mal0 + len(malformed))
        f.wait_sys("dropped/received", lambda v: v >= drop0 + len(unexpected) + 2)
        f.wait_sys("datagrams/received", lambda v: v >= len(malformed) + 200)
        m.disconnect()


if __name__ == "__main__":
    sys.exit(run([
        test_sleep_buffer_wake_and_supervision,
        test_sleeping_client_wakes_from_new_address,
        test_nat_rebinding_on_connect,
        test_retransmission_with_retry_interval,
        test_discovery_unicast,
        test_max_clients,
        test_malformed_and_unexpected_datagrams,
    ]))
