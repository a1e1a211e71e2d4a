#!/usr/bin/env python3
"""The serial adapter end to end, on real ttys: socat pty pairs (a tty on
each side; the daemon opens one end, the test writes the other) and our line
simulator (tests/sim/serial_sim) on a pty of its own and as a raw TCP serial
server. One daemon serves every bus:

  text  (socat pair): kv, csv by header name, regex and two rtl_433 JSON
        sensors sharing one line; noise, an overlong line, a flood
  gps   (socat pair): NMEA 0183 built by pynmea2 (Debian's python3-nmea2, an
        independent implementation); a sentence with a bad checksum; socat
        killed and restarted (hotplug: offline, then readings resume)
  stx   (socat pair): framing = stx_etx
  hex   (socat pair): framing = idle, encoding = hex
  scpi  (serial_sim --pty, missing at start): poll_command queries, a rw
        point through write_command / write_response; the pty vanishes and
        returns
  tcp   (serial_sim --tcp): type = tcp, killed and restarted
  raw   (socat TCP-LISTEN in front of a pty, as ser2net): type = tcp
  cfg   (socat pair): baud, parity, data bits, stop bits and flow = rtscts as
        the tty has them (tcgetattr on the daemon's end)
  len   (socat pair): framing = length; interval, so silence makes it stale
  mute  (socat pair): a queried device that does not answer: timeouts
        counted, offline after 3, online again once it answers
  xoff  (socat pair): flow = xonxoff; the device sends XOFF, the commands
        pile up in the tty until the write queue overflows: a write error,
        counted, the port reopened; after XON the commands reach the device

make run's demo map (etc/devices.d/demo_serial.ini) is loaded too, its pty path
pointed at a serial_sim --mode mixed of the test: GPS and rtl_433 readings.

The gateway forwards everything to a cloud Mosquitto ([uplink], forward =
fieldmq/gw1/# 1) that is down at first: a serial reading is queued in the
store and reaches the cloud with the payload the local broker had, as Modbus
readings do. At the end, the log is checked for floods (bounded warning lines
from the serial adapter, one "cannot open" per missing port) and the daemon's
RSS growth over a flood of 20 000 lines is bounded.

Readings are checked on MQTT (values, units, quality, retained), counts in
$SYS/fieldmq/serial/... and per device in /metrics ([http]: the probe's
timeouts, then latency count == queries answered; th1's frames, parse errors
and overrun; gps's bad checksum and hotplug; dmm's open failures);
--check-config refuses bad serial keys with
file:line."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import time
import tty
import urllib.request

import paho.mqtt.client as mqtt
from prometheus_client.parser import text_string_to_metric_families
import pynmea2
import re
import select

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itlib import free_port, stop_proc, wait_for, wait_port  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
FIELDMQ = os.environ.get("FIELDMQ", os.path.join(BUILD, "fieldmq"))
SIM = os.path.join(BUILD, "sim", "serial_sim")
fails = 0
procs = []


def check(desc, cond):
    global fails
    print(("ok - " if cond else "NOT OK - ") + desc, flush=True)
    if not cond:
        fails += 1


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    procs.append(p)
    return p


class Pair:
    """A socat pty pair: the daemon opens `a`, the test writes `b`."""

    def __init__(self, tmp, name):
        self.a = os.path.join(tmp, name + ".a")
        self.b = os.path.join(tmp, name + ".b")
        self.p = None
        self.fd = -1
        self.start()

    def start(self):
        self.p = spawn(["socat", "pty,raw,echo=0,link=" + self.a, "pty,raw,echo=0,link=" + self.b])
        if not wait_for(lambda: os.path.exists(self.a) and os.path.exists(self.b)):
            raise AssertionError("socat made no ptys")
        self.fd = os.open(self.b, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        off = 0
        while off < len(data):
            off += os.write(self.fd, data[off:])

    def kill(self):
        os.close(self.fd)
        self.fd = -1
        stop_proc(self.p)
        wait_for(lambda: not os.path.exists(self.a), 3)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def asan():
    """Whether the daemon is a sanitizer build (its RSS says nothing then)."""
    r = subprocess.run(["ldd", FIELDMQ], capture_output=True, timeout=10)
    return b"libasan" in r.stdout


def read_until(fd, want, timeout=5.0):
    """What a Pair's test end reads until `want` is in it (or the time is up)."""
    got = b""
    end = time.time() + timeout
    while want not in got and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            got += os.read(fd, 4096)
    return got


def drain(fd):
    """Discard what a Pair's test end has waiting (bounded: 100 reads)."""
    for _ in range(100):
        r, _, _ = select.select([fd], [], [], 0)
        if not r or not os.read(fd, 4096):
            return


class Sub:
    """Every message on the filters; the latest per topic."""

    def __init__(self, port, filters):
        self.msgs = []
        self.c = mqtt.Client(client_id="", protocol=mqtt.MQTTv311)
        self.c.on_message = lambda c, u, m: self.msgs.append(m)
        self.c.connect("127.0.0.1", port)
        for f in filters:
            self.c.subscribe(f, qos=1)
        self.c.loop_start()

    def find(self, pred):
        for m in reversed(list(self.msgs)):
            if pred(m):
                return m
        return None

    def wait(self, pred, timeout=5.0):
        return wait_for(lambda: self.find(pred), timeout)

    def value(self, topic, pred=lambda v: True, timeout=5.0):
        """The JSON payload of the newest message on topic for which pred holds."""
        def ok(m):
            if m.topic != topic:
                return False
            try:
                return pred(json.loads(m.payload))
            except ValueError:
                return False
        m = self.wait(ok, timeout)
        return json.loads(m.payload) if m else None

    def text(self, topic, want, timeout=5.0):
        return self.wait(lambda m: m.topic == topic and m.payload == want.encode(), timeout)

    def figure(self, name, pred, timeout=5.0):
        t = "$SYS/fieldmq/serial/" + name
        m = self.wait(lambda m: m.topic == t and pred(int(m.payload)), timeout)
        return int(m.payload) if m else None

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


DEVICES = """
[bus:text]
type = serial
device = {text}
baud = 115200
max_frame = 256

[device:th1]
protocol = serial
bus = text
parser = kv
match = ^id=1;

[point:th1/temp]
key = temp
unit = °C

[point:th1/hum]
key = hum
type = uint16
unit = %

[device:logger]
protocol = serial
bus = text
parser = csv
header = yes
match = ^(time,|[0-9]{{2}}:)

[point:logger/temp]
column = temp
[point:logger/pres]
column = 4
type = int32

[device:station]
protocol = serial
bus = text
parser = regex
match = ^T=([-0-9.]+) H=([0-9.]+)$

[point:station/temp]
group = 1
deadband = 1
[point:station/hum]
group = 2

[device:acurite]
protocol = serial
bus = text
parser = json
match = /model=Acurite-Tower,/id=1234

[point:acurite/temperature]
json_pointer = /temperature_C
unit = °C
[point:acurite/battery]
json_pointer = /battery_ok
type = bool

[device:lacrosse]
protocol = serial
bus = text
parser = json
match = /model=LaCrosse-TX141THBv2,/id=77

[point:lacrosse/temperature]
json_pointer = /temperature_C

[bus:gps]
device = {gps}
baud = 4800

[device:gps]
protocol = serial
bus = gps
parser = nmea
stale_after = 3s

[point:gps/lat]
field = lat
[point:gps/lon]
field = lon
[point:gps/alt]
field = alt
unit = m
[point:gps/speed]
field = speed
unit = km/h
[point:gps/sats]
field = sats
type = uint16
[point:gps/fix]
field = fix
type = uint16
[point:gps/hdop]
field = hdop
[point:gps/course]
field = course
[point:gps/utc]
field = utc
type = string
[point:gps/view]
field = sats_view
type = uint16

[bus:stx]
device = {stx}
framing = stx_etx

[device:stx]
protocol = serial
bus = stx
parser = kv

[point:stx/v]
key = v

[bus:hex]
device = {hex}
framing = idle
idle_gap = 30ms
encoding = hex

[device:meter]
protocol = serial
bus = hex
parser = regex
match = ^AA01(....)

[point:meter/count]
group = 1
type = uint16

[bus:scpi]
device = {scpi}
timeout = 500ms
reopen_min = 200ms
reopen_max = 1s

[device:dmm]
protocol = serial
bus = scpi
parser = regex
match = ^([-+0-9.E]+)$
poll = 300ms
poll_command = "MEAS:TEMP?\\r\\n"
write_command = "SOUR:VOLT %.3f\\r\\n"
write_response = ^OK

[point:dmm/temp]
group = 1
unit = °C

[point:dmm/volt]
group = 1
access = rw
publish = every_poll

[bus:net]
type = tcp
host = 127.0.0.1
port = {tcp_port}
reopen_min = 200ms
reopen_max = 1s

[device:net]
protocol = serial
bus = net
parser = kv
match = ^id=2;

[point:net/temp]
key = temp

[bus:raw]
type = tcp
host = 127.0.0.1
port = {socat_port}
reopen_min = 200ms
reopen_max = 1s

[device:raw]
protocol = serial
bus = raw
parser = kv

[point:raw/temp]
key = temp

[bus:cfg]
device = {cfgp}
baud = 19200
parity = E
data_bits = 7
stop_bits = 2
flow = rtscts

[device:cfg]
protocol = serial
bus = cfg
parser = kv

[point:cfg/v]
key = v
scale = 0.5
offset = 1

[bus:mute]
device = {mute}
timeout = 100ms

[device:probe]
protocol = serial
bus = mute
parser = regex
match = ^V=([0-9.]+)$
poll = 300ms
poll_command = "READ?\\r\\n"

[point:probe/v]
group = 1

[bus:len]
device = {lenp}
framing = length
length = 8

[device:len]
protocol = serial
bus = len
parser = regex
match = ^T([-+0-9.]+)$
interval = 500ms

[point:len/t]
group = 1

[bus:xoff]
device = {xoff}
flow = xonxoff
reopen_min = 200ms
reopen_max = 1s

[device:valve]
protocol = serial
bus = xoff
parser = kv

[point:valve/pos]
key = pos
access = rw
write_command = "POS %.1f {pad}\\r\\n"
"""


def retained_value(port, topic, timeout=3.0):
    """The value of @topic's retained message, read by a subscriber of its own."""
    s = Sub(port, [topic])
    m = s.wait(lambda m: m.topic == topic and m.retain, timeout)
    s.stop()
    return json.loads(m.payload)["value"] if m else None


def flood_taken(port, topic, last, timeout=30.0):
    """Every line of a flood is read: its last value is the retained one (bounded)."""
    return wait_for(lambda: retained_value(port, topic) == last, timeout)


def settle(sub, topic, quiet=0.5, limit=30.0):
    """Wait (bounded) until @sub has received nothing on @topic for @quiet s. A flood queues
    more for a subscriber than it takes; the broker drops new messages to it past
    max_queued_messages (1000), so a check that follows one waits for that queue to drain."""
    def count():
        return sum(1 for m in list(sub.msgs) if m.topic == topic)
    end, n = time.time() + limit, -1
    while time.time() < end:
        c = count()
        if c == n:
            return True
        n = c
        time.sleep(quiet)
    return False


def nmea_lines():
    """Sentences built by pynmea2, and the values pynmea2 reads back from them."""
    gga = pynmea2.GGA("GP", "GGA", ("092750.000", "5321.6802", "N", "00630.3372", "W", "1", "8",
                                    "1.03", "61.7", "M", "55.2", "M", "", ""))
    rmc = pynmea2.RMC("GN", "RMC", ("092751.000", "A", "5321.6802", "N", "00630.3372", "W",
                                    "12.5", "54.7", "071226", "", "", "A"))
    vtg = pynmea2.VTG("GP", "VTG", ("054.7", "T", "034.4", "M", "005.5", "N", "010.2", "K", "A"))
    gsa = pynmea2.GSA("GP", "GSA", ("A", "3", "04", "05", "", "09", "12", "", "", "24", "", "", "",
                                    "", "2.5", "1.3", "2.1"))
    gsv = pynmea2.GSV("GP", "GSV", ("3", "1", "11", "03", "03", "111", "00", "04", "15", "270", "00",
                                    "06", "01", "010", "00", "13", "06", "292", "00"))
    zda = pynmea2.ZDA("GP", "ZDA", ("092752.00", "07", "12", "2026", "00", "00"))
    return ([str(s) for s in (gga, rmc, vtg, gsa, gsv, zda)], pynmea2.parse(str(gga)),
            pynmea2.parse(str(rmc)), pynmea2.parse(str(gsv)), pynmea2.parse(str(zda)))


def dev_metrics(http_port, dev):
    """One serial device's figures in /metrics (parsed by prometheus_client)."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http_port, timeout=5) as r:
        body = r.read().decode()
    smp = {}
    for fam in text_string_to_metric_families(body):
        for x in fam.samples:
            if x.labels.get("device") == dev and x.labels.get("protocol") == "serial":
                smp[(x.name, x.labels.get("kind"), x.labels.get("le"))] = x.value
    errors = {k: v for (n, k, _), v in smp.items() if n == "fieldmq_device_request_errors_total"}
    d = {"requests": smp.get(("fieldmq_device_requests_total", None, None)),
         "errors": errors,
         "lat_count": smp.get(("fieldmq_device_request_duration_seconds_count", None, None)),
         "online": smp.get(("fieldmq_device_online", None, None))}
    # A transport error is the port's (counted on each of its devices), not a request's: a
    # poll cut by it is a request without a timeout or an answer.
    d["answered"] = (d["requests"] or 0) - errors.get("timeout", 0)
    return d


def test_config_errors(tmp):
    d = os.path.join(tmp, "bad")
    os.makedirs(os.path.join(d, "devices.d"))
    with open(os.path.join(d, "fieldmq.ini"), "w") as f:
        f.write("[gateway]\nid = gw1\ndata_dir = data\n[broker]\nlisten = 127.0.0.1:1\n")
    cases = [
        ("[bus:x]\ndevice = /dev/null\nframing = line\ndelimiter =\n[device:a]\nprotocol = serial\n"
         "bus = x\nparser = kv\n[point:a/b]\nkey = b\n", "delimiter"),
        ("[device:a]\nprotocol = serial\ndevice = /dev/null\nparser = regex\nmatch = ^(x\n"
         "[point:a/b]\ngroup = 1\n", "match"),
        ("[device:a]\nprotocol = serial\ndevice = /dev/null\nparser = regex\nmatch = ^(x)$\n"
         "[point:a/b]\ngroup = 2\n", "group"),
        ("[device:a]\nprotocol = serial\ndevice = /dev/null\nparser = kv\n"
         "[point:a/b]\nkey = b\naccess = rw\nwrite_command = SET %d %d\n", "write_command"),
        ("[device:a]\nprotocol = serial\ndevice = /dev/null\nparser = nmea\n"
         "[point:a/b]\nfield = altitude\n", "field"),
        ("[device:a]\nprotocol = serial\ndevice = /dev/null\nparser = csv\n"
         "[point:a/b]\nkey = b\n", "column"),
        ("[device:a]\nprotocol = serial\ndevice = /dev/null\nparser = json\nmatch = model=x\n"
         "[point:a/b]\njson_pointer = /t\n", "match"),
    ]
    for text, key in cases:
        with open(os.path.join(d, "devices.d", "x.ini"), "w") as f:
            f.write(text)
        r = subprocess.run([FIELDMQ, "--check-config", "-c", os.path.join(d, "fieldmq.ini")],
                           capture_output=True, timeout=20)
        err = r.stderr.decode(errors="replace")
        check("--check-config refuses %s (exit %d): %s" % (key, r.returncode, err.strip()[:150]),
              r.returncode == 2 and key in err and "x.ini:" in err)


def test_examples(tmp):
    """The etc/devices.d/serial-*.ini.example files are valid device maps."""
    d = os.path.join(tmp, "examples")
    os.makedirs(os.path.join(d, "devices.d"))
    with open(os.path.join(d, "fieldmq.ini"), "w") as f:
        f.write("[gateway]\nid = gw1\ndata_dir = data\n[broker]\nlisten = 127.0.0.1:1\n")
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    ex = sorted(n for n in os.listdir(os.path.join(root, "etc", "devices.d"))
                if n.startswith("serial-") and n.endswith(".ini.example"))
    for n in ex:
        shutil.copy(os.path.join(root, "etc", "devices.d", n),
                    os.path.join(d, "devices.d", n[:-len(".example")]))
    r = subprocess.run([FIELDMQ, "--check-config", "-c", os.path.join(d, "fieldmq.ini")],
                       capture_output=True, timeout=20)
    check("the %d serial examples pass --check-config: %s" % (len(ex), r.stderr.decode()[-300:]),
          len(ex) >= 4 and r.returncode == 0)


def main():
    tmp = tempfile.mkdtemp(prefix="fieldmq-serial.")
    port, tcp_port, socat_port, cloud_port = free_port(), free_port(), free_port(), free_port()
    http_port = free_port()
    fmq = None
    try:
        test_config_errors(tmp)
        test_examples(tmp)
        text, gps, stx, hexp, cfgp, lenp, xoff, mute = (Pair(tmp, n) for n in (
            "text", "gps", "stx", "hex", "cfg", "len", "xoff", "mute"))
        scpi = os.path.join(tmp, "scpi")  # made later: missing at start
        tcp_sim = spawn([SIM, "--tcp", "127.0.0.1:%d" % tcp_port, "--mode", "kv", "--rate", "20"],
                        stdout=subprocess.PIPE)
        tcp_sim.stdout.readline()
        # socat as a raw TCP serial server in front of a pty (what ser2net does with a tty).
        raw_b = os.path.join(tmp, "raw.b")
        spawn(["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % socat_port,
               "pty,raw,echo=0,link=" + raw_b])
        os.mkdir(os.path.join(tmp, "devices.d"))
        with open(os.path.join(tmp, "devices.d", "serial.ini"), "w") as f:
            f.write(DEVICES.format(text=text.a, gps=gps.a, stx=stx.a, hex=hexp.a, scpi=scpi,
                                   tcp_port=tcp_port, socat_port=socat_port, cfgp=cfgp.a,
                                   lenp=lenp.a, xoff=xoff.a, mute=mute.a,
                                   pad="x" * 150))
        # make run's demo map, its line made by the simulator here
        demo_link = os.path.join(tmp, "demo-serial")
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        with open(os.path.join(root, "etc", "devices.d", "demo_serial.ini")) as f:
            demo = f.read()
        check("the demo map names the pty make run makes", "/tmp/fieldmq-demo-serial" in demo)
        with open(os.path.join(tmp, "devices.d", "demo_serial.ini"), "w") as f:
            f.write(demo.replace("/tmp/fieldmq-demo-serial", demo_link))
        demo_sim = spawn([SIM, "--pty", demo_link, "--mode", "mixed", "--rate", "10"],
                         stdout=subprocess.PIPE)
        demo_sim.stdout.readline()
        with open(os.path.join(tmp, "fieldmq.ini"), "w") as f:
            f.write("[gateway]\nid = gw1\ndata_dir = data\nlog_level = debug\n"
                    "[broker]\nlisten = 127.0.0.1:%d\npersist = no\nsys_interval = 1s\n"
                    "[uplink]\nenabled = yes\nurl = mqtt://127.0.0.1:%d\nprotocol = 3.1.1\n"
                    "forward = fieldmq/gw1/# 1\nreconnect_min = 200ms\nreconnect_max = 1s\n"
                    "[http]\nenabled = yes\nlisten = 127.0.0.1:%d\n"
                    % (port, cloud_port, http_port))
        log = open(os.path.join(tmp, "log"), "w")
        fmq = spawn([FIELDMQ, "-c", os.path.join(tmp, "fieldmq.ini")], stdout=log, stderr=log)
        check("broker listens", wait_port(port))
        sub = Sub(port, ["fieldmq/gw1/#", "$SYS/fieldmq/serial/#", "$SYS/fieldmq/uplink/#"])
        P = "fieldmq/gw1/"

        # --- several devices sharing one line
        check("text line devices online", sub.text(P + "th1/status", "online"))
        text.write("id=1;temp=21.5;hum=40\r\nid=3;temp=99;hum=1\r\n")
        v = sub.value(P + "th1/temp")
        check("kv: temp 21.5 °C good: %s" % v,
              v and v["value"] == 21.5 and v["unit"] == "°C" and v["quality"] == "good")
        v = sub.value(P + "th1/hum")
        check("kv: hum uint16 40: %s" % v, v and v["value"] == 40)

        # --- the same path as Modbus readings: the uplink queue, then the cloud
        local = sub.find(lambda m: m.topic == P + "th1/temp")
        q = sub.wait(lambda m: m.topic == "$SYS/fieldmq/uplink/queued" and int(m.payload) > 0)
        check("uplink: with the cloud down, serial readings wait in the store (queued %s)"
              % (q and q.payload), q is not None)
        with open(os.path.join(tmp, "cloud.conf"), "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % cloud_port)
        spawn(["mosquitto", "-c", os.path.join(tmp, "cloud.conf")],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        check("cloud Mosquitto listens", wait_port(cloud_port))
        cloud = Sub(cloud_port, [P + "th1/#"])
        m = cloud.wait(lambda m: m.topic == P + "th1/temp", 15)
        check("uplink: the queued serial reading reaches the cloud with the local payload: %s"
              % (m and m.payload), m is not None and local is not None
              and m.payload == local.payload)
        cloud.stop()
        text.write("12:00,21.0,40,1013\r\ntime,temp,hum,pres\r\n12:01,22.5,41,1012\r\n")
        v = sub.value(P + "logger/temp")
        check("csv: column by header name (the line before the header gave none): %s" % v,
              v and v["value"] == 22.5)
        v = sub.value(P + "logger/pres", lambda v: v["value"] == 1012)
        check("csv: column by number, int32", v is not None)
        check("csv: the line before the header gave pres by number",
              sub.value(P + "logger/pres", lambda v: v["value"] == 1013, 1) is not None)
        text.write("T=20.0 H=50\r\nT=20.4 H=51\r\nT=21.2 H=52\r\n")
        v = sub.value(P + "station/hum", lambda v: v["value"] == 52)
        check("regex: group 2", v is not None)
        temps = [json.loads(m.payload)["value"] for m in list(sub.msgs)
                 if m.topic == P + "station/temp"]
        check("regex: deadband 1 keeps 20.4 out: %s" % temps, temps == [20.0, 21.2])
        text.write('{"time":"2026-12-07 10:00:00","model":"Acurite-Tower","id":1234,"channel":"A",'
                   '"battery_ok":1,"temperature_C":18.3,"humidity":44}\n'
                   '{"time":"2026-12-07 10:00:01","model":"LaCrosse-TX141THBv2","id":77,'
                   '"temperature_C":4.5,"humidity":80}\n'
                   '{"time":"2026-12-07 10:00:02","model":"Acurite-Tower","id":999,'
                   '"temperature_C":-40}\n')
        v = sub.value(P + "acurite/temperature")
        check("json: rtl_433 Acurite id 1234 by match: %s" % v, v and v["value"] == 18.3)
        v = sub.value(P + "acurite/battery")
        check("json: battery_ok as bool", v and v["value"] is True)
        v = sub.value(P + "lacrosse/temperature")
        check("json: the other sensor on the same line: %s" % v, v and v["value"] == 4.5)
        check("json: sensor id 999 matches no device",
              all(json.loads(m.payload)["value"] != -40 for m in list(sub.msgs)
                  if m.topic.endswith("temperature") and m.topic.startswith(P)))
        text.write("id=1;temp=oops;hum=41\r\n")
        v = sub.value(P + "th1/temp", lambda v: v["quality"] == "bad")
        check("kv: a value that does not parse is bad, keeping the last good value: %s" % v,
              v and v["value"] == 21.5)
        text.write("id=1;temp=oops;hum=42\r\n")
        time.sleep(0.3)
        bads = [m for m in list(sub.msgs) if m.topic == P + "th1/temp"
                and json.loads(m.payload)["quality"] == "bad"]
        check("bad is reported once per change (%d)" % len(bads), len(bads) == 1)
        late = Sub(port, [P + "th1/temp"])
        m = late.wait(lambda m: m.topic == P + "th1/temp")
        late.stop()
        check("readings are retained, as Modbus ones", m and m.retain)

        # --- bad input: noise, overlong, flood
        before = sub.figure("overlong", lambda n: True, 3) or 0
        text.write(b"\x00\xff\xfe\x80\x13garbage at the wrong baud\xc3\x28\r\n" + b"x" * 1000 +
                   b"\r\nid=1;temp=23;hum=43\r\n")
        check("after noise and an overlong line, lines parse again",
              sub.value(P + "th1/temp", lambda v: v["value"] == 23) is not None)
        check("overlong line counted", sub.figure("overlong", lambda n: n > before) is not None)
        check("unmatched lines counted", sub.figure("unmatched", lambda n: n >= 2) is not None)
        # Each flood ends with a value of its own (-1, -2, -3): the flood is taken when that
        # value is the retained one. (Its cycling values alone would match at line 30.)
        flood = "".join("id=1;temp=%d.5;hum=40\r\n" % (i % 30) for i in range(19999))
        rss0 = rss_kb(fmq.pid)
        t0 = time.time()
        text.write(flood + "id=1;temp=-1;hum=40\r\n")
        check("a flood of 20000 lines is taken (%.2fs)" % (time.time() - t0),
              flood_taken(port, P + "th1/temp", -1))
        check("the daemon is alive after the flood", fmq.poll() is None)
        # Two more floods as large: memory is reused, not grown again (the first ones
        # set the high-water marks of SQLite's caches, the allocator and the queues
        # towards the subscribers); measured: +7.5 MB, +1 to 1.5 MB, then +0.2 MB.
        # Each sample is taken once the subscriber has taken what the flood queued for
        # it (its queue in the broker is part of the memory a flood raises).
        settled = [settle(sub, P + "th1/temp")]
        time.sleep(0.5)
        rss = [rss0, rss_kb(fmq.pid)]
        for k, frac in ((2, 0.25), (3, 0.75)):
            text.write("".join("id=1;temp=%d%s;hum=40\r\n" % (i % 30, str(frac)[1:])
                               for i in range(19999)) + "id=1;temp=-%d;hum=40\r\n" % k)
            check("flood %d is taken" % k, flood_taken(port, P + "th1/temp", -k))
            settled.append(settle(sub, P + "th1/temp"))
            time.sleep(0.5)
            rss.append(rss_kb(fmq.pid))
        check("the subscriber has taken what each flood queued for it: %s" % settled,
              all(settled))
        growth = " ".join("%+d" % (b - a) for a, b in zip(rss, rss[1:]))
        if asan():
            print("# RSS over three floods: %s kB; no bound under ASan (its quarantine keeps "
                  "freed memory)" % growth)
        else:
            check("RSS over three floods of 20000 lines: %s kB (bound: +2 MB for the third)"
                  % growth, rss[3] - rss[2] < 2 * 1024)

        # --- NMEA from pynmea2
        lines, gga, rmc, gsv, zda = nmea_lines()
        gps.write("".join(s + "\r\n" for s in lines))
        v = sub.value(P + "gps/lat")
        check("nmea: lat as pynmea2 reads it: %s vs %s" % (v and v["value"], gga.latitude),
              v and abs(v["value"] - gga.latitude) < 1e-9)
        v = sub.value(P + "gps/lon")
        check("nmea: lon (west negative)", v and abs(v["value"] - gga.longitude) < 1e-9)
        v = sub.value(P + "gps/alt")
        check("nmea: alt %s m" % gga.altitude, v and v["value"] == gga.altitude and v["unit"] == "m")
        v = sub.value(P + "gps/sats")
        check("nmea: sats %s" % gga.num_sats, v and v["value"] == int(gga.num_sats))
        v = sub.value(P + "gps/fix")
        check("nmea: fix quality %s" % gga.gps_qual, v and v["value"] == gga.gps_qual)
        v = sub.value(P + "gps/speed", lambda v: abs(v["value"] - 10.2) < 1e-9)
        check("nmea: speed 10.2 km/h from VTG", v is not None)
        v = sub.value(P + "gps/course", lambda v: abs(v["value"] - 54.7) < 1e-9)
        check("nmea: course 54.7", v is not None)
        v = sub.value(P + "gps/hdop", lambda v: abs(v["value"] - 1.3) < 1e-9)
        check("nmea: hdop 1.3 from GSA", v is not None)
        want = rmc.datetime.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        v = sub.value(P + "gps/utc", lambda v: v["value"] == want)
        check("nmea: utc from RMC %s" % want, v is not None)
        want = "%04d-%02d-%02dT%s.000Z" % (zda.year, zda.month, zda.day,
                                            zda.timestamp.strftime("%H:%M:%S"))
        v = sub.value(P + "gps/utc", lambda v: v["value"] == want)
        check("nmea: utc from ZDA %s (date from its own fields)" % want, v is not None)
        v = sub.value(P + "gps/view")
        check("nmea: satellites in view from GSV: %s vs %s" % (v and v["value"], gsv.num_sv_in_view),
              v and v["value"] == int(gsv.num_sv_in_view))
        bad = lines[0][:-2] + ("00" if lines[0][-2:] != "00" else "11")
        before = sub.figure("bad_lines", lambda n: True, 3) or 0
        gps.write(bad + "\r\n")
        check("nmea: a bad checksum is dropped and counted",
              sub.figure("bad_lines", lambda n: n > before) is not None)

        # --- stale after stale_after of silence
        v = sub.value(P + "gps/lat", lambda v: v["quality"] == "stale", 8)
        check("gps silent for stale_after: lat stale, keeping its value: %s" % v,
              v and abs(v["value"] - gga.latitude) < 1e-9)

        # --- hotplug on a socat pair: the ptys disappear and return
        gps.kill()
        check("gps pty gone: device offline", sub.text(P + "gps/status", "offline"))
        check("$SYS: a port closed", sub.figure("closes", lambda n: n >= 1) is not None)
        time.sleep(1.5)
        check("the daemon did not exit on a missing port", fmq.poll() is None)
        sub.msgs.clear()
        gps.start()
        check("gps pty back: device online again", sub.text(P + "gps/status", "online", 40))
        gps.write("".join(s + "\r\n" for s in lines))
        check("readings resume by themselves",
              sub.value(P + "gps/lat", lambda v: v["quality"] == "good") is not None)

        # --- STX/ETX framing, idle framing with hex encoding
        stx.write(b"noise\x02v=7.5\x03junk\x02v=8")
        v = sub.value(P + "stx/v")
        check("stx_etx: the frame between STX and ETX: %s" % v, v and v["value"] == 7.5)
        stx.write(b"\x02v=9\x03")
        check("stx_etx: a new STX resynchronises",
              sub.value(P + "stx/v", lambda v: v["value"] == 9) is not None)
        hexp.write(b"\xaa\x01\x12\x34\x0d\x0a")
        v = sub.value(P + "meter/count")
        check("idle framing + hex encoding: 0x1234 = 4660: %s" % v, v and v["value"] == 0x1234)

        # --- the line settings as the tty has them
        late = Sub(port, [P + "cfg/status"])
        m = late.wait(lambda m: m.topic == P + "cfg/status")
        late.stop()
        check("cfg device online (retained status %s)" % (m and m.payload),
              m and m.payload == b"online")
        fd = os.open(cfgp.a, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        iflag, _, cflag, _, ispeed, ospeed, _ = termios.tcgetattr(fd)
        os.close(fd)
        check("tty: 19200 baud both ways", ispeed == termios.B19200 and ospeed == termios.B19200)
        # Linux ptys force CS8 and clear PARENB whatever is set (pty_set_termios), so
        # data_bits = 7 and parity = E cannot be seen here; stop bits can.
        check("tty: 2 stop bits, a receiver (cflag %o)" % cflag,
              cflag & termios.CSTOPB and cflag & termios.CREAD and cflag & termios.CLOCAL)
        check("tty: flow = rtscts sets CRTSCTS, no XON/XOFF",
              cflag & termios.CRTSCTS and not iflag & (termios.IXON | termios.IXOFF))
        cfgp.write("v=3\n")
        check("cfg: readings at those settings, scale 0.5 and offset 1 applied (3 -> 2.5)",
              sub.value(P + "cfg/v", lambda v: v["value"] == 2.5) is not None)

        # --- a queried device that does not answer, then does
        got = read_until(mute.fd, b"READ?\r\n")
        check("probe: poll_command arrives on the pty: %r" % got[:16], b"READ?\r\n" in got)
        t0 = sub.figure("timeouts", lambda n: True, 3) or 0
        check("probe: unanswered queries time out (counted)",
              sub.figure("timeouts", lambda n: n >= t0 + 3, 5) is not None)
        late = Sub(port, [P + "probe/status"])
        m = late.wait(lambda m: m.topic == P + "probe/status")
        late.stop()
        check("probe: offline after 3 timeouts (%s)" % (m and m.payload),
              m and m.payload == b"offline")
        d = dev_metrics(http_port, "probe")
        check("metrics: probe's unanswered queries are requests that timed out, none timed: %s" % d,
              d["errors"].get("timeout", 0) >= 3 and d["requests"] == d["errors"]["timeout"]
              and d["lat_count"] == 0 and d["online"] == 0)
        # Answer a fresh question only: the device takes an answer while its
        # question is out (timeout = 100ms of every 300ms poll). Questions
        # already waiting on the pty are drained first, since answering an old
        # one at the poll period's pace could keep missing the window.
        v = None
        end = time.time() + 5
        while v is None and time.time() < end:
            drain(mute.fd)
            if b"READ?" in read_until(mute.fd, b"READ?", 1):
                mute.write(b"V=1.5\r\n")
            v = sub.value(P + "probe/v", lambda v: v["value"] == 1.5, 0.3)
        check("probe: answered, a reading", v is not None and v["quality"] == "good")
        check("probe: online again", sub.text(P + "probe/status", "online", 3) is not None)
        d = dev_metrics(http_port, "probe")
        check("metrics: probe's latency count == its answered queries (%s): %s" % (d["answered"], d),
              (d["lat_count"] or 0) >= 1 and d["lat_count"] == d["answered"] and d["online"] == 1)

        # --- fixed-length frames; interval = 500ms: stale after 1.5 s of silence
        lenp.write(b"T+021.50T-003.25T+00")
        v = sub.value(P + "len/t", lambda v: v["value"] == -3.25)
        check("length framing: 8-byte frames, the partial third one waits", v is not None)
        check("length framing: the first frame too",
              sub.value(P + "len/t", lambda v: v["value"] == 21.5, 1) is not None)
        t0 = time.time()
        v = sub.value(P + "len/t", lambda v: v["quality"] == "stale", 6)
        check("interval 500ms: stale after 3 intervals of silence (%.1fs), value kept: %s"
              % (time.time() - t0, v), v and v["value"] == -3.25)
        lenp.write(b"1.00")
        check("length framing: the partial frame completes, then good again",
              sub.value(P + "len/t", lambda v: v["value"] == 1.0 and v["quality"] == "good")
              is not None)

        # --- a port that cannot be written: the device sent XOFF and never XON
        fd = os.open(xoff.a, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        iflag = termios.tcgetattr(fd)[0]
        os.close(fd)
        check("tty: flow = xonxoff sets IXON and IXOFF",
              iflag & termios.IXON and iflag & termios.IXOFF)
        xoff.write(b"pos=1.5\r\n")
        check("valve: a reading", sub.value(P + "valve/pos", lambda v: v["value"] == 1.5) is not None)
        cmd = mqtt.Client(client_id="", protocol=mqtt.MQTTv311)
        cmd.connect("127.0.0.1", port)
        cmd.loop_start()
        cmd.publish(P + "valve/pos/set", "2", qos=1)
        got = read_until(xoff.fd, b"POS 2.0 x")
        check("write_command reaches the device through the pty: %r" % got[:20], b"POS 2.0 x" in got)
        xoff.write(b"\x13")  # XOFF: the tty holds what the daemon writes
        time.sleep(0.3)
        we0 = sub.figure("write_errors", lambda n: True, 3) or 0
        sub.msgs.clear()
        for i in range(60):  # 60 x 160 bytes > the 4 KB the adapter keeps for a slow tty
            cmd.publish(P + "valve/pos/set", str(i), qos=1)
        check("write error counted in $SYS",
              sub.figure("write_errors", lambda n: n > we0, 10) is not None)
        m = sub.wait(lambda m: m.topic == P + "valve/pos/set/result"
                     and b"write to the port failed" in m.payload)
        check("the command that overflowed is answered: %s" % (m and m.payload), m is not None)
        check("the port closed: valve offline", sub.text(P + "valve/status", "offline") is not None)
        check("the daemon is alive", fmq.poll() is None)
        ok = None
        end = time.time() + 15
        while ok is None and time.time() < end:
            xoff.write(b"\x11")  # XON (again, if the reopened tty took the first one as data)
            read_until(xoff.fd, b"\xff", 0.2)  # drain whatever went through
            sub.msgs.clear()
            cmd.publish(P + "valve/pos/set", "77", qos=1)
            got = read_until(xoff.fd, b"POS 77.0 x", 1.0)
            if b"POS 77.0 x" in got:
                ok = sub.wait(lambda m: m.topic == P + "valve/pos/set/result"
                              and json.loads(m.payload).get("ok") is True, 2)
        check("after XON the port is back and commands reach the device", ok is not None)
        late = Sub(port, [P + "valve/status"])
        m = late.wait(lambda m: m.topic == P + "valve/status")
        late.stop()
        check("valve online again (retained status %s)" % (m and m.payload),
              m and m.payload == b"online")
        cmd.loop_stop()
        cmd.disconnect()

        # --- queries and commands on a pty that is missing at start
        late = Sub(port, [P + "dmm/status"])
        m = late.wait(lambda m: m.topic == P + "dmm/status")
        late.stop()
        check("scpi: a port missing at start makes its device offline (retained), not a failure",
              m and m.payload == b"offline" and fmq.poll() is None)
        scpi_sim = spawn([SIM, "--pty", scpi, "--mode", "scpi", "--rate", "0"],
                         stdout=subprocess.PIPE)
        scpi_sim.stdout.readline()
        check("scpi: online when it answers", sub.text(P + "dmm/status", "online", 10))
        v = sub.value(P + "dmm/temp")
        check("scpi: poll_command answered, regex parsed: %s" % v,
              v and 20 <= v["value"] <= 25 and v["quality"] == "good")
        pub = mqtt.Client(client_id="", protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        pub.publish(P + "dmm/volt/set", "12.5", qos=1)
        m = sub.wait(lambda m: m.topic == P + "dmm/volt/set/result")
        r = json.loads(m.payload) if m else {}
        check("scpi: write_command answered OK: %s" % r, r.get("ok") is True and r.get("value") == 12.5)
        pub.publish(P + "dmm/volt/set", '"high"', qos=1)
        m = sub.wait(lambda m: m.topic == P + "dmm/volt/set/result"
                     and not json.loads(m.payload).get("ok"))
        check("scpi: a string to %%.3f is refused: %s" % (m and m.payload), m is not None)
        pub.publish(P + "dmm/temp/set", "1", qos=1)
        m = sub.wait(lambda m: m.topic == P + "dmm/temp/set/result")
        check("scpi: a read-only point refuses commands", m and b"read-only" in m.payload)
        polls = sub.figure("polls", lambda n: n >= 3)
        check("$SYS: polls counted (%s)" % polls, polls is not None)
        # The instrument vanishes (USB unplugged) and returns.
        scpi_sim.send_signal(signal.SIGUSR1)
        check("scpi: unplugged -> offline", sub.text(P + "dmm/status", "offline", 10))
        sub.msgs.clear()
        scpi_sim.send_signal(signal.SIGUSR2)
        check("scpi: plugged back -> online", sub.text(P + "dmm/status", "online", 10))
        check("scpi: answers again",
              sub.value(P + "dmm/temp", lambda v: v["quality"] == "good", 5) is not None)
        pub.loop_stop()
        pub.disconnect()

        # --- a raw TCP serial server
        v = sub.value(P + "net/temp", timeout=5)
        check("tcp: readings from a raw TCP serial server: %s" % v, v and v["quality"] == "good")
        stop_proc(tcp_sim)
        check("tcp: server gone -> offline", sub.text(P + "net/status", "offline", 10))
        tcp_sim = spawn([SIM, "--tcp", "127.0.0.1:%d" % tcp_port, "--mode", "kv", "--rate", "20"],
                        stdout=subprocess.PIPE)
        tcp_sim.stdout.readline()
        check("tcp: server back -> online", sub.text(P + "net/status", "online", 10))

        # --- socat as the TCP serial server
        check("socat: the daemon connected (socat made its pty)",
              wait_for(lambda: os.path.exists(raw_b), 10))
        fd = os.open(raw_b, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        os.write(fd, b"temp=31.5\r\n")
        v = sub.value(P + "raw/temp")
        check("socat TCP serial server: a line written into its tty arrives: %s" % v,
              v and v["value"] == 31.5)
        os.close(fd)

        # --- make run's demo map
        v = sub.value(P + "demo_gps/lat", lambda v: v["quality"] == "good")
        check("demo: GPS latitude from the simulator's NMEA: %s" % v, v is not None)
        v = sub.value(P + "demo_acurite/temperature", lambda v: v["quality"] == "good")
        check("demo: the Acurite sensor of the rtl_433 stream on the same line: %s" % v,
              v is not None and v["unit"] == "°C" and 20 <= v["value"] < 25)

        d = dev_metrics(http_port, "th1")
        check("metrics: a serial device's error kinds: %s" % sorted(d["errors"]),
              sorted(d["errors"]) == ["overrun", "parse", "timeout", "transport"])
        check("metrics: th1 (talks by itself): its frames as requests (>= 60000 with the floods), "
              "the values that did not parse, the overlong line, no latency: %s" % d,
              (d["requests"] or 0) >= 60000 and d["errors"]["parse"] >= 2
              and d["errors"]["overrun"] >= 1 and d["errors"]["timeout"] == 0
              and d["lat_count"] == 0)
        d = dev_metrics(http_port, "gps")
        check("metrics: gps: the bad checksum a parse error, the unplugged pty transport: %s" % d,
              d["errors"]["parse"] >= 1 and d["errors"]["transport"] >= 1)
        d = dev_metrics(http_port, "dmm")
        check("metrics: dmm: missing at start and unplugged (transport), queries answered "
              "and timed: %s" % d, d["errors"]["transport"] >= 2 and (d["lat_count"] or 0) >= 3
              and d["lat_count"] <= d["answered"])
        check("$SYS: ports open", sub.figure("ports/open", lambda n: n == 12, 5) is not None)
        check("$SYS: per-bus lines", sub.wait(lambda m: m.topic ==
                                               "$SYS/fieldmq/serial/bus/text/lines"
                                               and int(m.payload) > 20000) is not None)
        sub.stop()
        stop_proc(fmq)
        check("clean stop (exit %s)" % fmq.returncode, fmq.returncode == 0)
        fmq = None

        # --- no log flood: one line per state change, never one per line or per retry
        log.close()
        with open(os.path.join(tmp, "log")) as f:
            lines = f.read().splitlines()
        loud = [ln for ln in lines if re.search(r" (warning|error) serial:", ln)]
        check("%d warning/error lines from the serial adapter over the whole run (bound 30)"
              % len(loud), 0 < len(loud) <= 30)
        missing = [ln for ln in loud if "bus scpi: cannot open" in ln]
        check("a port missing at start: one line however many retries (%d)" % len(missing),
              len(missing) == 1)
        wl = [ln for ln in loud if "bus xoff: writing to" in ln]
        check("the write error logged (%d lines): %s" % (len(wl), wl[:1]), 1 <= len(wl) <= 5)
        check("no warning for the flood, the noise or bad lines",
              not [ln for ln in loud if "bus text" in ln])
    finally:
        if fmq:
            stop_proc(fmq)
        for p in procs:
            if p.poll() is None:
                stop_proc(p)
        if fails:
            with open(os.path.join(tmp, "log")) as f:
                sys.stderr.write(f.read()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failed" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
