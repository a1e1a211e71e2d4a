#!/usr/bin/python3
# Uplink outage: the cloud (a real Mosquitto) goes away, 10 000 QoS 1 readings
# are published locally and queued in the store, the cloud comes back and all
# of them arrive at a cloud subscriber, in order, duplicates only as
# at-least-once allows.
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import Collector, Env, free_port, publish_many, seq_report, sys_value, wait_until  # noqa: E402

N = int(os.environ.get("UPLINK_OUTAGE_N", "10000"))
PROTO = os.environ.get("UPLINK_PROTOCOL", "5")

env = Env("outage")
lport, cport = free_port(), free_port()
cloud = env.mosquitto(cport, persist=True)
sub = Collector(cport, ["site/#"], client_id="cloudsub", clean=False)
env.check("the cloud subscriber is subscribed", sub.subscribed.wait(5))
ini = env.fieldmq_ini(lport, "mqtt://127.0.0.1:%d" % cport,
                      uplink="remote_prefix = site/\nforward = fieldmq/# 1\nprotocol = %s\n" % PROTO)
env.fieldmq(ini, lport)
env.check("the uplink connects", env.wait_log(r"uplink: connected to", 10))
env.check("the birth message arrives retained",
          wait_until(lambda: ("site/fieldmq/gw1/status", b"online", False) in sub.snapshot(), 5),
          sub.snapshot()[:5])

publish_many(lport, lambda i: "fieldmq/gw1/warm", 10)
env.check("messages go up while connected",
          wait_until(lambda: sub.count("site/fieldmq/gw1/warm") >= 10, 5), sub.count())

# The outage.
mark = len(env.log())
env.stop(cloud)
env.check("the uplink notices the outage", env.wait_log(r"uplink: .*(connection lost|closing)", 10, mark))
took = publish_many(lport, lambda i: "fieldmq/gw1/data", N)
print("# published %d QoS 1 messages locally in %.2f s (%.0f msgs/s, PUBACK after commit)"
      % (N, took, N / took))
env.check("$SYS/fieldmq/uplink/connected says 0",
          wait_until(lambda: sys_value(lport, "uplink/connected") == "0", 5))
env.check("$SYS/fieldmq/uplink/queued counts the queue",
          wait_until(lambda: int(sys_value(lport, "uplink/queued") or 0) >= N, 5),
          sys_value(lport, "uplink/queued"))
env.check("nothing reached the cloud subscriber during the outage",
          sub.count("site/fieldmq/gw1/data") == 0)

# The cloud comes back.
t0 = time.time()
cloud = env.mosquitto(cport, persist=True)
ok = wait_until(lambda: len(set(p for t, p, r in sub.snapshot()
                                if t == "site/fieldmq/gw1/data")) >= N, 120, 0.2)
drain = time.time() - t0
env.check("all %d messages arrive after the outage" % N, ok, sub.count("site/fieldmq/gw1/data"))
print("# drained %d messages in %.2f s (%.0f msgs/s, including reconnect)" % (N, drain, N / drain))
time.sleep(0.5)
data = [p for t, p, r in sub.snapshot() if t == "site/fieldmq/gw1/data"]
missing, dups, in_order = seq_report(data, N)
print("# received %d, missing %d, duplicates %d" % (len(data), missing, dups))
env.check("none missing", missing == 0, missing)
env.check("in order", in_order)
env.check("duplicates only as at-least-once allows (< 1%)", dups < N // 100, dups)
env.check("the queue is empty again",
          wait_until(lambda: sys_value(lport, "uplink/queued") == "0", 5),
          sys_value(lport, "uplink/queued"))
env.check("$SYS/fieldmq/uplink/sent counts them",
          int(sys_value(lport, "uplink/sent") or 0) >= N + 10, sys_value(lport, "uplink/sent"))
env.check("$SYS/fieldmq/uplink/connected says 1", sys_value(lport, "uplink/connected") == "1")
sub.close()

# A clean stop says offline (retained) on the status topic.
last = Collector(cport, ["site/fieldmq/gw1/status"])
env.check("status online before the stop",
          wait_until(lambda: any(p == b"online" for t, p, r in last.snapshot()), 5))
env.check("fieldmq stops cleanly", env.stop(env.fmq) == 0)
env.check("status offline after the stop",
          wait_until(lambda: any(p == b"offline" for t, p, r in last.snapshot()), 5),
          last.snapshot())
last.close()
env.check("no error in the log", " error " not in env.log(),
          [ln for ln in env.log().splitlines() if " error " in ln][:3])
env.finish()
