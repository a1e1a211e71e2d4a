#!/usr/bin/python3
# Uplink over TLS (mbedTLS) to a real Mosquitto with certificates made here
# with openssl: the right CA and a client certificate work; a wrong CA is
# refused with a clear log line; a certificate for another name is refused
# unless tls_insecure = yes.
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import FIELDMQ, Collector, Env, free_port, publish_many, wait_until  # noqa: E402


def env_fieldmq():
    return FIELDMQ

env = Env("tls")


def ssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, cwd=env.dir,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(name):
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", name + ".key", "-out", name + ".crt", "-subj", "/CN=" + name)


def make_cert(name, ca, cn, san):
    with open(env.path(name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\n" % san)
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
        "-subj", "/CN=" + cn)
    ssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
        "-CAcreateserial", "-days", "2", "-out", name + ".crt", "-extfile", name + ".ext")


make_ca("ca")
make_ca("otherca")
make_cert("server", "ca", "localhost", "DNS:localhost")
make_cert("wrongname", "ca", "cloud.example.com", "DNS:cloud.example.com")
make_cert("client", "ca", "gw1", "DNS:gw1")
for fn in os.listdir(env.dir):
    os.chmod(env.path(fn), 0o644)  # Mosquitto reads them as user mosquitto

good, wrong = free_port(), free_port()
env.mosquitto(good, name="good", tls=(env.path("ca.crt"), env.path("server.crt"),
                                      env.path("server.key")),
              extra="require_certificate true\n")
env.mosquitto(wrong, name="wrong", tls=(env.path("ca.crt"), env.path("wrongname.crt"),
                                        env.path("wrongname.key")))


def run(desc, port, tls_keys, expect_ok, log_pattern=None):
    lport = free_port()
    ini = env.fieldmq_ini(lport, "mqtts://localhost:%d" % port,
                          uplink="forward = fieldmq/# 1\n" + tls_keys)
    mark = len(env.log())
    fmq = env.fieldmq(ini, lport)
    if expect_ok:
        env.check(desc + ": connects", env.wait_log(r"uplink: connected to", 10, mark))
    else:
        env.check(desc + ": refused with a clear log line",
                  env.wait_log(log_pattern, 10, mark), env.log()[mark:][-600:])
        env.check(desc + ": never connected", not env.wait_log(r"uplink: connected to", 0.5, mark))
    env.check(desc + ": fieldmq stops cleanly", env.stop(fmq) == 0)


ca = "ca_file = %s\n" % env.path("ca.crt")
client = "cert_file = %s\nkey_file = %s\n" % (env.path("client.crt"), env.path("client.key"))

# The right CA and a client certificate: messages go up.
lport = free_port()
ini = env.fieldmq_ini(lport, "mqtts://localhost:%d" % good,
                      uplink="forward = fieldmq/# 1\nremote_prefix = site/\n" + ca + client)
sub = Collector(good, ["site/#"], host="localhost",
                tls=dict(ca_certs=env.path("ca.crt"), certfile=env.path("client.crt"),
                         keyfile=env.path("client.key")))
env.check("the TLS cloud subscriber is subscribed", sub.subscribed.wait(5))
mark = len(env.log())
fmq = env.fieldmq(ini, lport)
env.check("right CA + client certificate: connects",
          env.wait_log(r"uplink: connected to mqtts://localhost", 10, mark))
publish_many(lport, lambda i: "fieldmq/gw1/tls", 500, payload_fn=lambda i: "x" * (i % 3000))
env.check("right CA: 500 messages (up to 3 KB, several TLS records) arrive in order",
          wait_until(lambda: sub.count("site/fieldmq/gw1/tls") >= 500, 20),
          sub.count("site/fieldmq/gw1/tls"))
got = [len(p) for t, p, r in sub.snapshot() if t == "site/fieldmq/gw1/tls"]
env.check("right CA: payloads intact", got[:500] == [i % 3000 for i in range(500)])
env.check("right CA: fieldmq stops cleanly", env.stop(fmq) == 0)
sub.close()

run("no client certificate where one is required", good, ca, False,
    r"uplink: .*(connection lost|cannot connect|TLS)")
run("wrong CA", good, "ca_file = %s\n" % env.path("otherca.crt") + client, False,
    r"uplink: TLS handshake with localhost:\d+ failed: certificate verify failed: .*(not correctly signed|trusted CA)")
run("hostname mismatch", wrong, ca, False,
    r"uplink: TLS handshake with localhost:\d+ failed: certificate verify failed: .*(CN|Common Name)")
run("hostname mismatch with tls_insecure = yes", wrong, ca + "tls_insecure = yes\n", True)
env.check("tls_insecure is warned about", "tls_insecure = yes: the cloud's certificate is not checked"
          in env.log())
lport = free_port()
ini = env.fieldmq_ini(lport, "mqtts://localhost:%d" % good,
                      uplink="ca_file = %s\n" % env.path("nope.crt"))
mark = len(env.log())
with open(env.fmq_log, "a") as log:
    rc = subprocess.run([os.path.abspath(env_fieldmq()), "-c", ini], stdout=log, stderr=log,
                        cwd=env.dir, timeout=10).returncode
env.check("a missing ca_file stops the start (exit %d)" % rc, rc != 0)
env.check("a missing ca_file is named in the log", "nope.crt" in env.log()[mark:],
          env.log()[mark:][-300:])
env.finish()
