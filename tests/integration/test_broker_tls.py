#!/usr/bin/python3
# The broker's TLS listeners (mbedTLS) with real clients and certificates made
# here with openssl: mosquitto_pub/sub with --cafile and --cert/--key, paho-mqtt
# over TLS, openssl s_client for the protocol versions; a wrong CA, a client
# certificate missing, expired or from another CA are refused with one log line
# each, counted in $SYS, and close that connection only: a subscriber that
# stays connected throughout still gets its messages. use_identity_as_username
# makes the certificate's CN the user name, as the ACL sees it.
# FIELDMQ may be a build against another mbedTLS (make test-mbedtls3).
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import FIELDMQ, Env, free_port, wait_until  # noqa: E402
from tls_lib import make_pki  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

env = Env("broker-tls")
make_pki(env.dir)
P = lambda n: env.path(n)  # noqa: E731
version = subprocess.run([FIELDMQ, "--version"], capture_output=True, text=True).stdout
print("# " + version.strip())
has13 = "1.3" in version

tcp, tls, mtls = free_port(), free_port(), free_port()
with open(P("acl"), "w") as f:
    f.write("topic readwrite t/#\ntopic read $SYS/#\nuser alice\ntopic readwrite alice/#\n")
ini = P("fieldmq.ini")
with open(ini, "w") as f:
    f.write("[gateway]\nid = gw1\ndata_dir = data\ndevices =\n")
    f.write("[broker]\nlisten = 127.0.0.1:%d, mqtts://127.0.0.1:%d\n" % (tcp, tls))
    f.write("cert_file = server.crt\nkey_file = server.key\nsys_interval = 1s\nacl_file = acl\n")
    f.write("[listener:mtls]\nurl = mqtts://127.0.0.1:%d\ncert_file = server.crt\n" % mtls)
    f.write("key_file = server.key\nca_file = ca.crt\nrequire_certificate = yes\n")
    f.write("use_identity_as_username = yes\n")
fmq = env.fieldmq(ini, tcp)
env.check("the mqtts listeners are up", env.wait_log(r"listening on mqtts://.*listener mtls", 5))


def client(args, timeout=10):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=env.dir)
    return r.returncode, r.stdout + r.stderr


def sub_pub(port, sub_tls, pub_tls, topic="t/x", msg="hello"):
    """mosquitto_sub for one message, mosquitto_pub of it; returns what the sub printed."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", "localhost", "-p", str(port), "-t", topic,
                            "-C", "1", "-W", "10", "-q", "1", "-i", "sub-%d" % port] + sub_tls,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           cwd=env.dir)
    env.procs.append(sub)
    # Subscribed once the broker saw it: retry the publish until the sub got one.
    out = ""
    for _ in range(40):
        rc, _o = client(["mosquitto_pub", "-h", "localhost", "-p", str(port), "-t", topic,
                         "-m", msg, "-q", "1"] + pub_tls)
        try:
            out = sub.communicate(timeout=0.25)[0]
            break
        except subprocess.TimeoutExpired:
            continue
    if sub.poll() is None:
        sub.kill()
        sub.wait()
    return out.strip()


ca = ["--cafile", "ca.crt"]
alice = ["--cert", "alice.crt", "--key", "alice.key"]

# A paho subscriber over TLS that stays connected through every failure below.
got = []
ready = threading.Event()
keeper = mqtt.Client(client_id="keeper", protocol=mqtt.MQTTv311)
keeper.tls_set(ca_certs=P("ca.crt"))
keeper.on_connect = lambda c, u, f, rc: c.subscribe("t/#", 1)
keeper.on_subscribe = lambda *a: ready.set()
keeper.on_message = lambda c, u, m: got.append((m.topic, m.payload))
keeper.connect("localhost", tls, 30)
keeper.loop_start()
env.check("paho-mqtt subscribes over TLS", ready.wait(10))
# Idle for over a second: its session gives back mbedTLS's record buffers
# (gw_tls_sleep, mbedTLS 2.x); what follows wakes it up, both ways.
time.sleep(2.5)

env.check("mosquitto_sub/pub --cafile over mqtts://", sub_pub(tls, ca, ca) == "hello")
env.check("paho-mqtt over TLS receives it", wait_until(lambda: (("t/x", b"hello") in got), 5))

# Client certificates: alice's CN is her user name; the ACL gives her alice/#.
env.check("--cert/--key on the require_certificate listener: alice may use alice/#",
          sub_pub(mtls, ca + alice, ca + alice, topic="alice/x", msg="hi") == "hi")


def granted(port, user, cert):
    """The QoS paho-mqtt is granted for alice/# as @user (None: none), with @cert or without."""
    res = []
    done = threading.Event()
    c = mqtt.Client(client_id="acl-%d-%s" % (port, user), protocol=mqtt.MQTTv311)
    c.tls_set(ca_certs=P("ca.crt"), certfile=P(cert + ".crt") if cert else None,
              keyfile=P(cert + ".key") if cert else None)
    if user:
        c.username_pw_set(user)
    c.on_connect = lambda c, u, f, rc: c.subscribe("alice/#", 1)
    c.on_subscribe = lambda c, u, mid, q: (res.extend(q), done.set())
    c.connect("localhost", port, 30)
    c.loop_start()
    done.wait(10)
    c.loop_stop()
    c.disconnect()
    return res


env.check("the certificate's CN wins over CONNECT's user name",
          granted(mtls, "mallory", "alice") == [1])
env.check("an anonymous TLS client without a certificate is refused alice/# by the ACL",
          granted(tls, None, None) == [128])

fails = []


def refused(desc, args, log_rx):
    mark = len(env.log())
    rc, out = client(["mosquitto_pub", "-h", "localhost", "-t", "t/no", "-m", "x"] + args)
    env.check(desc + ": the client fails", rc != 0, out)
    env.check(desc + ": one log line with the reason",
              env.wait_log(log_rx, 5, mark), env.log()[mark:][-400:])
    fails.append(desc)


refused("wrong CA at the client", ["-p", str(tls), "--cafile", "otherca.crt"],
        r"mqtts://127\.0\.0\.1:%d: TLS handshake failed: " % tls)
refused("client certificate missing", ["-p", str(mtls)] + ca,
        r"mqtts://127\.0\.0\.1:%d: TLS handshake failed: .*(?i:certific)" % mtls)
refused("expired client certificate", ["-p", str(mtls), "--cert", "expired.crt", "--key",
                                       "expired.key"] + ca,
        r"TLS handshake failed: certificate verify failed: .*expired")
refused("client certificate of another CA", ["-p", str(mtls), "--cert", "mallory.crt", "--key",
                                             "mallory.key"] + ca,
        r"TLS handshake failed: certificate verify failed: .*not correctly signed")
rc, out = client(["mosquitto_pub", "-h", "localhost", "-p", str(tls), "-t", "t/x", "-m", "x"])
env.check("plain MQTT on a TLS port is refused", rc != 0, out)

env.check("the connection that stayed still receives",
          sub_pub(tls, ca, ca, msg="after") == "after"
          and wait_until(lambda: (("t/x", b"after") in got), 5))
env.check("the keeper never lost its connection", keeper.is_connected())

# Figures: failed handshakes are counted.
sysv = {}
sysc = mqtt.Client(client_id="sys")
sysc.on_connect = lambda c, u, f, rc: c.subscribe("$SYS/fieldmq/broker/tls_failed", 0)
sysc.on_message = lambda c, u, m: sysv.__setitem__(m.topic, m.payload.decode())
sysc.connect("127.0.0.1", tcp, 30)
sysc.loop_start()
env.check("$SYS counts the failed handshakes",
          wait_until(lambda: int(sysv.get("$SYS/fieldmq/broker/tls_failed", "0")) >= 5, 5), sysv)
sysc.loop_stop()

# Protocol versions: TLS 1.2 always; TLS 1.3 where the library has it.
for ver, want in (("-tls1_2", True), ("-tls1_3", has13)):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tls, ver,
                        "-CAfile", P("ca.crt"), "-servername", "localhost", "-brief"],
                       input="", capture_output=True, text=True, timeout=10)
    ok = re.search(r"Protocol version: TLSv1\.[23]", r.stdout + r.stderr) is not None
    env.check("openssl s_client %s %s" % (ver, "completes" if want else "is refused"), ok == want,
              (r.stdout + r.stderr)[-300:])
rc, out = client(["mosquitto_pub", "-h", "localhost", "-p", str(tls), "-t", "t/v", "-m", "x",
                  "--tls-version", "tlsv1.2"] + ca)
env.check("mosquitto_pub --tls-version tlsv1.2", rc == 0, out)
if has13:
    rc, out = client(["mosquitto_pub", "-h", "localhost", "-p", str(tls), "-t", "t/v", "-m", "x",
                      "--tls-version", "tlsv1.3"] + ca)
    env.check("mosquitto_pub --tls-version tlsv1.3", rc == 0, out)

keeper.loop_stop()
keeper.disconnect()
env.check("fieldmq stops cleanly", env.stop(fmq) == 0)
env.finish()
