#!/usr/bin/python3
# The limits that protect a small box (issue 14 item 6), with real clients on
# 127.0.0.0/8 (a client bound to 127.0.0.N is source N):
#  - max_connections per listener (Mosquitto's meaning: open connections on
#    that listener): one more is closed at accept, a close makes room;
#  - max_connections_per_source: the 5th connection of a source is closed,
#    other sources are not held back;
#  - connect_rate per source: a burst past it is refused, the others are not,
#    and it comes back after a second;
#  - proxy_protocol = yes: PROXY v1 and v2 headers sent by the test (whole, in
#    pieces, with the CONNECT behind them, LOCAL), the source they name is what
#    the per-source limit counts and what the log says; no header: closed;
#    and through a real HAProxy (Debian's, in TEST_DEB_PKGS) with send-proxy
#    and send-proxy-v2;
#  - a slow consumer (a raw socket that subscribes and never reads while a
#    publisher floods QoS 0) gets its QoS 0 dropped and counted, then is
#    disconnected; a QoS 1 subscriber alongside gets every message meanwhile.
# Every refusal is counted in $SYS/fieldmq/broker/....
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import Env, free_port, wait_until  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

env = Env("broker-limits")
P = env.path
T = 5.0


# ----------------------------------------------------------------- raw MQTT
def connect_pkt(cid):
    body = struct.pack(">H", 4) + b"MQTT" + bytes([4, 2]) + struct.pack(">H", 60)
    body += struct.pack(">H", len(cid)) + cid.encode()
    return bytes([0x10, len(body)]) + body


def subscribe_pkt(topic, qos=0, pid=1):
    body = struct.pack(">H", pid) + struct.pack(">H", len(topic)) + topic.encode() + bytes([qos])
    return bytes([0x82, len(body)]) + body


def publish_pkt(topic, payload):
    body = struct.pack(">H", len(topic)) + topic.encode() + payload
    n, rl = len(body), b""
    while True:
        d, n = n % 128, n // 128
        rl += bytes([d | (0x80 if n else 0)])
        if not n:
            break
    return bytes([0x30]) + rl + body


def raw(port, src="127.0.0.1", pre=b"", cid=None, connect=True, rcvbuf=None):
    """A socket from @src to @port that sent @pre then (with @connect) a CONNECT.
    Returns (socket, 'ok' | 'closed' | 'refused-rc' | 'timeout')."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((src, 0))
    s.settimeout(T)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(pre + (connect_pkt(cid or "c%d" % s.getsockname()[1]) if connect else b""))
        if not connect:
            return s, "sent"
        ack = b""
        while len(ack) < 4:
            d = s.recv(4 - len(ack))
            if not d:
                return s, "closed"
            ack += d
    except socket.timeout:
        return s, "timeout"
    except OSError:
        return s, "closed"
    return s, "ok" if ack[:2] == b"\x20\x02" and ack[3] == 0 else "refused-%d" % ack[3]


def closed_by_peer(s, timeout=T):
    """True once @s reads EOF or is reset (reading what comes meanwhile)."""
    s.settimeout(0.2)
    end = time.time() + timeout
    while time.time() < end:
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


# -------------------------------------------------------------- the daemon
main, small, proxy, proxy2, http = free_port(), free_port(), free_port(), free_port(), free_port()
with open(P("fieldmq.ini"), "w") as f:
    f.write("[gateway]\nid = gw1\ndata_dir = data\ndevices =\nlog_level = debug\n")
    f.write("[broker]\nlisten = 127.0.0.1:%d\nsys_interval = 1s\n" % main)
    f.write("max_connections = -1\nmax_connections_per_source = 4\nconnect_rate = 10\n")
    f.write("max_buffered_bytes = 64K\nslow_consumer_timeout = 1s\n")
    f.write("[listener:small]\nurl = 127.0.0.1:%d\nmax_connections = 3\n" % small)
    f.write("[listener:proxy]\nurl = 127.0.0.1:%d\nproxy_protocol = yes\n" % proxy)
    f.write("[listener:proxy2]\nurl = mqtt://127.0.0.1:%d\nproxy_protocol = yes\n" % proxy2)
    f.write("[http]\nenabled = yes\nlisten = 127.0.0.1:%d\n" % http)
r = subprocess.run([os.environ.get("FIELDMQ", os.path.join(os.environ.get("BUILD", "build"),
                                                           "fieldmq")),
                    "-c", P("fieldmq.ini"), "--check-config"], capture_output=True, text=True)
env.check("--check-config takes the limit keys", r.returncode == 0, r.stdout + r.stderr)
fmq = env.fieldmq(P("fieldmq.ini"), main)
env.check("listeners up", env.wait_log(r"listening on mqtt://127.0.0.1:%d" % proxy2, 5))

sysv = {}
sysc = mqtt.Client(client_id="sys", protocol=mqtt.MQTTv311)
sysc.on_connect = lambda c, u, f, rc: c.subscribe("$SYS/fieldmq/broker/#", 0)
sysc.on_message = lambda c, u, m: sysv.__setitem__(m.topic[len("$SYS/fieldmq/broker/"):],
                                                 m.payload.decode())
sysc.connect("127.0.0.1", main, 30)
sysc.loop_start()


def sys_at_least(name, n, timeout=5):
    return wait_until(lambda: int(sysv.get(name, "-1")) >= n, timeout)


# ------------------------------------------------------ max_connections
held = [raw(small, "127.0.0.3") for _ in range(3)]
env.check("3 connections on the max_connections = 3 listener", all(r == "ok" for _, r in held),
          [r for _, r in held])
s4, r4 = raw(small, "127.0.0.3")
env.check("the 4th is closed without a CONNACK", r4 == "closed", r4)
s4.close()
sm, rm = raw(main, "127.0.0.3")
env.check("the other listener still takes connections", rm == "ok", rm)
sm.close()
held[0][0].close()
ok5 = wait_until(lambda: raw(small, "127.0.0.3")[1] == "ok", 3, step=0.2)
env.check("a close makes room again", ok5)
for s, _ in held[1:]:
    s.close()
env.check("$SYS/fieldmq/broker/refused/max_connections counts it",
          sys_at_least("refused/max_connections", 1), sysv)

# ------------------------------------------------ max_connections_per_source
four = [raw(main, "127.0.0.4") for _ in range(4)]
env.check("4 connections from 127.0.0.4", all(r == "ok" for _, r in four), [r for _, r in four])
s5, r5 = raw(main, "127.0.0.4")
env.check("its 5th is closed (max_connections_per_source = 4)", r5 == "closed", r5)
s5.close()
o5, ro = raw(main, "127.0.0.5")
env.check("127.0.0.5 is not held back", ro == "ok", ro)
o5.close()
for s, _ in four:
    s.close()
env.check("$SYS/fieldmq/broker/refused/per_source counts it", sys_at_least("refused/per_source", 1),
          sysv)

# ---------------------------------------------------------- connect_rate
time.sleep(1.1)
t0 = time.time()
results = []
for _ in range(20):
    s, r = raw(main, "127.0.0.6")
    s.close()
    results.append(r)
elapsed = time.time() - t0
acc = results.count("ok")
other, ro = raw(main, "127.0.0.7")
other.close()
env.check("a burst of 20 connect/close from one source: 10 accepted (+ what %.2f s refill), "
          "the rest closed" % elapsed,
          10 <= acc <= 10 + int(elapsed * 10) + 1 and results.count("closed") == 20 - acc,
          results)
env.check("another source meanwhile is not held back", ro == "ok", ro)
env.check("$SYS/fieldmq/broker/refused/connect_rate counts them",
          sys_at_least("refused/connect_rate", 20 - acc), sysv)
time.sleep(1.1)
s, r = raw(main, "127.0.0.6")
s.close()
env.check("a second later the source may connect again", r == "ok", r)

# ------------------------------------------------------------ PROXY protocol
v1 = "PROXY TCP4 203.0.113.7 127.0.0.1 40001 %d\r\n" % proxy
s, r = raw(proxy, pre=v1.encode())
env.check("PROXY v1 header + CONNECT in one segment: CONNACK", r == "ok", r)
s.close()
env.check("the log names the header's source", env.wait_log(r"203\.0\.113\.7:40001: connected", 3))

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src6, port, local=False):
    addr = socket.inet_pton(socket.AF_INET6, src6) + socket.inet_pton(socket.AF_INET6, "::1")
    addr += struct.pack(">HH", port, proxy2)
    return V2SIG + bytes([0x20 if local else 0x21, 0x21]) + struct.pack(">H", len(addr)) + addr


s = socket.create_connection(("127.0.0.1", proxy2), T)
hdr = v2("2001:db8::17", 40002)
s.sendall(hdr[:7])
time.sleep(0.2)
s.sendall(hdr[7:20])
time.sleep(0.2)
s.sendall(hdr[20:] + connect_pkt("v2split"))
s.settimeout(T)
try:
    ack = s.recv(4)
except OSError:
    ack = b""
env.check("PROXY v2 (IPv6) header in three pieces, then CONNECT: CONNACK", ack == b"\x20\x02\x00\x00",
          ack)
s.close()
env.check("the log names the v2 header's IPv6 source", env.wait_log(r"2001:db8::17:40002: connected", 3))
s, r = raw(proxy2, pre=v2("2001:db8::18", 40003, local=True))
env.check("PROXY v2 LOCAL (a proxy's health check): the socket's address stands", r == "ok", r)
s.close()

# The limits count the header's source: 4 from 203.0.113.9, the 5th closed, another one fine.
hdr9 = lambda n: ("PROXY TCP4 203.0.113.9 127.0.0.1 %d %d\r\n" % (41000 + n, proxy)).encode()
nine = [raw(proxy, pre=hdr9(i)) for i in range(4)]
env.check("4 connections named 203.0.113.9 by their header", all(r == "ok" for _, r in nine),
          [r for _, r in nine])
s, r = raw(proxy, pre=hdr9(5))
env.check("the 5th from 203.0.113.9 is closed: the header's source is the one counted",
          r == "closed", r)
s.close()
s, r = raw(proxy, pre=b"PROXY TCP4 203.0.113.10 127.0.0.1 42000 1883\r\n")
env.check("203.0.113.10 through the same proxy address is not held back", r == "ok", r)
s.close()
for s, _ in nine:
    s.close()

s, r = raw(proxy)
env.check("no PROXY header on a proxy_protocol listener: closed", r == "closed", r)
s.close()
s, r = raw(proxy, pre=b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n")
env.check("a malformed v1 header: closed", r == "closed", r)
s.close()
env.check("$SYS/fieldmq/broker/proxy/refused counts them", sys_at_least("proxy/refused", 2), sysv)
env.check("one log line says why", env.wait_log(r"no valid PROXY header, closed", 3))

# Through a real HAProxy: send-proxy (v1) and send-proxy-v2, the client bound to 127.0.0.8.
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                      else None)
if HAPROXY:
    h1, h2 = free_port(), free_port()
    with open(P("haproxy.cfg"), "w") as f:
        f.write("global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n"
                "  timeout client 30s\n  timeout server 30s\n")
        f.write("listen v1\n  bind 127.0.0.1:%d\n  server fmq 127.0.0.1:%d send-proxy\n"
                % (h1, proxy))
        f.write("listen v2\n  bind 127.0.0.1:%d\n  server fmq 127.0.0.1:%d send-proxy-v2\n"
                % (h2, proxy2))
    hp = subprocess.Popen([HAPROXY, "-f", P("haproxy.cfg"), "-db"], stdout=subprocess.DEVNULL,
                          stderr=open(P("haproxy.log"), "w"))
    env.procs.append(hp)
    env.check("haproxy is up", wait_until(lambda: raw(h1, connect=False)[1] == "sent", 5))
    for hport, ver in ((h1, "send-proxy"), (h2, "send-proxy-v2")):
        before = len(env.log())
        s, r = raw(hport, "127.0.0.8", cid="via-" + ver)
        s.close()
        env.check("a client through HAProxy %s gets its CONNACK" % ver, r == "ok", r)
        env.check("... and fieldmq logs the client's own address 127.0.0.8 (haproxy's is 127.0.0.1)",
                  env.wait_log(r"127\.0\.0\.8:\d+: connected as via-%s" % ver, 3, after=before))
    # A real client end to end through it: mosquitto_sub/pub across haproxy v2.
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(h2), "-t", "hp/t", "-C",
                            "1", "-W", "10"], stdout=subprocess.PIPE, text=True)
    env.procs.append(sub)
    out = ""
    for _ in range(40):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(h1), "-t", "hp/t", "-m",
                        "through haproxy"], timeout=10)
        try:
            out = sub.communicate(timeout=0.25)[0]
            break
        except subprocess.TimeoutExpired:
            continue
    env.check("mosquitto_pub via send-proxy -> mosquitto_sub via send-proxy-v2",
              out.strip() == "through haproxy", out)
    env.stop(hp)
else:
    env.check("haproxy is installed (TEST_DEB_PKGS)", False)

# ------------------------------------------------------------ slow consumer
slow, r = raw(main, "127.0.0.11", cid="slow", rcvbuf=4096)
env.check("the slow consumer connects", r == "ok", r)
slow.sendall(subscribe_pkt("flood/x", 0))
slow.settimeout(T)
suback = slow.recv(5)
env.check("... and subscribes to flood/x", suback[:1] == b"\x90", suback)
# It never reads again.

got = []
good = mqtt.Client(client_id="good", protocol=mqtt.MQTTv311)
ready = threading.Event()
good.on_connect = lambda c, u, f, rc: c.subscribe("ok/#", 1)
good.on_subscribe = lambda *a: ready.set()
good.on_message = lambda c, u, m: got.append(m.payload)
good.connect("127.0.0.1", main, 30)
good.loop_start()
env.check("a well-behaved QoS 1 subscriber is there too", ready.wait(T))

stop = threading.Event()
flood_sent = [0]


def flood():
    s, r = raw(main, "127.0.0.12", cid="flooder")
    if r != "ok":
        return
    chunk = publish_pkt("flood/x", b"z" * 4000) * 64
    end = time.time() + 20
    s.settimeout(1)
    try:
        while not stop.is_set() and time.time() < end:
            s.sendall(chunk)
            flood_sent[0] += 64
    except OSError:
        pass
    s.close()


ft = threading.Thread(target=flood)
ft.start()
pub = mqtt.Client(client_id="okpub", protocol=mqtt.MQTTv311)
pub.connect("127.0.0.1", main, 30)
pub.loop_start()
for i in range(50):
    pub.publish("ok/n", str(i), qos=1)
    time.sleep(0.04)
env.check("QoS 0 to the slow consumer is dropped and counted",
          sys_at_least("slow/dropped", 1, 10), sysv)
env.check("the slow consumer is disconnected", closed_by_peer(slow, 10))
env.check("$SYS/fieldmq/broker/slow/disconnected counts it", sys_at_least("slow/disconnected", 1),
          sysv)
env.check("one log line says so", env.wait_log(r"127\.0\.0\.11:\d+ \(slow\): slow consumer", 3))


def metric(name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http, timeout=5).read().decode()
    return [int(x.split()[1]) for x in body.splitlines() if x.split(" ")[0] == name]


# /metrics has the same counts (the soak accounts for QoS 0 losses with them).
mdrop = metric("fieldmq_broker_slow_consumer_dropped_messages_total")
mdisc = metric("fieldmq_broker_slow_consumer_disconnects_total")
env.check("/metrics: slow consumer drops and disconnects, as $SYS says",
          wait_until(lambda: metric("fieldmq_broker_slow_consumer_dropped_messages_total") ==
                     [int(sysv.get("slow/dropped", "-1"))], 5) and
          mdrop[0] >= 1 and mdisc == [1], (mdrop, mdisc, sysv))
stop.set()
ft.join(5)
env.check("the QoS 1 subscriber got all 50 messages meanwhile",
          wait_until(lambda: len(got) >= 50, 10), len(got))
env.check("%d flood messages went in; the broker is alive" % flood_sent[0], fmq.poll() is None)
pub.loop_stop()
pub.disconnect()
good.loop_stop()
good.disconnect()
slow.close()
sysc.loop_stop()
sysc.disconnect()
env.check("fieldmq stops cleanly", env.stop(fmq) == 0)
env.finish()
