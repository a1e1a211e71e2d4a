#!/usr/bin/python3
# The HTTP listener ([http]) with real consumers: fieldmq polls the Modbus
# simulator and forwards to a real Mosquitto "cloud"; a real Prometheus
# server (Debian's `prometheus`, started here on 127.0.0.1) scrapes /metrics
# every second, and this test asks its HTTP API for up == 1 and fieldmq's
# series; the exposition also parses with python3-prometheus-client's parser
# (the one its own tests use), and each family is checked against the names
# the README lists, with the per-device request series of a Modbus, a CoAP and
# a serial device (latency count == requests answered). Then /healthz and
# /readyz (503 with the reason while the cloud is down, 200 once it is back),
# /status.json and the page, HEAD, and
# bad requests: unknown paths (404), other methods (405), an oversized head
# (431), garbage (400), a slowloris that never finishes its head (closed by
# the header timeout, while a normal request is still served), too many
# connections, and https:// with the broker's certificate (openssl s_client
# style through Python's ssl, trusting the test's CA).
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_uplink_lib import BUILD, FIELDMQ, Env, free_port, wait_until  # noqa: E402
from itlib import wait_port  # noqa: E402
from tls_lib import make_pki  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

env = Env("http")
P = env.path
make_pki(env.dir)
tcp, http, https, mport, cloud, prom = (free_port() for _ in range(6))

os.mkdir(P("devices.d"))
with open("etc/devices.d/demo.ini") as f:
    demo = f.read().replace("port = 15020", "port = %d" % mport).replace("poll = 1s", "poll = 200ms")
with open(P("devices.d/demo.ini"), "w") as f:
    f.write(demo)
sim = subprocess.Popen([os.path.join(BUILD, "sim", "modbus_sim"), "--tcp", "127.0.0.1:%d" % mport,
                        "--regs", "tests/sim/modbus_regs.ini"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
env.procs.append(sim)
# A CoAP device (coap_sim, polled) and a queried serial device (serial_sim as a raw
# TCP serial server, SCPI): their per-device series go through the same scrape.
us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
us.bind(("127.0.0.1", 0))
cport = us.getsockname()[1]
us.close()
sport = free_port()
csim = subprocess.Popen([os.path.join(BUILD, "sim", "coap_sim"), "--listen", "127.0.0.1:%d" % cport],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
env.procs.append(csim)
ssim = subprocess.Popen([os.path.join(BUILD, "sim", "serial_sim"), "--tcp", "127.0.0.1:%d" % sport,
                         "--mode", "scpi", "--rate", "0"],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
env.procs.append(ssim)
env.check("coap_sim and serial_sim ready",
          csim.stdout.readline().startswith(b"ready") and ssim.stdout.readline().startswith(b"ready"))
with open(P("devices.d/others.ini"), "w") as f:
    f.write("[device:weather]\nprotocol = coap\nurl = coap://127.0.0.1:%d\npoll = 200ms\n"
            "[point:weather/plain]\npath = /plain\ntype = uint32\n"
            "[bus:scpi]\ntype = tcp\nhost = 127.0.0.1\nport = %d\ntimeout = 500ms\n"
            "[device:dmm]\nprotocol = serial\nbus = scpi\nparser = regex\n"
            "match = ^([-+0-9.E]+)$\npoll = 200ms\npoll_command = \"MEAS:TEMP?\\r\\n\"\n"
            "[point:dmm/temp]\ngroup = 1\n" % (cport, sport))


def write_ini(name, listen, extra=""):
    ini = P(name)
    with open(ini, "w") as f:
        f.write("[gateway]\nid = gw1\ndata_dir = data\n")
        f.write("[broker]\nlisten = 127.0.0.1:%d\ncert_file = server.crt\nkey_file = server.key\n"
                % tcp)
        f.write("[store]\nsync_interval = 20ms\n")
        f.write("[uplink]\nenabled = yes\nurl = mqtt://127.0.0.1:%d\nreconnect_min = 100ms\n"
                "reconnect_max = 500ms\n" % cloud)
        f.write("[http]\nenabled = yes\nlisten = %s\n%s" % (listen, extra))
    return ini


def get(path, method="GET", port=http, timeout=5):
    """(status, headers, body) of one request."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def raw(data, port=http, timeout=5):
    """Sends data on a plain socket; returns what came back until close or timeout seconds."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    end = time.time() + timeout
    out = b""
    try:
        s.sendall(data)
        while time.time() < end:
            s.settimeout(max(0.05, end - time.time()))
            b = s.recv(65536)
            if not b:
                break
            out += b
        return out
    except socket.timeout:
        return out
    except ConnectionResetError as e:
        return out or ("error: %s" % e).encode()
    finally:
        s.close()


# ------------------------------------------------------- readiness: no cloud
ini = write_ini("fieldmq.ini", "127.0.0.1:%d" % http)
fmq = env.fieldmq(ini, tcp)
env.check("the HTTP listener is up", wait_port(http))
st, _, body = get("/healthz")
env.check("/healthz: 200 ok", st == 200 and body == b"ok\n", (st, body))
st, _, body = get("/readyz")
env.check("/readyz: 503 with the reason while the uplink is not connected",
          st == 503 and b"uplink is not connected" in body, (st, body))

cloud_p = env.mosquitto(cloud)
env.check("/readyz: 200 once the uplink connects",
          wait_until(lambda: get("/readyz")[0] == 200, 10), get("/readyz"))

# ------------------------------------------------------------- exposition
env.check("the devices are polled (Modbus, CoAP, serial)",
          wait_until(lambda: all(b'fieldmq_device_online{device="%s",protocol="%s"} 1' % dp
                                 in get("/metrics")[2] for dp in
                                 ((b"boiler", b"modbus"), (b"weather", b"coap"),
                                  (b"dmm", b"serial"))), 10))
st, hdr, body = get("/metrics")
env.check("/metrics: 200, the exposition's content type",
          st == 200 and hdr.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
          (st, hdr))
try:
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    parse_err = None
except Exception as e:  # noqa: BLE001 (any parser error is the finding)
    fams, parse_err = {}, e
env.check("prometheus_client's parser reads the whole exposition (%d families)" % len(fams),
          parse_err is None and len(fams) > 40, parse_err)
# prometheus_client names counters without _total.
want = {
    "fieldmq_broker_clients": "gauge", "fieldmq_broker_connections": "counter", "fieldmq_broker_messages_received": "counter",
    "fieldmq_broker_acl_denials": "counter", "fieldmq_store_queued_messages": "gauge",
    "fieldmq_store_commit_duration_seconds": "histogram", "fieldmq_store_commit_errors": "counter",
    "fieldmq_uplink_connected": "gauge", "fieldmq_uplink_queued_messages": "gauge",
    "fieldmq_uplink_connects": "counter", "fieldmq_device_online": "gauge",
    "fieldmq_device_readings": "counter", "fieldmq_device_last_success_timestamp_seconds": "gauge",
    "fieldmq_modbus_requests": "counter", "fieldmq_http_requests": "counter",
    "fieldmq_device_requests": "counter", "fieldmq_device_request_errors": "counter",
    "fieldmq_device_request_duration_seconds": "histogram",
    "fieldmq_broker_slow_consumer_dropped_messages": "counter",
    "fieldmq_broker_slow_consumer_disconnects": "counter",
    "fieldmq_store_sqlite_memory_bytes": "gauge", "fieldmq_store_sqlite_page_cache_bytes": "gauge",
    "fieldmq_malloc_heap_bytes": "gauge", "fieldmq_malloc_in_use_bytes": "gauge",
    "process_resident_memory_bytes": "gauge", "process_cpu_seconds": "counter",
    "process_open_fds": "gauge", "process_start_time_seconds": "gauge",
}
for name, typ in want.items():
    f = fams.get(name)
    env.check("  %s is a %s" % (name, typ), f is not None and f.type == typ,
              f and f.type)
hist = fams.get("fieldmq_store_commit_duration_seconds")
count = [s.value for s in hist.samples if s.name.endswith("_count")] if hist else []
env.check("  the store's commit histogram has observations", count and count[0] > 0, count)
dev = [s for s in fams["fieldmq_device_readings"].samples] if "fieldmq_device_readings" in fams \
    else []
env.check("  per-device series carry device and protocol labels",
          any(s.labels == {"device": "boiler", "protocol": "modbus"} and s.value > 0 for s in dev),
          dev)
lat = [s for s in fams["fieldmq_device_request_duration_seconds"].samples
       if s.name.endswith("_count")] if "fieldmq_device_request_duration_seconds" in fams else []
env.check("  per-device request latency histogram with observations (Modbus)",
          any(s.labels.get("device") == "boiler" and s.value > 0 for s in lat), lat)
errs = [s for s in fams["fieldmq_device_request_errors"].samples] \
    if "fieldmq_device_request_errors" in fams else []
env.check("  request errors by kind (timeout, exception, transport)",
          sorted(s.labels.get("kind") for s in errs if s.labels.get("device") == "boiler") ==
          ["exception", "timeout", "transport"], errs)
env.check("  a CoAP device's kinds (timeout, exception, transport, parse, tls)",
          sorted(s.labels.get("kind") for s in errs if s.labels.get("device") == "weather") ==
          ["exception", "parse", "timeout", "tls", "transport"], errs)
env.check("  a serial device's kinds (timeout, transport, parse, overrun)",
          sorted(s.labels.get("kind") for s in errs if s.labels.get("device") == "dmm") ==
          ["overrun", "parse", "timeout", "transport"], errs)


def dev_sample(fam, dev, suffix=""):
    f = fams.get(fam)
    v = [s.value for s in f.samples if s.name == fam + suffix and s.labels.get("device") == dev
         and not s.labels.get("kind")] if f else []
    return v[0] if v else None


for dev, proto in (("weather", "coap"), ("dmm", "serial")):
    req = dev_sample("fieldmq_device_requests", dev, "_total")
    cnt = dev_sample("fieldmq_device_request_duration_seconds", dev, "_count")
    bad = sum(s.value for s in errs if s.labels.get("device") == dev
              and s.labels.get("kind") in ("timeout", "transport", "tls"))
    env.check("  %s (%s): requests %s, latency count %s == requests answered (%s)"
              % (dev, proto, req, cnt, req and req - bad),
              req and req > 0 and cnt and cnt == req - bad)
sq = {n: [s.value for s in fams[n].samples] if n in fams else []
      for n in ("fieldmq_store_sqlite_memory_bytes", "fieldmq_store_sqlite_page_cache_bytes")}
env.check("  SQLite's heap is counted and holds its page cache",
          all(len(v) == 1 for v in sq.values()) and
          sq["fieldmq_store_sqlite_memory_bytes"][0] >= sq["fieldmq_store_sqlite_page_cache_bytes"][0] > 0, sq)
mi = {n: [s.value for s in fams[n].samples] if n in fams else []
      for n in ("fieldmq_malloc_heap_bytes", "fieldmq_malloc_in_use_bytes")}
# A sanitizer build's malloc is ASan's: glibc's mallinfo2 then reads 0, so only
# the series' presence is checked there.
san = b"libasan" in subprocess.run(["ldd", FIELDMQ], capture_output=True, timeout=10).stdout
env.check("  glibc malloc: heap held >= in use >= what went through gw_malloc and SQLite%s"
          % (" (ASan build: present only)" if san else ""),
          all(len(v) == 1 for v in mi.values()) and
          (san or mi["fieldmq_malloc_heap_bytes"][0] >= mi["fieldmq_malloc_in_use_bytes"][0] >=
           sq["fieldmq_store_sqlite_memory_bytes"][0] > 0), (mi, sq))
rss = [s.value for s in fams["process_resident_memory_bytes"].samples] \
    if "process_resident_memory_bytes" in fams else [0]
start = [s.value for s in fams["process_start_time_seconds"].samples] \
    if "process_start_time_seconds" in fams else [0]
env.check("  process figures are plausible (RSS 1-200 MB, started in the last minute)",
          1e6 < rss[0] < 2e8 and abs(time.time() - start[0]) < 60, (rss, start))
st, hdr, body = get("/metrics", "HEAD")
env.check("HEAD /metrics: 200, Content-Length, no body",
          st == 200 and int(hdr.get("Content-Length", 0)) > 1000 and body == b"", (st, hdr))

# ----------------------------------------------------- a real Prometheus
with open(P("prometheus.yml"), "w") as f:
    f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: fieldmq\n    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n" % http)
plog = open(P("prometheus.log"), "w")
promp = subprocess.Popen(["prometheus", "--config.file=" + P("prometheus.yml"),
                          "--storage.tsdb.path=" + P("prom-data"),
                          "--web.listen-address=127.0.0.1:%d" % prom],
                         stdout=plog, stderr=plog)
env.procs.append(promp)


def promq(q):
    url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (prom, urllib.parse.quote(q))
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.load(r).get("data", {}).get("result", [])
    except (OSError, ValueError):
        return []


env.check("Prometheus %s is up" % subprocess.run(["prometheus", "--version"], capture_output=True,
                                                 text=True).stdout.split()[2],
          wait_port(prom, 20))
env.check("Prometheus scrapes fieldmq: up == 1",
          wait_until(lambda: [r["value"][1] for r in promq('up{job="fieldmq"}')] == ["1"], 30,
                     0.5), promq("up"))
env.check("Prometheus has fieldmq's series (device readings of boiler > 0)",
          wait_until(lambda: any(float(r["value"][1]) > 0 for r in
                                 promq('fieldmq_device_readings_total{device="boiler"}')), 15, 0.5),
          promq("fieldmq_device_readings_total"))
n = promq('count({__name__=~"fieldmq_.+"})')
env.check("  and many of them (%s series)" % (n and n[0]["value"][1]),
          n and int(n[0]["value"][1]) > 40, n)
q = promq("histogram_quantile(0.99, fieldmq_store_commit_duration_seconds_bucket)")
env.check("  the commit latency histogram works in PromQL (p99 %s s)" % (q and q[0]["value"][1]),
          len(q) == 1, q)
q = promq("histogram_quantile(0.5, fieldmq_device_request_duration_seconds_bucket)")
env.check("  device request latency in PromQL for each protocol (median %s)"
          % {r["metric"].get("protocol"): r["value"][1] for r in q},
          sorted(r["metric"].get("protocol") for r in q) == ["coap", "modbus", "serial"], q)
q = promq('sum by (protocol) (fieldmq_device_requests_total{device=~"weather|dmm"})')
env.check("  and their requests (%s)" % {r["metric"].get("protocol"): r["value"][1] for r in q},
          sorted(r["metric"].get("protocol") for r in q) == ["coap", "serial"] and
          all(float(r["value"][1]) > 0 for r in q), q)
tgt = []
try:
    with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/targets" % prom, timeout=3) as r:
        tgt = json.load(r)["data"]["activeTargets"]
except (OSError, ValueError, KeyError):
    pass
env.check("  the target has no scrape error", tgt and tgt[0].get("lastError") == "", tgt)
env.stop(promp)

# ---------------------------------------------------------- status data
st, _, body = get("/status.json")
try:
    s = json.loads(body)
except ValueError:
    s = {}
pts = {p["name"]: p for d in s.get("devices", []) for p in d["points"]}
env.check("/status.json: gateway id, version, uptime, uplink, devices and points",
          s.get("id") == "gw1" and s.get("version") and "uptime" in s and
          s.get("uplink", {}).get("connected") is True and
          pts.get("temperature", {}).get("value") == 21 and
          pts["temperature"].get("unit") == "°C" and pts["temperature"].get("quality") == "good",
          s)
st, hdr, body = get("/")
env.check("/: the status page, self-contained (%d bytes, no external URL)" % len(body),
          st == 200 and hdr.get("Content-Type", "").startswith("text/html") and
          b"EventSource" in body and b"http://" not in body and b"https://" not in body and
          len(body) < 8192, (st, len(body)))
ev = raw(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", timeout=1.5)
env.check("/events: an event stream with the status as its first event",
          b"text/event-stream" in ev and b'\ndata: {"id":"gw1"' in ev, ev[:300])

# -------------------------------------------------------- bad requests
st, _, _ = get("/nope")
env.check("unknown path: 404", st == 404, st)
for m in ("POST", "PUT", "DELETE", "OPTIONS"):
    st, hdr, _ = get("/metrics", m)
    env.check("%s: 405 with Allow: GET, HEAD" % m, st == 405 and hdr.get("Allow") == "GET, HEAD",
              (st, hdr))
big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
r = raw(big)
env.check("oversized head (9 KB): 431", r.startswith(b"HTTP/1.1 431 "), r[:80])
r = raw(b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(40)) + b"\r\n")
env.check("40 header lines: 431", r.startswith(b"HTTP/1.1 431 "), r[:80])
r = raw(b"\x16\x03\x01garbage\r\n\r\n")
env.check("garbage: 400", r.startswith(b"HTTP/1.1 400 "), r[:80])
r = raw(b"GET / HTTP/2.0\r\n\r\n")
env.check("HTTP/2.0 request line: 400", r.startswith(b"HTTP/1.1 400 "), r[:80])

# A slowloris: one byte every 0.5 s, never the empty line. The header timeout
# (10 s) closes it however steadily it trickles; meanwhile others are served.
slow = socket.create_connection(("127.0.0.1", http))
slow.settimeout(0.2)
t0 = time.time()
closed_after = None
line = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100
i = 0
served = False
while time.time() - t0 < 20:
    try:
        slow.send(line[i % len(line):i % len(line) + 1])
        i += 1
        b = slow.recv(4096)
        if b == b"" or b.startswith(b"HTTP/1.1 408"):
            closed_after = time.time() - t0
            break
    except socket.timeout:
        pass
    except (BrokenPipeError, ConnectionResetError):
        closed_after = time.time() - t0
        break
    if not served and time.time() - t0 > 2:
        served = get("/healthz")[0] == 200
    time.sleep(0.3)
slow.close()
env.check("slowloris: closed by the header timeout (after %s s)" %
          (closed_after and round(closed_after, 1)),
          closed_after is not None and 9 <= closed_after <= 13, closed_after)
env.check("  while it trickled, other requests were served", served)

# Too many at once: 40 idle connections; the listener keeps 32 and closes the rest at once.
socks = [socket.create_connection(("127.0.0.1", http)) for _ in range(40)]
time.sleep(0.5)
refused = 0
for s_ in socks:
    s_.settimeout(0.3)
    try:
        refused += s_.recv(10) == b""
    except socket.timeout:
        pass
    except ConnectionResetError:
        refused += 1
env.check("40 idle connections: 8 over max_clients (32) are closed at once", refused == 8, refused)
for s_ in socks:
    s_.close()


def healthz_ok():
    """/healthz answers 200; a connection still over the limit (reset) is a no."""
    try:
        return get("/healthz")[0] == 200
    except OSError:
        return False


env.check("  and the listener serves again once they are gone", wait_until(healthz_ok, 5))
m = get("/metrics")[2].decode()
env.check("  the bad requests and the timeout are counted",
          "fieldmq_http_header_timeouts_total 0" not in m and
          "fieldmq_http_bad_requests_total 0" not in m,
          [x for x in m.splitlines() if x.startswith("fieldmq_http")])
env.check("fieldmq stops cleanly", env.stop(fmq) == 0)

# ------------------------------------------------------------- https://
ini = write_ini("fieldmq-tls.ini", "https://127.0.0.1:%d" % https)
with open(ini, "a") as f:
    pass
fmq = env.fieldmq(ini, tcp)
env.check("https:// listener up", wait_port(https))
ctx = ssl.create_default_context(cafile=P("ca.crt"))
try:
    with urllib.request.urlopen("https://localhost:%d/healthz" % https, context=ctx,
                                timeout=5) as r:
        got = (r.status, r.read())
except (OSError, ssl.SSLError) as e:
    got = e
env.check("https://: /healthz over TLS with the broker's certificate", got == (200, b"ok\n"), got)
try:
    with urllib.request.urlopen("https://localhost:%d/metrics" % https, context=ctx,
                                timeout=5) as r:
        body = r.read().decode()
    ok = sum(1 for _ in text_string_to_metric_families(body)) > 40
except (OSError, ssl.SSLError, ValueError) as e:
    ok = e
env.check("https://: /metrics parses", ok is True, ok)
r = raw(b"GET /healthz HTTP/1.1\r\n\r\n", port=https, timeout=3)
env.check("https://: plain HTTP is not answered in clear", not r.startswith(b"HTTP/"), r[:80])
env.check("fieldmq stops cleanly (https)", env.stop(fmq) == 0)

# ------------------------------------------------- Basic authentication
import base64  # noqa: E402
import concurrent.futures  # noqa: E402

subprocess.run(["mosquitto_passwd", "-c", "-b", P("http.passwd"), "ops", "s3cret:x"], check=True)
subprocess.run(["mosquitto_passwd", "-b", P("http.passwd"), "viewer", "view"], check=True)
ini = write_ini("fieldmq-auth.ini", "127.0.0.1:%d" % http, "password_file = http.passwd\n")
fmq = env.fieldmq(ini, tcp)
env.check("password_file: listener up", wait_port(http))


def auth_get(path, user=None, pw=None, method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (http, path), method=method)
    if user is not None:
        tok = base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
        req.add_header("Authorization", "Basic " + tok)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


st, hdr, _ = auth_get("/metrics")
env.check("no credentials: 401 with WWW-Authenticate: Basic",
          st == 401 and hdr.get("WWW-Authenticate", "").startswith("Basic realm="), (st, hdr))
env.check("wrong password: 401", auth_get("/metrics", "ops", "s3cret")[0] == 401)
env.check("unknown user: 401", auth_get("/metrics", "nobody", "s3cret:x")[0] == 401)
st, _, body = auth_get("/metrics", "ops", "s3cret:x")
env.check("right password (with a colon in it, made by mosquitto_passwd): 200 /metrics",
          st == 200 and b"fieldmq_http_unauthorized_total 3" in body, (st, body[-300:]))
env.check("second user, HEAD: 200", auth_get("/healthz", "viewer", "view", "HEAD")[0] == 200)
r = raw(b"GET /metrics HTTP/1.1\r\nAuthorization: Basic !!!!\r\n\r\n")
env.check("malformed credentials: 401", r.startswith(b"HTTP/1.1 401 "), r[:60])
# Checks run on the thread pool, two at a time: a burst gets 200s and 503s
# (Retry-After), never a wrong answer, and the loop keeps serving.
with concurrent.futures.ThreadPoolExecutor(12) as ex:
    res = list(ex.map(lambda i: auth_get("/healthz", "ops", "s3cret:x"), range(12)))
codes = sorted(r_[0] for r_ in res)
env.check("12 requests at once: each 200 or 503 with Retry-After (%s)" % codes,
          200 in codes and set(codes) <= {200, 503} and
          all(r_[1].get("Retry-After") == "1" for r_ in res if r_[0] == 503), codes)

# SIGHUP reads the password file again, as the broker's: old credentials stop
# working, new ones work; a broken file keeps the one in use (file:line logged).
import signal  # noqa: E402

subprocess.run(["mosquitto_passwd", "-c", "-b", P("http.passwd.new"), "ops", "n3w"], check=True)
os.replace(P("http.passwd.new"), P("http.passwd"))
log_at = len(env.log())
fmq.send_signal(signal.SIGHUP)
env.check("SIGHUP: [http] password_file read again (1 user)",
          env.wait_log(r"reload: \[http\] password_file \S*http.passwd read again \(1 users\)",
                       10, log_at), env.log()[log_at:])
env.check("  the old password: 401", auth_get("/metrics", "ops", "s3cret:x")[0] == 401)
env.check("  a user no longer in the file: 401", auth_get("/healthz", "viewer", "view")[0] == 401)
env.check("  the new password: 200", auth_get("/metrics", "ops", "n3w")[0] == 200)
with open(P("http.passwd"), "a") as f:
    f.write("no colon on this line\n")
log_at = len(env.log())
fmq.send_signal(signal.SIGHUP)
env.check("SIGHUP with a broken file: logged with file:line, the previous one kept",
          env.wait_log(r"http.passwd:2: \[http\] password_file: .*keeping the previous one", 10,
                       log_at), env.log()[log_at:])
env.check("  the password in use still works: 200", auth_get("/metrics", "ops", "n3w")[0] == 200)
env.check("  the old one still does not: 401", auth_get("/metrics", "ops", "s3cret:x")[0] == 401)
env.check("fieldmq stops cleanly (password_file)", env.stop(fmq) == 0)
with open(P("bad.passwd"), "w") as f:
    f.write(open(P("http.passwd")).readline() + "broken line\n")
ini = write_ini("fieldmq-badpw.ini", "127.0.0.1:%d" % http, "password_file = bad.passwd\n")
log_at = len(env.log())
p_ = subprocess.Popen([os.path.abspath(os.path.join(BUILD, "fieldmq")), "-c", ini],
                      cwd=env.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
out, _ = p_.communicate(timeout=10)
env.check("a bad password_file: fieldmq does not start, says file:line",
          p_.returncode != 0 and "bad.passwd:2" in out, (p_.returncode, out[-400:]))

# --------------------------------------------------- config errors
r = subprocess.run([os.path.abspath(os.path.join(BUILD, "fieldmq")), "--check-config", "-c",
                    write_ini("bad.ini", "ftp://1.2.3.4:80")], capture_output=True, text=True,
                   cwd=env.dir)
env.check("[http] listen = ftp://...: refused with file:line, exit 2",
          r.returncode == 2 and "bad.ini:" in r.stderr and "[http] listen" in r.stderr,
          (r.returncode, r.stderr))
env.stop(cloud_p)
env.finish()
