#!/usr/bin/env python3
"""CoAP devices over coaps:// with certificates (DTLS PKI: ca_file, cert_file,
key_file, cert_name in a device map), against libcoap's own
coap-server-openssl (Debian libcoap3-bin) on 127.0.0.1, started and stopped
here by PID. Certificates are made with openssl (tls_lib.make_pki): the server's
names localhost (first DNS subjectAltName), the client's (alice) is signed by
the CA the server asks for (-C: it refuses clients without one).

  good:    ca_file = the server's CA, cert_name = localhost, client certificate:
           /time read as readings, device online
  wrongca: ca_file = a CA that did not sign the server's certificate: refused,
           device offline, its point bad, one log line of ours per state change
  name:    the right CA but no cert_name: the certificate names localhost, not
           127.0.0.1: refused, offline, one log line saying so
  nocert:  the right CA and name, no client certificate: the server refuses
           the handshake: offline

The good device and the wrong-CA one run in one daemon: a CA one device
trusts must not be trusted for another (libcoap keeps one CA store per
context; the adapter gives each certificate device its own).
/metrics counts the refused handshakes as errors of kind tls.
--check-config refuses missing files, a PSK and certificates together,
cert_file without key_file, certificate keys on coap://, and accepts
relative paths (relative to the device map)."""
import functools
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import paho.mqtt.client as mqtt
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itlib import (FIELDMQ, Checks, check_device_map, finish, free_port,  # noqa: E402
                   stop_proc, wait_for, wait_port)
from tls_lib import make_pki  # noqa: E402

check = Checks()
check_config = functools.partial(check_device_map, check)  # (tmp, devices, want)
procs = []


def free_udp_pair():
    """p such that UDP p and p + 1 on 127.0.0.1 were free a moment ago
    (coap-server-openssl -p p listens for coaps:// on p + 1)."""
    for _ in range(50):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        p = a.getsockname()[1]
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if p < 65535:
                b.bind(("127.0.0.1", p + 1))
                return p
        except OSError:
            pass
        finally:
            a.close()
            b.close()
    raise RuntimeError("no pair of free UDP ports")


def test_config(d):
    dev = "[device:c]\nprotocol = coap\nurl = coaps://127.0.0.1\n"
    pt = "[point:c/t]\npath = /t\n"
    # paths relative to the map (cc/devices.d/a.ini): ../../pki/...
    check_config(d, dev + "ca_file = ../../pki/ca.crt\ncert_file = ../../pki/alice.crt\n"
                 "key_file = ../../pki/alice.key\ncert_name = localhost\n" + pt, None)
    check_config(d, dev + "ca_file = ../../pki/ca.crt\n" + pt, None)
    check_config(d, dev + "ca_file = ../../pki/nosuch.crt\n" + pt,
                 "a.ini:1: [device:c] ca_file: '")
    check_config(d, dev + "ca_file = ../../pki/nosuch.crt\n" + pt,
                 "nosuch.crt': No such file or directory")
    check_config(d, dev + "ca_file = ../../pki/ca.crt\ncert_file = ../../pki/alice.crt\n"
                 "key_file = ../../pki/nokey.key\n" + pt, "key_file: '")
    check_config(d, dev + "ca_file = ../../pki/ca.crt\ncert_file = ../../pki/alice.crt\n" + pt,
                 "[device:c] cert_file and key_file: both or neither")
    check_config(d, dev + "cert_file = ../../pki/alice.crt\nkey_file = ../../pki/alice.key\n"
                 + pt, "[device:c] coaps:// with a certificate needs ca_file")
    check_config(d, dev + "psk_identity = i\npsk_key = k\nca_file = ../../pki/ca.crt\n" + pt,
                 "[device:c] coaps://: psk_identity / psk_key or ca_file")
    check_config(d, "[device:c]\nprotocol = coap\nurl = coap://127.0.0.1\n"
                 "ca_file = ../../pki/ca.crt\n" + pt,
                 "[device:c] ca_file / cert_file / key_file / cert_name: only with coaps://")
    check_config(d, dev + pt, "coaps:// needs psk_identity and psk_key, or ca_file")


DEVICES = """
[device:good]
protocol = coap
url = coaps://127.0.0.1:{port}
poll = 1s
timeout = 2s
retries = 1
ca_file = ../pki/ca.crt
cert_file = ../pki/alice.crt
key_file = ../pki/alice.key
cert_name = localhost

[point:good/time]
path = /time
type = string

[device:wrongca]
protocol = coap
url = coaps://127.0.0.1:{port}
poll = 500ms
timeout = 1s
retries = 1
ca_file = ../pki/otherca.crt
cert_file = ../pki/alice.crt
key_file = ../pki/alice.key
cert_name = localhost

[point:wrongca/time]
path = /time
type = string

[device:name]
protocol = coap
url = coaps://127.0.0.1:{port}
poll = 500ms
timeout = 1s
retries = 1
ca_file = ../pki/ca.crt
cert_file = ../pki/alice.crt
key_file = ../pki/alice.key

[point:name/time]
path = /time
type = string

[device:nocert]
protocol = coap
url = coaps://127.0.0.1:{port}
poll = 500ms
timeout = 1s
retries = 1
ca_file = ../pki/ca.crt
cert_name = localhost

[point:nocert/time]
path = /time
type = string
"""


def errors_by_kind(http_port, dev):
    """@dev's /metrics request figures: {"requests": n, "latency": n, <kind>: n, ...}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http_port, timeout=5) as r:
        body = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(body):
        for x in fam.samples:
            if x.labels.get("device") != dev:
                continue
            if x.name == "fieldmq_device_request_errors_total":
                out[x.labels["kind"]] = x.value
            elif x.name == "fieldmq_device_requests_total":
                out["requests"] = x.value
            elif x.name == "fieldmq_device_request_duration_seconds_count":
                out["latency"] = x.value
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="fieldmq-coappki.")
    fmq = None
    try:
        os.mkdir(os.path.join(tmp, "pki"))
        make_pki(os.path.join(tmp, "pki"))
        test_config(tmp)
        port, http_port = free_port(), free_port()
        p = free_udp_pair()
        pki = os.path.join(tmp, "pki")
        procs.append(subprocess.Popen(
            ["coap-server-openssl", "-A", "127.0.0.1", "-p", str(p),
             "-c", os.path.join(pki, "server.crt"), "-j", os.path.join(pki, "server.key"),
             "-C", os.path.join(pki, "ca.crt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # the peer works: libcoap's own client with the same files
        ok = wait_for(lambda: subprocess.run(
            ["coap-client-openssl", "-B", "2", "-C", os.path.join(pki, "ca.crt"),
             "-c", os.path.join(pki, "alice.crt"), "-j", os.path.join(pki, "alice.key"),
             "coaps://127.0.0.1:%d/time" % (p + 1)],
            capture_output=True, timeout=10).stdout.strip() != b"", 8)
        check("coap-server-openssl answers coap-client-openssl over DTLS PKI on %d" % (p + 1),
              ok)
        os.mkdir(os.path.join(tmp, "devices.d"))
        with open(os.path.join(tmp, "devices.d", "pki.ini"), "w") as f:
            f.write(DEVICES.format(port=p + 1))
        with open(os.path.join(tmp, "fieldmq.ini"), "w") as f:
            f.write("[gateway]\nid = gw1\ndata_dir = data\n"
                    "[broker]\nlisten = 127.0.0.1:%d\npersist = no\n"
                    "[http]\nenabled = yes\nlisten = 127.0.0.1:%d\n" % (port, http_port))
        log = open(os.path.join(tmp, "log"), "w")
        fmq = subprocess.Popen([FIELDMQ, "-c", os.path.join(tmp, "fieldmq.ini")],
                               stdout=log, stderr=log)
        check("broker listens", wait_port(port))
        msgs = []
        c = mqtt.Client(client_id="", protocol=mqtt.MQTTv311)
        c.on_message = lambda c_, u, m: msgs.append((m.topic, m.payload.decode()))
        c.connect("127.0.0.1", port)
        c.subscribe("fieldmq/gw1/#", qos=1)
        c.loop_start()
        P = "fieldmq/gw1/"

        def last(topic):
            for t, v in reversed(list(msgs)):
                if t == topic:
                    return v
            return None

        def good_times():
            return set(v for t, v in list(msgs) if t == P + "good/time" and '"good"' in v)

        check("good: online", wait_for(lambda: last(P + "good/status") == "online", 8))
        wait_for(lambda: len(good_times()) >= 3, 8)
        check("good: coaps:// /time read as readings: %s" % sorted(good_times())[:3],
              len(good_times()) >= 3)
        for dev in ("wrongca", "name", "nocert"):
            check("%s: offline" % dev,
                  wait_for(lambda: last(P + dev + "/status") == "offline", 8))
            v = last(P + dev + "/time") or ""
            check("%s: point bad, never good: %s" % (dev, v),
                  '"bad"' in v and not any(t == P + dev + "/time" and '"good"' in m
                                           for t, m in list(msgs)))
        time.sleep(3)  # more refused polls: no more log lines of ours
        check("good still online", last(P + "good/status") == "online")
        e = errors_by_kind(http_port, "good")
        check("metrics: good: answered and timed, no tls error: %s" % e,
              e.get("latency", 0) >= 1 and e.get("tls") == 0)
        for dev in ("wrongca", "nocert"):
            e = errors_by_kind(http_port, dev)
            check("metrics: %s: refused handshakes counted as kind tls, none timed: %s" % (dev, e),
                  e.get("tls", 0) >= 1 and e.get("latency") == 0)
        c.loop_stop()
        c.disconnect()
        stop_proc(fmq)
        check("clean stop (exit %s)" % fmq.returncode, fmq.returncode == 0)
        fmq = None
        with open(os.path.join(tmp, "log")) as f:
            ours = [ln for ln in f.read().splitlines() if ln[:4].isdigit()]
        for dev, want in (("wrongca", "wrongca /time: DTLS handshake failed"),
                          ("name", "name: the device's certificate names 'localhost', "
                                   "not '127.0.0.1' (cert_name): refused"),
                          ("nocert", "nocert /time: DTLS handshake failed")):
            n = sum(1 for ln in ours if want in ln)
            off = sum(1 for ln in ours if ("coap: %s: offline" % dev) in ln)
            check("%s: %r logged once (%d), offline once (%d)" % (dev, want, n, off),
                  n == 1 and off == 1)
    finally:
        status = finish(check, tmp, [fmq] + procs)
    return status


if __name__ == "__main__":
    sys.exit(main())
