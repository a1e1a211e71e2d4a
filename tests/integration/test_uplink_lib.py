# test_uplink_lib.py - helpers for the uplink integration tests (imported, not run:
# the file is not executable). A real Mosquitto plays the cloud on a loopback
# port with its own config file; fieldmq runs with a generated config. Every
# process started here is stopped by PID at exit.
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

from itlib import free_port, wait_port  # noqa: F401 (free_port re-exported)

BUILD = os.environ.get("BUILD", "build")
FIELDMQ = os.path.abspath(os.environ.get("FIELDMQ", os.path.join(BUILD, "fieldmq")))
MOSQUITTO = "/usr/sbin/mosquitto"


def wait_until(fn, timeout, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return True
        time.sleep(step)
    return fn()


class Env:
    """A temporary directory, the processes of one test, and ok/not ok checks."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="fieldmq-upl.")
        # Mosquitto started as root runs as user mosquitto: let it in.
        os.chmod(self.dir, 0o755)
        self.dbdir = os.path.join(self.dir, "cloud-db")
        os.mkdir(self.dbdir)
        os.chmod(self.dbdir, 0o777)
        self.procs = []
        self.fails = 0
        self.fmq = None
        self.fmq_log = os.path.join(self.dir, "fieldmq.log")
        atexit.register(self.cleanup)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        end = time.time() + 2
        for p in self.procs:
            try:
                p.wait(max(0.05, end - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if os.environ.get("KEEP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def check(self, desc, cond, detail=""):
        if cond:
            print("ok - " + desc)
        else:
            print("NOT OK - " + desc + (": " + str(detail) if detail else ""))
            self.fails += 1
        sys.stdout.flush()

    def finish(self):
        if self.fails:
            print("%d check(s) failed" % self.fails)
            try:
                with open(self.fmq_log) as f:
                    print("--- fieldmq log (tail)")
                    print("".join(f.readlines()[-40:]))
            except OSError:
                pass
            sys.exit(1)
        print("all checks passed")
        sys.exit(0)

    def path(self, name):
        return os.path.join(self.dir, name)

    # ------------------------------------------------------------ the cloud
    def mosquitto(self, port, name="cloud", tls=None, persist=False, extra=""):
        """Starts Mosquitto on 127.0.0.1:port; tls = (ca, cert, key) for a TLS listener."""
        conf = self.path(name + ".conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % port)
            f.write("max_queued_messages 0\nmax_inflight_messages 100\n")
            if tls:
                f.write("cafile %s\ncertfile %s\nkeyfile %s\n" % tls)
            if persist:
                f.write("persistence true\npersistence_location %s/\n" % self.dbdir)
                f.write("persistence_file %s.db\nautosave_interval 0\n" % name)
            f.write(extra)
        log = open(self.path(name + ".log"), "a")
        p = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=log, stderr=log)
        self.procs.append(p)
        if not wait_port(port):
            raise RuntimeError("mosquitto did not start on %d" % port)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    # -------------------------------------------------------------- fieldmq
    def fieldmq_ini(self, local_port, cloud_url, uplink="", store="", broker="", gateway=""):
        ini = self.path("fieldmq.ini")
        with open(ini, "w") as f:
            f.write("[gateway]\nid = gw1\ndata_dir = data\ndevices =\n%s\n" % gateway)
            f.write("[broker]\nlisten = 127.0.0.1:%d\nmax_inflight = 1000\n" % local_port)
            f.write("sys_interval = 1s\n%s\n" % broker)
            f.write("[store]\nsync_interval = 20ms\n%s\n" % store)
            f.write("[uplink]\nenabled = yes\nurl = %s\nkeepalive = 10s\n" % cloud_url)
            f.write("reconnect_min = 100ms\nreconnect_max = 1s\n%s\n" % uplink)
        return ini

    def fieldmq(self, ini, port):
        log = open(self.fmq_log, "a")
        p = subprocess.Popen([FIELDMQ, "-c", ini], stdout=log, stderr=log, cwd=self.dir)
        self.procs.append(p)
        self.fmq = p
        if not wait_port(port):
            raise RuntimeError("fieldmq did not start on %d" % port)
        return p

    def log(self):
        try:
            with open(self.fmq_log) as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10, after=0):
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log()[after:]) is not None, timeout)


# ----------------------------------------------------------------- clients
class Collector:
    """A subscriber that records (topic, payload) in arrival order."""

    def __init__(self, port, topics, client_id="", clean=True, qos=1, proto=mqtt.MQTTv311,
                 tls=None, host="127.0.0.1"):
        self.msgs = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.topics = topics
        self.qos = qos
        self.c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=proto)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.reconnect_delay_set(0.1, 0.5)
        if tls:
            self.c.tls_set(**tls)
        self.c.connect(host, port, 30)
        self.c.loop_start()

    def _on_connect(self, c, u, flags, rc):
        if rc == 0:
            c.subscribe([(t, self.qos) for t in self.topics])

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, m.payload, m.retain))

    def snapshot(self):
        with self.lock:
            return list(self.msgs)

    def count(self, topic=None):
        with self.lock:
            return sum(1 for m in self.msgs if topic is None or m[0] == topic)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def publish_many(port, topic_fn, n, qos=1, payload_fn=str, inflight=500, timeout=120):
    """Publishes n messages and waits for every acknowledgement. Returns seconds taken."""
    c = mqtt.Client(client_id="pub-%d" % os.getpid(), protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(inflight)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port, 60)
    c.loop_start()
    t0 = time.time()
    infos = []
    for i in range(n):
        infos.append(c.publish(topic_fn(i), payload_fn(i), qos=qos))
    end = t0 + timeout
    for info in infos:
        if qos:
            info.wait_for_publish(max(0.1, end - time.time()))
    took = time.time() - t0
    ok = all(i.is_published() for i in infos) if qos else True
    c.disconnect()
    c.loop_stop()
    if not ok:
        raise RuntimeError("not every message was acknowledged")
    return took


def sys_value(port, name, timeout=3.0):
    """Reads a retained $SYS/fieldmq/... figure from fieldmq's broker."""
    got = {}
    ev = threading.Event()

    def on_msg(c, u, m):
        got["v"] = m.payload.decode()
        ev.set()

    c = mqtt.Client(protocol=mqtt.MQTTv311)
    c.on_message = on_msg
    c.on_connect = lambda c, u, f, rc: c.subscribe("$SYS/fieldmq/" + name, 0)
    c.connect("127.0.0.1", port, 10)
    c.loop_start()
    ev.wait(timeout)
    c.disconnect()
    c.loop_stop()
    return got.get("v")


def seq_report(payloads, n):
    """For payloads that are str(i): (missing, duplicates, in_order over first arrivals)."""
    seen = set()
    firsts = []
    dups = 0
    for p in payloads:
        v = int(p)
        if v in seen:
            dups += 1
            continue
        seen.add(v)
        firsts.append(v)
    missing = n - len(seen & set(range(n)))
    in_order = all(a < b for a, b in zip(firsts, firsts[1:]))
    return missing, dups, in_order


def kill9(env, p):
    p.kill()
    p.wait()


class AckedPublisher:
    """Publishes str(i) for i in range(n) in the background and records which were acknowledged."""

    def __init__(self, port, topic, n, inflight=200):
        self.acked_mids = set()
        self.mids = {}
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id="apub-%d" % os.getpid(), protocol=mqtt.MQTTv311)
        self.c.max_inflight_messages_set(inflight)
        self.c.max_queued_messages_set(0)
        self.c.on_publish = self._on_publish
        self.c.connect("127.0.0.1", port, 60)
        self.c.loop_start()
        self.t = threading.Thread(target=self._run, args=(topic, n), daemon=True)
        self.t.start()

    def _on_publish(self, c, u, mid):
        # Never take our lock around paho's calls: paho holds its own here.
        with self.lock:
            self.acked_mids.add(mid)

    def _run(self, topic, n):
        for i in range(n):
            info = self.c.publish(topic, str(i), qos=1)
            with self.lock:
                self.mids[info.mid] = i
            if info.rc != 0:
                break

    def n_acked(self):
        with self.lock:
            return len(self.acked_mids)

    def stop(self):
        self.c.loop_stop()
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.t.join(5)
        with self.lock:
            return set(self.mids[m] for m in self.acked_mids if m in self.mids)
