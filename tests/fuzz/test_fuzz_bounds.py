"""The guards themselves: a loop that never returns is stopped, an allocation from a declared length is
caught, and pytest-timeout's own alarm survives the hang guard."""

from __future__ import annotations

import signal
import tracemalloc

import pytest

from tests.fuzz.bounds import Hang, memory_limit, time_limit


def test_the_hang_guard_stops_a_loop_that_never_returns():
    with pytest.raises(Hang, match="still running"):
        with time_limit("spin", seconds=0.2):
            while True:
                pass


def test_the_hang_guard_puts_back_the_alarm_it_found():
    fired = []

    def handler(*_):
        fired.append(True)
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        with time_limit("quick", seconds=5.0):
            pass
        left, _ = signal.setitimer(signal.ITIMER_REAL, 0)
        assert 25.0 < left <= 30.0 and signal.getsignal(signal.SIGALRM) is handler and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_the_memory_bound_catches_an_allocation_from_a_declared_length():
    tracemalloc.start()
    try:
        with pytest.raises(AssertionError, match="peak allocation"):
            with memory_limit("declared", input_size=100):
                buf = bytearray(64 << 20)           # what `bytearray(length_field)` would do
                del buf
        with memory_limit("bounded", input_size=100):
            bytes(1000)
    finally:
        tracemalloc.stop()
