"""Benchmark: the cost of one governance entry + exit pair.

One resource carries one flow rule (Direct + Reject, threshold high enough never to block), one circuit
breaker (error ratio) and one isolation rule (concurrency limit) -- what the proxy pays per request for a
typically governed method. The clock is the real clock, as in production.

``run()`` returns a dict: the median microseconds per pair over ``rounds`` rounds of ``number`` pairs
(``time.perf_counter``), the best and worst round, the median in process CPU time (``time.process_time``,
which other processes on a busy machine cannot inflate), and the wall median for a resource without
rules and for ``entry_many`` over two resources (the proxy's service + service:method). Run it as
``python bench/governance_bench.py`` to print the JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

try:
    from governance import Sentinel, StaticSystemMetrics
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from governance import Sentinel, StaticSystemMetrics

RESOURCE = "org.example.DemoService:sayHello"
SERVICE = "org.example.DemoService"
TARGET_US = 5.0


def build_engine() -> Sentinel:
    engine = Sentinel(system_metrics=StaticSystemMetrics())
    engine.load_rules("flow", [{"resource": RESOURCE, "threshold": 1e12}], dialect="go")
    engine.load_rules("circuit_breaker", [{
        "resource": RESOURCE, "strategy": 1, "retryTimeoutMs": 5000, "minRequestAmount": 10,
        "statIntervalMs": 1000, "threshold": 0.5,
    }], dialect="go")
    engine.load_rules("isolation", [{"resource": RESOURCE, "threshold": 1000}], dialect="go")
    return engine


def _measure(pair: Callable[[], None], number: int, rounds: int) -> tuple[list[float], list[float]]:
    """Per-round microseconds per pair: wall clock (perf_counter) and this process's CPU time."""
    for _ in range(number):  # warm up: plan compiled, buckets allocated, caches hot
        pair()
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(number):
            pair()
        wall.append((time.perf_counter() - start) / number * 1e6)
        cpu.append((time.process_time() - start_cpu) / number * 1e6)
    return wall, cpu


def run(number: int = 5_000, rounds: int = 41) -> dict:
    engine = build_engine()
    entry = engine.entry
    many = engine.entry_many
    pair_resources = (SERVICE, RESOURCE)

    def governed() -> None:
        entry(RESOURCE).exit()

    def bare() -> None:
        entry("org.example.Other:ping").exit()

    def two_resources() -> None:
        many(pair_resources).exit()

    wall, cpu = _measure(governed, number, rounds)
    bare_wall, _ = _measure(bare, number, rounds)
    many_wall, _ = _measure(two_resources, number, rounds)
    median = statistics.median(wall)
    return {
        "benchmark": "governance entry+exit, 1 flow + 1 breaker + 1 isolation rule",
        "python": sys.version.split()[0],
        "number": number,
        "rounds": rounds,
        "median_us": round(median, 3),
        "best_us": round(min(wall), 3),
        "worst_us": round(max(wall), 3),
        "median_cpu_us": round(statistics.median(cpu), 3),
        "no_rules_median_us": round(statistics.median(bare_wall), 3),
        "entry_many_2_resources_median_us": round(statistics.median(many_wall), 3),
        "target_us": TARGET_US,
        "meets_target": median < TARGET_US,
    }


def main() -> int:
    print(json.dumps(run(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
