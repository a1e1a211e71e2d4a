"""Shared helpers of the broker integration tests (test_broker_*.py).

Starts build/sim/brokerd (or $BROKERD) on a free 127.0.0.1 port, wraps
python3-paho-mqtt clients with bounded waits, and offers a raw-socket MQTT
client for what paho cannot show (DUP flags, receive maximum, topic aliases,
malformed packets). Every wait has a timeout; every process started is killed
by PID.
"""
import os
import queue
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from itlib import free_port, stop_proc

BUILD = os.environ.get("BUILD", "build")
BROKERD = os.environ.get("BROKERD", os.path.join(BUILD, "sim", "brokerd"))
T = 5.0  # default bound of every wait, seconds


def write_acl(text):
    """Writes text to a new acl file in the temporary folder; returns its path."""
    fd, path = tempfile.mkstemp(prefix="fieldmq-acl-", suffix=".acl")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


class Broker:
    def __init__(self, *args, acl=None):
        """acl: the text of an acl file, passed with -A (removed on stop)."""
        self.port = free_port()
        self.acl_path = None
        args = list(args)
        if acl is not None:
            self.acl_path = write_acl(acl)
            args += ["-A", self.acl_path]
        self.proc = subprocess.Popen([BROKERD, "-p", str(self.port)] + args,
                                     stdout=subprocess.DEVNULL)
        deadline = time.time() + T
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("brokerd exited: %s" % self.proc.returncode)
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("brokerd did not start")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rc = self.stop()
        assert rc == 0, "brokerd exit status %r (crash or leak?)" % rc

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.acl_path:
            os.unlink(self.acl_path)
            self.acl_path = None
        return stop_proc(self.proc, T)


class Client:
    """A paho client with queues instead of callbacks."""

    def __init__(self, broker, cid="", v5=False, clean=True, will=None, userdata=None,
                 username=None):
        self.v5 = v5
        self.broker = broker
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.c = mqtt.Client(client_id=cid, clean_session=None if v5 else clean,
                             protocol=proto)
        self.clean = clean
        self.msgs = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.subacks = {}
        self.sub_ev = threading.Condition()
        self.connack = None
        self.disc_rc = None
        self.disc_props = None
        if will:
            self.c.will_set(**will)
        if username:
            self.c.username_pw_set(username, "x")
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connack = (flags, rc, props)
        self.connected.set()

    def _on_disconnect(self, c, u, rc, props=None):
        self.disc_rc = rc
        self.disc_props = props
        self.disconnected.set()

    def _on_subscribe(self, c, u, mid, granted, props=None):
        with self.sub_ev:
            self.subacks[mid] = granted
            self.sub_ev.notify_all()

    def connect(self, keepalive=60, props=None, expect_rc=0):
        kw = {}
        if self.v5:
            kw["clean_start"] = self.clean
            if props is not None:
                kw["properties"] = props
        self.c.connect("127.0.0.1", self.broker.port, keepalive, **kw)
        self.c.loop_start()
        assert self.connected.wait(T), "no CONNACK"
        rc = self.connack[1]
        rc = rc.value if hasattr(rc, "value") else rc
        assert rc == expect_rc, "CONNACK rc %r, wanted %r" % (rc, expect_rc)
        return self.connack

    def session_present(self):
        return bool(self.connack[0].get("session present"))

    def sub(self, topic, qos=0, options=None, props=None):
        if self.v5:
            opts = options or mqtt.SubscribeOptions(qos=qos)
            rc, mid = self.c.subscribe(topic, options=opts, properties=props)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == 0
        deadline = time.time() + T
        with self.sub_ev:
            while mid not in self.subacks:
                left = deadline - time.time()
                assert left > 0, "no SUBACK"
                self.sub_ev.wait(left)
        return self.subacks[mid]

    def pub(self, topic, payload=b"", qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        if qos:
            info.wait_for_publish(T)
            assert info.is_published(), "no ack for %s" % topic
        return info

    def get(self, timeout=T):
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message within %.1fs" % timeout)

    def take(self, n, timeout=T):
        return [self.get(timeout) for _ in range(n)]

    def none(self, timeout=0.5):
        try:
            m = self.msgs.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("unexpected message %s %r" % (m.topic, m.payload))

    def disconnect(self, props=None, rc=None):
        if self.v5 and rc is not None:
            self.c.disconnect(reasoncode=rc, properties=props)
        else:
            self.c.disconnect()
        self.disconnected.wait(T)
        self.c.loop_stop()
        # paho reports the disconnection when it has sent DISCONNECT; give
        # the broker time to read it before other sockets race ahead.
        time.sleep(0.1)

    def drop(self):
        """Close the socket without DISCONNECT (an abnormal loss)."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


# ------------------------------------------------------------- raw client

def varint(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def read_varint(buf, i):
    """(value, index after it) of the MQTT variable byte integer at buf[i]."""
    mult, n = 1, 0
    while True:
        b = buf[i]
        i += 1
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return n, i


def s16(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("!H", len(b)) + b


def packet(t, flags, body):
    return bytes([(t << 4) | flags]) + varint(len(body)) + body


def props(raw=b""):
    return varint(len(raw)) + raw


def connect_pkt(cid, version=4, clean=True, keepalive=60, prop=b"", user=None):
    flags = (0x02 if clean else 0) | (0x80 if user is not None else 0)
    body = s16("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += props(prop)
    body += s16(cid)
    if user is not None:
        body += s16(user)
    return packet(1, 0, body)


class Raw:
    """A raw MQTT client over a socket: exact bytes in both directions."""

    def __init__(self, broker, version=4):
        self.v = version
        self.s = socket.create_connection(("127.0.0.1", broker.port), T)
        self.s.settimeout(T)
        self.buf = b""

    def send(self, b):
        self.s.sendall(b)

    def recv_pkt(self, timeout=T):
        """(type, flags, body) or None when the peer closed."""
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                mult, n, i = 1, 0, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + n and not (self.buf[i - 1] & 0x80):
                    t, body = self.buf[0], self.buf[i:i + n]
                    self.buf = self.buf[i + n:]
                    return (t >> 4, t & 0xF, body)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                raise AssertionError("raw: no packet within %.1fs" % timeout)
            except ConnectionResetError:
                d = b""
            if not d:
                return None
            self.buf += d

    def expect(self, t, timeout=T):
        p = self.recv_pkt(timeout)
        assert p is not None, "raw: closed while waiting for type %d" % t
        assert p[0] == t, "raw: got type %d, wanted %d" % (p[0], t)
        return p

    def closed(self, timeout=T):
        """True if the broker closes the socket (packets before that are skipped)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                p = self.recv_pkt(deadline - time.time())
            except AssertionError:
                return False
            if p is None:
                return True
            self.last = p
        return False

    def connect(self, cid, clean=True, keepalive=60, prop=b"", user=None):
        self.send(connect_pkt(cid, self.v, clean, keepalive, prop, user))
        return self.expect(2)

    def subscribe(self, pid, topic, opts):
        body = struct.pack("!H", pid) + (props() if self.v == 5 else b"") + s16(topic) + \
            bytes([opts])
        self.send(packet(8, 2, body))
        return self.expect(9)

    def publish(self, topic, payload, qos=0, pid=0, retain=False, dup=False, prop=b""):
        body = s16(topic) + (struct.pack("!H", pid) if qos else b"")
        if self.v == 5:
            body += props(prop)
        body += payload
        self.send(packet(3, (qos << 1) | (1 if retain else 0) | (8 if dup else 0), body))

    def ack(self, t, pid):
        self.send(packet(t, 2 if t == 6 else 0, struct.pack("!H", pid)))

    def close(self):
        self.s.close()


def parse_publish(p, version=4):
    """(topic, pid, payload, props_raw, qos, dup, retain) of a raw PUBLISH."""
    t, flags, body = p
    qos = (flags >> 1) & 3
    n = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + n].decode()
    i = 2 + n
    pid = 0
    if qos:
        pid = struct.unpack("!H", body[i:i + 2])[0]
        i += 2
    praw = b""
    if version == 5:
        plen, i = read_varint(body, i)
        praw = body[i:i + plen]
        i += plen
    return topic, pid, body[i:], praw, qos, bool(flags & 8), bool(flags & 1)


# ---------------------------------------------------------------- runner

def run(tests):
    failed = 0
    for fn in tests:
        t0 = time.time()
        try:
            fn()
            print("ok   %s (%.1fs)" % (fn.__name__, time.time() - t0))
        except Exception:
            failed += 1
            print("FAIL %s" % fn.__name__)
            traceback.print_exc()
        sys.stdout.flush()
    print("%d passed, %d failed" % (len(tests) - failed, failed))
    return 1 if failed else 0
