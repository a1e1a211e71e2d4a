#!/usr/bin/python3
"""Modbus TCP answers that arrive in pieces, or glued to a stale answer.

A network line reads into one buffer of the adapter and keeps only the first
bytes of an unfinished answer (modbus_net_uv.c, on_read): this device, a small
Modbus TCP server in this process on 127.0.0.1, cuts each answer as a serial
gateway or a slow stack may - whole; one byte at a time; header then body;
three bytes, then the rest glued to a copy of itself with a stale transaction
id - and the probe must read every value right, with no failure. Without the
piece handling the values are wrong or the device goes offline."""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_modbus_lib import check, free_port, readings, run_probe, stats, statuses  # noqa: E402

MODES = ["whole", "bytes", "header", "glued"]


def value(addr):
    return (addr * 3 + 1) & 0xFFFF


class Device(threading.Thread):
    """Answers FC 3 reads on one connection at a time, each answer cut as the next mode."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.stop = False
        self.answers = {m: 0 for m in MODES}
        self.errors = []

    def send(self, c, rsp, n):
        mode = MODES[n % len(MODES)]
        if mode == "whole":
            c.sendall(rsp)
        elif mode == "bytes":
            for b in rsp:
                c.sendall(bytes([b]))
                time.sleep(0.002)
        elif mode == "header":
            c.sendall(rsp[:7])
            time.sleep(0.01)
            c.sendall(rsp[7:])
        else:
            stale = struct.pack(">H", (struct.unpack(">H", rsp[:2])[0] - 1) & 0xFFFF) + rsp[2:]
            c.sendall(rsp[:3])
            time.sleep(0.01)
            c.sendall(rsp[3:] + stale)
        self.answers[mode] += 1

    def serve(self, c):
        c.settimeout(0.2)
        buf = b""
        n = 0
        while not self.stop:
            try:
                d = c.recv(512)
            except socket.timeout:
                continue
            if not d:
                return
            buf += d
            while len(buf) >= 12:
                tid, _, length, unit, fc, addr, count = struct.unpack(">HHHBBHH", buf[:12])
                buf = buf[6 + length:]
                if fc != 3:
                    self.errors.append("fc %d" % fc)
                    continue
                regs = b"".join(struct.pack(">H", value(addr + i)) for i in range(count))
                pdu = bytes([fc, len(regs)]) + regs
                rsp = struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu
                self.send(c, rsp, n)
                n += 1

    def run(self):
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            with c:
                self.serve(c)
        self.srv.close()


def test_pieces():
    port = free_port()
    dev = Device(port)
    dev.start()
    try:
        args = ["--bus", "b,type=tcp,port=%d,timeout=1000" % port,
                "--dev", "d,bus=b,unit=1,poll=100"]
        for a in (0, 1, 2, 9):
            args += ["--pt", "d/p%d,addr=%d" % (a, a)]
        evs = run_probe(args, 2.5)
    finally:
        dev.stop = True
        dev.join(5)
    st = stats(evs)
    check(not dev.errors, "the device understood every request: %r" % dev.errors)
    check(all(dev.answers[m] >= 2 for m in MODES), "every cut sent at least twice: %r" % dev.answers)
    check(statuses(evs, "d") == [True], "device online once, never offline")
    check(st["failures"] == 0, "no failed request (%r)" % st)
    for a in (0, 1, 2, 9):
        rs = readings(evs, "d", "p%d" % a)
        check(len(rs) >= 8 and all(r["q"] == "good" and r["v"] == value(a) for r in rs),
              "p%d: %d readings, all good and %d" % (a, len(rs), value(a)))


if __name__ == "__main__":
    test_pieces()
    print("all checks passed")
