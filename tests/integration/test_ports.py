"""integration.ports: the loopback ports test servers get are free, distinct, and outside the range the kernel
gives outgoing connections (one taken from there between the draw and the bind made a meshd fail to start)."""

from __future__ import annotations

import socket

import pytest

from integration.ports import LOOPBACK, LOWEST, ephemeral_range, free_port


def _room_below_the_ephemeral_range() -> int:
    low = ephemeral_range()[0]
    if low - LOWEST < 1000:
        pytest.skip(f"the ephemeral range starts at {low}: free_port binds to port 0 there instead of drawing")
    return low


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    low = _room_below_the_ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(LOWEST <= port < low for port in ports)
    servers = []
    try:
        for port in ports[:20]:
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            servers.append(server)
            server.bind((LOOPBACK, port))
            server.listen()
    finally:
        for server in servers:
            server.close()


class _Draws:
    """The draws free_port makes, in order."""

    def __init__(self, *ports: int) -> None:
        self.ports = list(ports)

    def randrange(self, start: int, stop: int) -> int:
        port = self.ports.pop(0)
        assert start <= port < stop
        return port


def test_a_port_in_use_is_skipped(monkeypatch):
    from integration import ports
    _room_below_the_ephemeral_range()
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind((LOOPBACK, free_port()))
    busy.listen()
    try:
        taken = busy.getsockname()[1]
        monkeypatch.setattr(ports, "_rng", _Draws(taken, taken + 1, taken + 2))
        monkeypatch.setattr(ports, "_handed_out", {taken + 1})
        assert free_port() == taken + 2, "the busy port and the one handed out before are both skipped"
    finally:
        busy.close()
