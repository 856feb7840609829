"""Vocabulary shared by every slot: block kinds, the block error, rule errors, breaker states.

Block kinds are the engine's short names; each maps to sentinel-golang's ``BlockType`` string (the
``block_type`` label of ``sentinel_go_handled_total``) and to the Java exception name used in Sentinel's
block log.
"""

from __future__ import annotations

import enum
from typing import Any

# kind -> (Go BlockType.String(), Java exception name)
BLOCK_KINDS: dict[str, tuple[str, str]] = {
    "flow": ("BlockTypeFlowControl", "FlowException"),
    "isolation": ("BlockTypeIsolation", "FlowException"),
    "circuit_breaking": ("BlockTypeCircuitBreaking", "DegradeException"),
    "system": ("BlockTypeSystem", "SystemBlockException"),
    "hotspot": ("BlockTypeHotSpotParamFlow", "ParamFlowException"),
}

RULE_KINDS = ("flow", "circuit_breaker", "isolation", "hotspot", "system")

# Messages, verbatim from sentinel-golang where it has one.
MSG_FLOW_REJECT = "flow reject check blocked"
MSG_FLOW_QUEUEING = "flow throttling check blocked, estimated queueing time exceeds max queueing time"
MSG_FLOW_THRESHOLD_ZERO = "flow throttling check blocked, threshold is <= 0.0"
MSG_FLOW_BATCH = "flow throttling check blocked, batch count is more than threshold"
MSG_BREAKER = "circuit breaker check blocked"
MSG_ISOLATION = "concurrency exceeds threshold"


class BlockError(Exception):
    """A request was refused by a governance rule.

    ``kind`` is one of ``flow``, ``isolation``, ``circuit_breaking``, ``system``, ``hotspot``;
    ``block_type`` the sentinel-golang name (``BlockTypeFlowControl``...); ``rule`` the rule object that
    refused (``rule.to_json()`` gives it in its dialect); ``snapshot`` the value that triggered the block
    (current QPS, concurrency, ...) when Sentinel reports one; ``resource`` the resource that was refused.
    """

    def __init__(self, kind: str, resource: str, rule: Any, message: str, snapshot: Any = None) -> None:
        super().__init__(kind, resource, message)
        self.kind = kind
        self.resource = resource
        self.rule = rule
        self.message = message
        self.snapshot = snapshot

    @property
    def block_type(self) -> str:
        return BLOCK_KINDS[self.kind][0]

    @property
    def exception_name(self) -> str:
        """The Java exception class Sentinel would throw (``FlowException``, ``DegradeException``...)."""
        return BLOCK_KINDS[self.kind][1]

    def __str__(self) -> str:
        head = f"SentinelBlockError: {self.block_type}"
        if self.message:
            head += f", message: {self.message}"
        rule = self.rule.describe() if hasattr(self.rule, "describe") else repr(self.rule)
        return f"{head}, resource: {self.resource}, rule: {rule}"

    def __repr__(self) -> str:
        return f"BlockError({self.kind!r}, {self.resource!r}, {self.message!r})"


class RuleError(ValueError):
    """A rule document was refused; ``messages`` lists every problem, each naming rule and field."""

    def __init__(self, messages: list[str] | tuple[str, ...]) -> None:
        self.messages = tuple(messages)
        super().__init__("; ".join(self.messages) if self.messages else "invalid rule document")


class State(enum.IntEnum):
    """Circuit breaker states with sentinel-golang's numbering (Closed 0, HalfOpen 1, Open 2)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        """The Go ``State.String()`` (the Prometheus ``from_state``/``to_state`` label)."""
        return _STATE_LABELS[self]

    def __str__(self) -> str:
        return _STATE_LABELS[self]


_STATE_LABELS = {State.CLOSED: "Closed", State.HALF_OPEN: "HalfOpen", State.OPEN: "Open"}
