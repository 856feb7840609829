"""What the rule-source suites (ZooKeeper, Nacos) share: a real :class:`RuleStore` with the Sentinel flow kind
(Java dialect, as Sentinel's datasources push it) in front of a real engine, the two documents they push, and
a wait on a condition."""

from __future__ import annotations

import asyncio
import time

from config_center.kinds import sentinel_kind
from config_center.store import RuleStore
from governance import Sentinel

BLOCK = [{"resource": "svc:m", "count": 0, "grade": 1}]            # Java dialect, as Sentinel's datasource
PASS = [{"resource": "svc:m", "count": 100, "grade": 1}]


async def until(pred, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def threshold(engine: Sentinel) -> float | None:
    rules = engine.rules("flow")
    return rules[0]["count"] if rules else None


def flow_store(engine: Sentinel) -> RuleStore:
    """A store whose one kind, ``flow``, is validated and loaded (strictly) by ``engine``."""
    return RuleStore([sentinel_kind("flow", engine.validate_rules, lambda k, d, dialect: engine.load_rules(
        k, d, dialect=dialect, strict=True), "java")])
