#!/usr/bin/python3
# MQTT.js (npm `mqtt`) over ws:// and wss:// in Node and in a real browser:
# headless Chromium (Debian's `chromium`) loads tests/integration/browser/
# reading.html, which uses MQTT.js's browser bundle. Each client connects,
# subscribes and receives a reading the gateway polled from the Modbus
# simulator (a retained JSON reading, as a dashboard would get it). The
# browser trusts the test's CA through --ignore-certificate-errors-spki-list
# with the server key's hash (no certificate store is touched); certificates
# are made here with openssl. Needs `make node-deps` (MQTT.js) and chromium.
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import BUILD, Env, free_port, wait_until  # noqa: E402
from tls_lib import make_pki  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")
PAGE = os.path.join(HERE, "browser", "reading.html")
TOPIC = "fieldmq/gw1/boiler/temperature"

env = Env("broker-mqttjs")
make_pki(env.dir)
P = lambda n: env.path(n)  # noqa: E731
tcp, ws, wss, mport = free_port(), free_port(), free_port(), free_port()

os.mkdir(P("devices.d"))
with open("etc/devices.d/demo.ini") as f:
    demo = f.read().replace("port = 15020", "port = %d" % mport).replace("poll = 1s", "poll = 200ms")
with open(P("devices.d/demo.ini"), "w") as f:
    f.write(demo)
sim = subprocess.Popen([os.path.join(BUILD, "sim", "modbus_sim"), "--tcp", "127.0.0.1:%d" % mport,
                        "--regs", "tests/sim/modbus_regs.ini"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
env.procs.append(sim)
ini = P("fieldmq.ini")
with open(ini, "w") as f:
    f.write("[gateway]\nid = gw1\ndata_dir = data\n")
    f.write("[broker]\nlisten = 127.0.0.1:%d, ws://127.0.0.1:%d, wss://127.0.0.1:%d\n"
            % (tcp, ws, wss))
    f.write("cert_file = server.crt\nkey_file = server.key\npersist = no\n")
fmq = env.fieldmq(ini, tcp)


def reading_ok(payload):
    try:
        v = json.loads(payload)
    except ValueError:
        return False
    return v.get("value") == 21 and v.get("unit") == "°C" and v.get("quality") == "good"


# ------------------------------------------------------------------ Node
for url, ca in (("ws://127.0.0.1:%d/mqtt" % ws, "-"),
                ("wss://localhost:%d/mqtt" % wss, P("ca.crt"))):
    r = subprocess.run(["node", os.path.join(NODE_DIR, "reading.js"), url, TOPIC, ca, "15"],
                       capture_output=True, text=True, timeout=30)
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out = {"error": r.stdout + r.stderr}
    env.check("MQTT.js %s in Node over %s: connects, subscribes, receives a reading"
              % (out.get("version", "?"), url.split(":")[0]),
              r.returncode == 0 and out.get("topic") == TOPIC and reading_ok(out.get("payload")),
              out)
    env.check("  the reading is the retained one", out.get("retain") is True, out)

# --------------------------------------------------------------- browser
chromium = shutil.which("chromium")
env.check("chromium is installed (Debian's package)", chromium is not None)
# The server key's SPKI hash, so Chromium accepts this certificate and no other.
der = subprocess.run(["openssl", "x509", "-in", P("server.crt"), "-pubkey", "-noout"],
                     capture_output=True, check=True).stdout
der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=der,
                     capture_output=True, check=True).stdout
spki = base64.b64encode(hashlib.sha256(der).digest()).decode()

reports = {}
got = threading.Condition()


def on_msg(c, u, m):
    with got:
        reports[m.topic] = m.payload.decode()
        got.notify_all()


watch = mqtt.Client(client_id="watch")
watch.on_connect = lambda c, u, f, rc: c.subscribe("test/browser/#", 1)
watch.on_message = on_msg
watch.connect("127.0.0.1", tcp, 30)
watch.loop_start()

for name, url in (("ws", "ws://127.0.0.1:%d/mqtt" % ws), ("wss", "wss://localhost:%d/mqtt" % wss)):
    if not chromium:
        break
    report = "test/browser/" + name
    page = "file://%s?url=%s&topic=%s&report=%s" % (PAGE, url, TOPIC, report)
    profile = P("chromium-" + name)
    os.mkdir(profile)
    log = open(P("chromium-%s.log" % name), "w")
    br = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync",
                           "--user-data-dir=" + profile, "--allow-file-access-from-files",
                           "--ignore-certificate-errors-spki-list=" + spki,
                           "--remote-debugging-port=0", page],
                          stdout=log, stderr=log, start_new_session=True)
    env.procs.append(br)
    with got:
        got.wait_for(lambda: report in reports, 45)
    r = json.loads(reports.get(report, "{}"))
    env.check("MQTT.js's browser bundle in headless Chromium over %s: connects, subscribes, "
              "receives a reading" % name,
              r.get("topic") == TOPIC and reading_ok(r.get("payload")),
              r or open(P("chromium-%s.log" % name)).read()[-800:])
    env.check("  reported by a real Chromium", "Chrome/" in r.get("agent", ""), r.get("agent"))
    # Chromium starts helper processes in its session: stop them all by the group of its PID.
    try:
        os.killpg(br.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        br.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(br.pid, signal.SIGKILL)
        br.wait()

watch.loop_stop()
env.check("no WebSocket upgrade was refused", "upgrade refused" not in env.log(), env.log()[-500:])
env.check("fieldmq stops cleanly", env.stop(fmq) == 0)
env.finish()
