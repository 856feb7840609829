"""The engine facade: :class:`Sentinel` = the slot chain (:mod:`governance.chain`) + rules + metrics.

Rule loading follows decode -> validate -> freeze -> compare -> apply:

* ``load_rules(kind, document, dialect)`` replaces the whole rule set of one kind (a datasource push).
  Invalid rules are skipped with a logged message naming rule and field (``load_errors(kind)`` keeps
  them); valid rules in the same document still load. ``strict=True`` refuses the whole document
  instead (``RuleError`` with every message; nothing changes). A document that is not a JSON array
  raises ``RuleError`` and changes nothing. An empty document (``[]``, ``""``, ``null``) clears the kind.
  The return value says whether anything changed: an identical document is a no-op (``False``) and
  keeps every controller, breaker state and counter.
* ``validate_rules`` decodes and validates without applying (the admin API's dry run).
* ``stage_rules`` / ``build_staged`` / ``commit_staged`` load validated rules in steps: the new controllers
  are built beside the ones in force and swapped in at once (what ``load_rules`` does in one go).

Reload keeps state as Sentinel does (see :mod:`governance.rules`): resource nodes are never reset; an
equal rule keeps its controller/breaker; a changed rule with compatible statistics keeps the counters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from governance.base import RULE_KINDS, RuleError, State
from governance.chain import Chain, ResourcePlan
from governance.circuitbreaker.breaker import CircuitBreaker
from governance.circuitbreaker.rule import parse_breaker_rules
from governance.circuitbreaker.rule_manager import CircuitBreakerRuleManager
from governance.clock import Clock, RealClock
from governance.flow.rule import DEFAULT_COLD_FACTOR, parse_flow_rules
from governance.flow.rule_manager import FlowRuleManager
from governance.hotspot.rule import parse_hotspot_rules
from governance.hotspot.rule_manager import HotspotRuleManager
from governance.isolation.rule import parse_isolation_rules
from governance.isolation.rule_manager import IsolationRuleManager
from governance.rules import ParseContext, Prepared, RuleManager, Validation, check_dialect, decode_document
from governance.stat.node import INBOUND_RESOURCE, MetricItem, ResourceNode, ResourceStats
from governance.system.metrics import ProcSystemMetrics, SystemMetrics
from governance.system.rule import parse_system_rules
from governance.system.rule_manager import SystemRuleManager

log = logging.getLogger("governance")

DEFAULT_MAX_RESOURCES = 10_000  # G base.DefaultMaxResourceAmount
OVERFLOW_RESOURCE = "__overflow__"

_KIND_ALIASES = {
    "flow": "flow", "circuit_breaker": "circuit_breaker", "circuitbreaker": "circuit_breaker",
    "degrade": "circuit_breaker", "isolation": "isolation", "hotspot": "hotspot", "param": "hotspot",
    "param_flow": "hotspot", "paramflow": "hotspot", "system": "system",
}
_PARSERS = {
    "flow": parse_flow_rules, "circuit_breaker": parse_breaker_rules, "isolation": parse_isolation_rules,
    "hotspot": parse_hotspot_rules, "system": parse_system_rules,
}

StateListener = Callable[[str, State, State, Any, Any], None]


@dataclass(frozen=True)
class StagedRules:
    """Rules of one kind on their way in (see :meth:`Sentinel.stage_rules`)."""

    kind: str
    validation: Validation
    prepared: Prepared | None


@dataclass(frozen=True)
class BreakerStatus:
    """One breaker's state, for metrics export and the admin API."""

    resource: str
    rule: Any
    state: State
    next_retry_ms: int


class Sentinel(Chain):
    """A Sentinel-compatible governance engine.

    ``clock``: a :class:`~governance.clock.Clock` (default the real clock). ``system_metrics``: the
    load/CPU/memory provider (default ``/proc`` sampling). ``max_resources``: resources tracked with their
    own statistics (G's default 10000); entries of further resources that have no rules share one
    untracked node (regex rules do not reach them; rules naming a resource always do).
    ``origin_limit``: caller-origin nodes kept per resource for Java ``limitApp`` rules (origin
    statistics are kept only for resources with a rule naming an origin or ``other``, from its load on).
    ``java_cold_factor``: J's ``csp.sentinel.flow.cold.factor``. ``resource_type``: the metric-log
    classification of every resource (G ``ResTypeCommon`` 0, ``ResTypeRPC`` 2...).
    """

    def __init__(self, clock: Clock | None = None, system_metrics: SystemMetrics | None = None, *,
                 max_resources: int = DEFAULT_MAX_RESOURCES, origin_limit: int = 1000,
                 java_cold_factor: int = DEFAULT_COLD_FACTOR, resource_type: int = 0) -> None:
        if java_cold_factor <= 1:
            raise ValueError(f"java_cold_factor must be > 1, got {java_cold_factor}")
        self.clock = clock if clock is not None else RealClock()
        self._now_ns = self.clock.now_ns
        self.system_metrics = system_metrics if system_metrics is not None else ProcSystemMetrics()
        self.max_resources = max_resources
        self.origin_limit = origin_limit
        self.java_cold_factor = java_cold_factor
        self.resource_type = resource_type
        self.nodes: dict[str, ResourceNode] = {}
        self._plans: dict[str, ResourcePlan] = {}
        self._inbound = ResourceNode(INBOUND_RESOURCE, resource_type)
        self._overflow = ResourcePlan(OVERFLOW_RESOURCE, ResourceNode(OVERFLOW_RESOURCE, resource_type))
        self._flow = FlowRuleManager(self)
        self._breakers = CircuitBreakerRuleManager(self)
        self._isolation = IsolationRuleManager()
        self._hotspot = HotspotRuleManager()
        self._system = SystemRuleManager()
        self._managers = {"flow": self._flow, "circuit_breaker": self._breakers, "isolation": self._isolation,
                          "hotspot": self._hotspot, "system": self._system}
        self._listeners: list[StateListener] = []
        self._state_changes: dict[tuple[str, str, str], int] = {}
        self._load_errors: dict[str, tuple[str, ...]] = {}

    # ---- rules --------------------------------------------------------------------------------------
    def load_rules(self, kind: str, document: Any, dialect: str = "go", strict: bool = False) -> bool:
        """Replace every rule of ``kind``; returns whether anything changed (see the module docstring)."""
        kind = _kind(kind)
        validation = self._decode(kind, document, dialect)
        if validation.errors:
            if strict:
                raise RuleError(validation.errors)
            for message in validation.errors:
                log.warning("ignoring invalid rule: %s", message)
        return self.commit_staged(self.stage_rules(kind, validation))

    def stage_rules(self, kind: str, validation: Validation) -> StagedRules:
        """Begin loading validated rules beside the ones in force, which requests keep using until
        :meth:`commit_staged` swaps the new set in at once; :meth:`build_staged` builds it a budget of
        resources at a time, so a caller can yield to its event loop in between (a large push, no stall)."""
        kind = _kind(kind)
        manager = self._managers[kind]
        prepared = manager.prepare(validation.rules, list(self.nodes)) if isinstance(manager, RuleManager) else None
        return StagedRules(kind, validation, prepared)

    def build_staged(self, staged: StagedRules, budget: int | None = None) -> bool:
        """Build up to ``budget`` more resources' controllers; True when the staged set is complete."""
        if staged.prepared is None:
            return True
        return self._managers[staged.kind].build(staged.prepared, budget)

    def commit_staged(self, staged: StagedRules) -> bool:
        """Put the staged rules in force (what is not built yet is built now); whether anything changed."""
        self.flush_held()                      # completions held under the old rules are theirs
        manager = self._managers[staged.kind]
        rules = staged.validation.rules
        self._load_errors[staged.kind] = staged.validation.errors
        if staged.prepared is not None:
            manager.install(staged.prepared)
            changed = True
        else:                                  # equal to the rules in force when staged (or a system kind)
            changed = manager.load(rules, list(self.nodes))
        if changed:
            self._plans.clear()
            log.info("%s rules %s: %d rule(s)", staged.kind, "loaded" if rules else "cleared", len(rules))
        return changed

    def validate_rules(self, kind: str, document: Any, dialect: str = "go") -> Validation:
        """Decode and validate without applying: the parsed rules and every error message."""
        kind = _kind(kind)
        try:
            return self._decode(kind, document, dialect)
        except RuleError as exc:
            return Validation((), exc.messages)

    def clear_rules(self, kind: str | None = None) -> bool:
        kinds = RULE_KINDS if kind is None else (_kind(kind),)
        changed = False
        for name in kinds:
            changed |= self.load_rules(name, [])
        return changed

    def rules(self, kind: str) -> list[dict]:
        """The loaded rules of ``kind`` as JSON objects in the dialect they were loaded in."""
        return [rule.to_json() for rule in self._managers[_kind(kind)].rules]

    def rule_objects(self, kind: str) -> tuple:
        return self._managers[_kind(kind)].rules

    def load_errors(self, kind: str) -> tuple[str, ...]:
        """The messages of the rules skipped by the last ``load_rules`` of ``kind``."""
        return self._load_errors.get(_kind(kind), ())

    def _decode(self, kind: str, document: Any, dialect: str) -> Validation:
        check_dialect(dialect)
        items = decode_document(document)
        if kind == "flow":
            return parse_flow_rules(items, dialect, ParseContext(total_memory=self._total_memory()))
        return _PARSERS[kind](items, dialect)

    def _total_memory(self) -> int | None:
        try:
            return self.system_metrics.total_memory()
        except Exception:  # a provider without the figure: the water-mark check is skipped
            return None

    # ---- resources and plans ------------------------------------------------------------------------
    def stat_node(self, resource: str) -> ResourceNode:
        """The node of ``resource``, created if needed (rules always get their node)."""
        node = self.nodes.get(resource)
        if node is None:
            node = self.nodes[resource] = ResourceNode(resource, self.resource_type)
        return node

    def _compile(self, resource: str) -> ResourcePlan:
        if (resource not in self.nodes and len(self.nodes) >= self.max_resources
                and not any(m.has_exact(resource) for m in self._managers.values())):
            return self._overflow  # past the limit only resources named by a rule get their own node
        flow = self._flow.controllers_for(resource)
        isolation = self._isolation.controllers_for(resource)
        hotspot = self._hotspot.controllers_for(resource)
        breakers = self._breakers.controllers_for(resource)
        plan = ResourcePlan(resource, self.stat_node(resource), flow, isolation, hotspot, breakers)
        self._plans[resource] = plan
        return plan

    def plan(self, resource: str) -> ResourcePlan:
        """The compiled plan of ``resource`` (for inspection and tests)."""
        return self._plans.get(resource) or self._compile(resource)

    # ---- breaker state changes ----------------------------------------------------------------------
    def on_state_change(self, callback: StateListener) -> StateListener:
        """Register ``callback(resource, old_state, new_state, rule, snapshot)`` for every breaker.

        Called synchronously inside ``entry``/``exit``; exceptions are logged and swallowed. ``snapshot``
        is the value that tripped the breaker (1.0 for a failed or rolled-back probe), None otherwise.
        """
        self._listeners.append(callback)
        return callback

    def remove_state_listener(self, callback: StateListener) -> None:
        self._listeners.remove(callback)

    def breaker_changed(self, breaker: CircuitBreaker, old: State, new: State, snapshot: Any) -> None:
        key = (breaker.resource, old.label, new.label)
        self._state_changes[key] = self._state_changes.get(key, 0) + 1
        for listener in self._listeners:
            try:
                listener(breaker.resource, old, new, breaker.rule, snapshot)
            except Exception:
                log.exception("circuit breaker state listener failed")

    # ---- metrics ------------------------------------------------------------------------------------
    def stats(self) -> dict[str, ResourceStats]:
        """Per-resource counters for export (plus the ``__total_inbound_traffic__`` node)."""
        self.flush_held()
        now = self._now_ns() // 1_000_000
        out = {name: node.snapshot(now) for name, node in self.nodes.items()}
        out[INBOUND_RESOURCE] = self._inbound.snapshot(now)
        return out

    def resource_stats(self, resource: str) -> ResourceStats | None:
        self.flush_held()
        node = self._inbound if resource == INBOUND_RESOURCE else self.nodes.get(resource)
        return None if node is None else node.snapshot(self._now_ns() // 1_000_000)

    def breaker_states(self) -> list[BreakerStatus]:
        self.flush_held()
        return [BreakerStatus(cb.resource, cb.rule, cb.state, cb.next_retry) for cb in self._breakers.breakers()]

    def state_change_counts(self) -> dict[tuple[str, str, str], int]:
        """``(resource, from_state, to_state) -> count`` (``sentinel_go_circuit_breaker_state_changed_total``)."""
        self.flush_held()
        return dict(self._state_changes)

    def metric_items(self, since_ms: int, until_ms: int) -> list[MetricItem]:
        """Active per-second items of every resource for seconds in ``[since_ms, until_ms)``."""
        self.flush_held()
        now = self._now_ns() // 1_000_000
        items: list[MetricItem] = []
        for node in [*self.nodes.values(), self._inbound]:
            items.extend(node.second_items(now, since_ms, until_ms).values())
        items.sort(key=lambda item: item.timestamp)
        return items

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(m.rules)}" for k, m in self._managers.items())
        return f"Sentinel(resources={len(self.nodes)}, {counts})"


def _kind(kind: str) -> str:
    try:
        return _KIND_ALIASES[kind.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown rule kind {kind!r} (expected one of {', '.join(RULE_KINDS)})") from None
