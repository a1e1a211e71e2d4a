#!/usr/bin/env bash
# MQTT-SN discovery: SEARCHGW -> GWINFO on the unicast port (here, on
# 127.0.0.1), and ADVERTISE every advertise_interval + SEARCHGW heard on the
# multicast group ([mqttsn] multicast = GROUP:PORT). The multicast part runs in
# a network namespace of its own with only lo up, so nothing is ever sent on
# the machine's interfaces; where a namespace cannot be made (not root, no
# CAP_SYS_ADMIN), that part is skipped with a SKIP line.
. "$(dirname "$0")/lib.sh"
PY=${PYTHON:-/usr/bin/python3}
DIR=$(cd "$(dirname "$0")" && pwd)

# $1 = broker TCP port, $2 = MQTT-SN UDP port, $3 = extra [mqttsn] lines; writes $T/$4.ini
write_ini() {
	cat > "$T/$4.ini" <<INI
[gateway]
id = sn1
data_dir = data-$4
devices =
[broker]
listen = 127.0.0.1:$1
persist = no
[mqttsn]
enabled = yes
listen = 127.0.0.1:$2
gateway_id = 42
$3
INI
}

# The probe: a small MQTT-SN peer (tests/integration/mqttsn_client.py).
cat > "$T/probe.py" <<'PY'
import socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
import mqttsn_client as sn

def group_socket(group, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
    return s

def advertises(group, port, seconds):
    """ADVERTISE messages heard on the group within seconds: [(time, gw_id, duration, src)]."""
    s = group_socket(group, port)
    out, end = [], time.time() + seconds
    while time.time() < end:
        s.settimeout(max(end - time.time(), 0.01))
        try:
            d, src = s.recvfrom(2000)
        except socket.timeout:
            break
        m = sn.parse(d)
        if m.type == sn.ADVERTISE:
            out.append((time.time(), m.gw_id, m.duration, src))
    s.close()
    return out

cmd = sys.argv[2]
if cmd == "unicast":
    port = int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    gi = sn.searchgw(s, ("127.0.0.1", port))
    assert gi is not None, "no GWINFO"
    assert gi.gw_id == 42, gi
    print("GWINFO gw_id=%d from the unicast port" % gi.gw_id)
elif cmd == "advertise":
    group, port, ucast = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    ads = advertises(group, port, 3.5)
    assert len(ads) >= 2, "ADVERTISE heard %d times in 3.5s" % len(ads)
    assert all(a[1] == 42 and a[2] == 1 for a in ads), ads
    gaps = [b[0] - a[0] for a, b in zip(ads, ads[1:])]
    assert all(0.6 < g < 1.6 for g in gaps), gaps
    # It comes from the unicast address, where clients then connect.
    assert all(a[3] == ("127.0.0.1", ucast) for a in ads), ads
    print("ADVERTISE x%d, gw_id 42, duration 1 s, gaps %s" % (len(ads), ["%.2f" % g for g in gaps]))
elif cmd == "search":
    group, port, ucast = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    s.bind(("127.0.0.1", 0))
    s.sendto(sn.frame(sn.SEARCHGW, b"\x01"), (group, port))
    s.settimeout(5)
    while True:
        d, src = s.recvfrom(2000)
        m = sn.parse(d)
        if m.type == sn.GWINFO:
            break
    assert m.gw_id == 42 and src == ("127.0.0.1", ucast), (m, src)
    # The searcher connects where GWINFO came from.
    c = sn.SnClient(src, "found", sock=s)
    c.connect()
    c.disconnect()
    print("SEARCHGW on %s:%d -> GWINFO gw_id 42 from %s:%d; CONNECT there accepted"
          % (group, port, src[0], src[1]))
elif cmd == "silent":
    group, port = sys.argv[3], int(sys.argv[4])
    ads = advertises(group, port, 2.5)
    assert not ads, ads
    print("no ADVERTISE on the group with multicast off")
PY

start_fieldmq() { # name tcp-port [ip netns exec NS]
	local name=$1 port=$2
	shift 2
	"$@" "$FIELDMQ" -c "$T/$name.ini" > "$T/$name.log" 2>&1 &
	PIDS+=("$!")
	eval "PID_$name=$!"
	local i
	for i in $(seq 1 50); do
		if "$@" "$PY" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

stop_fieldmq() { # name
	local pid
	eval "pid=\$PID_$1"
	kill -TERM "$pid"
	wait_exit "$pid" 50
	check "$1: clean exit" test "$EXIT_STATUS" = 0
}

# --- unicast discovery, in the machine's namespace, multicast off (the default).
TP=$(free_port)
UP=$(free_port)
write_ini "$TP" "$UP" "advertise_interval = 1s" uni
start_fieldmq uni "$TP" || not_ok "fieldmq (unicast) did not start"
check "SEARCHGW on the unicast port -> GWINFO with gateway_id" "$PY" "$T/probe.py" "$DIR" unicast "$UP"
check "multicast off by default: the log names no group" bash -c "! grep -qi 'multicast' '$T/uni.log'"
stop_fieldmq uni

# --- multicast, in a namespace of its own.
if ! netns_add fmq-sn; then
	echo "SKIP multicast discovery: cannot create a network namespace ($(head -c 200 "$T/netns.err"))"
	finish
	exit 0
fi
# lo comes up without the MULTICAST flag. Linux 6.x loops group traffic back on
# lo without it (checked), but set it anyway: it costs nothing and is what the
# flag is for.
"${NSX[@]}" ip link set lo multicast on
"${NSX[@]}" ip route add 224.0.0.0/4 dev lo
GROUP=225.1.1.1
MPORT=1883
write_ini 18830 18840 "advertise_interval = 1s
multicast = $GROUP:$MPORT" mc
start_fieldmq mc 18830 "${NSX[@]}" || not_ok "fieldmq (multicast) did not start in $NS"
check "ADVERTISE every advertise_interval on $GROUP:$MPORT" \
	"${NSX[@]}" "$PY" "$T/probe.py" "$DIR" advertise "$GROUP" "$MPORT" 18840
check "SEARCHGW on $GROUP:$MPORT -> GWINFO; CONNECT to its source" \
	"${NSX[@]}" "$PY" "$T/probe.py" "$DIR" search "$GROUP" "$MPORT" 18840
check "SEARCHGW on the unicast port still answered" \
	"${NSX[@]}" "$PY" "$T/probe.py" "$DIR" unicast 18840
check "the log names the group" grep -q "multicast $GROUP:$MPORT" "$T/mc.log"
stop_fieldmq mc

# Multicast off (the default) in the same namespace: nothing on the group.
write_ini 18831 18841 "advertise_interval = 1s" off
start_fieldmq off 18831 "${NSX[@]}" || not_ok "fieldmq (multicast off) did not start in $NS"
check "no ADVERTISE on the group when multicast is off" \
	"${NSX[@]}" "$PY" "$T/probe.py" "$DIR" silent "$GROUP" "$MPORT"
stop_fieldmq off
finish
