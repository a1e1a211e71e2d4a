#!/usr/bin/env python3
"""Home Assistant MQTT discovery ([homeassistant] enabled = yes), end to end:
the daemon polls the Modbus simulator with the demo device map (plus an rw
string point), and a paho client plays Home Assistant's part:
  - every point has a retained config on
    homeassistant/<component>/gw1/<device>_<point>/config, valid JSON with
    the fields HA's MQTT documentation requires for that component (sensor,
    binary_sensor: state_topic; number, switch, text: command_topic;
    unique_id and a device with identifiers for the device registry;
    availability entries with a topic) and only keys that page documents;
  - its value_template, rendered with jinja2 (HA's template engine) against
    the reading the daemon published on its state_topic, gives the value;
  - the availability topics carry "online";
  - commands HA would send (number, switch payload_on, text through its
    command_template) are written to the device and read back;
  - a reload that removes a point and turns an rw point read-only empties
    the configs that no longer exist (HA then deletes the entities), and a
    restart with a point removed does the same;
  - HA's birth message ("online" on homeassistant/status) makes the daemon
    send every config again;
  - mosquitto_sub, subscribing afresh, sees exactly the current configs."""
import json, os, signal, subprocess, sys, tempfile, time, shutil
import jinja2
import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itlib import free_port, wait_port  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
fails = 0
procs = []

# From home-assistant.io/integrations/<component>.mqtt/ ("Configuration
# Variables"): what is Required, and the documented keys fieldmq may use.
COMMON = {"availability", "availability_mode", "device", "name", "unique_id", "value_template",
          "state_topic", "device_class"}
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "number": {"command_topic"},
    "switch": {"command_topic"},
    "text": {"command_topic"},
}
DOCUMENTED = {
    "sensor": COMMON | {"state_class", "unit_of_measurement"},
    "binary_sensor": COMMON | {"payload_on", "payload_off"},
    "number": COMMON | {"command_topic", "command_template", "min", "max", "step", "mode",
                        "unit_of_measurement"},
    "switch": COMMON | {"command_topic", "payload_on", "payload_off", "state_on", "state_off"},
    "text": COMMON | {"command_topic", "command_template", "min", "max", "mode", "pattern"},
}
DEVICE_KEYS = {"identifiers", "name", "via_device", "manufacturer", "model", "sw_version"}


def check(desc, cond):
    global fails
    print(("ok - " if cond else "NOT OK - ") + desc, flush=True)
    if not cond:
        fails += 1
    return cond


class Sub:
    """Every message on the filters, in order."""

    def __init__(self, port, filters):
        self.msgs = []
        self.c = mqtt.Client(client_id="", protocol=mqtt.MQTTv311)
        self.c.on_message = lambda c, u, m: self.msgs.append(m)
        self.c.connect("127.0.0.1", port)
        for f in filters:
            self.c.subscribe(f, qos=1)
        self.c.loop_start()

    def wait(self, pred, timeout=8.0):
        end = time.time() + timeout
        while time.time() < end:
            for m in list(self.msgs):
                if pred(m):
                    return m
            time.sleep(0.05)
        return None

    def latest(self, topic):
        for m in reversed(list(self.msgs)):
            if m.topic == topic:
                return m
        return None

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def render(template, payload):
    """HA's MQTT templates: value is the payload as text, value_json the parsed JSON."""
    env = jinja2.Environment()
    text = payload.decode() if isinstance(payload, bytes) else payload
    try:
        vj = json.loads(text)
    except ValueError:
        vj = None
    return env.from_string(template).render(value=text, value_json=vj)


def retained_configs(port):
    """What a new subscriber gets now: mosquitto_sub, retained only, 2 s."""
    out = subprocess.run(["mosquitto_sub", "-p", str(port), "-t", "homeassistant/+/gw1/+/config",
                          "-v", "--retained-only", "-W", "2"],
                         capture_output=True, text=True, timeout=10).stdout
    got = {}
    for line in out.splitlines():
        t, _, p = line.partition(" ")
        got[t] = p
    return got


def main():
    tmp = tempfile.mkdtemp(prefix="fieldmq-ha.")
    port, mport = free_port(), free_port()
    fmq = None
    try:
        os.mkdir(os.path.join(tmp, "devices.d"))
        with open("etc/devices.d/demo.ini") as f:
            demo = f.read().replace("port = 15020", "port = %d" % mport)
        demo = demo.replace("poll = 1s", "poll = 200ms")
        demo += ("\n[point:boiler/label]\narea = holding\naddress = 200\ntype = string\n"
                 "length = 4\naccess = rw\n")
        mapfile = os.path.join(tmp, "devices.d/demo.ini")
        with open(mapfile, "w") as f:
            f.write(demo)
        ini = os.path.join(tmp, "fieldmq.ini")
        with open(ini, "w") as f:
            f.write("[gateway]\nid = gw1\ndata_dir = data\n[broker]\nlisten = 127.0.0.1:%d\n"
                    "[homeassistant]\nenabled = yes\n" % port)
        sim = subprocess.Popen([BUILD + "/sim/modbus_sim", "--tcp", "127.0.0.1:%d" % mport,
                                "--regs", "tests/sim/modbus_regs.ini"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sim)
        check("simulator listens", wait_port(mport))
        log = open(os.path.join(tmp, "log"), "w")

        def start():
            p = subprocess.Popen([BUILD + "/fieldmq", "-c", ini], stdout=log, stderr=log)
            procs.append(p)
            check("broker listens", wait_port(port))
            return p

        fmq = start()
        ha = Sub(port, ["homeassistant/#", "fieldmq/gw1/#"])
        points = ["temperature", "uptime", "setpoint", "flow", "burner", "alarm", "serial", "label"]
        want = {"temperature": "sensor", "uptime": "sensor", "flow": "sensor", "serial": "sensor",
                "alarm": "binary_sensor", "setpoint": "number", "burner": "switch", "label": "text"}
        configs = {}
        for p in points:
            t = "homeassistant/%s/gw1/boiler_%s/config" % (want[p], p)
            m = ha.wait(lambda m, t=t: m.topic == t and m.payload)
            if not check("%s: config on %s (retained)" % (p, t), m is not None and m.retain):
                continue
            try:
                configs[p] = json.loads(m.payload)
            except ValueError:
                check("%s: config is JSON: %r" % (p, m.payload), False)
        gwc = ha.wait(lambda m: m.topic == "homeassistant/binary_sensor/gw1/_gateway/config")
        gw = json.loads(gwc.payload) if gwc else {}
        check("the gateway's own entity (connectivity on fieldmq/gw1/status)",
              gw.get("state_topic") == "fieldmq/gw1/status"
              and gw.get("device_class") == "connectivity"
              and gw.get("device", {}).get("identifiers") == ["fieldmq_gw1"])

        ids = set()
        for p, c in configs.items():
            comp = want[p]
            missing = REQUIRED[comp] - set(c)
            check("%s (%s): HA's required fields present %s" % (p, comp, sorted(REQUIRED[comp])),
                  not missing)
            extra = set(c) - DOCUMENTED[comp]
            check("%s: every key is documented for %s%s" % (p, comp, " (not: %s)" % extra if extra else ""),
                  not extra)
            dev = c.get("device", {})
            check("%s: unique_id, device with identifiers, via_device the gateway" % p,
                  c.get("unique_id") and dev.get("identifiers") == ["fieldmq_gw1_boiler"]
                  and dev.get("via_device") == "fieldmq_gw1" and set(dev) <= DEVICE_KEYS)
            ids.add(c.get("unique_id"))
            av = [a.get("topic") for a in c.get("availability", [])]
            check("%s: availability = gateway and device status, all" % p,
                  av == ["fieldmq/gw1/status", "fieldmq/gw1/boiler/status"]
                  and c.get("availability_mode") == "all")
            check("%s: state_topic is the reading's" % p,
                  c.get("state_topic") == "fieldmq/gw1/boiler/" + p)
        check("unique_ids are unique", len(ids) == len(configs))
        check("unit and classes: temperature is °C, device_class temperature, measurement",
              configs.get("temperature", {}).get("unit_of_measurement") == "°C"
              and configs["temperature"].get("device_class") == "temperature"
              and configs["temperature"].get("state_class") == "measurement")

        for t in ("fieldmq/gw1/status", "fieldmq/gw1/boiler/status"):
            m = ha.wait(lambda m, t=t: m.topic == t)
            check("availability topic %s is online" % t, m is not None and m.payload == b"online")

        # value_template against the real reading, with jinja2.
        for p, c in configs.items():
            m = ha.wait(lambda m, p=p: m.topic == "fieldmq/gw1/boiler/" + p and m.payload)
            if not check("%s: a reading arrived" % p, m is not None):
                continue
            v = json.loads(m.payload).get("value")
            got = render(c["value_template"], m.payload)
            if isinstance(v, bool):
                on = c.get("state_on", c.get("payload_on"))
                off = c.get("state_off", c.get("payload_off"))
                ok = got == (on if v else off)
            elif isinstance(v, (int, float)):
                ok = float(got) == float(v)
            else:
                ok = got == v
            check("%s: value_template %r on %s renders %r (value %r)"
                  % (p, c["value_template"], m.payload.decode(), got, v), ok)

        # Commands as HA sends them.
        pub = mqtt.Client(client_id="", protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", port)
        pub.loop_start()

        def command(p, payload, expect):
            ha.msgs.clear()
            pub.publish(configs[p]["command_topic"], payload, qos=1)
            r = ha.wait(lambda m: m.topic == "fieldmq/gw1/boiler/%s/set/result" % p)
            res = json.loads(r.payload) if r else {}
            back = ha.wait(lambda m: m.topic == "fieldmq/gw1/boiler/" + p
                           and json.loads(m.payload).get("value") == expect)
            check("%s: HA's command %r is written and read back (%s)" % (p, payload, res),
                  res.get("ok") is True and back is not None)

        if "setpoint" in configs:
            command("setpoint", "42", 42)
        if "burner" in configs:
            command("burner", configs["burner"]["payload_off"], False)
            command("burner", configs["burner"]["payload_on"], True)
            m = ha.latest("fieldmq/gw1/boiler/burner")
            check("burner: the state renders as state_on",
                  m and render(configs["burner"]["value_template"], m.payload) == configs["burner"]["state_on"])
        if "label" in configs:
            text = render(configs["label"]["command_template"], "1234")
            check("label: command_template keeps digits a string: %r" % text, json.loads(text) == "1234")
            command("label", text, "1234")

        # HA restarts: its birth message gets every config again.
        n = len(configs) + 1
        ha.msgs.clear()
        pub.publish("homeassistant/status", "online", qos=1)
        end = time.time() + 8
        while time.time() < end and len([m for m in ha.msgs if m.topic.endswith("/config")]) < n:
            time.sleep(0.05)
        again = {m.topic for m in ha.msgs if m.topic.endswith("/config") and m.payload}
        check("HA's birth message: all %d configs sent again (got %d)" % (n, len(again)), len(again) == n)
        ha.msgs.clear()
        pub.publish("homeassistant/status", "offline", qos=1)
        time.sleep(0.5)
        check("HA's last will (offline) sends nothing",
              not [m for m in ha.msgs if m.topic.endswith("/config")])

        # Reload: alarm removed, burner read-only (switch -> binary_sensor).
        cut = demo.index("[point:boiler/alarm]")
        nxt = demo.index("[point:", cut + 1)
        demo2 = demo[:cut] + demo[nxt:]
        b = demo2.index("[point:boiler/burner]")
        e = demo2.index("[point:", b + 1)
        demo2 = demo2[:b] + demo2[b:e].replace("access = rw", "access = r") + demo2[e:]
        with open(mapfile, "w") as f:
            f.write(demo2)
        ha.msgs.clear()
        fmq.send_signal(signal.SIGHUP)
        for t in ("homeassistant/binary_sensor/gw1/boiler_alarm/config",
                  "homeassistant/switch/gw1/boiler_burner/config"):
            m = ha.wait(lambda m, t=t: m.topic == t)
            # Live, so retain 0 (MQTT 3.3.1-9); what a new subscriber gets is checked below.
            check("reload: %s emptied" % t, m is not None and m.payload == b"")
        m = ha.wait(lambda m: m.topic == "homeassistant/binary_sensor/gw1/boiler_burner/config" and m.payload)
        check("reload: burner is now a binary_sensor", m is not None and "command_topic" not in json.loads(m.payload))
        now = retained_configs(port)
        check("mosquitto_sub after the reload: %d retained configs, none of the removed ones" % len(now),
              len(now) == n - 1
              and "homeassistant/binary_sensor/gw1/boiler_alarm/config" not in now
              and "homeassistant/switch/gw1/boiler_burner/config" not in now)

        # Restart with a point removed while stopped: cleared at start.
        fmq.send_signal(signal.SIGTERM)
        check("clean stop", fmq.wait(timeout=10) == 0)
        ha.stop()
        cut = demo2.index("[point:boiler/uptime]")
        nxt = demo2.index("[point:", cut + 1)
        with open(mapfile, "w") as f:
            f.write(demo2[:cut] + demo2[nxt:])
        fmq = start()
        ha = Sub(port, ["homeassistant/#"])
        time.sleep(0.5)
        with open(os.path.join(tmp, "log")) as f:
            check("restart: a point removed while stopped has its retained config emptied",
                  "homeassistant/sensor/gw1/boiler_uptime/config: no such point any more" in f.read())
        now = retained_configs(port)
        check("mosquitto_sub after the restart: %d retained configs" % len(now),
              len(now) == n - 2 and "homeassistant/sensor/gw1/boiler_uptime/config" not in now)
        ha.stop()
        pub.loop_stop()
        pub.disconnect()

        # Disabled (the default): nothing under homeassistant/.
        fmq.send_signal(signal.SIGTERM)
        fmq.wait(timeout=10)
        shutil.rmtree(os.path.join(tmp, "data"), ignore_errors=True)
        with open(ini, "w") as f:
            f.write("[gateway]\nid = gw1\ndata_dir = data\n[broker]\nlisten = 127.0.0.1:%d\n" % port)
        fmq = start()
        time.sleep(1)
        check("[homeassistant] enabled = no (default): no config published", retained_configs(port) == {})
        with open(os.path.join(tmp, "log")) as f:
            errors = [line for line in f if " error " in line.lower()]
        check("no error in the log%s" % ("".join("\n    " + e for e in errors)), not errors)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%s" % ("all checks passed" if not fails else "%d check(s) failed" % fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
