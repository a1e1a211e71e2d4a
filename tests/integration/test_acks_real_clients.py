#!/usr/bin/python3
"""Issue 10: durable acknowledgements at broker speed, with the clients users have.

fieldmq runs with its default configuration (nothing but the listen port, the data
directory and `[uplink] enabled = yes`, `forward = # 1` towards a real Mosquitto
playing the cloud), so every QoS 1 PUBLISH is acknowledged only once the store has
committed it. Checked:

- MQTT.js 5 (npm `mqtt`, tests/integration/node/, installed by `make test-deps`):
  10 000 QoS 1 messages in one burst with its default options, over 3.1.1 and over
  5.0: every one acknowledged, none dropped, in the cloud exactly once and in order
  per topic. (Before issue 10: 0 of 1000 acknowledged, the connection dropped /
  DISCONNECT 0x93.)
- paho-mqtt 1.6 with 64 and with 1000 messages in flight: the same. (Before: 0 of
  200 in 10 s, reconnecting and resending forever.)
- A stop-and-wait QoS 1 publisher (one message, wait for its PUBACK, the next):
  its PUBACK does not wait for sync_interval. (Before: 10 msgs/s, p50 = 100 ms.)
- MQTT 5.0 Receive Maximum: announced only when configured below 65535; a client
  that exceeds it gets DISCONNECT 0x93 (a raw client with QoS 2 exchanges left
  open), and MQTT.js 5 is such a client: it does not limit itself to the value
  announced, which is why the default announces 65535.
- Flow control: with max_held_acks = 16, a 3.1.1 burst makes the broker stop reading
  the publisher ($SYS/fieldmq/broker/read_pauses grows) and still completes.
"""
import json
import os
import socket
import struct
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paho.mqtt.client as mqtt  # noqa: E402
from test_uplink_lib import Collector, Env, free_port, sys_value, wait_until  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")
NODE = "/usr/bin/node"


def write_ini(env, port, cloud_port, broker="", store=""):
    """The default configuration plus what the test needs to run beside others."""
    ini = env.path("fieldmq.ini")
    with open(ini, "w") as f:
        f.write("[gateway]\nid = gw1\ndata_dir = data\ndevices =\n")
        # sys_interval 1 s: the figures are read back quickly.
        f.write("[broker]\nlisten = 127.0.0.1:%d\nsys_interval = 1s\n%s\n" % (port, broker))
        if store:
            f.write("[store]\n%s\n" % store)
        f.write("[uplink]\nenabled = yes\nurl = mqtt://127.0.0.1:%d\nforward = # 1\n"
                % cloud_port)
    return ini


def mqttjs_burst(port, proto, n, prefix, topics=4, timeout=120):
    """Runs node/burst.js; (exit status, its JSON result)."""
    p = subprocess.run([NODE, os.path.join(NODE_DIR, "burst.js"), str(port), str(proto),
                        str(n), prefix, str(topics), str(timeout)],
                       capture_output=True, text=True, timeout=timeout + 30)
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"stdout": p.stdout[-500:], "stderr": p.stderr[-500:]}
    return p.returncode, res


def check_cloud(env, cloud, prefix, n, topics, desc):
    """Every message i of prefix/(i % topics) in the cloud exactly once, in order per topic."""
    wait_until(lambda: sum(1 for m in cloud.snapshot() if m[0].startswith(prefix + "/")) >= n,
               60, 0.2)
    per = {}
    for t, p, _ in cloud.snapshot():
        if t.startswith(prefix + "/"):
            per.setdefault(t, []).append(int(p))
    got = sum(len(v) for v in per.values())
    distinct = set(v for vs in per.values() for v in vs)
    ordered = all(all(a < b for a, b in zip(vs, vs[1:])) for vs in per.values())
    right_topic = all(v % topics == int(t.rsplit("/", 1)[1]) for t, vs in per.items()
                      for v in vs)
    env.check("%s: %d in the cloud, each once" % (desc, n),
              got == n and distinct == set(range(n)),
              "received %d, distinct %d" % (got, len(distinct)))
    env.check("%s: in order per topic" % desc, ordered and right_topic)


def paho_inflight(port, inflight, n, prefix, topics=4, timeout=120):
    """paho-mqtt 1.6, 3.1.1, with `inflight` messages in flight; seconds or None."""
    c = mqtt.Client(client_id="paho-%d-%d" % (inflight, os.getpid()), protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(inflight)
    c.max_queued_messages_set(0)
    connects = []
    c.on_connect = lambda *a: connects.append(time.time())
    c.connect("127.0.0.1", port, 60)
    c.loop_start()
    t0 = time.time()
    infos = [c.publish("%s/%d" % (prefix, i % topics), str(i), qos=1) for i in range(n)]
    end = t0 + timeout
    for info in infos:
        info.wait_for_publish(max(0.1, end - time.time()))
    took = time.time() - t0
    ok = all(i.is_published() for i in infos)
    c.disconnect()
    c.loop_stop()
    return (took if ok else None), len(connects)


def stop_and_wait(port, n, topic):
    """One QoS 1 message at a time; PUBACK delays in seconds (None on a timeout)."""
    c = mqtt.Client(client_id="saw-%d" % os.getpid(), protocol=mqtt.MQTTv311)
    c.connect("127.0.0.1", port, 60)
    c.loop_start()
    delays = []
    for i in range(n):
        t0 = time.time()
        info = c.publish(topic, str(i), qos=1)
        info.wait_for_publish(5)
        if not info.is_published():
            delays = None
            break
        delays.append(time.time() - t0)
    c.disconnect()
    c.loop_stop()
    return delays


def wait_sys(port, name, pred, timeout=5.0):
    """$SYS/fieldmq/name as an int once pred holds (published every sys_interval), or -1."""
    end = time.time() + timeout
    v = -1
    while time.time() < end:
        s = sys_value(port, name, 1.5)
        v = int(s) if s is not None else -1
        if pred(v):
            break
        time.sleep(0.3)
    return v


def raw_v5_exceeds(port, n_open):
    """A raw MQTT 5.0 client: CONNECT, then n_open QoS 2 PUBLISHes never released.
    Returns (receive maximum announced or None, DISCONNECT reason or None)."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.settimeout(5)
    cid = b"raw-rm"
    var = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + struct.pack("!H", len(cid)) + cid
    s.sendall(bytes([0x10, len(var)]) + var)
    buf = b""

    def pkt():
        nonlocal buf
        while True:
            if len(buf) >= 2 and len(buf) >= 2 + buf[1] and buf[1] < 128:
                t, body = buf[0] >> 4, buf[2:2 + buf[1]]
                buf = buf[2 + buf[1]:]
                return t, body
            d = s.recv(4096)
            if not d:
                return None
            buf += d

    t, body = pkt()
    assert t == 2, t
    rm = None
    i = body.find(b"\x21")  # Receive Maximum in the CONNACK properties
    if i >= 0 and i + 2 < len(body):
        rm = struct.unpack("!H", body[i + 1:i + 3])[0]
    reason = None
    try:
        for pid in range(1, n_open + 1):
            var = struct.pack("!H", 2) + b"rm" + struct.pack("!H", pid) + b"\x00x"
            s.sendall(bytes([0x34, len(var)]) + var)
        s.settimeout(1.5)  # a broker within its limits answers with PUBRECs only
        while True:
            p = pkt()
            if p is None:
                break
            if p[0] == 14:
                reason = p[1][0]
                break
    except OSError:
        pass
    s.close()
    return rm, reason


def main():
    env = Env("acks")
    cloud_port, port = free_port(), free_port()
    env.mosquitto(cloud_port)
    cloud = Collector(cloud_port, ["#"], client_id="cloud-sink", qos=1)
    env.check("cloud subscriber ready", cloud.subscribed.wait(10))
    env.fieldmq(write_ini(env, port, cloud_port), port)
    env.check("uplink connected", env.wait_log(r"uplink.*(connected|up)", 10))

    # MQTT.js 5, default options, 10 000 in one burst, 3.1.1 and 5.0.
    for proto in (4, 5):
        prefix = "js%d" % proto
        rc, res = mqttjs_burst(port, proto, 10000, prefix)
        desc = "MQTT.js %s over %s" % (res.get("version", "?"), "3.1.1" if proto == 4 else "5.0")
        env.check("%s: 10000 QoS 1 in a burst, all acknowledged" % desc,
                  rc == 0 and res.get("acked") == 10000 and not res.get("closed"), res)
        if rc == 0:
            print("# %s: 10000 acknowledged in %d ms" % (desc, res["ms"]))
        check_cloud(env, cloud, prefix, 10000, 4, desc)

    # paho-mqtt with 64 and with 1000 in flight (3.1.1).
    for inflight, n in ((64, 2000), (1000, 10000)):
        prefix = "paho%d" % inflight
        took, connects = paho_inflight(port, inflight, n, prefix)
        desc = "paho-mqtt %s, %d in flight" % (mqtt.__version__ if hasattr(mqtt, "__version__")
                                               else "1.6", inflight)
        env.check("%s: %d acknowledged, one connection" % (desc, n),
                  took is not None and connects == 1, (took, connects))
        if took:
            print("# %s: %d in %.2f s (%.0f msgs/s)" % (desc, n, took, n / took))
        check_cloud(env, cloud, prefix, n, 4, desc)

    # Stop-and-wait: the PUBACK waits for a commit, not for sync_interval (100 ms).
    delays = stop_and_wait(port, 300, "saw/t")
    env.check("stop-and-wait: 300 acknowledged", delays is not None)
    if delays:
        d = sorted(delays)
        p50, p99 = d[len(d) // 2], d[int(len(d) * 0.99)]
        print("# stop-and-wait: %.0f msgs/s, PUBACK p50 %.2f ms, p99 %.2f ms"
              % (len(d) / sum(d), p50 * 1e3, p99 * 1e3))
        env.check("stop-and-wait: PUBACK p50 well below sync_interval", p50 < 0.025, p50)
    cloud.close()
    env.stop(env.fmq)

    # A Receive Maximum announced below 65535 and enforced; max_held_acks low.
    port2 = free_port()
    env.fieldmq(write_ini(env, port2, cloud_port,
                          broker="receive_maximum = 20\nmax_held_acks = 16"), port2)
    rm, reason = raw_v5_exceeds(port2, 20)
    env.check("5.0: Receive Maximum 20 announced", rm == 20, rm)
    env.check("5.0: 20 open QoS 2 exchanges are allowed", reason is None, reason)
    rm, reason = raw_v5_exceeds(port2, 21)
    env.check("5.0: the 21st gets DISCONNECT 0x93", reason == 0x93, reason)
    rc, res = mqttjs_burst(port2, 5, 1000, "rm5")
    print("# MQTT.js 5.0 burst against an announced Receive Maximum of 20: %s" % res)
    env.check("MQTT.js 5 ignores the Receive Maximum it is announced (so ours is 65535)",
              rc != 0 and res.get("disconnect") == 0x93, res)
    rc, res = mqttjs_burst(port2, 4, 5000, "held")
    env.check("3.1.1 burst with max_held_acks = 16: slowed down, all acknowledged",
              rc == 0 and res.get("acked") == 5000, res)
    pauses = wait_sys(port2, "broker/read_pauses", lambda v: v > 0)
    env.check("the burst made the broker stop reading the publisher", pauses > 0, pauses)
    print("# read_pauses: %d" % pauses)
    env.stop(env.fmq)
    env.finish()


if __name__ == "__main__":
    # The runner's timeout sends SIGTERM: exit through atexit, which stops what we started.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    main()
