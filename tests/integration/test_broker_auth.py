#!/usr/bin/python3
# Passwords and the ACL for every client kind (issue 14 items 4, 5, 7) with real
# clients: a password_file made here by the real mosquitto_passwd ($7$ PBKDF2-SHA512
# and $6$ SHA-512); mosquitto_pub/sub and paho-mqtt with right and wrong passwords
# over MQTT 3.1.1 and 5.0 (CONNACK 5 / 0x86, as Mosquitto); anonymous clients
# refused; an MQTT-SN client (mqttsn_client.py, raw UDP) under acl_file by its
# client id (QoS -1 publishers by the rules for every client); [mqttsn] allow_from
# dropping datagrams from elsewhere, counted in
# $SYS; SIGHUP reloading both files (a connected MQTT-SN client gets the new rules
# at once; a bad file keeps the old one and is logged with file:line); and
# --check-config refusing a non-loopback listener without authentication.
# FIELDMQ may be a build against another mbedTLS (make test-mbedtls3).
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import FIELDMQ, Env, free_port, wait_until  # noqa: E402
import mqttsn_client as sn  # noqa: E402
from itlib import free_udp_port  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

env = Env("broker-auth")
P = lambda n: env.path(n)  # noqa: E731


def passwd(*args):
    r = subprocess.run(["mosquitto_passwd"] + list(args), capture_output=True, text=True,
                       timeout=10, cwd=env.dir)
    assert r.returncode == 0, r.stdout + r.stderr


# The password file, made by the real tool: alice $7$ (its default), bob $6$.
open(P("pw"), "w").close()
passwd("-b", "pw", "alice", "secret")
passwd("-H", "sha512", "-b", "pw", "bob", "hunter2")
with open(P("pw")) as f:
    text = f.read()
env.check("mosquitto_passwd wrote $7$ and $6$ lines",
          "alice:$7$101$" in text and "bob:$6$" in text, text)

ACL = ("topic read $SYS/#\n"
       "topic readwrite q1\n"
       "pattern readwrite dev/%c/#\n"
       "user alice\n"
       "topic readwrite plc/#\n"
       "topic readwrite dev/#\n")
with open(P("acl"), "w") as f:
    f.write(ACL)

port, snport = free_port(), free_udp_port()
ini = P("fieldmq.ini")
with open(ini, "w") as f:
    f.write("[gateway]\nid = gw1\ndata_dir = data\ndevices =\n")
    f.write("[broker]\nlisten = 127.0.0.1:%d\nsys_interval = 1s\n" % port)
    f.write("password_file = pw\nacl_file = acl\nallow_anonymous = no\n")
    f.write("[mqttsn]\nenabled = yes\nlisten = 127.0.0.1:%d\nadvertise_interval = 0\n" % snport)
    f.write("allow_from = 127.0.0.1/32\n")
fmq = env.fieldmq(ini, port)


def pub(user, password, version="mqttv311", topic="plc/x", msg="1"):
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-m", msg,
            "-q", "1", "-V", version, "-i", "pub-%s" % user]
    if user is not None:
        args += ["-u", user]
    if password is not None:
        args += ["-P", password]
    r = subprocess.run(args, capture_output=True, text=True, timeout=10)
    return r.returncode, (r.stdout + r.stderr).strip()


# ---------------------------------------------------- mosquitto_pub / sub -u -P
for version in ("mqttv311", "mqttv5"):
    rc, out = pub("alice", "secret", version)
    env.check("mosquitto_pub -V %s -u alice with the right $7$ password" % version, rc == 0, out)
    rc, out = pub("bob", "hunter2", version, topic="dev/pub-bob/x")
    env.check("mosquitto_pub -V %s -u bob with the right $6$ password" % version, rc == 0, out)
    rc, out = pub("alice", "Secret", version)
    want = 5 if version == "mqttv311" else 0x86
    env.check("mosquitto_pub -V %s wrong password refused: CONNACK %#x" % (version, want),
              rc == want and ("not authorised" in out or "Bad User Name or Password" in out),
              (rc, out))
    rc, out = pub("mallory", "secret", version)
    env.check("mosquitto_pub -V %s unknown user refused" % version, rc == want, (rc, out))
    rc, out = pub(None, None, version)
    env.check("mosquitto_pub -V %s anonymous refused (allow_anonymous = no)" % version,
              rc == (5 if version == "mqttv311" else 0x87), (rc, out))

# mosquitto_sub with a password receives what alice publishes.
sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "plc/#",
                        "-C", "1", "-W", "10", "-u", "alice", "-P", "secret", "-i", "sub-a",
                        "-V", "mqttv5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
env.procs.append(sub)
out = ""
for _ in range(40):
    pub("alice", "secret", "mqttv5", "plc/boiler/temp", "21.5")
    try:
        out = sub.communicate(timeout=0.25)[0]
        break
    except subprocess.TimeoutExpired:
        continue
env.check("mosquitto_sub -u alice -P secret gets alice's message", out.strip() == "21.5", out)

# ------------------------------------------------------------------ paho-mqtt


def paho_connect(user, password, proto, cid):
    """The CONNACK code paho saw (an int), or None."""
    res = []
    if proto == 5:
        c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
        c.on_connect = lambda cl, u, f, rc, p=None: res.append(rc.value if hasattr(rc, "value")
                                                                else int(rc))
    else:
        c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311)
        c.on_connect = lambda cl, u, f, rc: res.append(int(rc))
    if user is not None:
        c.username_pw_set(user, password)
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    wait_until(lambda: res, 5)
    c.loop_stop()
    try:
        c.disconnect()
    except Exception:
        pass
    return res[0] if res else None


for proto, bad in ((4, 5), (5, 0x86)):
    rc = paho_connect("alice", "secret", proto, "paho-ok-%d" % proto)
    env.check("paho-mqtt v%d right password: CONNACK 0" % proto, rc == 0, rc)
    rc = paho_connect("alice", "nope", proto, "paho-bad-%d" % proto)
    env.check("paho-mqtt v%d wrong password: CONNACK %#x" % (proto, bad), rc == bad, rc)

# -------------------------------------------------------- MQTT-SN under the ACL
got = []
watch = mqtt.Client(client_id="watch", protocol=mqtt.MQTTv311)
watch.username_pw_set("alice", "secret")
watch.on_connect = lambda c, u, f, rc: (c.subscribe("plc/#", 1), c.subscribe("dev/#", 1),
                                         c.subscribe("$SYS/fieldmq/#", 0))
sysv = {}


def on_msg(c, u, m):
    if m.topic.startswith("$SYS/"):
        sysv[m.topic] = m.payload.decode()
    else:
        got.append((m.topic, m.payload))


watch.on_message = on_msg
watch.connect("127.0.0.1", port, 30)
watch.loop_start()
wait_until(lambda: "$SYS/fieldmq/broker/auth_failed" in sysv, 5)

dev = sn.SnClient(("127.0.0.1", snport), "dev1")
dev.connect(keepalive=60)
tid = dev.register("plc/boiler/setpoint/set")
rc = dev.publish(tid, b"42", qos=1, expect_rc=sn.RC_NOT_SUPPORTED)
env.check("MQTT-SN client refused a PUBLISH to plc/... by the ACL (PUBACK not supported)",
          rc == sn.RC_NOT_SUPPORTED, rc)
own = dev.register("dev/dev1/temp")
env.check("MQTT-SN client may publish to dev/%c/... (its own client id)",
          dev.publish(own, b"20", qos=1) == sn.RC_ACCEPTED)
dev.subscribe("plc/#", qos=1, expect_rc=sn.RC_NOT_SUPPORTED)
env.check("MQTT-SN SUBSCRIBE plc/# refused by the ACL", True)
env.check("the MQTT subscriber got dev/dev1/temp and not the refused setpoint",
          wait_until(lambda: ("dev/dev1/temp", b"20") in got, 5)
          and not any(t.startswith("plc/boiler/setpoint") for t, _ in got), got)

# QoS -1 (no connection): only the rules for every client apply.
watch.subscribe("q1", 0)
time.sleep(0.3)
anon = sn.SnClient(("127.0.0.1", snport))
anon.send_publish(sn.short_id("q1"), b"open", qos=-1, topic_type=sn.TOPIC_SHORT)
anon.send_publish(sn.short_id("zz"), b"closed", qos=-1, topic_type=sn.TOPIC_SHORT)
env.check("MQTT-SN QoS -1 to a topic every client may write is delivered",
          wait_until(lambda: ("q1", b"open") in got, 5), got)
env.check("MQTT-SN QoS -1 to another topic is refused (acl_denied counts it)",
          wait_until(lambda: int(sysv.get("$SYS/fieldmq/broker/acl_denied", "0")) >= 3, 5),
          sysv.get("$SYS/fieldmq/broker/acl_denied"))
anon.close()

# ------------------------------------------------------------------ allow_from
far = sn.SnClient(("127.0.0.1", snport), "far1", bind=("127.0.0.2", 0))
far.send(sn.CONNECT, bytes([sn.flags(clean=True), 0x01]) + (60).to_bytes(2, "big") + b"far1")
try:
    m = far.recv(1.0)
except Exception:
    m = None
env.check("a CONNECT from 127.0.0.2 (outside allow_from 127.0.0.1/32) gets no answer",
          m is None, m)
env.check("$SYS/fieldmq/mqttsn/dropped/denied counts it",
          wait_until(lambda: int(sysv.get("$SYS/fieldmq/mqttsn/dropped/denied", "0")) >= 1, 5),
          sysv.get("$SYS/fieldmq/mqttsn/dropped/denied"))
env.check("$SYS/fieldmq/broker/auth_failed counts the wrong passwords",
          wait_until(lambda: int(sysv.get("$SYS/fieldmq/broker/auth_failed", "0")) >= 6, 5),
          sysv.get("$SYS/fieldmq/broker/auth_failed"))
far.close()

# ---------------------------------------------------------------------- SIGHUP
# New password for alice, and an ACL that lets dev1 write plc/boiler/#.
passwd("-b", "pw", "alice", "changed")
with open(P("acl"), "w") as f:
    f.write(ACL + "pattern write plc/boiler/#\n")
mark = len(env.log())
fmq.send_signal(signal.SIGHUP)
env.check("SIGHUP: both files read again",
          env.wait_log(r"password_file .* read again \(2 users\)", 5, mark)
          and env.wait_log(r"acl_file .* read again", 5, mark), env.log()[mark:])
rc, out = pub("alice", "secret")
env.check("after SIGHUP the old password is refused", rc == 5, (rc, out))
rc, out = pub("alice", "changed")
env.check("after SIGHUP the new password works", rc == 0, (rc, out))
rc = dev.publish(tid, b"43", qos=1)
env.check("after SIGHUP the connected MQTT-SN client has the new rules at once",
          rc == sn.RC_ACCEPTED and wait_until(
              lambda: ("plc/boiler/setpoint/set", b"43") in got, 5), (rc, got))

# Bad files: kept, logged with file:line.
with open(P("acl"), "w") as f:
    f.write("topic read $SYS/#\n# ok\nfrobnicate everything\n")
with open(P("pw"), "a") as f:
    f.write("carol:plaintext\n")
mark = len(env.log())
fmq.send_signal(signal.SIGHUP)
env.check("a bad acl_file is logged with its file:line and kept out",
          env.wait_log(r"reload: .*/acl:3: \[broker\] acl_file: .*keeping the previous one", 5,
                       mark), env.log()[mark:])
env.check("a bad password_file is logged with its file:line and kept out",
          env.wait_log(r"reload: .*/pw:3: \[broker\] password_file: not a hashed password.*"
                       r"keeping the previous one", 5, mark), env.log()[mark:])
rc = dev.publish(tid, b"44", qos=1)
env.check("the previous ACL still applies after a bad reload", rc == sn.RC_ACCEPTED, rc)
rc, out = pub("alice", "changed")
env.check("the previous password file still applies after a bad reload", rc == 0, (rc, out))
env.check("fieldmq is still running", fmq.poll() is None)
dev.disconnect()
dev.close()
watch.loop_stop()
watch.disconnect()
env.check("fieldmq stops cleanly", env.stop(fmq) == 0)

# -------------------------------------------------------------- --check-config


def check_config(broker, mqttsn=""):
    path = P("check.ini")
    with open(path, "w") as f:
        f.write("[gateway]\nid = gw1\ndata_dir = data\ndevices =\n[broker]\n" + broker)
        f.write(mqttsn)
    r = subprocess.run([FIELDMQ, "--check-config", "-c", path], capture_output=True, text=True,
                       timeout=10, cwd=env.dir)
    return r.returncode, r.stdout + r.stderr


rc, out = check_config("listen = 0.0.0.0:1883\n")
env.check("--check-config: a non-loopback listener without auth is refused (exit 2)",
          rc == 2 and "listens beyond loopback without authentication" in out, (rc, out))
rc, out = check_config("listen = 127.0.0.1:1883, [::]:1883\n")
env.check("--check-config: [::] without auth is refused too", rc == 2 and "[::]:1883" in out,
          (rc, out))
open(P("pw2"), "w").close()
passwd("-b", "pw2", "alice", "secret")
rc, out = check_config("listen = 0.0.0.0:1883\npassword_file = pw2\n")
env.check("--check-config: with password_file it is accepted", rc == 0, (rc, out))
rc, out = check_config("listen = 0.0.0.0:1883\nallow_anonymous = yes\n")
env.check("--check-config: with allow_anonymous = yes it is accepted", rc == 0, (rc, out))
rc, out = check_config("listen = 127.0.0.1:1883\n")
env.check("--check-config: loopback only needs nothing", rc == 0, (rc, out))
rc, out = check_config("listen = 127.0.0.1:1883\npassword_file = missing\n")
env.check("--check-config: a missing password_file is an error", rc == 2 and "missing" in out,
          (rc, out))
rc, out = check_config("listen = 127.0.0.1:1883\n",
                       "[mqttsn]\nenabled = yes\nlisten = 0.0.0.0:1884\n")
env.check("--check-config: a non-loopback MQTT-SN listen without allow_from is refused",
          rc == 2 and "allow_from" in out, (rc, out))
rc, out = check_config("listen = 127.0.0.1:1883\n",
                       "[mqttsn]\nenabled = yes\nlisten = 0.0.0.0:1884\n"
                       "allow_from = 10.0.0.0/8, fd00::/8\n")
env.check("--check-config: with allow_from it is accepted", rc == 0, (rc, out))
rc, out = check_config("listen = 127.0.0.1:1883\n",
                       "[mqttsn]\nenabled = yes\nallow_from = 10.0.0.1/8\n")
env.check("--check-config: allow_from with host bits is refused",
          rc == 2 and "10.0.0.1/8" in out, (rc, out))
env.finish()
