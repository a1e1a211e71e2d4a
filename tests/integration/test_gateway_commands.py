#!/usr/bin/env python3
"""The reading path and commands end to end: the daemon polls the Modbus
simulator with the demo device map; readings arrive with the right values,
units and quality; commands on .../set are written and answered on
.../set/result and, for MQTT 5, on the response topic with the correlation
data; bad commands are refused before reaching the device; a device that
dies goes offline and its points bad, and comes back."""
import os, signal, subprocess, sys, tempfile, time, json, shutil
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itlib import free_port, wait_port  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
fails = 0
procs = []


def check(desc, cond):
    global fails
    print(("ok - " if cond else "NOT OK - ") + desc, flush=True)
    if not cond:
        fails += 1


class Sub:
    """Collects every message on the filters, keeping the latest per topic."""

    def __init__(self, port, filters, v5=False):
        self.msgs = []
        self.c = mqtt.Client(client_id="", protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self.c.on_message = lambda c, u, m: self.msgs.append(m)
        self.c.connect("127.0.0.1", port)
        for f in filters:
            self.c.subscribe(f, qos=1)
        self.c.loop_start()

    def wait(self, pred, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            for m in list(self.msgs):
                if pred(m):
                    return m
            time.sleep(0.05)
        return None

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def main():
    tmp = tempfile.mkdtemp(prefix="fieldmq-cmd.")
    port, mport = free_port(), free_port()
    try:
        os.mkdir(os.path.join(tmp, "devices.d"))
        with open("etc/devices.d/demo.ini") as f:
            demo = f.read().replace("port = 15020", "port = %d" % mport)
        demo = demo.replace("poll = 1s", "poll = 200ms").replace("degrade_for = 60s", "degrade_for = 2s")
        with open(os.path.join(tmp, "devices.d/demo.ini"), "w") as f:
            f.write(demo)
        with open(os.path.join(tmp, "fieldmq.ini"), "w") as f:
            f.write("[gateway]\nid = gw1\ndata_dir = data\n[broker]\nlisten = 127.0.0.1:%d\n"
                    "persist = no\nsys_interval = 1s\n" % port)
        sim = subprocess.Popen([BUILD + "/sim/modbus_sim", "--tcp", "127.0.0.1:%d" % mport,
                                "--regs", "tests/sim/modbus_regs.ini"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sim)
        # The first polls must find the simulator: a refused connection at start
        # degrades the device for degrade_for, which a loaded machine can stretch
        # past the waits below.
        check("simulator listens", wait_port(mport))
        log = open(os.path.join(tmp, "log"), "w")
        fmq = subprocess.Popen([BUILD + "/fieldmq", "-c", os.path.join(tmp, "fieldmq.ini")],
                               stdout=log, stderr=log)
        procs.append(fmq)
        check("broker listens", wait_port(port))
        sub = Sub(port, ["fieldmq/gw1/#"])

        def latest(topic):
            return sub.wait(lambda m: m.topic == topic)

        def value(topic):
            m = latest(topic)
            return json.loads(m.payload) if m else None

        v = value("fieldmq/gw1/boiler/flow")
        check("uint16 with scale 0.1: 215 -> 21.5 m³/h, quality good",
              v and v.get("value") == 21.5 and v.get("unit") == "m³/h" and v.get("quality") == "good")
        v = value("fieldmq/gw1/boiler/serial")
        check("string point", v and v.get("value") == "fieldmq-sim")
        v = value("fieldmq/gw1/boiler/alarm")
        check("bit 2 of 0x8005 is true", v and v.get("value") is True)
        v = value("fieldmq/gw1/boiler/temperature")
        check("float32 ABCD reads 21.0 °C", v and v.get("value") == 21 and v.get("unit") == "°C")
        # The first subscriber may have subscribed before the first poll (then it got
        # them live, retain 0): a second one, subscribing now, gets the retained copies.
        late = Sub(port, ["fieldmq/gw1/boiler/status", "fieldmq/gw1/boiler/flow"])
        m = late.wait(lambda m: m.topic == "fieldmq/gw1/boiler/status")
        check("device status online (retained)", m and m.payload == b"online" and m.retain)
        m = late.wait(lambda m: m.topic == "fieldmq/gw1/boiler/flow")
        check("readings are retained", m and m.retain)
        late.stop()
        check("ts is epoch milliseconds",
              abs(value("fieldmq/gw1/boiler/flow")["ts"] / 1000 - time.time()) < 60)

        # Commands: plain value, JSON object, refusals.
        pub = mqtt.Client(client_id="", protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        sub.msgs.clear()
        pub.publish("fieldmq/gw1/boiler/setpoint/set", "42.5", qos=1)
        r = sub.wait(lambda m: m.topic == "fieldmq/gw1/boiler/setpoint/set/result")
        rv = json.loads(r.payload) if r else {}
        check("a plain-value command succeeds: %s" % rv, rv.get("ok") is True and rv.get("value") == 42.5)
        check("the written value is read back",
              sub.wait(lambda m: m.topic == "fieldmq/gw1/boiler/setpoint"
                       and json.loads(m.payload).get("value") == 42.5) is not None)
        sub.msgs.clear()
        pub.publish("fieldmq/gw1/boiler/burner/set", '{"value": false}', qos=1)
        r = sub.wait(lambda m: m.topic == "fieldmq/gw1/boiler/burner/set/result")
        check("a JSON command on a coil succeeds", r and json.loads(r.payload).get("ok") is True)
        check("the coil reads back false",
              sub.wait(lambda m: m.topic == "fieldmq/gw1/boiler/burner"
                       and json.loads(m.payload).get("value") is False) is not None)
        for topic, payload, why in [
                ("fieldmq/gw1/boiler/temperature/set", "1", "read-only"),
                ("fieldmq/gw1/boiler/setpoint/set", "99999", "range"),
                ("fieldmq/gw1/boiler/setpoint/set", '"warm"', ""),
                ("fieldmq/gw1/boiler/setpoint/set", "{oops", "JSON"),
                ("fieldmq/gw1/boiler/nothing/set", "1", "no such")]:
            sub.msgs.clear()
            pub.publish(topic, payload, qos=1)
            r = sub.wait(lambda m: m.topic == topic + "/result")
            rv = json.loads(r.payload) if r else {}
            check("refused: %s %s -> %s" % (topic, payload, rv.get("error")),
                  rv.get("ok") is False and why in rv.get("error", ""))

        # MQTT 5 request/response.
        v5 = mqtt.Client(client_id="req5", protocol=mqtt.MQTTv5)
        got = []
        v5.on_message = lambda c, u, m: got.append(m)
        v5.connect("127.0.0.1", port)
        v5.subscribe("app/replies/1", qos=1)
        v5.loop_start()
        time.sleep(0.3)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "app/replies/1"
        props.CorrelationData = b"\x01corr"
        v5.publish("fieldmq/gw1/boiler/setpoint/set", "40", qos=1, properties=props)
        end = time.time() + 5
        while not got and time.time() < end:
            time.sleep(0.05)
        check("an MQTT 5 command is answered on its response topic", len(got) >= 1)
        if got:
            cd = getattr(got[0].properties, "CorrelationData", None)
            check("... with its correlation data", cd == b"\x01corr")
            check("... and the result", json.loads(got[0].payload).get("ok") is True)
        v5.loop_stop()
        v5.disconnect()

        # A device that dies: offline once, points bad once; back when it returns.
        sub.msgs.clear()
        sim.send_signal(signal.SIGKILL)
        sim.wait()
        m = sub.wait(lambda m: m.topic == "fieldmq/gw1/boiler/status" and m.payload == b"offline", 6)
        check("a dead device goes offline", m is not None)
        m = sub.wait(lambda m: m.topic == "fieldmq/gw1/boiler/flow"
                     and json.loads(m.payload).get("quality") == "bad", 6)
        check("its points go bad, keeping the last value",
              m is not None and json.loads(m.payload).get("value") == 21.5)
        time.sleep(1.5)
        bad = [m for m in sub.msgs if m.topic == "fieldmq/gw1/boiler/flow"]
        check("bad is published once, not every poll (%d)" % len(bad), len(bad) == 1)
        sim = subprocess.Popen([BUILD + "/sim/modbus_sim", "--tcp", "127.0.0.1:%d" % mport,
                                "--regs", "tests/sim/modbus_regs.ini"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sim)
        m = sub.wait(lambda m: m.topic == "fieldmq/gw1/boiler/status" and m.payload == b"online", 10)
        check("it comes back online", m is not None)
        # The adapter's counters (ad_ops.figures) under $SYS/fieldmq/modbus/, retained.
        sys_sub = Sub(port, ["$SYS/fieldmq/modbus/#"])
        m = sys_sub.wait(lambda m: m.topic == "$SYS/fieldmq/modbus/devices/online" and m.payload == b"1", 5)
        check("$SYS/fieldmq/modbus/devices/online is 1 again", m is not None)
        figs = {}
        for m in list(sys_sub.msgs):
            figs[m.topic.rsplit("modbus/", 1)[1]] = int(m.payload)
        check("$SYS/fieldmq/modbus figures: %s" % figs,
              figs.get("devices") == 1 and figs.get("polls", 0) > 0
              and figs.get("requests", 0) >= figs.get("polls", 0) and figs.get("readings", 0) > 0
              and figs.get("failures", 0) >= 1 and figs.get("writes", 0) >= 1)
        sys_sub.stop()
        pub.loop_stop()
        pub.disconnect()
        sub.stop()
        fmq.send_signal(signal.SIGTERM)
        try:
            rc = fmq.wait(5)
        except subprocess.TimeoutExpired:
            rc = None
        check("SIGTERM exits 0", rc == 0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d check(s) failed" % fails if fails else "all checks passed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
