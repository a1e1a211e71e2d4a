#!/usr/bin/python3
# Uplink commands: a message published on the cloud to a subscribe filter
# reaches a local subscriber (prefixes mapped) and is never echoed back up,
# even with forward filters that match it; the gateway's answer to a command
# goes up. MQTT 5 properties and retain flags are preserved upwards. Both
# MQTT 5.0 and 3.1.1 to the cloud.
import os
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import Collector, Env, free_port, wait_until  # noqa: E402

env = Env("commands")


def pub_once(port, topic, payload, proto=mqtt.MQTTv311, props=None, retain=False):
    c = mqtt.Client(protocol=proto)
    c.connect("127.0.0.1", port, 10)
    c.loop_start()
    info = c.publish(topic, payload, qos=1, retain=retain, properties=props)
    info.wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


for proto in ("5", "3.1.1"):
    lport, cport = free_port(), free_port()
    cloud = env.mosquitto(cport, name="cloud" + proto)
    ini = env.fieldmq_ini(
        lport, "mqtt://127.0.0.1:%d" % cport,
        uplink="protocol = %s\nforward = fieldmq/# 1, # 1\nremote_prefix = site/gw1/\n"
               "subscribe = site/gw1/fieldmq/+/+/+/set 1, ext/# 2\nlocal_prefix = \n" % proto)
    mark = len(env.log())
    fmq = env.fieldmq(ini, lport)
    env.check("%s: connects" % proto, env.wait_log(r"uplink: connected to", 10, mark))
    time.sleep(0.3)  # the SUBSCRIBE reaches the cloud
    cloud_sub = Collector(cport, ["site/#", "ext/#"])
    local_sub = Collector(lport, ["fieldmq/#", "ext/#"])
    env.check("%s: subscribers ready" % proto,
              cloud_sub.subscribed.wait(5) and local_sub.subscribed.wait(5))

    # A command from the cloud: remote_prefix is stripped on the way down.
    pub_once(cport, "site/gw1/fieldmq/gw1/boiler/setpoint/set", "42")
    env.check("%s: the command reaches the local subscriber" % proto,
              wait_until(lambda: local_sub.count("fieldmq/gw1/boiler/setpoint/set") == 1, 5),
              local_sub.snapshot())
    # The gateway answers it (no such device here); the answer goes up.
    env.check("%s: the gateway's answer goes up" % proto,
              wait_until(lambda: cloud_sub.count(
                  "site/gw1/fieldmq/gw1/boiler/setpoint/set/result") == 1, 5),
              cloud_sub.snapshot())
    # Another subscribe filter, bridged as is (empty local_prefix), QoS 2.
    pub_once(cport, "ext/a", "x")
    env.check("%s: ext/a comes down" % proto,
              wait_until(lambda: local_sub.count("ext/a") == 1, 5), local_sub.snapshot())
    time.sleep(1.0)
    # Loop prevention: forward = # matches both, yet neither went back up.
    env.check("%s: the command is not echoed back up" % proto,
              cloud_sub.count("site/gw1/fieldmq/gw1/boiler/setpoint/set") == 1,
              cloud_sub.snapshot())
    env.check("%s: ext/a is not echoed back up" % proto,
              cloud_sub.count("ext/a") == 1 and cloud_sub.count("site/gw1/ext/a") == 0,
              cloud_sub.snapshot())
    env.check("%s: delivered locally exactly once" % proto,
              local_sub.count("fieldmq/gw1/boiler/setpoint/set") == 1 and
              local_sub.count("ext/a") == 1, local_sub.snapshot())
    cloud_sub.close()
    local_sub.close()

    # Up: retain flag and (5.0) properties preserved.
    got = {}

    def on_msg(c, u, m):
        got[m.topic] = m

    c5 = mqtt.Client(protocol=mqtt.MQTTv5)
    c5.on_message = on_msg
    c5.connect("127.0.0.1", cport, 10)
    c5.subscribe("site/gw1/fieldmq/props", options=SubscribeOptions(qos=1,
                                                                     retainAsPublished=True))
    c5.loop_start()
    time.sleep(0.3)
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.UserProperty = [("unit", "C")]
    props.ResponseTopic = "fieldmq/reply"
    props.CorrelationData = b"\x01\x02"
    pub_once(lport, "fieldmq/props", '{"v":1}', proto=mqtt.MQTTv5, props=props, retain=True)
    env.check("%s: a retained message goes up" % proto,
              wait_until(lambda: "site/gw1/fieldmq/props" in got, 5))
    m = got.get("site/gw1/fieldmq/props")
    env.check("%s: its retain flag is preserved" % proto, m is not None and m.retain)
    if proto == "5" and m is not None:
        p = m.properties
        env.check("5: content type, user property, response topic, correlation data preserved",
                  getattr(p, "ContentType", None) == "application/json" and
                  getattr(p, "UserProperty", None) == [("unit", "C")] and
                  getattr(p, "ResponseTopic", None) == "fieldmq/reply" and
                  getattr(p, "CorrelationData", None) == b"\x01\x02", p)
    c5.disconnect()
    c5.loop_stop()
    env.check("%s: fieldmq stops cleanly" % proto, env.stop(fmq) == 0)
    env.stop(cloud)
    # Fresh store for the next protocol.
    import shutil

    shutil.rmtree(env.path("data"), ignore_errors=True)
env.finish()
