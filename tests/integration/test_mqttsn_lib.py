"""Shared helpers of the MQTT-SN integration tests (test_mqttsn_*.py).

Not a test itself (not executable; run directly it does nothing).

Starts build/fieldmq (env FIELDMQ, or BUILD/fieldmq) with [mqttsn] enabled on
free 127.0.0.1 ports, in a temporary directory of its own, and reads the
$SYS/fieldmq/mqttsn/... figures through an MQTT client. Every wait is bounded;
the daemon is stopped by PID and must exit 0.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import paho.mqtt.client as mqtt

import mqttsn_client as sn
from broker_harness import Client, T, run  # noqa: F401 (re-exported)
from itlib import free_port, free_udp_port, stop_proc

BUILD = os.environ.get("BUILD", "build")
FIELDMQ = os.environ.get("FIELDMQ", os.path.join(BUILD, "fieldmq"))


class Fieldmq:
    """fieldmq with [mqttsn] enabled; mqttsn: extra `key = value` lines of [mqttsn]."""

    def __init__(self, mqttsn="", predefined="1 = sensors/temperature\n7 = cmd/all\n",
                 broker="", host="127.0.0.1", wait_udp=True):
        self.dir = tempfile.mkdtemp(prefix="fieldmq-sn.")
        self.port = free_port()
        self.udp_port = free_udp_port()
        self.host = host
        self.addr = (host, self.udp_port)
        self.log = os.path.join(self.dir, "log")
        self.ini = os.path.join(self.dir, "fieldmq.ini")
        with open(self.ini, "w") as f:
            f.write("[gateway]\nid = sn1\ndata_dir = data\ndevices =\nlog_level = debug\n"
                    "[broker]\nlisten = 127.0.0.1:%d\npersist = no\nsys_interval = 1s\n%s"
                    "[mqttsn]\nenabled = yes\nlisten = %s:%d\n%s"
                    "[mqttsn.predefined]\n%s"
                    % (self.port, broker, host, self.udp_port, mqttsn, predefined))
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([FIELDMQ, "-c", self.ini], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        try:
            self._wait_tcp()
            if wait_udp:
                self._wait_udp()
        except Exception:
            self.stop()
            raise

    def _wait_tcp(self):
        deadline = time.time() + T
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fieldmq exited %s:\n%s" % (self.proc.returncode,
                                                                self.log_text()))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("fieldmq did not listen on %d" % self.port)

    def _wait_udp(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((self.host, 0))
        try:
            for _ in range(25):
                if sn.searchgw(s, self.addr, timeout=0.2):
                    return
            raise RuntimeError("no GWINFO on udp %d" % self.udp_port)
        finally:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is None:
            assert rc == 0, "fieldmq exit status %r:\n%s" % (rc, self.log_text()[-3000:])
        shutil.rmtree(self.dir, ignore_errors=True)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        rc = stop_proc(self.proc, T)
        self.logf.close()
        return rc

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def sn(self, client_id="", **kw):
        return sn.SnClient(self.addr, client_id, bind=(self.host, 0), **kw)

    def mqtt(self, cid="", **kw):
        c = Client(self, cid, **kw)
        c.connect()
        return c

    def sys(self, name, timeout=1.5):
        """The retained $SYS/fieldmq/mqttsn/NAME figure (int), or None."""
        topic = "$SYS/fieldmq/mqttsn/" + name
        c = Client(self)
        c.connect()
        try:
            c.sub(topic, 0)
            m = c.get(timeout)
            return int(m.payload)
        except AssertionError:
            return None
        finally:
            c.disconnect()

    def wait_sys(self, name, pred, timeout=6.0):
        """Waits (bounded) until pred(figure) holds; returns the last figure seen."""
        deadline = time.time() + timeout
        v = None
        while time.time() < deadline:
            v = self.sys(name)
            if v is not None and pred(v):
                return v
            time.sleep(0.3)
        raise AssertionError("$SYS/fieldmq/mqttsn/%s = %r: condition not met in %.0fs"
                             % (name, v, timeout))


def mqtt_publish(fmq, topic, payload, qos=0, retain=False):
    c = fmq.mqtt()
    try:
        c.pub(topic, payload, qos, retain)
    finally:
        c.disconnect()


__all__ = ["Fieldmq", "Client", "T", "run", "sn", "mqtt", "mqtt_publish", "free_udp_port"]
