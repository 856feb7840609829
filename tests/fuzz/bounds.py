"""The hang guard and the memory bound every fuzz case runs under.

:func:`time_limit` raises :class:`Hang` in the case's own frame (SIGALRM, so it also stops a loop that
never returns) and puts back whatever alarm was armed before (pytest-timeout's), less the time spent.
Off the main thread it measures instead. The limit is generous on purpose: it catches a decoder that
loops or goes quadratic on a small input, never a slow machine.

:func:`memory_limit` checks the tracemalloc peak of a case against a bound that depends only on the
input's size: a decoder that allocates from a *declared* length (2**31) blows it by orders of
magnitude. It measures only while tracemalloc is tracing (the tests that check memory turn it on).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import tracemalloc
from contextlib import contextmanager
from typing import Iterator

from hypothesis import HealthCheck, settings

CASE_SECONDS = 5.0
"""Wall-clock limit per case: every case takes milliseconds; a loaded 2-core CI box stays far below this."""


class Hang(AssertionError):
    """A fuzz case ran past its wall-clock limit."""


USE_ALARM = True
"""False under libFuzzer, whose own ``-timeout`` runs a periodic SIGALRM (it would race with this one)."""


@contextmanager
def time_limit(what: str, seconds: float = CASE_SECONDS) -> Iterator[None]:
    if not USE_ALARM or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        start = time.monotonic()
        yield
        elapsed = time.monotonic() - start
        if elapsed > seconds:
            raise Hang(f"{what}: took {elapsed:.1f}s (limit {seconds}s)")
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"{what}: still running after {seconds}s")

    start = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:
            left = old_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), old_interval)


def memory_bound(input_size: int) -> int:
    """Bytes a case may allocate at its peak: decoded values cost at most a few hundred bytes per input byte
    (an empty list or object per byte is the worst case), plus a fixed allowance for the decoder itself."""
    return 512 * input_size + (1 << 20)


@contextmanager
def memory_limit(what: str, input_size: int) -> Iterator[None]:
    if not tracemalloc.is_tracing():
        yield
        return
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    yield
    peak = tracemalloc.get_traced_memory()[1] - base
    limit = memory_bound(input_size)
    if peak > limit:
        raise AssertionError(f"{what}: peak allocation {peak} bytes for a {input_size}-byte input "
                             f"(bound {limit})")


@contextmanager
def bounded(what: str, input_size: int) -> Iterator[None]:
    """Both guards around one case."""
    with time_limit(what), memory_limit(what, input_size):
        yield


SCALE = float(os.environ.get("MESHD_FUZZ_SCALE", "1"))
"""Multiplies every test's case count: 1 in ``make test``; ``python -m tests.fuzz`` raises it."""


def fuzz(examples: int) -> settings:
    """Hypothesis settings for a fuzz test of ``examples`` cases (times :data:`SCALE`). No hypothesis deadline:
    :func:`time_limit` guards each case instead, and the suite never asserts a timing tighter than that."""
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
