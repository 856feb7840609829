"""System rule manager: global (not per resource) rules, checked for inbound entries only.

Go rules are kept in load order. Java rules are folded into one effective limit per metric (the
minimum over the rules that set it), remembering which rule set it, for the block report.
"""

from __future__ import annotations

from typing import Iterable

from governance.system.rule import SystemRule


class SystemRuleManager:
    kind = "system"

    def __init__(self) -> None:
        self.rules: tuple[SystemRule, ...] = ()
        self.java_limits: dict[int, tuple[float, SystemRule]] = {}

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def load(self, rules: tuple[SystemRule, ...], known_resources: Iterable[str] = ()) -> bool:
        if rules == self.rules:
            return False
        self.rules = rules
        limits: dict[int, tuple[float, SystemRule]] = {}
        for rule in rules:
            for metric, value in rule.java_limits:
                if metric not in limits or value < limits[metric][0]:
                    limits[metric] = (value, rule)
        self.java_limits = limits
        return True

    def controllers_for(self, resource: str) -> tuple:
        return ()

    def resources(self) -> list[str]:
        return []

    def has_exact(self, resource: str) -> bool:
        return False
