"""governance: a Sentinel-compatible flow control and circuit breaking engine (pure Python, sans-IO).

There is no Sentinel library for Python; this package implements sentinel-golang's and Sentinel
Java's semantics natively and reads both projects' rule JSON unchanged (``dialect="go"`` or ``"java"``).
It is a leaf package: it imports nothing else of meshd, opens no sockets, starts no threads, never
sleeps, and reads time only from an injected clock.

Architecture (sentinel-golang's ``core``): every request enters one or more *resources*, and each
resource runs a chain of small slots, first block wins::

    system (1000) -> flow (2000) -> isolation (3000) -> hotspot (4000) -> circuit breaker (5000)

Each feature is a sub-package with the same files: ``rule.py`` (both JSON dialects into one frozen
model, validated with messages naming rule and field), ``rule_manager.py`` (reuse of controllers and
statistics on reload, exactly as Sentinel), controller modules and ``slot.py`` (the check).
``stat/window.py`` is the LeapArray (a 20 x 500 ms array per resource with a 1 s view, standalone
windows for other intervals, wall-clock aligned buckets, bounded memory); ``chain.py`` runs the slots
over precompiled per-resource plans; ``sentinel.py`` is the facade; ``metric_log.py`` writes Sentinel's
metric log; ``clock.py`` provides the real and the manual clock.

Usage::

    from governance import Sentinel, ManualClock, BlockError
    s = Sentinel(clock=ManualClock(now_ms=1_700_000_000_000))
    s.load_rules("flow", '[{"resource": "svc:sayHello", "threshold": 10}]', dialect="go")
    try:
        e = s.entry_many(("svc", "svc:sayHello"), origin="app-a", inbound=True)
    except BlockError as err:
        ...                      # err.kind, err.block_type, err.rule, str(err)
    else:
        # wait e.wait_ms (throttling), send, then:
        e.exit(error=None)       # or exit(error=exc_or_outcome, rt_ms=...)

The engine is single-threaded by design (one event loop drives it); it is not safe to share between
threads without a lock.
"""

from governance.base import BLOCK_KINDS, RULE_KINDS, BlockError, RuleError, State
from governance.chain import Entry, ResourcePlan
from governance.clock import Clock, ManualClock, RealClock
from governance.metric_log import MetricLogWriter, format_line, parse_line
from governance.rules import DIALECTS, Validation
from governance.sentinel import BreakerStatus, Sentinel, StagedRules
from governance.stat.node import INBOUND_RESOURCE, MetricItem, ResourceStats
from governance.system.metrics import ProcSystemMetrics, StaticSystemMetrics, SystemMetrics

__all__ = [
    "BLOCK_KINDS", "DIALECTS", "RULE_KINDS", "BlockError", "BreakerStatus", "Clock", "Entry", "INBOUND_RESOURCE",
    "ManualClock", "MetricItem", "MetricLogWriter", "ProcSystemMetrics", "RealClock", "ResourcePlan",
    "ResourceStats", "RuleError", "Sentinel", "StagedRules", "State", "StaticSystemMetrics", "SystemMetrics", "Validation",
    "format_line", "parse_line",
]
