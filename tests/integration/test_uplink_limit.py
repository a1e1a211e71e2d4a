#!/usr/bin/python3
# Uplink queue limit: queue_max_messages = 1000 and 5000 QoS 1 messages
# published while the cloud is down. With drop_oldest the newest 1000 arrive,
# with drop_newest the oldest 1000; either way the drop counter says 4000.
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import Collector, Env, free_port, publish_many, sys_value, wait_until  # noqa: E402

N, MAX = 5000, 1000
env = Env("limit")

for overflow, expect in (("drop_oldest", range(N - MAX, N)), ("drop_newest", range(0, MAX))):
    lport, cport = free_port(), free_port()
    topic = "fieldmq/gw1/" + overflow
    shutil.rmtree(env.path("data"), ignore_errors=True)
    cloud = env.mosquitto(cport, name="cloud-" + overflow, persist=True)
    sub = Collector(cport, ["site/#"], client_id="cloudsub-" + overflow, clean=False)
    env.check("%s: the cloud subscriber is subscribed" % overflow, sub.subscribed.wait(5))
    env.stop(cloud)
    ini = env.fieldmq_ini(lport, "mqtt://127.0.0.1:%d" % cport,
                          uplink="remote_prefix = site/\nforward = fieldmq/# 1\n",
                          store="queue_max_messages = %d\noverflow = %s\n" % (MAX, overflow))
    fmq = env.fieldmq(ini, lport)
    publish_many(lport, lambda i: topic, N)
    env.check("%s: $SYS/fieldmq/uplink/dropped says %d" % (overflow, N - MAX),
              wait_until(lambda: sys_value(lport, "uplink/dropped") == str(N - MAX), 5),
              sys_value(lport, "uplink/dropped"))
    env.check("%s: $SYS/fieldmq/uplink/queued says %d" % (overflow, MAX),
              wait_until(lambda: sys_value(lport, "uplink/queued") == str(MAX), 5),
              sys_value(lport, "uplink/queued"))
    cloud = env.mosquitto(cport, name="cloud-" + overflow, persist=True)
    wait_until(lambda: sub.count("site/" + topic) >= MAX, 30)
    time.sleep(1.0)  # anything more would show up now
    got = [int(p) for t, p, r in sub.snapshot() if t == "site/" + topic]
    env.check("%s: exactly %d arrive" % (overflow, MAX), len(got) == MAX, len(got))
    env.check("%s: the %s ones, in order" % (overflow, "newest" if overflow == "drop_oldest"
                                               else "oldest"),
              got == list(expect), (got[:3], got[-3:]))
    sub.close()
    env.check("%s: fieldmq stops cleanly" % overflow, env.stop(fmq) == 0)
    env.stop(cloud)
env.finish()
