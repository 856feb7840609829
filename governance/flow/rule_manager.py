"""Flow rule manager: builds controllers per resource with Sentinel's reuse on reload.

G ``core/flow/rule_manager.go``: ``tcGenFuncMap`` maps (token strategy, behaviour) to a generator;
``generateStatFor`` binds each rule's statistic:

* interval 0 or 1000 ms -> the resource's default 1 s metric (2 x 500 ms view of its 20 x 500 ms array);
* otherwise ``sampleCount = interval / 500`` when it divides (else 1); if ``10000 % interval == 0`` and the
  bucket length is a multiple of 500 ms -> a read-only view of the resource's array (e.g. 2000, 5000,
  10000); otherwise a standalone array written on every pass (e.g. 20000, 50000 -> one bucket);
* Throttling with Direct or MemoryAdaptive tokens reads no statistic at all.

On reload an equal rule keeps its controller (warm-up tokens, throttling ``lastPassedTime``); a
stat-reusable rule gets a new controller on the old statistic; others start fresh. Java rules read the
resource (or origin, or related resource) node directly, so their counters always survive; Java orders a
resource's rules specific-app first, then ``other``, then ``default`` (J ``FlowRuleComparator``).
"""

from __future__ import annotations

from typing import Any

from governance.flow.controller import (
    FlowController, GoRejectController, GoThrottlingController, GoWarmUp, JavaController, JavaDefaultRater,
    JavaThrottlingRater, JavaWarmUpRateLimiterRater, JavaWarmUpRater, MemoryAdaptive, WarmUpCalculator,
)
from governance.flow.rule import (
    ASSOCIATED_RESOURCE, DEFAULT_COLD_FACTOR, GRADE_QPS, J_RATE_LIMITER, J_WARM_UP, J_WARM_UP_RATE_LIMITER,
    LIMIT_APP_DEFAULT, LIMIT_APP_OTHER, MEMORY_ADAPTIVE, REJECT, WARM_UP, FlowRule, cluster_falls_back,
)
from governance.rules import RuleManager
from governance.stat.node import DEFAULT_INTERVAL_MS, GLOBAL_INTERVAL_MS, GLOBAL_SAMPLE_COUNT
from governance.stat.window import StandaloneCounter, View, check_reuse

BUCKET_MS = GLOBAL_INTERVAL_MS // GLOBAL_SAMPLE_COUNT


class FlowRuleManager(RuleManager):
    """Flow rules and their controllers. ``env`` is the engine (nodes, metrics provider, settings)."""

    kind = "flow"

    def __init__(self, env: Any) -> None:
        super().__init__()
        self.env = env

    def equals(self, old: FlowRule, new: FlowRule) -> bool:
        return old.same_as(new)

    def reusable(self, old: FlowRule, new: FlowRule) -> bool:
        return old.stat_reusable(new)

    def rules_of(self, resource: str) -> list:
        rules = super().rules_of(resource)
        if rules and rules[0].dialect == "java":
            unique: list[FlowRule] = []
            for rule in rules:  # J builds a HashSet per resource: duplicates collapse
                if rule not in unique:
                    unique.append(rule)
            unique.sort(key=_java_order)
            return unique
        return rules

    def _build(self, resource: str, old: Any) -> tuple:
        ctrls = super()._build(resource, old)
        named = frozenset(
            c.rule.limit_app for c in ctrls
            if c.rule.dialect == "java" and c.rule.limit_app not in (LIMIT_APP_DEFAULT, LIMIT_APP_OTHER)
        )
        for ctrl in ctrls:
            if isinstance(ctrl, JavaController):
                ctrl.named_apps = named
        return ctrls

    def generate(self, resource: str, rule: FlowRule, donor: FlowController | None) -> FlowController:
        if rule.dialect == "java":
            return JavaController(rule, resource, self.env, self._java_rater(rule), cluster_falls_back(rule))
        if donor is not None:
            view, standalone = donor.view, donor.standalone
        else:
            view, standalone = self.stat_for(resource, rule)
        calc = self._calculator(rule, view)
        if rule.behavior == REJECT:
            return GoRejectController(rule, resource, view, calc, standalone)
        return GoThrottlingController(rule, resource, calc, view, standalone)

    def stat_for(self, resource: str, rule: FlowRule) -> tuple[View | None, StandaloneCounter | None]:
        """G ``generateStatFor``."""
        if not rule.needs_statistic:
            return None, None
        node = self.env.stat_node(rule.ref_resource if rule.relation == ASSOCIATED_RESOURCE else resource)
        interval = rule.stat_interval_ms
        if interval in (0, DEFAULT_INTERVAL_MS):
            return node.default_view, None
        if interval > GLOBAL_INTERVAL_MS or interval < BUCKET_MS or interval % BUCKET_MS != 0:
            samples = 1
        else:
            samples = interval // BUCKET_MS
        if check_reuse(samples, interval, GLOBAL_SAMPLE_COUNT, GLOBAL_INTERVAL_MS) is None:
            return View(node.array, samples, interval), None
        standalone = StandaloneCounter(samples, interval)
        return standalone.view, standalone

    def _calculator(self, rule: FlowRule, view: View | None) -> Any:
        if rule.token_strategy == WARM_UP:
            cold = rule.cold_factor if rule.cold_factor > 1 else DEFAULT_COLD_FACTOR
            return GoWarmUp(view, WarmUpCalculator(rule.threshold, rule.warm_up_period_sec, cold))
        if rule.token_strategy == MEMORY_ADAPTIVE:
            return MemoryAdaptive(rule, self.env.system_metrics)
        return None

    def _java_rater(self, rule: FlowRule) -> Any:
        cold = self.env.java_cold_factor
        if rule.grade == GRADE_QPS:
            if rule.java_behavior == J_WARM_UP:
                return JavaWarmUpRater(rule, cold)
            if rule.java_behavior == J_RATE_LIMITER:
                return JavaThrottlingRater(rule)
            if rule.java_behavior == J_WARM_UP_RATE_LIMITER:
                return JavaWarmUpRateLimiterRater(rule, cold)
        return JavaDefaultRater(rule)


def _java_order(rule: FlowRule) -> tuple[bool, int]:
    app_rank = 2 if rule.limit_app == LIMIT_APP_DEFAULT else 1 if rule.limit_app == LIMIT_APP_OTHER else 0
    return rule.cluster_mode, app_rank
