#!/usr/bin/python3
"""The CoAP server ([coap], the EMQX CoAP gateway interface) end to end:
libcoap's own coap-client (coap-client-notls, coap-client-gnutls for DTLS
PSK) on one side of build/fieldmq, paho MQTT clients on the other, and a
few raw UDP datagrams of ours where coap-client cannot say it (an RST to a
notification, a malformed PDU, a flood).

Covers: publish by POST / PUT / NON with qos and retain, retained messages
for later MQTT subscribers; a CON publish to a forwarded topic answered
2.04 only after the store committed it (a separate response) while one to
a local topic is answered in the ACK; observe-subscribe with retained and
live notifications from an MQTT publisher, Observe 1 and RST ending an
observation, a CON per heartbeat checking a NON observer; connection mode (token, heartbeat, close,
connection_required); every refusal code (4.00 4.01 4.03 4.04 4.05 4.13)
and block-wise bodies; the topic ACL (acl_file) for CoAP clients; the
mountpoint; DTLS-PSK; malformed PDUs and a flood counted, the daemon alive.
"""
import os
import random
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker_harness import Client, T, run  # noqa: E402
from itlib import free_port, free_udp_port, stop_proc  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
FIELDMQ = os.path.abspath(os.environ.get("FIELDMQ", os.path.join(BUILD, "fieldmq")))
CLIENT = "coap-client-notls"
DTLS_CLIENT = "coap-client-gnutls"


class Fieldmq:
    """fieldmq with [coap] enabled on free ports; coap / extra: more INI lines."""

    def __init__(self, coap="", extra="", dtls=False):
        self.dir = tempfile.mkdtemp(prefix="fieldmq-coap.")
        self.port = free_port()
        self.cport = free_udp_port()
        self.dport = free_udp_port() if dtls else None
        self.log = os.path.join(self.dir, "log")
        self.ini = os.path.join(self.dir, "fieldmq.ini")
        listen = "127.0.0.1:%d" % self.cport
        if dtls:
            listen += ", coaps://127.0.0.1:%d" % self.dport
        with open(self.ini, "w") as f:
            f.write("[gateway]\nid = c1\ndata_dir = data\ndevices =\nlog_level = debug\n"
                    "[broker]\nlisten = 127.0.0.1:%d\nsys_interval = 1s\n%s"
                    "[coap]\nenabled = yes\nlisten = %s\n%s"
                    % (self.port, extra, listen, coap))
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([FIELDMQ, "-c", self.ini], stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        try:
            self._wait()
        except Exception:
            self.stop()
            raise

    def _wait(self):
        deadline = time.time() + T
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fieldmq exited %s:\n%s" % (self.proc.returncode,
                                                                self.log_text()))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("fieldmq did not listen on %d" % self.port)
        # The CoAP endpoint: a CoAP ping (an empty CON) is answered with an RST
        # by libcoap itself, without touching the server's figures.
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(0.2)
            while time.time() < deadline:
                s.sendto(b"\x40\x00\x12\x34", ("127.0.0.1", self.cport))
                try:
                    if s.recv(64)[:1] == b"\x70":
                        return
                except OSError:
                    pass
            raise RuntimeError("no CoAP on udp %d" % self.cport)
        finally:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is None:
            assert rc == 0, "fieldmq exit status %r:\n%s" % (rc, self.log_text()[-3000:])
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self):
        rc = stop_proc(self.proc, T)
        self.logf.close()
        return rc

    def log_text(self):
        with open(self.log) as f:
            return f.read()

    def url(self, path):
        return "coap://127.0.0.1:%d/%s" % (self.cport, path)

    def coap(self, method, path, payload=None, extra=(), timeout=T):
        """coap-client: (exit status, stdout + stderr)."""
        args = [CLIENT, "-m", method, "-B", "3"] + list(extra)
        if payload is not None:
            args += ["-e", payload]
        args.append(self.url(path))
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr

    def mqtt(self, cid="", **kw):
        c = Client(self, cid, **kw)
        c.connect()
        return c

    def sys(self, name, timeout=1.5):
        c = Client(self)
        c.connect()
        try:
            c.sub("$SYS/fieldmq/coap/server/" + name, 0)
            return int(c.get(timeout).payload)
        except AssertionError:
            return None
        finally:
            c.disconnect()

    def wait_sys(self, name, pred, timeout=6.0):
        deadline = time.time() + timeout
        v = None
        while time.time() < deadline:
            v = self.sys(name)
            if v is not None and pred(v):
                return v
            time.sleep(0.3)
        raise AssertionError("$SYS/fieldmq/coap/server/%s = %r" % (name, v))


# ------------------------------------------------- a minimal CoAP encoder

CON, NON, ACK, RST = 0, 1, 2, 3


def pdu(mtype, code, mid, token=b"", options=(), payload=b""):
    """RFC 7252 3: header, token, options (sorted, delta-coded), payload."""
    out = bytes([0x40 | mtype << 4 | len(token), code]) + struct.pack("!H", mid) + token
    last = 0
    for num, val in sorted(options, key=lambda o: o[0]):
        delta, ln = num - last, len(val)
        assert delta < 269 and ln < 269, "no 2-byte extensions here"
        d4, dx = (delta, b"") if delta < 13 else (13, bytes([delta - 13]))
        l4, lx = (ln, b"") if ln < 13 else (13, bytes([ln - 13]))
        out += bytes([d4 << 4 | l4]) + dx + lx + val
        last = num
    if payload:
        out += b"\xff" + payload
    return out


def parse(b):
    """(type, code, mid, token, observe or None, payload)."""
    tkl = b[0] & 15
    mtype, code, mid = b[0] >> 4 & 3, b[1], struct.unpack("!H", b[2:4])[0]
    token, i, num, obs = b[4:4 + tkl], 4 + tkl, 0, None
    while i < len(b) and b[i] != 0xff:
        delta, ln = b[i] >> 4, b[i] & 15
        i += 1
        if delta == 13:
            delta, i = b[i] + 13, i + 1
        if ln == 13:
            ln, i = b[i] + 13, i + 1
        num += delta
        if num == 6:
            obs = int.from_bytes(b[i:i + ln], "big")
        i += ln
    payload = b[i + 1:] if i < len(b) else b""
    return mtype, code, mid, token, obs, payload


def code(c, d):
    return c << 5 | d


def path_opts(path):
    return [(11, seg.encode()) for seg in path.split("/")]


class Raw:
    def __init__(self, f):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.addr = ("127.0.0.1", f.cport)
        self.mid = random.randint(1, 60000)

    def send(self, b):
        self.s.sendto(b, self.addr)

    def next_mid(self):
        self.mid = (self.mid + 1) & 0xffff
        return self.mid

    def recv(self, timeout=T):
        self.s.settimeout(timeout)
        return parse(self.s.recv(2048))

    def close(self):
        self.s.close()


# ------------------------------------------------------------------ tests

def test_publish_post_put_non_retain():
    with Fieldmq() as f:
        sub = f.mqtt("sub")
        sub.sub("a/#", 1)
        rc, out = f.coap("post", "ps/a/b?qos=1", "hello")
        assert rc == 0 and "4." not in out and "5." not in out, out
        m = sub.get()
        assert (m.topic, m.payload, m.qos) == ("a/b", b"hello", 1)
        rc, out = f.coap("put", "ps/a/c?retain=true", "kept")
        assert rc == 0, out
        m = sub.get()
        assert (m.topic, m.payload) == ("a/c", b"kept")
        rc, out = f.coap("post", "ps/a/n", "non", ["-N"])
        m = sub.get()
        assert (m.topic, m.payload) == ("a/n", b"non")
        # the retained message is there for a later subscriber
        late = f.mqtt("late")
        late.sub("a/c", 0)
        m = late.get()
        assert m.payload == b"kept" and m.retain
        assert f.wait_sys("publishes", lambda v: v >= 3) >= 3
        late.disconnect()
        sub.disconnect()


def test_con_publish_acked_after_store_commit():
    # The uplink forwards a/# with QoS 1 to a cloud that is not there: its
    # store must commit a forwarded message before the publisher is acked.
    up = free_port()
    extra = "[uplink]\nenabled = yes\nurl = mqtt://127.0.0.1:%d\nforward = a/# 1\n" % up
    with Fieldmq(extra=extra) as f:
        rc, out = f.coap("post", "ps/a/q?qos=1", "held", ["-v", "6"])
        assert rc == 0, out
        # a separate response: the empty ACK first, the 2.04 as a CON of its own
        assert "t:CON c:2.04" in out, out
        db = sqlite3.connect(os.path.join(f.dir, "data", "fieldmq.db"))
        n = db.execute("select count(*) from queue").fetchone()[0]
        db.close()
        assert n >= 1, "2.04 before the store had the message"
        # a topic nothing holds is answered in the ACK at once
        rc, out = f.coap("post", "ps/b/q?qos=1", "local", ["-v", "6"])
        assert "t:ACK c:2.04" in out, out
        # QoS 0 to a forwarded topic: nothing held either
        rc, out = f.coap("post", "ps/a/z", "q0", ["-v", "6"])
        assert "t:ACK c:2.04" in out, out


def test_observe_notifications_and_unobserve():
    with Fieldmq() as f:
        pub = f.mqtt("pub")
        pub.pub("s/1", b"retained", 1, retain=True)
        time.sleep(0.2)
        obs = subprocess.Popen([CLIENT, "-m", "get", "-s", "4", "-B", "5",
                                f.url("ps/s/%2B?qos=1")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        f.wait_sys("observations", lambda v: v == 1)
        pub.pub("s/2", b"live1", 0)
        pub.pub("s/3", b"live2", 1)
        pub.pub("t/3", b"other", 1)
        out, _ = obs.communicate(timeout=10)
        assert out.index("retained") < out.index("live1") < out.index("live2"), out
        assert "other" not in out, out
        assert f.sys("notifications") >= 3
        # coap-client ends its observation when it exits (Observe 1, or an
        # RST / ICMP on the next CON notification): the observation goes.
        pub.pub("s/4", b"after", 1)
        f.wait_sys("observations", lambda v: v == 0, timeout=10)
        pub.disconnect()


def test_observe_ended_by_observe1_and_rst():
    with Fieldmq() as f:
        pub = f.mqtt("pub")
        r = Raw(f)
        # GET Observe 0 on ps/o/x
        r.send(pdu(CON, 1, r.next_mid(), b"tk", [(6, b"")] + path_opts("ps/o/x")))
        t, c, mid, tok, obs, _ = r.recv()
        assert (t, c, tok) == (ACK, code(2, 5), b"tk") and obs is not None
        pub.pub("o/x", b"n1", 0)
        t, c, mid, tok, obs, payload = r.recv()
        assert (t, tok, payload) == (NON, b"tk", b"n1")
        # Observe 1: no more notifications
        r.send(pdu(CON, 1, r.next_mid(), b"tk", [(6, b"\x01")] + path_opts("ps/o/x")))
        t, c, mid, tok, obs, _ = r.recv()
        assert (t, c, obs) == (ACK, code(2, 5), None)
        pub.pub("o/x", b"n2", 0)
        try:
            got = r.recv(1.0)
            raise AssertionError("notified after Observe 1: %r" % (got,))
        except socket.timeout:
            pass
        # observe again; a CON notification (QoS 1) answered with an RST ends it
        r.send(pdu(CON, 1, r.next_mid(), b"t2", [(6, b""), (15, b"qos=1")] + path_opts("ps/o/x")))
        r.recv()
        f.wait_sys("observations", lambda v: v == 1)
        pub.pub("o/x", b"c1", 1)
        t, c, mid, tok, obs, payload = r.recv()
        assert (t, payload) == (CON, b"c1")
        r.send(pdu(RST, 0, mid))
        f.wait_sys("observations", lambda v: v == 0)
        pub.pub("o/x", b"c2", 1)
        try:
            got = r.recv(1.0)
            raise AssertionError("notified after RST: %r" % (got,))
        except socket.timeout:
            pass
        r.close()
        pub.disconnect()


def test_non_observer_checked_by_a_con():
    # notify_type non: after heartbeat without a CON, one notification goes as
    # a CON (RFC 7641 4.5); an observer that is gone answers it with an RST.
    with Fieldmq(coap="notify_type = non\nheartbeat = 1s\n") as f:
        pub = f.mqtt("pub")
        r = Raw(f)
        r.send(pdu(CON, 1, r.next_mid(), b"nn", [(6, b""), (15, b"qos=1")] + path_opts("ps/h")))
        r.recv()
        pub.pub("h", b"a", 1)
        assert r.recv()[0] == NON
        time.sleep(1.5)
        pub.pub("h", b"b", 1)
        t, c, mid, tok, obs, payload = r.recv()
        assert (t, payload) == (CON, b"b")
        r.send(pdu(RST, 0, mid))
        f.wait_sys("observations", lambda v: v == 0)
        r.close()
        pub.disconnect()


def test_connection_mode():
    with Fieldmq(coap="connection_required = yes\n") as f:
        sub = f.mqtt("sub")
        sub.sub("c/#", 1)
        rc, out = f.coap("post", "ps/c/x", "no")
        assert "4.01" in out, out
        rc, out = f.coap("post", "mqtt/connection?clientid=dev1&username=u&password=p", "")
        assert rc == 0, out
        token = out.strip().splitlines()[-1].strip()
        assert token.isdigit(), out
        rc, out = f.coap("post", "ps/c/x?clientid=dev1&token=%s&qos=1" % token, "yes")
        assert rc == 0 and "4." not in out, out
        assert sub.get().payload == b"yes"
        rc, out = f.coap("post", "ps/c/x?clientid=dev1&token=1", "bad")
        assert "4.01" in out, out
        rc, out = f.coap("put", "mqtt/connection?clientid=dev1&token=%s" % token)
        assert rc == 0 and "4." not in out, out
        assert f.wait_sys("clients", lambda v: v == 1) == 1
        rc, out = f.coap("delete", "mqtt/connection?clientid=dev1&token=%s" % token)
        assert rc == 0 and "4." not in out, out
        f.wait_sys("clients", lambda v: v == 0)
        rc, out = f.coap("post", "ps/c/x?clientid=dev1&token=%s" % token, "gone")
        assert "4.01" in out, out
        sub.none(0.5)
        sub.disconnect()


def test_session_taken_over_by_mqtt_client():
    # An MQTT client connects with the id of a CoAP client's session: the
    # broker gives it the session; the CoAP client's next publish (from the
    # same address) makes a new one instead of failing from then on.
    with Fieldmq() as f:
        sub = f.mqtt("sub")
        sub.sub("k/#", 0)
        r = Raw(f)
        q = [(15, b"clientid=dev9")]
        r.send(pdu(CON, 2, r.next_mid(), b"k1", path_opts("ps/k/1") + q, b"one"))
        assert r.recv()[1] == code(2, 4)
        assert sub.get().payload == b"one"
        thief = f.mqtt("dev9")
        r.send(pdu(CON, 2, r.next_mid(), b"k2", path_opts("ps/k/2") + q, b"two"))
        t, c, mid, tok, obs, payload = r.recv()
        assert c == code(2, 4), (c, payload)
        assert sub.get().payload == b"two"
        assert f.wait_sys("clients/total", lambda v: v == 2) == 2
        thief.drop()
        r.close()
        sub.disconnect()


def test_connection_password_file():
    # POST mqtt/connection's password is checked against [broker] password_file
    d = tempfile.mkdtemp(prefix="fieldmq-coap-pw.")
    pw = os.path.join(d, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "bob", "s3cret"], check=True,
                   capture_output=True)
    try:
        with Fieldmq(extra="password_file = %s\n" % pw) as f:
            rc, out = f.coap("post", "mqtt/connection?clientid=p1&username=bob&password=s3cret",
                             "")
            token = out.strip().splitlines()[-1].strip()
            assert rc == 0 and token.isdigit(), out
            rc, out = f.coap("post", "mqtt/connection?clientid=p2&username=bob&password=nope", "")
            assert "4.01" in out, out
            rc, out = f.coap("post", "mqtt/connection?clientid=p3&username=eve&password=s3cret",
                             "")
            assert "4.01" in out, out
            assert f.wait_sys("clients", lambda v: v == 1) == 1
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_heartbeat_expiry():
    with Fieldmq(coap="heartbeat = 1s\n") as f:
        rc, out = f.coap("post", "mqtt/connection?clientid=hb", "")
        token = out.strip().splitlines()[-1].strip()
        assert token.isdigit(), out
        f.wait_sys("clients/expired", lambda v: v == 1, timeout=8)
        rc, out = f.coap("put", "mqtt/connection?clientid=hb&token=%s" % token)
        assert "4.01" in out, out


def test_refusal_codes_and_blockwise():
    with Fieldmq(coap="max_payload = 64\n") as f:
        sub = f.mqtt("sub")
        sub.sub("e/#", 0)
        assert "4.04" in f.coap("post", "nope/x", "1")[1]
        assert "4.04" in f.coap("post", "ps", "1")[1]
        assert "4.05" in f.coap("delete", "ps/e/x")[1]
        assert "4.05" in f.coap("get", "ps/e/x")[1]
        assert "4.05" in f.coap("get", "mqtt/connection?clientid=a")[1]
        assert "4.00" in f.coap("post", "ps/e/x?qos=3", "1")[1]
        assert "4.00" in f.coap("post", "ps/e/x?retain=maybe", "1")[1]
        assert "4.00" in f.coap("post", "ps/e/%2B", "1")[1]
        assert "4.00" in f.coap("post", "mqtt/connection", "")[1]
        assert "4.13" in f.coap("post", "ps/e/big", "x" * 100)[1]
        # block-wise (Block1, 16-byte blocks): reassembled, then published
        body = "".join(chr(ord("a") + i % 26) for i in range(60))
        rc, out = f.coap("post", "ps/e/blocks", body, ["-b", "16"])
        assert rc == 0 and "4." not in out, out
        m = sub.get()
        assert (m.topic, m.payload) == ("e/blocks", body.encode())
        assert "4.13" in f.coap("post", "ps/e/blocks", "y" * 100, ["-b", "16"])[1]
        sub.none(0.5)
        assert f.wait_sys("errors/not_found", lambda v: v == 2) == 2
        assert f.sys("errors/bad_method") == 3
        assert f.sys("errors/bad_request") == 4
        assert f.sys("errors/too_large") == 2
        sub.disconnect()


def test_acl_and_mountpoint():
    d = tempfile.mkdtemp(prefix="fieldmq-coap-acl.")
    acl = os.path.join(d, "acl")
    with open(acl, "w") as fh:
        fh.write("user bob\ntopic readwrite dev/bob/#\nuser watch\ntopic read dev/#\n")
    try:
        with Fieldmq(coap="mountpoint = dev/\n", extra="acl_file = %s\n" % acl) as f:
            sub = f.mqtt("sub", username="watch")
            sub.sub("dev/#", 0)
            rc, out = f.coap("post", "mqtt/connection?clientid=b1&username=bob", "")
            token = out.strip().splitlines()[-1].strip()
            assert token.isdigit(), out
            q = "clientid=b1&token=%s" % token
            rc, out = f.coap("post", "ps/bob/t?" + q, "ok")
            assert rc == 0 and "4." not in out, out
            m = sub.get()
            assert (m.topic, m.payload) == ("dev/bob/t", b"ok")  # the mountpoint
            assert "4.03" in f.coap("post", "ps/eve/t?" + q, "no")[1]
            assert "4.03" in f.coap("get", "ps/eve/%23?" + q, None, ["-s", "1"])[1]
            # without a user name nothing is granted, and a connectionless
            # request cannot claim one (only mqtt/connection's is checked)
            assert "4.03" in f.coap("post", "ps/bob/t", "anon")[1]
            assert "4.03" in f.coap("post", "ps/bob/t?username=bob", "claim")[1]
            sub.none(0.5)
            sub.disconnect()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_dtls_psk():
    if subprocess.run([DTLS_CLIENT, "-h"], capture_output=True).returncode not in (0, 1):
        print("skip: no", DTLS_CLIENT)
        return
    with Fieldmq(coap="psk_identity = dev\npsk_key = s3cret\n", dtls=True) as f:
        sub = f.mqtt("sub")
        sub.sub("d/#", 0)
        url = "coaps://127.0.0.1:%d/ps/d/x" % f.dport
        p = subprocess.run([DTLS_CLIENT, "-u", "dev", "-k", "s3cret", "-m", "post", "-e", "sealed",
                            "-B", "3", url], capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, p.stdout + p.stderr
        m = sub.get()
        assert (m.topic, m.payload) == ("d/x", b"sealed")
        for user, key in (("dev", "wrong"), ("eve", "s3cret")):
            subprocess.run([DTLS_CLIENT, "-u", user, "-k", key, "-m", "post", "-e", "no",
                            "-B", "2", url], capture_output=True, text=True, timeout=10)
        sub.none(0.5)
        sub.disconnect()


def test_malformed_and_flood():
    with Fieldmq(coap="rate_limit = 50\n") as f:
        r = Raw(f)
        for junk in (b"\x40", b"\x4f\x01\x00\x01", b"\x40\x02\x00\x01\xee\xee", b"\xff" * 40,
                     b"\x48\x01\x00\x01abc"):
            r.send(junk)
        f.wait_sys("malformed", lambda v: v >= 4)
        assert f.sys("malformed") == 4  # the 1-byte runt is dropped unparsed
        # a flood from one address: 2000 requests (some lost in the socket's
        # buffer), answered up to the limit (50/s, a burst of 50)
        body = pdu(NON, 2, 0, b"", path_opts("ps/f/x"), b"x")
        for i in range(2000):
            r.send(body[:2] + struct.pack("!H", i) + body[4:])
        f.wait_sys("rate_limited", lambda v: v >= 100)
        served = f.sys("requests") - f.sys("rate_limited")
        assert served < 300, served
        # another address still gets through
        rc, out = f.coap("post", "ps/f/y", "ok")
        assert rc == 0 and "4." not in out and "5." not in out, out
        r.close()


if __name__ == "__main__":
    sys.exit(run([
        test_publish_post_put_non_retain,
        test_con_publish_acked_after_store_commit,
        test_observe_notifications_and_unobserve,
        test_observe_ended_by_observe1_and_rst,
        test_non_observer_checked_by_a_con,
        test_connection_mode,
        test_session_taken_over_by_mqtt_client,
        test_connection_password_file,
        test_heartbeat_expiry,
        test_refusal_codes_and_blockwise,
        test_acl_and_mountpoint,
        test_dtls_psk,
        test_malformed_and_flood,
    ]))
