#!/usr/bin/python3
# MQTT over WebSocket (RFC 6455) on ws:// and wss:// listeners: paho-mqtt's
# websockets transport over both, and a raw client that checks the protocol
# itself: the upgrade answer (accept key, subprotocol mqtt), masked and
# fragmented binary frames with a ping between the fragments, pong, close codes
# (1000 echoed, 1003 for a text frame, 1002 for an unmasked frame), and the
# refusals: wrong path (404), version (426), no mqtt subprotocol (400).
import os
import socket
import ssl
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import Env, free_port, wait_until  # noqa: E402
from tls_lib import make_pki  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

env = Env("broker-ws")
make_pki(env.dir)
P = lambda n: env.path(n)  # noqa: E731
tcp, ws, wss, wsc = free_port(), free_port(), free_port(), free_port()
ini = P("fieldmq.ini")
with open(ini, "w") as f:
    f.write("[gateway]\nid = gw1\ndata_dir = data\ndevices =\n")
    f.write("[broker]\nlisten = 127.0.0.1:%d, ws://127.0.0.1:%d, wss://127.0.0.1:%d\n"
            % (tcp, ws, wss))
    f.write("cert_file = server.crt\nkey_file = server.key\nsys_interval = 1s\n")
    f.write("[listener:custom]\nurl = ws://127.0.0.1:%d\nws_path = /custom/path\n" % wsc)
fmq = env.fieldmq(ini, tcp)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3's example
CONNECT = bytes.fromhex("101000044d5154540402003c0004") + b"wsc1"


def frame(op, payload, fin=True, masked=True, mask=b"\x37\xfa\x21\x3d"):
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return h + payload
    return h + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


class Raw:
    def __init__(self, port, path="/mqtt", extra="Sec-WebSocket-Protocol: mqtt\r\n",
                 version="13", pieces=1, tls=False):
        s = socket.create_connection(("127.0.0.1", port), 5)
        if tls:
            ctx = ssl.create_default_context(cafile=P("ca.crt"))
            s = ctx.wrap_socket(s, server_hostname="localhost")
        self.s = s
        self.s.settimeout(5)
        req = ("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n"
               "%s\r\n" % (path, KEY, version, extra)).encode()
        step = (len(req) + pieces - 1) // pieces
        for i in range(0, len(req), step):
            self.s.sendall(req[i:i + step])
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(4096)
            if not d:
                break
            self.buf += d
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin1")

    def status(self):
        return int(self.head.split(" ")[1]) if self.head else 0

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None

    def _need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d

    def read_frame(self):
        """(fin, opcode, payload) of the next server frame; server frames are never masked."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise ValueError("masked server frame")
        n, off = b1 & 0x7f, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n)
        p = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0f, p

    def send(self, data):
        self.s.sendall(data)

    def closed(self):
        try:
            self.s.settimeout(3)
            while True:
                if not self.s.recv(4096):
                    return True
        except (ConnectionError, ssl.SSLError):
            return True
        except socket.timeout:
            return False


for tls, port in ((False, ws), (True, wss)):
    name = "wss" if tls else "ws"
    r = Raw(port, tls=tls, pieces=3)
    env.check(name + ": upgrade answered 101 with the RFC's accept key and subprotocol mqtt",
              r.status() == 101 and r.header("Sec-WebSocket-Accept") == ACCEPT
              and r.header("Sec-WebSocket-Protocol") == "mqtt", r.head)
    # CONNECT in two masked fragments with a ping between them [RFC 6455 5.4].
    r.send(frame(2, CONNECT[:7], fin=False) + frame(9, b"are you there")
           + frame(0, CONNECT[7:]))
    fin, op, p = r.read_frame()
    env.check(name + ": a ping between fragments is answered with its payload",
              (op, p) == (10, b"are you there"), (op, p))
    fin, op, p = r.read_frame()
    env.check(name + ": CONNACK comes back in a binary frame", op == 2 and p[:1] == b"\x20",
              (op, p))
    # Two MQTT packets in one frame, one packet over three frames.
    sub = bytes.fromhex("820800010003612f2301")
    pub = bytes.fromhex("3008") + b"\x00\x03a/b" + b"xyz"
    r.send(frame(2, sub + bytes.fromhex("c000")))
    r.send(frame(2, pub[:2], fin=False) + frame(0, pub[2:5], fin=False) + frame(0, pub[5:]))
    got = b""
    while len(got) < 5 + 2 + len(pub):
        fin, op, p = r.read_frame()
        got += p
    env.check(name + ": SUBACK, PINGRESP and the message come back",
              got.startswith(bytes.fromhex("9003000101d000")) and got.endswith(pub), got.hex())
    r.send(frame(8, struct.pack(">H", 1000) + b"bye"))
    fin, op, p = r.read_frame()
    env.check(name + ": a close is echoed with its code", (op, p[:2]) == (8, b"\x03\xe8"), p)
    env.check(name + ": and the connection closes", r.closed())

r = Raw(ws)
r.send(frame(2, CONNECT))
r.read_frame()
r.send(frame(1, b"{}"))
fin, op, p = r.read_frame()
env.check("a text frame is closed with 1003", (op, p[:2]) == (8, b"\x03\xeb"), p)
env.check("and the connection closes", r.closed())
r = Raw(ws)
r.send(frame(2, CONNECT, masked=False))
fin, op, p = r.read_frame()
env.check("an unmasked frame is closed with 1002", (op, p[:2]) == (8, b"\x03\xea"), p)

r = Raw(ws, path="/other")
env.check("another path: 404", r.status() == 404, r.head)
r = Raw(ws, version="8")
env.check("another version: 426 naming 13", r.status() == 426
          and r.header("Sec-WebSocket-Version") == "13", r.head)
r = Raw(ws, extra="Sec-WebSocket-Protocol: chat, superchat\r\n")
env.check("no mqtt subprotocol offered: 400", r.status() == 400, r.head)
r = Raw(ws, extra="")
env.check("no subprotocol at all: accepted without one", r.status() == 101
          and r.header("Sec-WebSocket-Protocol") is None, r.head)
r = Raw(wsc, path="/custom/path?x=1")
env.check("a [listener:] with its own ws_path", r.status() == 101, r.head)
r = Raw(wsc)
env.check("and /mqtt is not it", r.status() == 404, r.head)
env.check("refusals are logged with the reason",
          env.wait_log(r"WebSocket upgrade refused: WebSocket version not 13", 3))


def paho(port, tls, path="/mqtt"):
    got = threading.Event()
    c = mqtt.Client(client_id="paho-%d" % port, transport="websockets")
    c.ws_set_options(path=path)
    if tls:
        c.tls_set(ca_certs=P("ca.crt"))
    c.on_connect = lambda c, u, f, rc: c.subscribe("p/#", 1)
    c.on_subscribe = lambda *a: c.publish("p/big", b"z" * 100000, qos=1)
    c.on_message = lambda c, u, m: got.set() if len(m.payload) == 100000 else None
    c.connect("localhost", port, 30)
    c.loop_start()
    ok = got.wait(10)
    c.disconnect()
    c.loop_stop()
    return ok


env.check("paho-mqtt over ws:// publishes and receives 100 kB", paho(ws, False))
env.check("paho-mqtt over wss:// publishes and receives 100 kB", paho(wss, True))
env.check("paho-mqtt over a custom ws_path", paho(wsc, False, "/custom/path"))

sysv = {}
sysc = mqtt.Client(client_id="sys")
sysc.on_connect = lambda c, u, f, rc: c.subscribe("$SYS/fieldmq/broker/ws_refused", 0)
sysc.on_message = lambda c, u, m: sysv.__setitem__(m.topic, m.payload.decode())
sysc.connect("127.0.0.1", tcp, 30)
sysc.loop_start()
env.check("$SYS counts the refused upgrades",
          wait_until(lambda: int(sysv.get("$SYS/fieldmq/broker/ws_refused", "0")) >= 4, 5), sysv)
sysc.loop_stop()
env.check("fieldmq stops cleanly", env.stop(fmq) == 0)
env.finish()
