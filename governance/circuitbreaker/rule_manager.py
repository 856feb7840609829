"""Circuit-breaker rule manager (G ``core/circuitbreaker/rule_manager.go``, J ``DegradeRuleManager``).

On reload an equal rule keeps its breaker object -- state, ``next_retry``, probe count and window; a Go
rule with the same resource, strategy, interval and bucket count gets a new Closed breaker on the old
window (counters kept); anything else starts fresh. Java keeps a breaker only for an equal rule
(J ``getExistingSameCbOrNew``).
"""

from __future__ import annotations

from typing import Any

from governance.circuitbreaker.breaker import CircuitBreaker
from governance.circuitbreaker.rule import CircuitBreakerRule
from governance.rules import RuleManager


class CircuitBreakerRuleManager(RuleManager):
    kind = "circuit_breaker"

    def __init__(self, env: Any) -> None:
        super().__init__()
        self.env = env

    def equals(self, old: CircuitBreakerRule, new: CircuitBreakerRule) -> bool:
        return old.same_as(new)

    def reusable(self, old: CircuitBreakerRule, new: CircuitBreakerRule) -> bool:
        return old.stat_reusable(new)

    def generate(self, resource: str, rule: CircuitBreakerRule, donor: CircuitBreaker | None) -> CircuitBreaker:
        return CircuitBreaker(rule, resource, donor.window if donor is not None else None, self.env.breaker_changed)

    def breakers(self) -> list[CircuitBreaker]:
        return [cb for _, cb in self.all_controllers()]
