#!/usr/bin/python3
# The status page in a real browser: headless Chromium (Debian's
# `chromium`) loads http://127.0.0.1:PORT/ from fieldmq's HTTP listener on
# a phone-sized viewport, driven over the DevTools protocol by
# node/cdp_status.js. fieldmq polls the Modbus simulator; while the page is
# open this test writes a new setpoint through MQTT (.../setpoint/set), the
# device takes it, the next poll reads it, and the page must show the new
# value without a reload (Server-Sent Events). Then the DOM is checked
# (gateway id, version, uptime, device state, every point with value, unit,
# quality and age, no horizontal scrolling at 390 px), and a screenshot is
# kept under build/ (build/http-status-page.png) for people to look at.
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import BUILD, Env, free_port, wait_until  # noqa: E402
from itlib import wait_port  # noqa: E402

import paho.mqtt.publish as publish  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHOT = os.path.abspath(os.path.join(BUILD, "http-status-page.png"))

env = Env("http-browser")
P = env.path
tcp, http, mport, devtools = free_port(), free_port(), free_port(), free_port()
os.mkdir(P("devices.d"))
with open("etc/devices.d/demo.ini") as f:
    demo = f.read().replace("port = 15020", "port = %d" % mport).replace("poll = 1s", "poll = 300ms")
with open(P("devices.d/demo.ini"), "w") as f:
    f.write(demo)
sim = subprocess.Popen([os.path.join(BUILD, "sim", "modbus_sim"), "--tcp", "127.0.0.1:%d" % mport,
                        "--regs", "tests/sim/modbus_regs.ini"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
env.procs.append(sim)
ini = P("fieldmq.ini")
with open(ini, "w") as f:
    f.write("[gateway]\nid = plant-7\ndata_dir = data\n")
    f.write("[broker]\nlisten = 127.0.0.1:%d\npersist = no\n" % tcp)
    f.write("[http]\nenabled = yes\nlisten = 127.0.0.1:%d\n" % http)
fmq = env.fieldmq(ini, tcp)
env.check("the HTTP listener is up", wait_port(http))

chromium = shutil.which("chromium")
env.check("chromium is installed (Debian's package)", chromium is not None)
if not chromium:
    env.finish()
profile = P("chromium-profile")
os.mkdir(profile)
log = open(P("chromium.log"), "w")
br = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                       "--no-first-run", "--disable-background-networking",
                       "--disable-component-update", "--disable-sync",
                       "--user-data-dir=" + profile,
                       "--remote-debugging-port=%d" % devtools, "about:blank"],
                      stdout=log, stderr=log, start_new_session=True)
env.procs.append(br)

drv = subprocess.Popen(["node", "--experimental-websocket", "--no-warnings",
                        os.path.join(HERE, "node", "cdp_status.js"), str(devtools),
                        "http://127.0.0.1:%d/" % http, "boiler/setpoint", SHOT, "40"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
first = drv.stdout.readline().strip()
env.check("the page shows the setpoint (%s)" % first, first.startswith("first \"50"), first)
# Change it at the device, through the gateway: the page must follow by itself.
publish.single("fieldmq/plant-7/boiler/setpoint/set", "42.5", qos=1, hostname="127.0.0.1",
               port=tcp)
try:
    out, _ = drv.communicate(timeout=60)
except subprocess.TimeoutExpired:
    drv.kill()
    out, _ = drv.communicate()
try:
    r = json.loads(out.strip().splitlines()[-1])
except (ValueError, IndexError):
    r = {"error": out}
dom = r.get("dom") or {}
env.check("the live value changed without a reload: %s -> %s" % (r.get("first"), r.get("now")),
          r.get("now", "").startswith("42.5") and "°C" in r.get("now", ""), r)
env.check("  in a real Chromium", "Chrome/" in dom.get("agent", ""), dom.get("agent"))
env.check("  after several server-sent updates (%s)" % dom.get("updates"),
          (dom.get("updates") or 0) >= 2, dom.get("updates"))
env.check("DOM: gateway id, version and uptime in the header",
          dom.get("gateway") == "plant-7" and dom.get("title") == "fieldmq plant-7" and
          "v0." in dom.get("meta", "") and " up " in dom.get("meta", ""), dom)
env.check("DOM: no uplink configured says so", dom.get("uplink") == "none", dom.get("uplink"))
devs = dom.get("devices") or [{}]
rows = {p[0]: p for p in devs[0].get("points", [])}
env.check("DOM: the device with its state", devs[0].get("name") == "boiler" and
          devs[0].get("state") == "online", devs)
env.check("DOM: every point with value and unit, quality and age",
          len(rows) == 7 and rows.get("temperature", [None, ""])[1] == "21 °C" and
          rows["temperature"][2] == "good" and rows["temperature"][3].endswith(" s") and
          rows.get("serial", [None, ""])[1] == "fieldmq-sim" and
          rows.get("burner", [None, ""])[1] == "true", rows)
env.check("readable on a phone: no horizontal scrolling at %s px" % dom.get("innerWidth"),
          dom.get("scrollWidth") and dom["scrollWidth"] <= dom.get("innerWidth", 0), dom)
env.check("a screenshot is kept: %s" % os.path.relpath(SHOT),
          os.path.exists(SHOT) and open(SHOT, "rb").read(8) == b"\x89PNG\r\n\x1a\n")
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
time.sleep(0.3)
env.check("the browser's event stream is closed on its side too",
          wait_until(lambda: "fieldmq_http_event_streams 0" in
                     subprocess.run(["curl", "-s", "http://127.0.0.1:%d/metrics" % http],
                                    capture_output=True, text=True).stdout, 5))
env.check("fieldmq stops cleanly", env.stop(fmq) == 0)
env.finish()
