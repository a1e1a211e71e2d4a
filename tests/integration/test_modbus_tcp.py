#!/usr/bin/python3
"""Modbus adapter against the simulator over Modbus TCP: every type and byte
order, writes (read back through the adapter and through pymodbus), refusals,
exceptions, request coalescing, a dead device going offline and coming back,
and a slow device not delaying a fast one."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_modbus_lib import (all_type_args, check, check_all_types, free_port, readings,  # noqa: E402
                             run_probe, start_sim, stats, statuses, stop, last_value)


def test_types_and_writes():
    port = free_port()
    sim = start_sim("--tcp", "127.0.0.1:%d" % port, "--exception", "1:holding:500-509:2")
    try:
        bus = ["--bus", "b,type=tcp,port=%d,timeout=500" % port,
               "--dev", "d,bus=b,unit=1,poll=400"]
        pts = all_type_args("d") + [
            "--pt", "d/sp,addr=200,rw=1",
            "--pt", "d/fsp,addr=202,type=float32,rw=1",
            "--pt", "d/coil1w,area=coil,addr=1,type=bool,rw=1",
            "--pt", "d/scaledw,addr=204,scale=0.1,rw=1",
            "--pt", "d/i32w,addr=206,type=int32,bo=CDAB,rw=1",
            "--pt", "d/strw,addr=210,type=string,len=4,rw=1",
            "--pt", "d/bad,addr=500,rw=1",
        ]
        writes = [
            "--write", "300,d/sp,777",          # 1: FC 6
            "--write", "350,d/fsp,23.25",       # 2: FC 16
            "--write", "400,d/coil1w,true",     # 3: FC 5
            "--write", "450,d/scaledw,21.5",    # 4: 215 after scaling
            "--write", "500,d/i32w,-70000",     # 5: word-swapped int32
            "--write", '550,d/strw,"hey"',      # 6: string
            "--write", "600,d/sp,70000",        # 7: out of range
            "--write", '650,d/fsp,"hot"',       # 8: string to a float
            "--write", "700,d/u16,1",           # 9: read-only point
            "--write", "750,d/scaledw,21.55",   # 10: not whole after scaling
            "--write", "800,d/bad,1",           # 11: device exception
        ]
        evs = run_probe(bus + pts + writes, 2.5)
        check(statuses(evs, "d") == [True], "device online once, never offline")
        check_all_types(evs, "d")
        cmds = {e["id"]: e for e in evs if e["ev"] == "cmd"}
        refused = {e["id"]: e for e in evs if e["ev"] == "refused"}
        for i in range(1, 7):
            check(i in cmds and cmds[i]["ok"], "write %d succeeded: %r" % (i, cmds.get(i)))
        check(refused.get(7, {}).get("rc") == -34, "70000 to uint16 refused with -ERANGE")
        check(refused.get(8, {}).get("rc") == -22, "string to float32 refused with -EINVAL")
        check(refused.get(9, {}).get("rc") == -13, "write to an r point refused with -EACCES")
        check(refused.get(10, {}).get("rc") == -22, "non-integer after scaling refused")
        check(11 in cmds and not cmds[11]["ok"] and cmds[11]["error"] == "illegal data address",
              "exception comes back as the result's error: %r" % cmds.get(11))
        check(last_value(evs, "d", "sp") == 777, "uint16 write read back")
        check(last_value(evs, "d", "fsp") == 23.25, "float32 write read back")
        check(last_value(evs, "d", "coil1w") is True, "coil write read back")
        check(abs(last_value(evs, "d", "scaledw") - 21.5) < 1e-9, "scaled write read back")
        check(last_value(evs, "d", "i32w") == -70000, "int32 CDAB write read back")
        check(last_value(evs, "d", "strw") == "hey", "string write read back")
        bad = readings(evs, "d", "bad")
        check(len(bad) == 1 and bad[0]["q"] == "bad" and bad[0]["v"] is None,
              "a point in an exception range is bad exactly once (%d readings)" % len(bad))

        # Independent read-back with pymodbus.
        from pymodbus.client import ModbusTcpClient
        c = ModbusTcpClient("127.0.0.1", port=port)
        check(c.connect(), "pymodbus connects to the simulator")
        r = c.read_holding_registers(200, 11, slave=1)
        check(r.registers[0] == 777, "pymodbus sees 777 at 200")
        check(r.registers[2:4] == [0x41BA, 0x0000], "pymodbus sees float32 23.25 at 202")
        check(r.registers[4] == 215, "pymodbus sees 215 at 204")
        check(r.registers[6:8] == [0xEE90, 0xFFFE],
              "pymodbus sees -70000 CDAB at 206: %r" % r.registers[6:8])
        check(r.registers[10] == 0x6865, "pymodbus sees 'he' at 210")
        check(c.read_coils(1, 1, slave=1).bits[0], "pymodbus sees coil 1 on")
        c.close()
    finally:
        stop(sim)


def test_coalescing():
    port = free_port()
    sim = start_sim("--tcp", "127.0.0.1:%d" % port)
    try:
        base = ["--bus", "b,type=tcp,port=%d" % port]
        # Holding 0..110 with gaps of at most 10 -> one request of 111
        # registers; coils, discretes and the input register one each:
        # 4 requests for 36 points.
        evs = run_probe(base + ["--dev", "d,bus=b,poll=200"] + all_type_args("d"), 1.1)
        s = stats(evs)
        check(s["polls"] >= 3, "polled %d times" % s["polls"])
        check(s["requests"] == 4 * s["polls"], "4 requests per poll (%r)" % s)
        evs = run_probe(base + ["--dev", "d,bus=b,poll=200,one=1"] + all_type_args("d"), 1.1)
        s = stats(evs)
        check(s["requests"] == 36 * s["polls"], "one_request_per_point: 36 per poll (%r)" % s)
        evs = run_probe(base + ["--dev", "d,bus=b,poll=200,max_gap=0,max_regs=8"] +
                        all_type_args("d"), 1.1)
        check_all_types(evs, "d")
    finally:
        stop(sim)


def test_offline_and_back():
    port = free_port()
    sim = start_sim("--tcp", "127.0.0.1:%d" % port)
    args = ["--bus", "b,type=tcp,port=%d,timeout=200" % port,
            "--dev", "d,bus=b,poll=200,retries=2,degrade_after=0",
            "--pt", "d/u16,addr=0", "--pt", "d/f,addr=30,type=float32"]
    import subprocess
    from test_modbus_lib import PROBE, spawn
    p = spawn([PROBE, "--seconds", "4.5"] + args, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE)
    try:
        time.sleep(1.2)
        stop(sim)
        time.sleep(1.5)
        sim = start_sim("--tcp", "127.0.0.1:%d" % port)
        out, err = p.communicate(timeout=20)
    finally:
        stop(sim)
    import json
    evs = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
    check(p.returncode == 0, "probe exited cleanly")
    check(statuses(evs, "d") == [True, False, True], "online, offline, online: %r"
          % statuses(evs, "d"))
    for pt in ("u16", "f"):
        qs = [e["q"] for e in readings(evs, "d", pt)]
        check(qs.count("bad") == 1, "%s bad exactly once during the outage (%r)" % (pt, qs))
        check(qs[-1] == "good", "%s good again after the device came back" % pt)
    # The device's log lines are one per state change, not one per poll.
    lines = [x for x in err.decode().splitlines() if "modbus" in x]
    check(len(lines) <= 4, "at most a few log lines for one outage: %r" % lines)


def test_slow_does_not_delay_fast():
    pslow, pfast = free_port(), free_port()
    slow = start_sim("--tcp", "127.0.0.1:%d" % pslow, "--delay", "700")
    fast = start_sim("--tcp", "127.0.0.1:%d" % pfast)
    try:
        evs = run_probe(["--bus", "bs,type=tcp,port=%d,timeout=2000" % pslow,
                         "--bus", "bf,type=tcp,port=%d,timeout=500" % pfast,
                         "--dev", "slow,bus=bs,poll=100",
                         "--dev", "fast,bus=bf,poll=100",
                         "--pt", "slow/u16,addr=0", "--pt", "fast/u16,addr=0"], 2.5)
        ts = [e["t"] for e in readings(evs, "fast", "u16", "good")]
        slow_n = len(readings(evs, "slow", "u16", "good"))
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        check(len(ts) >= 18, "fast device polled %d times in 2.5 s" % len(ts))
        # Waiting for the slow device would leave a gap of its 700 ms delay; 600 ms leaves
        # room for a loaded machine (309 ms was seen at load 11 with nothing waiting).
        check(max(gaps) < 600, "fast device never waited for the slow one (max gap %d ms)"
              % max(gaps))
        check(1 <= slow_n <= 4, "slow device polled %d times (700 ms each)" % slow_n)
        check(stats(evs)["overruns"] > 0, "slow device's overlapping polls skipped")
    finally:
        stop(slow)
        stop(fast)


def test_drops_and_degrade():
    port = free_port()
    sim = start_sim("--tcp", "127.0.0.1:%d" % port, "--drop-every", "1")
    try:
        # Every request dropped: timeouts; offline after 1 failure, degraded
        # after 2 and then skipped.
        evs = run_probe(["--bus", "b,type=tcp,port=%d,timeout=100" % port,
                         "--dev", "d,bus=b,poll=100,retries=1,degrade_after=2,degrade_for=5000",
                         "--pt", "d/u16,addr=0"], 1.5)
        check(statuses(evs, "d") == [False], "never-answering device announced offline once")
        check(len(readings(evs, "d", "u16", "bad")) == 1, "bad once")
        s = stats(evs)
        check(s["skipped"] >= 5, "degraded device skipped (%r)" % s)
        check(s["requests"] == 2, "only 2 requests before degrading (%r)" % s)
    finally:
        stop(sim)


if __name__ == "__main__":
    test_types_and_writes()
    test_coalescing()
    test_offline_and_back()
    test_slow_does_not_delay_fast()
    test_drops_and_degrade()
    print("test_modbus_tcp: all passed")
