#!/usr/bin/python3
# Fair drain: with drain_rate = 200 a backlog of N QoS 1 messages on one topic
# takes N / 200 s to go up after an outage. Live traffic on another topic
# during the drain goes up at once, interleaved with the backlog rather than
# behind it; live messages on the backlog's own topic wait for the backlog;
# per topic the order holds and nothing is lost.
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import Collector, Env, free_port, publish_many, seq_report, sys_value, wait_until  # noqa: E402

N = int(os.environ.get("UPLINK_FAIR_N", "1000"))
RATE = 200
BURSTS, PER_BURST = 5, 10
LIVE = BURSTS * PER_BURST
LATE = 10
PROTO = os.environ.get("UPLINK_PROTOCOL", "5")

env = Env("fair")
lport, cport = free_port(), free_port()
cloud = env.mosquitto(cport, persist=True)
sub = Collector(cport, ["site/#"], client_id="cloudsub", clean=False)
env.check("the cloud subscriber is subscribed", sub.subscribed.wait(5))
ini = env.fieldmq_ini(lport, "mqtt://127.0.0.1:%d" % cport,
                      uplink="remote_prefix = site/\nforward = fieldmq/# 1\nprotocol = %s\n"
                      "drain_rate = %d\n" % (PROTO, RATE))
env.fieldmq(ini, lport)
env.check("the uplink connects", env.wait_log(r"uplink: connected to", 10))

# The outage: N messages on the backlog topic are stored.
mark = len(env.log())
env.stop(cloud)
env.check("the uplink notices the outage", env.wait_log(r"uplink: .*(connection lost|closing)", 10, mark))
publish_many(lport, lambda i: "fieldmq/gw1/backlog", N)
env.check("$SYS/fieldmq/uplink/queued counts the backlog",
          wait_until(lambda: int(sys_value(lport, "uplink/queued") or 0) >= N, 5),
          sys_value(lport, "uplink/queued"))

# The cloud comes back; live traffic while the backlog drains at RATE msgs/s.
mark = len(env.log())
cloud = env.mosquitto(cport, persist=True)
env.check("the uplink reconnects", env.wait_log(r"uplink: connected to", 10, mark))
t0 = time.time()
for b in range(BURSTS):
    publish_many(lport, lambda i: "fieldmq/gw1/live", PER_BURST,
                 payload_fn=lambda i, b=b: str(b * PER_BURST + i))
    if b == 0:
        # Live messages on the backlog's topic: after the whole backlog.
        publish_many(lport, lambda i: "fieldmq/gw1/backlog", LATE, payload_fn=lambda i: str(N + i))
    time.sleep(0.2)
ok = wait_until(lambda: sub.count("site/fieldmq/gw1/live") >= LIVE, 5, 0.02)
t_live = time.time() - t0
backlog_then = sub.count("site/fieldmq/gw1/backlog")
print("# live traffic: %d messages up %.2f s after the reconnect; %d of %d backlog messages "
      "up by then" % (LIVE, t_live, backlog_then, N))
env.check("live messages arrive during the drain", ok, sub.count("site/fieldmq/gw1/live"))
env.check("well before the backlog is through (%d of %d up)" % (backlog_then, N),
          backlog_then < N * 6 // 10, backlog_then)

ok = wait_until(lambda: len(set(p for t, p, r in sub.snapshot()
                                if t == "site/fieldmq/gw1/backlog")) >= N + LATE,
                3 * N / RATE + 10, 0.05)
drain = time.time() - t0
env.check("the whole backlog arrives", ok, sub.count("site/fieldmq/gw1/backlog"))
print("# backlog of %d drained in %.2f s (%.0f msgs/s, drain_rate %d)" % (N, drain, N / drain, RATE))
env.check("the drain rate still paces the backlog", drain >= 0.8 * N / RATE, drain)
time.sleep(0.3)
for topic, n in (("site/fieldmq/gw1/backlog", N + LATE), ("site/fieldmq/gw1/live", LIVE)):
    data = [p for t, p, r in sub.snapshot() if t == topic]
    missing, dups, in_order = seq_report(data, n)
    print("# %s: received %d, missing %d, duplicates %d" % (topic, len(data), missing, dups))
    env.check("%s: none missing" % topic, missing == 0, missing)
    env.check("%s: in order (live messages on it after its backlog)" % topic, in_order)
    env.check("%s: no duplicates" % topic, dups == 0, dups)
env.check("the queue is empty again",
          wait_until(lambda: sys_value(lport, "uplink/queued") == "0", 5),
          sys_value(lport, "uplink/queued"))
sub.close()
env.check("fieldmq stops cleanly", env.stop(env.fmq) == 0)
env.check("no error in the log", " error " not in env.log(),
          [ln for ln in env.log().splitlines() if " error " in ln][:3])
env.finish()
