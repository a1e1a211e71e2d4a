#!/usr/bin/python3
"""Modbus adapter against the simulator over RTU (a socat pty pair: several
unit ids on one line, one of them absent) and over RTU-over-TCP (the
adapter's own framing): values of every type, writes, exceptions."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_modbus_lib import (all_type_args, check, check_all_types, free_port, last_value,  # noqa: E402
                             readings, run_probe, spawn, start_sim, stats, statuses, stop)


def test_rtu_line():
    tmp = tempfile.mkdtemp(prefix="fieldmq-mbus-")
    a, b = os.path.join(tmp, "sim"), os.path.join(tmp, "gw")
    socat = spawn(["socat", "pty,raw,echo=0,link=" + a, "pty,raw,echo=0,link=" + b],
                  stderr=subprocess.DEVNULL)
    sim = None
    try:
        deadline = time.time() + 5
        while not (os.path.exists(a) and os.path.exists(b)) and time.time() < deadline:
            time.sleep(0.05)
        check(os.path.exists(a) and os.path.exists(b), "socat made the pty pair")
        sim = start_sim("--rtu", a, "--baud", "19200", "--parity", "E",
                        "--exception", "2:holding:5:4")
        bus = ["--bus", "line,type=rtu,device=%s,baud=19200,parity=E,timeout=300,turnaround=5,"
               "rs485=1" % b]
        devs = ["--dev", "u1,bus=line,unit=1,poll=500",
                "--dev", "u2,bus=line,unit=2,poll=500",
                "--dev", "u3,bus=line,unit=3,poll=500,retries=1,degrade_after=0"]
        pts = all_type_args("u1") + [
            "--pt", "u1/sp,addr=200,rw=1",
            "--pt", "u1/fsp,addr=202,type=float32,rw=1",
            "--pt", "u1/coil1w,area=coil,addr=1,type=bool,rw=1",
            "--pt", "u2/h0,addr=0",
            "--pt", "u2/f,addr=1,type=float32,bo=CDAB",
            "--pt", "u2/failing,addr=5,rw=1",
            "--pt", "u3/h0,addr=0",
        ]
        writes = ["--write", "700,u1/sp,4321",
                  "--write", "750,u1/fsp,-1.5",
                  "--write", "800,u1/coil1w,1",
                  "--write", "850,u2/failing,1"]
        evs = run_probe(bus + devs + pts + writes, 3.5)
        check_all_types(evs, "u1")
        check(last_value(evs, "u2", "h0") == 2222, "unit 2 on the same line")
        check(last_value(evs, "u2", "f") == 3.5, "unit 2 float32 CDAB")
        fl = readings(evs, "u2", "failing")
        check(len(fl) == 1 and fl[0]["q"] == "bad",
              "exception inside a merged read: only that point bad, once (%r)" % fl)
        check(statuses(evs, "u1") == [True] and statuses(evs, "u2") == [True],
              "units 1 and 2 online")
        check(statuses(evs, "u3") == [False], "absent unit 3 offline, others unaffected")
        check(len(readings(evs, "u3", "h0", "bad")) == 1, "unit 3 point bad once")
        cmds = {e["id"]: e for e in evs if e["ev"] == "cmd"}
        for i in (1, 2, 3):
            check(cmds.get(i, {}).get("ok"), "RTU write %d ok: %r" % (i, cmds.get(i)))
        check(cmds.get(4, {}).get("error") == "server device failure",
              "RTU exception 4 reported: %r" % cmds.get(4))
        check(last_value(evs, "u1", "sp") == 4321, "FC 6 over RTU read back")
        check(last_value(evs, "u1", "fsp") == -1.5, "FC 16 over RTU read back")
        check(last_value(evs, "u1", "coil1w") is True, "FC 5 over RTU read back")
    finally:
        if sim:
            stop(sim)
        stop(socat)
        shutil.rmtree(tmp, ignore_errors=True)


def test_rtu_over_tcp():
    port = free_port()
    sim = start_sim("--rtu-tcp", "127.0.0.1:%d" % port, "--exception", "1:holding:300:2")
    try:
        bus = ["--bus", "rt,type=rtu_over_tcp,port=%d,timeout=300" % port]
        devs = ["--dev", "d,bus=rt,unit=1,poll=300",
                "--dev", "d2,bus=rt,unit=2,poll=300",
                "--dev", "gone,bus=rt,unit=9,poll=300,degrade_after=0"]
        pts = all_type_args("d") + [
            "--pt", "d/sp,addr=200,rw=1",
            "--pt", "d/i64w,addr=220,type=int64,bo=DCBA,rw=1",
            "--pt", "d/coils,area=coil,addr=10,type=bool,rw=1",
            "--pt", "d/ex,addr=300",
            "--pt", "d2/h0,addr=0",
            "--pt", "gone/h0,addr=0",
        ]
        writes = ["--write", "500,d/sp,99",
                  "--write", "550,d/i64w,-5000000000",
                  "--write", "600,d/coils,true"]
        evs = run_probe(bus + devs + pts + writes + ["--dev", "wm,bus=rt,unit=1,wma=1",
                                                     "--pt", "wm/c,area=coil,addr=11,type=bool,rw=1",
                                                     "--write", "650,wm/c,true"], 2.5)
        check_all_types(evs, "d")
        check(last_value(evs, "d2", "h0") == 2222, "unit 2 over RTU-over-TCP")
        check(statuses(evs, "gone") == [False], "absent unit times out and goes offline")
        check(statuses(evs, "d") == [True], "unit 1 stays online")
        ex = readings(evs, "d", "ex")
        check(len(ex) == 1 and ex[0]["q"] == "bad", "exception read: bad once")
        cmds = {e["id"]: e for e in evs if e["ev"] == "cmd"}
        for i in (1, 2, 3, 4):
            check(cmds.get(i, {}).get("ok"), "write %d ok: %r" % (i, cmds.get(i)))
        check(last_value(evs, "d", "sp") == 99, "FC 6 read back")
        check(last_value(evs, "d", "i64w") == -5000000000, "int64 DCBA FC 16 read back")
        check(last_value(evs, "d", "coils") is True, "FC 5 read back")
        check(last_value(evs, "wm", "c") is True, "FC 15 (write_multiple always) read back")
        check(stats(evs)["failures"] > 0, "failures counted")
    finally:
        stop(sim)


if __name__ == "__main__":
    test_rtu_line()
    test_rtu_over_tcp()
    print("test_modbus_rtu: all passed")
