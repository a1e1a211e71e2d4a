"""Helpers shared by the integration tests and their helper modules
(broker_harness.py, test_*_lib.py, test_gateway_commands.py).

Not a test itself (not executable; the runner skips it). Only helpers that
behave the same everywhere live here.
"""
import socket
import subprocess
import time


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=5.0):
    """True once 127.0.0.1:port accepts a connection; False after timeout seconds."""
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def stop_proc(p, timeout=5.0):
    """Stops the process p by PID: SIGTERM, SIGKILL if it is still there after
    timeout seconds. Returns its exit status."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout)
    return p.returncode
