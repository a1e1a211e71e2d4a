#!/usr/bin/env python3
"""CoAP devices end to end (protocol = coap in a device map), against real
CoAP servers on 127.0.0.1, each started and stopped here by PID:

  coap_sim (tests/sim/coap_sim, on libcoap): observed text and JSON resources
        (two points sharing one observation), SenML JSON, a plain polled
        counter, a resource that fails (5.00), a slow one (separate response
        after 3 s: times out on one device, read on another), one that
        changes Content-Format, a block-wise one (~3 KB), one whose
        notifications are sometimes not JSON; then killed and started again
        on the same port (it forgets its observers): readings resume
  coap-server-notls (libcoap's own example server, Debian libcoap3-bin):
        its observable /time
  nothing at all on a third port: the device goes offline, its point bad
  a UDP "device" answering every request with garbage (random bytes, bad
        token lengths, truncated options): offline, bad, the daemon alive, a
        bounded number of log lines

Readings are checked on MQTT: values, quality, retained status topics.
--check-config refuses bad coap keys with file:line and accepts every
etc/devices.d/coap-*.ini.example; writes (PUT, POST with a JSON pointer and
scale, a 4.05) go out on .../set and come back on .../set/result; make run's demo map (demo_coap.ini) reads
the simulator; fieldmq --discover prints skeletons of both servers that
--check-config accepts. /metrics (parsed by prometheus_client) has each
device's requests, errors by kind and latency histogram as they happened:
exceptions (5.00) and parse errors of sim, only timeouts for slow, answers
of more than 2.5 s for patient (latency count == requests answered), only
failures for dead."""
import functools
import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itlib import (BUILD, FIELDMQ, Checks, check_device_map, finish, free_port,  # noqa: E402
                   free_udp_port, stop_proc, wait_for, wait_port)

SIM = os.path.join(BUILD, "sim", "coap_sim")
check = Checks()
check_config = functools.partial(check_device_map, check)  # (tmp, devices, want)
procs = []


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    procs.append(p)
    return p


class Sub:
    """Every message on the filters."""

    def __init__(self, port, filters):
        self.msgs = []
        self.c = mqtt.Client(client_id="", protocol=mqtt.MQTTv311)
        self.c.on_message = lambda c, u, m: self.msgs.append((time.time(), m))
        self.c.connect("127.0.0.1", port)
        for f in filters:
            self.c.subscribe(f, qos=1)
        self.c.loop_start()

    def values(self, topic, since=0):
        out = []
        for t, m in list(self.msgs):
            if m.topic == topic and t >= since:
                try:
                    out.append(json.loads(m.payload))
                except ValueError:
                    pass
        return out

    def value(self, topic, pred=lambda v: True, timeout=5.0, since=0):
        def find():
            for v in reversed(self.values(topic, since)):
                if pred(v):
                    return v
            return None
        return wait_for(find, timeout)

    def text(self, topic, want, timeout=5.0):
        return wait_for(lambda: any(m.topic == topic and m.payload == want.encode()
                                    for _, m in list(self.msgs)), timeout)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def start_sim(port):
    p = spawn([SIM, "--listen", "127.0.0.1:%d" % port, "--period", "300", "--max-age", "2",
               "--slow", "3000"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    check("coap_sim ready on %d (%s)" % (port, line.strip()), line.startswith("ready"))
    return p


DEVICES = """
[device:sim]
protocol = coap
url = coap://127.0.0.1:{sim}
poll = 1s
timeout = 2s
retries = 2

[point:sim/num]
path = /num
observe = yes
unit = °C

[point:sim/temp]
path = /json
observe = yes
json_pointer = /temperature

[point:sim/hum]
path = /json
observe = yes
json_pointer = /humidity
type = uint16

[point:sim/ok]
path = /json
observe = yes
json_pointer = /ok
type = bool

[point:sim/s_temp]
path = /senml
senml_name = sim/temp

[point:sim/s_door]
path = /senml
format = senml
senml_name = sim/door
type = bool

[point:sim/plain]
path = /plain
type = uint32
publish = every_poll

[point:sim/fail]
path = /fail

[point:sim/cf]
path = /cf
json_pointer = /v
publish = every_poll

[point:sim/big]
path = /big
json_pointer = /value

[point:sim/garbage]
path = /garbage
observe = yes
format = json
json_pointer = /v

[point:sim/setpoint]
path = /setpoint
observe = yes
access = rw

[point:sim/jset]
path = /jsetpoint
observe = yes
json_pointer = /target/value
access = rw
method = post
scale = 0.1

[point:sim/nowrite]
path = /fail
access = rw

[device:slow]
protocol = coap
url = coap://127.0.0.1:{sim}
poll = 1s
timeout = 1s
retries = 1
degrade_after = 0

[point:slow/v]
path = /slow

[device:patient]
protocol = coap
url = coap://127.0.0.1:{sim}
poll = 5s
timeout = 6s

[point:patient/v]
path = /slow

[device:libcoap]
protocol = coap
url = coap://127.0.0.1:{srv}
poll = 2s

[point:libcoap/time]
path = /time
observe = yes
type = string

[device:dead]
protocol = coap
url = coap://127.0.0.1:{dead}
poll = 500ms
timeout = 500ms
retries = 2

[point:dead/v]
path = /x

[device:junk]
protocol = coap
url = coap://127.0.0.1:{junk}
poll = 300ms
timeout = 1s
retries = 1

[point:junk/v]
path = /x
observe = yes
"""


def test_config(tmp):
    check_config(tmp, "[device:c]\nprotocol = coap\nurl = coap://127.0.0.1\n"
                 "[point:c/t]\npath = /t\nobserve = yes\njson_pointer = /a/0\n", None)
    check_config(tmp, "[device:c]\nprotocol = coap\n", "a.ini:1: [device:c] url: required")
    check_config(tmp, "[device:c]\nprotocol = coap\nurl = coap://h:99999\n",
                 "a.ini:1: [device:c] url: 'coap://h:99999': port: expected 1 to 65535")
    check_config(tmp, "[device:c]\nprotocol = coap\nurl = coap://h\nunit_id = 3\n",
                 "a.ini:4: [device:c] unit_id: unknown key")
    check_config(tmp, "[device:c]\nprotocol = coap\nurl = coap://h\n[point:c/t]\npath = /t\n"
                 "format = xml\n", "a.ini:6: [point:c/t] format: 'xml'")
    check_config(tmp, "[device:c]\nprotocol = coap\nurl = coap://h\n[point:c/t]\npath = t\n",
                 "[point:c/t] path: required, starting with /")
    check_config(tmp, "[device:c]\nprotocol = coap\nurl = coaps://h\npsk_identity = i\n"
                 "psk_key = secret\n[point:c/t]\npath = /t\n", None)
    for ex in sorted(glob.glob("etc/devices.d/coap-*.ini.example")):
        with open(ex) as f:
            check_config(tmp, f.read(), None)


def test_discover(tmp, sim_port, srv_port, dead_port):
    """fieldmq --discover: a skeleton that --check-config accepts as it is."""
    for name, port, want in (("coap_sim", sim_port, ["path = /num\nobserve = yes",
                                                    "path = /plain\nobserve = no",
                                                    ";json_pointer = /value"]),
                             ("coap-server-notls", srv_port, ["path = /time\nobserve = yes",
                                                              'rt="ticks"'])):
        r = subprocess.run([FIELDMQ, "--discover", "coap://127.0.0.1:%d" % port],
                           capture_output=True, text=True, timeout=15)
        check("--discover %s: exit %d, %s" % (name, r.returncode, [w in r.stdout for w in want]),
              r.returncode == 0 and all(w in r.stdout for w in want))
        check_config(tmp, r.stdout, None)
    r = subprocess.run([FIELDMQ, "--discover", "coap://127.0.0.1:%d" % dead_port],
                       capture_output=True, text=True, timeout=15)
    check("--discover of nothing: exit 1, said: %s" % r.stderr.strip(),
          r.returncode == 1 and "no answer" in r.stderr)
    r = subprocess.run([FIELDMQ, "--discover", "http://x"], capture_output=True, text=True,
                       timeout=15)
    check("--discover of a bad url: exit 2", r.returncode == 2)


def scrape(http_port):
    """/metrics parsed by prometheus_client: {(sample name, ((label, value), ...)): value}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http_port, timeout=5) as r:
        body = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(body):
        for smp in fam.samples:
            out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return out


def dev_metrics(samples, dev):
    """One coap device's request figures: requests, errors by kind, latency count/buckets."""
    def get(name, **extra):
        labels = dict(device=dev, protocol="coap", **extra)
        return samples.get((name, tuple(sorted(labels.items()))))
    kinds = sorted(dict(k[1]).get("kind") for k in samples
                   if k[0] == "fieldmq_device_request_errors_total" and dict(k[1]).get("device") == dev)
    return {
        "requests": get("fieldmq_device_requests_total"),
        "errors": {k: get("fieldmq_device_request_errors_total", kind=k) for k in kinds},
        "lat_count": get("fieldmq_device_request_duration_seconds_count"),
        "lat_le_2.5": get("fieldmq_device_request_duration_seconds_bucket", le="2.5"),
        "online": get("fieldmq_device_online"),
        "last_ok": get("fieldmq_device_last_success_timestamp_seconds"),
    }


def test_metrics(http_port):
    """Per-device figures of /metrics, from what the devices of this test did."""
    smp = scrape(http_port)
    sim, slow, patient, dead = (dev_metrics(smp, d) for d in ("sim", "slow", "patient", "dead"))
    check("metrics: a coap device's error kinds: %s" % sorted(sim["errors"]),
          sorted(sim["errors"]) == ["exception", "parse", "timeout", "tls", "transport"])
    check("metrics: sim: requests (GETs and notifications) %s, latency observations %s"
          % (sim["requests"], sim["lat_count"]),
          (sim["requests"] or 0) > 20 and 0 < (sim["lat_count"] or 0) < sim["requests"])
    check("metrics: sim: 5.00 of /fail as exceptions, garbage notifications as parse errors: %s"
          % sim["errors"], sim["errors"].get("exception", 0) >= 2
          and sim["errors"].get("parse", 0) >= 1)
    check("metrics: sim online, last success in the last minute (%s)" % sim["last_ok"],
          sim["online"] == 1 and abs(time.time() - (sim["last_ok"] or 0)) < 60)

    def answered(d):
        return d["requests"] - sum(d["errors"].get(k, 0) for k in ("timeout", "transport", "tls"))
    # (a request sent while the simulator restarts fails by ICMP instead: transport)
    check("metrics: slow (3 s answers, timeout 1 s): every request a timeout, none timed: %s" % slow,
          slow["errors"].get("timeout", 0) >= 3 and answered(slow) == 0
          and slow["lat_count"] == 0 and slow["online"] == 0)
    check("metrics: patient (timeout 6 s): latency count == requests answered (%s), each > 2.5 s: %s"
          % (patient["requests"] and answered(patient), patient),
          (patient["lat_count"] or 0) >= 1 and patient["lat_count"] == answered(patient)
          and patient["lat_le_2.5"] == 0 and patient["errors"].get("exception") == 0)
    check("metrics: dead: every request failed (timeout or ICMP), none timed, never a success: %s"
          % dead, (dead["requests"] or 0) >= 2 and answered(dead) == 0 and dead["lat_count"] == 0
          and dead["last_ok"] == 0 and dead["online"] == 0)


def junk_server(port, stop):
    """A "device" that answers every datagram with garbage: random bytes, a CoAP
    header with a bad token length, an ACK with the request's message id but
    truncated options."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.settimeout(0.2)
    n = 0
    while not stop.is_set():
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        n += 1
        mid = data[2:4] if len(data) >= 4 else b"\0\0"
        for junk in (os.urandom(1 + n % 40), b"\x4f" + b"\x45" + mid + b"\xff" * 3,
                     b"\x60\x45" + mid + b"\xd1", b"\x68\x45" + mid + data[4:6]):
            s.sendto(junk, addr)
    s.close()


def main():
    tmp = tempfile.mkdtemp(prefix="fieldmq-coap.")
    port, http_port = free_port(), free_port()
    sim_port, srv_port, dead_port = free_udp_port(), free_udp_port(), free_udp_port()
    junk_port = free_udp_port()
    stop_junk = threading.Event()
    junk = threading.Thread(target=junk_server, args=(junk_port, stop_junk), daemon=True)
    junk.start()
    fmq = None
    try:
        test_config(tmp)
        sim = start_sim(sim_port)
        spawn(["coap-server-notls", "-A", "127.0.0.1", "-p", str(srv_port)],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["coap-client-notls", "-B", "1",
                                         "coap://127.0.0.1:%d/" % srv_port],
                                        capture_output=True).returncode == 0, 5)
        test_discover(tmp, sim_port, srv_port, dead_port)
        os.mkdir(os.path.join(tmp, "devices.d"))
        with open(os.path.join(tmp, "devices.d", "coap.ini"), "w") as f:
            f.write(DEVICES.format(sim=sim_port, srv=srv_port, dead=dead_port, junk=junk_port))
        # make run's demo map, pointed at this simulator
        with open("etc/devices.d/demo_coap.ini") as f:
            demo = f.read().replace("127.0.0.1:15683", "127.0.0.1:%d" % sim_port)
        with open(os.path.join(tmp, "devices.d", "demo_coap.ini"), "w") as f:
            f.write(demo)
        with open(os.path.join(tmp, "fieldmq.ini"), "w") as f:
            f.write("[gateway]\nid = gw1\ndata_dir = data\nlog_level = debug\n"
                    "[broker]\nlisten = 127.0.0.1:%d\npersist = no\nsys_interval = 1s\n"
                    "[http]\nenabled = yes\nlisten = 127.0.0.1:%d\n" % (port, http_port))
        log = open(os.path.join(tmp, "log"), "w")
        t0 = time.time()
        fmq = spawn([FIELDMQ, "-c", os.path.join(tmp, "fieldmq.ini")], stdout=log, stderr=log)
        check("broker listens", wait_port(port))
        sub = Sub(port, ["fieldmq/gw1/#", "$SYS/fieldmq/coap/client/#"])
        P = "fieldmq/gw1/"

        check("sim online", sub.text(P + "sim/status", "online"))
        v = sub.value(P + "sim/num", lambda v: v["quality"] == "good")
        check("observed text number, unit: %s" % v, v and isinstance(v["value"], (int, float))
              and v["unit"] == "°C")
        # Notifications every 300 ms while poll is 1 s: observe, not polling.
        time.sleep(2.0)
        nums = sub.values(P + "sim/num", t0)
        check("observe: %d readings of /num in ~2.5 s (period 300 ms, poll 1 s)" % len(nums),
              len(nums) >= 5)
        v = sub.value(P + "sim/temp")
        check("json pointer /temperature: %s" % v, v and 20.0 <= v["value"] < 30.0
              and v["quality"] == "good")
        v = sub.value(P + "sim/hum")
        check("json pointer /humidity uint16 (same observation): %s" % v,
              v and isinstance(v["value"], int) and 40 <= v["value"] < 50)
        v = sub.value(P + "sim/ok")
        check("json bool: %s" % v, v and v["value"] is True)
        v = sub.value(P + "sim/s_temp")
        check("senml (auto from Content-Format 110) sim/temp: %s" % v,
              v and 20.0 <= v["value"] < 30.0)
        v = sub.value(P + "sim/s_door")
        check("senml vb: %s" % v, v and isinstance(v["value"], bool))
        v = sub.value(P + "sim/plain", lambda v: v["value"] >= 1)
        check("polled text counter uint32: %s" % v, v and v["quality"] == "good")
        v = sub.value(P + "sim/fail")
        check("5.00: quality bad: %s" % v, v and v["quality"] == "bad" and "value" not in v)
        check("5.00: bad once per change (%d readings)" % len(sub.values(P + "sim/fail")),
              len(sub.values(P + "sim/fail")) == 1)
        wait_for(lambda: len(sub.values(P + "sim/cf")) >= 3, 5)
        cfs = sub.values(P + "sim/cf")
        check("Content-Format alternating text / JSON, all read: %s" % cfs[:4],
              len(cfs) >= 3 and all(c["quality"] == "good" for c in cfs))
        v = sub.value(P + "sim/big")
        check("block-wise ~3 KB JSON (Block2 by libcoap): %s" % v,
              v and v["quality"] == "good" and isinstance(v["value"], (int, float)))
        v = sub.value(P + "sim/garbage", lambda v: v["quality"] == "bad", 5)
        check("unparsable notification: quality bad, last good value kept: %s" % v,
              v and "value" in v)
        v = sub.value(P + "sim/garbage", lambda v: v["quality"] == "good", 5,
                      since=time.time())
        check("... and good again on the next notification: %s" % v, v is not None)
        v = sub.value(P + "slow/v", lambda v: v["quality"] == "bad", 5)
        check("slow (3 s) with timeout 1 s: bad: %s" % v, v is not None)
        check("slow: offline after retries", sub.text(P + "slow/status", "offline", 5))
        v = sub.value(P + "patient/v", lambda v: v["quality"] == "good", 8)
        check("slow with timeout 6 s: read (separate response): %s" % v, v is not None)
        v = sub.value(P + "libcoap/time", lambda v: v["quality"] == "good", 5)
        check("coap-server-notls /time observed: %s" % v, v and isinstance(v["value"], str))
        times = set(x["value"] for x in sub.values(P + "libcoap/time"))
        wait_for(lambda: len(set(x["value"] for x in sub.values(P + "libcoap/time"))) >= 3, 5)
        times = set(x["value"] for x in sub.values(P + "libcoap/time"))
        check("coap-server-notls /time notifies each second: %d values" % len(times),
              len(times) >= 3)
        v = sub.value(P + "weather/temperature")
        check("make run's demo map (demo_coap.ini): weather/temperature %s" % v,
              v and v["quality"] == "good" and v["unit"] == "°C")
        v = sub.value(P + "weather/door")
        check("... weather/door (SenML vb): %s" % v, v and isinstance(v["value"], bool))
        check("a device answering garbage: offline", sub.text(P + "junk/status", "offline", 5))
        check("... its point bad", (sub.value(P + "junk/v") or {}).get("quality") == "bad")
        check("dead device offline", sub.text(P + "dead/status", "offline", 5))
        v = sub.value(P + "dead/v")
        check("dead device point bad: %s" % v, v and v["quality"] == "bad")

        # Writes: PUT text, POST JSON at the pointer (scaled back), a 4.05
        pub = mqtt.Client(client_id="", protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        pub.publish(P + "sim/setpoint/set", "42.5", qos=1)
        v = sub.value(P + "sim/setpoint/set/result")
        check("write PUT /setpoint 42.5: result %s" % v, v and v["ok"] is True and v["value"] == 42.5)
        v = sub.value(P + "sim/setpoint", lambda v: v["value"] == 42.5)
        check("... and the observed value is 42.5: %s" % v, v is not None)
        pub.publish(P + "sim/jset/set", '{"value": 7}', qos=1)
        v = sub.value(P + "sim/jset/set/result")
        check("write POST /jsetpoint (JSON at /target/value, scale 0.1): %s" % v,
              v and v["ok"] is True)
        v = sub.value(P + "sim/jset", lambda v: abs(v["value"] - 7) < 1e-9)
        check("... read back through the pointer as 7 (70 on the device): %s" % v, v is not None)
        pub.publish(P + "sim/nowrite/set", "1", qos=1)
        v = sub.value(P + "sim/nowrite/set/result")
        check("write to a resource without PUT: %s" % v,
              v and v["ok"] is False and v["error"].startswith("4.05"))
        pub.publish(P + "sim/setpoint/set", '"text"', qos=1)
        v = sub.value(P + "sim/setpoint/set/result", lambda v: v["ok"] is False)
        check("a string to a number point is refused before the device: %s" % v, v is not None)
        pub.loop_stop()
        pub.disconnect()

        # The simulator restarts: SIGKILL, so it cannot say goodbye (4.04) to its
        # observers, and the new one knows none. Max-Age (2 s) passes without a
        # notification and the adapter registers again.
        sim.kill()
        sim.wait()
        time.sleep(0.5)
        t1 = time.time()
        sim = start_sim(sim_port)
        v = sub.value(P + "sim/num", lambda v: v["quality"] == "good", 10, since=t1 + 0.1)
        check("after the device restarted, observed readings resume: %s" % v, v is not None)
        wait_for(lambda: len(sub.values(P + "sim/num", t1)) >= 5, 5)
        n = len(sub.values(P + "sim/num", t1))
        check("... as notifications (%d readings)" % n, n >= 5)
        def fig(name):
            for _, m in reversed(list(sub.msgs)):
                if m.topic == "$SYS/fieldmq/coap/client/" + name:
                    return int(m.payload)
            return None
        wait_for(lambda: (fig("parse_errors") or 0) >= 1, 12)
        check("$SYS/fieldmq/coap/client: notifications %s, parse_errors %s, devices %s"
              % (fig("notifications"), fig("parse_errors"), fig("devices")),
              (fig("notifications") or 0) > 10 and (fig("parse_errors") or 0) >= 1
              and fig("devices") == 7)
        check("$SYS/fieldmq/coap/client/writes: %s" % fig("writes"), (fig("writes") or 0) >= 3)
        test_metrics(http_port)
        with open(os.path.join(tmp, "log")) as f:
            logtext = f.read()
        check("log says it registered again", "registering again" in logtext)
        jl = [l for l in logtext.splitlines() if " junk" in l]
        check("the garbage device took %d log lines in ~25 s of polls every 300 ms: %s"
              % (len(jl), [l[25:] for l in jl]),
              0 < len(jl) <= 6)
        sub.stop()
        check("the daemon is alive after the garbage device", fmq.poll() is None)
        stop_proc(fmq)
        check("clean stop (exit %s)" % fmq.returncode, fmq.returncode == 0)
        fmq = None
    finally:
        stop_junk.set()
        status = finish(check, tmp, [fmq] + procs)
    return status


if __name__ == "__main__":
    sys.exit(main())
