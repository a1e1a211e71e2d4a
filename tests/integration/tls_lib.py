"""Certificates for the broker's TLS tests, made here with openssl (EC P-256
keys: quick to make and to use). Not a test itself (not executable).

make_pki(dir) writes into dir:
  ca.crt/.key        the CA the broker trusts for client certificates
  otherca.crt/.key   a CA nobody trusts
  server.crt/.key    CN=localhost, SAN DNS:localhost, IP:127.0.0.1, signed by ca
  alice.crt/.key     a client certificate, CN=alice, signed by ca
  mallory.crt/.key   a client certificate, CN=mallory, signed by otherca
  expired.crt/.key   a client certificate, CN=bob, signed by ca, expired in 2020
"""
import os
import subprocess


def _ssl(d, *args):
    subprocess.run(["openssl"] + list(args), check=True, cwd=d,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _key_csr(d, name, cn):
    _ssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)


def _ca(d, name):
    _ssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-keyout", name + ".key", "-out", name + ".crt",
         "-subj", "/CN=" + name)


def _sign(d, name, ca, ext=None):
    args = ["x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "2", "-out", name + ".crt"]
    if ext:
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "\n")
        args += ["-extfile", name + ".ext"]
    _ssl(d, *args)


def make_pki(d):
    _ca(d, "ca")
    _ca(d, "otherca")
    _key_csr(d, "server", "localhost")
    _sign(d, "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    _key_csr(d, "alice", "alice")
    _sign(d, "alice", "ca")
    _key_csr(d, "mallory", "mallory")
    _sign(d, "mallory", "otherca")
    # openssl x509 cannot back-date: openssl ca with explicit dates can.
    _key_csr(d, "expired", "bob")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = c\n[c]\ndatabase = index.txt\nnew_certs_dir = .\n"
                "serial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n"
                "[p]\ncommonName = supplied\n")
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    _ssl(d, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
         "-in", "expired.csr", "-out", "expired.crt", "-notext",
         "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
    for fn in os.listdir(d):
        os.chmod(os.path.join(d, fn), 0o644)  # Mosquitto reads them as user mosquitto
