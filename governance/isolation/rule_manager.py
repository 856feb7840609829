"""Isolation rule manager: isolation rules are stateless, so every reload simply re-binds them."""

from __future__ import annotations

from governance.isolation.rule import IsolationRule
from governance.rules import RuleManager


class IsolationController:
    __slots__ = ("rule", "threshold")

    def __init__(self, rule: IsolationRule) -> None:
        self.rule = rule
        self.threshold = rule.threshold

    def __repr__(self) -> str:
        return f"IsolationController({self.rule.describe()})"


class IsolationRuleManager(RuleManager):
    kind = "isolation"

    def generate(self, resource: str, rule: IsolationRule, donor: IsolationController | None) -> IsolationController:
        return IsolationController(rule)
