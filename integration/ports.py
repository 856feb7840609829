"""Free loopback ports for test servers, containers and benchmarks."""

from __future__ import annotations

import socket
import threading

LOOPBACK = "127.0.0.1"
_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now (bound to port 0, then released) and not handed out before by
    this process, so two servers a test starts back to back never get the same one."""
    with _lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free port on {host} found in 50 attempts")
