"""A small MQTT-SN v1.2 client over raw UDP sockets, for the integration tests.

Written from the MQTT-SN Protocol Specification v1.2 (section numbers below),
independently of adapters/mqttsn/mqttsn_codec.c, so that the tests check the
gateway against the spec rather than against its own codec. Every wait is
bounded; nothing here sends anywhere but the address it is given.

    c = SnClient(("127.0.0.1", port), "dev1")
    c.connect(keepalive=60)                    # CONNECT / CONNACK
    tid = c.register("a/b")                    # REGISTER / REGACK
    c.publish(tid, b"x", qos=1)                # PUBLISH / PUBACK
    c.subscribe("cmd/#", qos=1)                # SUBSCRIBE / SUBACK
    msgs = c.collect(2)                        # REGISTER + PUBLISH from the gateway, acked
"""
import socket
import struct
import time

# Message types (5.2.2, table 3).
ADVERTISE, SEARCHGW, GWINFO = 0x00, 0x01, 0x02
CONNECT, CONNACK = 0x04, 0x05
WILLTOPICREQ, WILLTOPIC, WILLMSGREQ, WILLMSG = 0x06, 0x07, 0x08, 0x09
REGISTER, REGACK = 0x0A, 0x0B
PUBLISH, PUBACK, PUBCOMP, PUBREC, PUBREL = 0x0C, 0x0D, 0x0E, 0x0F, 0x10
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 0x12, 0x13, 0x14, 0x15
PINGREQ, PINGRESP, DISCONNECT = 0x16, 0x17, 0x18
WILLTOPICUPD, WILLTOPICRESP, WILLMSGUPD, WILLMSGRESP = 0x1A, 0x1B, 0x1C, 0x1D
ENCAPSULATED = 0xFE

NAMES = {v: k for k, v in dict(globals()).items() if k.isupper() and isinstance(v, int)}

# Return codes (5.3.10).
RC_ACCEPTED, RC_CONGESTION, RC_INVALID_TOPIC_ID, RC_NOT_SUPPORTED = 0, 1, 2, 3
# TopicIdType (5.3.4).
TOPIC_NORMAL, TOPIC_PREDEFINED, TOPIC_SHORT = 0, 1, 2

T = 5.0  # default bound of every wait, seconds


class SnError(AssertionError):
    pass


def flags(dup=False, qos=0, retain=False, will=False, clean=False, topic_type=0):
    """The flags byte (5.3.4); QoS -1 is 0b11."""
    q = 3 if qos == -1 else qos
    return (dup << 7) | (q << 5) | (retain << 4) | (will << 3) | (clean << 2) | topic_type


def unflags(b):
    q = (b >> 5) & 3
    return dict(dup=bool(b & 0x80), qos=-1 if q == 3 else q, retain=bool(b & 0x10),
                will=bool(b & 0x08), clean=bool(b & 0x04), topic_type=b & 3)


def frame(mtype, body=b""):
    """Length (1 octet, or 0x01 + 2 octets past 255: 5.2.1), MsgType, body."""
    n = len(body) + 2
    if n <= 255:
        return bytes([n, mtype]) + body
    return b"\x01" + struct.pack(">H", n + 2) + bytes([mtype]) + body


def short_id(name):
    """The topic id carrying a two-character short topic name (5.3.11)."""
    b = name.encode() if isinstance(name, str) else name
    assert len(b) == 2
    return (b[0] << 8) | b[1]


class Msg:
    """One decoded message; attributes depend on the type."""

    def __init__(self, mtype, raw):
        self.type = mtype
        self.raw = raw

    def __repr__(self):
        f = {k: v for k, v in self.__dict__.items() if k not in ("type", "raw")}
        return "%s%r" % (NAMES.get(self.type, hex(self.type)), f)


def parse(data):
    """Decodes one datagram into a Msg; raises SnError if malformed."""
    if len(data) < 2:
        raise SnError("short datagram %r" % data)
    if data[0] == 0x01:
        if len(data) < 4:
            raise SnError("short datagram %r" % data)
        n, off = struct.unpack(">H", data[1:3])[0], 3
    else:
        n, off = data[0], 1
    if n != len(data):
        raise SnError("length %d != datagram %d: %r" % (n, len(data), data))
    t, b = data[off], data[off + 1:]
    m = Msg(t, data)
    try:
        if t == ADVERTISE:
            m.gw_id, m.duration = struct.unpack(">BH", b)
        elif t == GWINFO:
            m.gw_id, m.gw_addr = b[0], b[1:]
        elif t == SEARCHGW:
            m.radius = b[0]
        elif t in (CONNACK, WILLTOPICRESP, WILLMSGRESP):
            (m.rc,) = struct.unpack(">B", b)
        elif t in (WILLTOPICREQ, WILLMSGREQ, PINGRESP):
            assert not b
        elif t == REGISTER:
            m.topic_id, m.msg_id = struct.unpack(">HH", b[:4])
            m.topic = b[4:].decode()
        elif t in (REGACK, PUBACK):
            m.topic_id, m.msg_id, m.rc = struct.unpack(">HHB", b)
        elif t == PUBLISH:
            m.flags = unflags(b[0])
            m.qos, m.retain, m.dup = m.flags["qos"], m.flags["retain"], m.flags["dup"]
            m.topic_type = m.flags["topic_type"]
            m.topic_id, m.msg_id = struct.unpack(">HH", b[1:5])
            m.data = b[5:]
        elif t in (PUBREC, PUBREL, PUBCOMP, UNSUBACK):
            (m.msg_id,) = struct.unpack(">H", b)
        elif t == SUBACK:
            m.flags = unflags(b[0])
            m.qos = m.flags["qos"]
            m.topic_id, m.msg_id, m.rc = struct.unpack(">HHB", b[1:])
        elif t == DISCONNECT:
            m.duration = struct.unpack(">H", b)[0] if b else None
        elif t == PINGREQ:
            m.client_id = b
    except (struct.error, IndexError, AssertionError, UnicodeDecodeError) as e:
        raise SnError("malformed %s: %r (%s)" % (NAMES.get(t, t), data, e))
    return m


class SnClient:
    """One MQTT-SN client on its own UDP socket."""

    def __init__(self, gw, client_id="", bind=("127.0.0.1", 0), sock=None):
        self.gw = gw
        self.client_id = client_id.encode() if isinstance(client_id, str) else client_id
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if sock is None:
            self.sock.bind(bind)
        self.next_mid = 1
        self.pending = []  # received, not yet taken
        self.topics = {}  # topic id -> name (REGISTER from the gateway, REGACK, SUBACK)
        self.qos2_in = set()

    # ---------------------------------------------------------------- I/O
    def close(self):
        self.sock.close()

    def rebind(self):
        """A new source port, as after a NAT rebinding."""
        self.sock.close()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def port(self):
        return self.sock.getsockname()[1]

    def send_raw(self, data, to=None):
        self.sock.sendto(data, to or self.gw)

    def send(self, mtype, body=b""):
        self.send_raw(frame(mtype, body))

    def mid(self):
        m = self.next_mid
        self.next_mid = self.next_mid % 0xFFFF + 1
        return m

    def recv(self, timeout=T):
        """The next message (pending first), or None after timeout seconds."""
        if self.pending:
            return self.pending.pop(0)
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(70000)
        except (socket.timeout, BlockingIOError):
            return None
        return parse(data)

    def expect(self, mtype, timeout=T, skip=()):
        """Waits for a message of type mtype; types in skip are set aside, others fail."""
        deadline = time.time() + timeout
        aside = []
        try:
            while True:
                left = deadline - time.time()
                m = self.recv(max(left, 0.001)) if left > 0 else None
                if m is None:
                    raise SnError("no %s within %.1fs (set aside: %r)"
                                  % (NAMES[mtype], timeout, aside))
                if m.type == mtype:
                    return m
                if m.type in skip:
                    aside.append(m)
                    continue
                raise SnError("expected %s, got %r" % (NAMES[mtype], m))
        finally:
            self.pending = aside + self.pending

    def nothing(self, timeout=0.5):
        """Fails if anything arrives within timeout seconds."""
        m = self.recv(timeout)
        if m is not None:
            raise SnError("unexpected %r" % m)

    # ------------------------------------------------------ conversations
    def connect(self, keepalive=60, clean=True, will=None, expect_rc=RC_ACCEPTED):
        """CONNECT (6.3); will = (topic, message, qos, retain) runs the will handshake."""
        body = bytes([flags(will=will is not None, clean=clean), 0x01])
        self.send(CONNECT, body + struct.pack(">H", keepalive) + self.client_id)
        if will is not None:
            topic, msg, wqos, wretain = will
            self.expect(WILLTOPICREQ)
            self.send(WILLTOPIC, bytes([flags(qos=wqos, retain=wretain)]) + topic.encode())
            self.expect(WILLMSGREQ)
            self.send(WILLMSG, msg)
        m = self.expect(CONNACK)
        if expect_rc is not None and m.rc != expect_rc:
            raise SnError("CONNACK rc %d, expected %d" % (m.rc, expect_rc))
        return m.rc

    def register(self, topic, expect_rc=RC_ACCEPTED):
        mid = self.mid()
        self.send(REGISTER, struct.pack(">HH", 0, mid) + topic.encode())
        m = self.expect(REGACK)
        if m.msg_id != mid:
            raise SnError("REGACK for msg id %d, expected %d" % (m.msg_id, mid))
        if expect_rc is not None and m.rc != expect_rc:
            raise SnError("REGACK rc %d, expected %d" % (m.rc, expect_rc))
        if m.rc == RC_ACCEPTED:
            self.topics[m.topic_id] = topic
        return m.topic_id

    def send_publish(self, topic_id, data, qos=0, retain=False, topic_type=TOPIC_NORMAL,
                     mid=None, dup=False):
        """Sends one PUBLISH and returns its msg id (no waiting)."""
        if mid is None:
            mid = self.mid() if qos > 0 else 0
        data = data.encode() if isinstance(data, str) else data
        self.send(PUBLISH, bytes([flags(dup=dup, qos=qos, retain=retain, topic_type=topic_type)])
                  + struct.pack(">HH", topic_id, mid) + data)
        return mid

    def publish(self, topic_id, data, qos=0, retain=False, topic_type=TOPIC_NORMAL,
                expect_rc=RC_ACCEPTED):
        """PUBLISH with its QoS flow (6.7); returns the PUBACK rc (0 for QoS <= 0)."""
        mid = self.send_publish(topic_id, data, qos, retain, topic_type)
        if qos == 1 or (qos == 2 and expect_rc != RC_ACCEPTED):
            m = self.expect(PUBACK, skip=(PUBLISH, REGISTER))
            if m.msg_id != mid:
                raise SnError("PUBACK for %d, expected %d" % (m.msg_id, mid))
            if expect_rc is not None and m.rc != expect_rc:
                raise SnError("PUBACK rc %d, expected %d" % (m.rc, expect_rc))
            return m.rc
        if qos == 2:
            m = self.expect(PUBREC, skip=(PUBLISH, REGISTER))
            if m.msg_id != mid:
                raise SnError("PUBREC for %d, expected %d" % (m.msg_id, mid))
            self.send(PUBREL, struct.pack(">H", mid))
            m = self.expect(PUBCOMP, skip=(PUBLISH, REGISTER))
            if m.msg_id != mid:
                raise SnError("PUBCOMP for %d, expected %d" % (m.msg_id, mid))
        return 0

    def subscribe(self, topic, qos=0, topic_type=TOPIC_NORMAL, expect_rc=RC_ACCEPTED):
        """SUBSCRIBE by name (str), predefined id or short name (int); returns the SUBACK."""
        mid = self.mid()
        if topic_type == TOPIC_NORMAL:
            t = topic.encode()
        else:
            t = struct.pack(">H", topic)
        self.send(SUBSCRIBE, bytes([flags(qos=qos, topic_type=topic_type)])
                  + struct.pack(">H", mid) + t)
        m = self.expect(SUBACK, skip=(PUBLISH, REGISTER))
        if m.msg_id != mid:
            raise SnError("SUBACK for %d, expected %d" % (m.msg_id, mid))
        if expect_rc is not None and m.rc != expect_rc:
            raise SnError("SUBACK rc %d, expected %d" % (m.rc, expect_rc))
        if topic_type == TOPIC_NORMAL and m.topic_id and m.rc == RC_ACCEPTED:
            self.topics[m.topic_id] = topic
        return m

    def unsubscribe(self, topic, topic_type=TOPIC_NORMAL):
        mid = self.mid()
        t = topic.encode() if topic_type == TOPIC_NORMAL else struct.pack(">H", topic)
        self.send(UNSUBSCRIBE, bytes([flags(topic_type=topic_type)]) + struct.pack(">H", mid) + t)
        m = self.expect(UNSUBACK, skip=(PUBLISH, REGISTER))
        if m.msg_id != mid:
            raise SnError("UNSUBACK for %d, expected %d" % (m.msg_id, mid))

    def ping(self, client_id=None):
        """PINGREQ (with a client id: a sleeping client waking up, 6.14)."""
        self.send(PINGREQ, client_id or b"")

    def disconnect(self, duration=None):
        """DISCONNECT, or going to sleep for duration seconds (6.14); waits for the answer."""
        self.send(DISCONNECT, b"" if duration is None else struct.pack(">H", duration))
        # The PUBACK of a QoS 1 publish sent just before may come first (it waits on the store commit).
        self.expect(DISCONNECT, skip=(PUBLISH, REGISTER, PUBACK))

    def topic_name(self, m):
        """The topic a PUBLISH from the gateway is on."""
        if m.topic_type == TOPIC_SHORT:
            return bytes([m.topic_id >> 8, m.topic_id & 0xFF]).decode()
        if m.topic_type == TOPIC_PREDEFINED:
            return "predef:%d" % m.topic_id
        if m.topic_id not in self.topics:
            raise SnError("PUBLISH on unregistered topic id %d" % m.topic_id)
        return self.topics[m.topic_id]

    def handle(self, m, ack=True):
        """Answers a gateway REGISTER or PUBLISH as a client must; returns a PUBLISH as
        (topic, data, qos, retain, dup) or None. A QoS 2 PUBLISH is returned once."""
        if m.type == REGISTER:
            self.topics[m.topic_id] = m.topic
            self.send(REGACK, struct.pack(">HHB", m.topic_id, m.msg_id, RC_ACCEPTED))
            return None
        if m.type == PUBREL:
            self.qos2_in.discard(m.msg_id)
            self.send(PUBCOMP, struct.pack(">H", m.msg_id))
            return None
        if m.type != PUBLISH:
            raise SnError("unexpected %r" % m)
        out = (self.topic_name(m), bytes(m.data), m.qos, m.retain, m.dup)
        if not ack:
            return out
        if m.qos == 1:
            self.send(PUBACK, struct.pack(">HHB", m.topic_id, m.msg_id, RC_ACCEPTED))
        elif m.qos == 2:
            self.send(PUBREC, struct.pack(">H", m.msg_id))
            if m.msg_id in self.qos2_in:
                return None
            self.qos2_in.add(m.msg_id)
        return out

    def collect(self, n, timeout=T, until=None):
        """Receives n PUBLISHes (answering REGISTER / QoS flows); fails on timeout.
        until: a message type that ends the collection early (returned messages)."""
        got = []
        deadline = time.time() + timeout
        while len(got) < n:
            left = deadline - time.time()
            m = self.recv(left) if left > 0 else None
            if m is None:
                raise SnError("got %d of %d PUBLISH within %.1fs: %r" % (len(got), n, timeout,
                                                                          got))
            if until is not None and m.type == until:
                self.pending.insert(0, m)
                break
            p = self.handle(m)
            if p is not None:
                got.append(p)
        return got


def searchgw(sock, to, radius=1, timeout=T):
    """SEARCHGW from sock to `to`; the GWINFO Msg, or None."""
    sock.sendto(frame(SEARCHGW, bytes([radius])), to)
    deadline = time.time() + timeout
    while time.time() < deadline:
        sock.settimeout(max(deadline - time.time(), 0.001))
        try:
            data, _ = sock.recvfrom(70000)
        except socket.timeout:
            return None
        m = parse(data)
        if m.type == GWINFO:
            return m
    return None
