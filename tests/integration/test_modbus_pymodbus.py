#!/usr/bin/python3
"""Cross-check: the Modbus adapter against pymodbus as an independent slave
(register values encoded here with Python's struct, not with our codec)."""
import os
import struct
import subprocess
import sys
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_modbus_lib import check, free_port, last_value, run_probe, spawn, stop  # noqa: E402


def words(fmt, value, order):
    """Registers of value packed big-endian with fmt, then reordered (ABCD..DCBA)."""
    b = struct.pack(">" + fmt, value)
    w = [b[i:i + 2] for i in range(0, len(b), 2)]
    if order in ("CDAB", "DCBA"):
        w.reverse()
    if order in ("BADC", "DCBA"):
        w = [x[::-1] for x in w]
    return [int.from_bytes(x, "big") for x in w]


# address -> (probe point spec, registers, expected value)
CASES = [
    (0, "u16", [4242], 4242),
    (1, "i16,type=int16", words("h", -2, "ABCD"), -2),
    (2, "f32,type=float32", words("f", 1.25, "ABCD"), 1.25),
    (4, "f32badc,type=float32,bo=BADC", words("f", -7.5, "BADC"), -7.5),
    (6, "f32cdab,type=float32,bo=CDAB", words("f", 100.5, "CDAB"), 100.5),
    (8, "f32dcba,type=float32,bo=DCBA", words("f", 0.375, "DCBA"), 0.375),
    (10, "i32cdab,type=int32,bo=CDAB", words("i", -99999, "CDAB"), -99999),
    (12, "u32dcba,type=uint32,bo=DCBA", words("I", 4000000000, "DCBA"), 4000000000),
    (14, "i64badc,type=int64,bo=BADC", words("q", -(2 ** 40) - 3, "BADC"), -(2 ** 40) - 3),
    (18, "u64cdab,type=uint64,bo=CDAB", words("Q", 2 ** 63 + 5, "CDAB"), 2 ** 63 + 5),
    (22, "f64dcba,type=float64,bo=DCBA", words("d", 3.141592653589793, "DCBA"),
     3.141592653589793),
    (26, "str,type=string,len=3", [0x4F4B, 0x2100, 0], "OK!"),
    (29, "scaled,type=int16,scale=0.5,offset=10", words("h", -4, "ABCD"), 8.0),
]

SERVER = textwrap.dedent("""
    import sys
    from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                    ModbusSlaveContext)
    from pymodbus.server import StartTcpServer
    regs = [int(x) for x in sys.argv[2].split(",")]
    store = ModbusSlaveContext(hr=ModbusSequentialDataBlock(0, regs),
                               ir=ModbusSequentialDataBlock(0, regs),
                               co=ModbusSequentialDataBlock(0, [1, 0, 1] + [0] * 97),
                               di=ModbusSequentialDataBlock(0, [0, 1] + [0] * 98),
                               zero_mode=True)
    StartTcpServer(context=ModbusServerContext(slaves=store, single=True),
                   address=("127.0.0.1", int(sys.argv[1])))
""")


def wait_port(port, timeout=10.0):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def main():
    regs = [0] * 100
    for addr, _, ws, _ in CASES:
        regs[addr:addr + len(ws)] = ws
    port = free_port()
    srv = spawn(["/usr/bin/python3", "-c", SERVER, str(port), ",".join(map(str, regs))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        check(wait_port(port), "pymodbus server listening on %d" % port)
        args = ["--bus", "b,type=tcp,port=%d,timeout=1000" % port,
                "--dev", "d,bus=b,poll=300",
                "--pt", "d/coil0,area=coil,addr=0,type=bool",
                "--pt", "d/coil1,area=coil,addr=1,type=bool",
                "--pt", "d/di1,area=discrete,addr=1,type=bool",
                "--pt", "d/in2,area=input,addr=2,type=float32",
                "--pt", "d/w,addr=40,type=float32,bo=CDAB,rw=1",
                "--write", "400,d/w,-12.75"]
        for addr, spec, _, _ in CASES:
            args += ["--pt", "d/%s,addr=%d" % (spec, addr)]
        evs = run_probe(args, 1.5)
        for addr, spec, _, want in CASES:
            name = spec.split(",")[0]
            got = last_value(evs, "d", name)
            ok = abs(got - want) < 1e-12 if isinstance(want, float) else got == want
            check(ok, "pymodbus %s at %d = %r (want %r)" % (name, addr, got, want))
        check(last_value(evs, "d", "coil0") is True and last_value(evs, "d", "coil1") is False,
              "coils from pymodbus")
        check(last_value(evs, "d", "di1") is True, "discrete input from pymodbus")
        check(last_value(evs, "d", "in2") == 1.25, "input register float from pymodbus")
        check(last_value(evs, "d", "w") == -12.75, "FC 16 write to pymodbus read back")
        from pymodbus.client import ModbusTcpClient
        c = ModbusTcpClient("127.0.0.1", port=port)
        c.connect()
        r = c.read_holding_registers(40, 2, slave=1).registers
        c.close()
        check(r == words("f", -12.75, "CDAB"), "pymodbus holds the CDAB encoding we wrote: %r" % r)
    finally:
        stop(srv)
    print("test_modbus_pymodbus: all passed")


if __name__ == "__main__":
    main()
