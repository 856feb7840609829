"""Free loopback ports for test servers, containers and benchmarks."""

from __future__ import annotations

import random
import socket
import threading

LOOPBACK = "127.0.0.1"
LOWEST = 10000                                # below: well-known and registered services' ports
_handed_out: set[int] = set()
_lock = threading.Lock()
_rng = random.Random()                        # seeded from the OS: processes draw different ports


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel gives outgoing connections and ``bind(port 0)`` (Linux's default when unknown)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(part) for part in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now and not handed out before by this process, so two servers a test
    starts back to back never get the same one.

    It is drawn below the ephemeral range: a port from there (``bind`` to port 0) can be taken, between
    this call and the server's bind, by any outgoing connection of the machine as its local port (it
    happened: a meshd under test failed to bind). Only when that range leaves too little room below it is
    a port bound to port 0 the answer."""
    low = ephemeral_range()[0]
    with _lock:
        for _ in range(200):
            if low - LOWEST >= 1000:
                port = _rng.randrange(LOWEST, low)
            else:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((host, 0))
                    port = s.getsockname()[1]
            if port in _handed_out or not _bindable(host, port):
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port on {host} found in 200 attempts")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
