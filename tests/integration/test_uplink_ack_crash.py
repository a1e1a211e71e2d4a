#!/usr/bin/python3
# A crash between the cloud's PUBACK and the store's delete: the store batches
# deletes on sync_interval (store.h, st_queue_ack), so messages the cloud has
# acknowledged may still be in the store when fieldmq is killed with SIGKILL.
# After the restart they are sent again: duplicates (QoS 1 allows them, and
# they are counted here), never a loss. A clean stop commits the deletes.
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import Collector, Env, free_port, kill9, publish_many, seq_report, wait_until  # noqa: E402

N = 500
TOPIC = "fieldmq/gw1/ackcrash"
RTOPIC = "site/" + TOPIC

env = Env("ackcrash")
lport, cport = free_port(), free_port()
env.mosquitto(cport)
sub = Collector(cport, ["site/#"], client_id="cloudsub")
env.check("the cloud subscriber is subscribed", sub.subscribed.wait(5))

ini = env.fieldmq_ini(lport, "mqtt://127.0.0.1:%d" % cport,
                      uplink="remote_prefix = site/\nforward = fieldmq/# 1\n")
# Deletes wait up to sync_interval: long enough for the kill to come first.
with open(ini) as f:
    text = f.read()
with open(ini, "w") as f:
    f.write(text.replace("sync_interval = 20ms", "sync_interval = 30s"))
fmq = env.fieldmq(ini, lport)
env.check("the uplink is connected", env.wait_log(r"connected to mqtt:", 10))


def received():
    return [p for t, p, r in sub.snapshot() if t == RTOPIC]


# 1. N messages, each acknowledged locally after its commit, all in the cloud.
publish_many(lport, lambda i: TOPIC, N, inflight=16)
env.check("the cloud has every message", wait_until(lambda: len(set(received())) >= N, 30, 0.02),
          len(set(received())))
time.sleep(0.5)  # the cloud's PUBACKs reach fieldmq; their deletes wait for sync_interval

# 2. Killed before the deletes were committed; restarted.
kill9(env, fmq)
before = len(received())
at = len(env.log())
fmq = env.fieldmq(ini, lport)
env.check("the queue is reopened", env.wait_log(r"store: opened .*: [0-9]+ queued", 5, at))
m = re.search(r"store: opened .*: ([0-9]+) queued", env.log()[at:])
requeued = int(m.group(1)) if m else -1
print("# killed after the cloud acknowledged %d; %d still queued at the restart" % (N, requeued))
env.check("acknowledged messages were still queued (the deletes were deferred)", requeued > 0,
          requeued)
ok = wait_until(lambda: len(received()) >= before + requeued, 30, 0.05)
env.check("the queued ones are sent again", ok, len(received()) - before)
time.sleep(0.5)
data = received()
missing, dups, in_order = seq_report(data, N)
print("# received %d (%d distinct), duplicates %d" % (len(data), len(set(data)), dups))
env.check("nothing is lost", missing == 0, missing)
env.check("first arrivals are in order", in_order)
counts = {}
for p in data:
    counts[p] = counts.get(p, 0) + 1
env.check("no message arrives more than twice", max(counts.values()) <= 2, max(counts.values()))

# 3. A clean stop commits the deletes: nothing is queued at the next start.
time.sleep(0.5)
env.check("fieldmq stops cleanly", env.stop(fmq) == 0)
at = len(env.log())
fmq = env.fieldmq(ini, lport)
env.check("a clean stop left nothing queued",
          env.wait_log(r"store: opened .*: 0 queued", 5, at), env.log()[at:][:300])
time.sleep(0.5)
env.check("and nothing is sent again", len(received()) == len(data), len(received()) - len(data))
sub.close()
env.check("fieldmq stops cleanly again", env.stop(fmq) == 0)
env.finish()
