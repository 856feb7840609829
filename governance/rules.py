"""Rule documents: decode -> validate -> freeze -> compare -> apply, shared by every rule kind.

A document is a JSON array (``str``/``bytes``) or an already-decoded ``list`` of rule objects, in one of
two dialects: ``go`` (sentinel-golang's JSON: ``threshold``, ``tokenCalculateStrategy``...) or ``java``
(Sentinel's: ``grade``, ``count``, ``timeWindow``, ``limitApp``...). Keys are matched ignoring case, as
Go's ``encoding/json`` and fastjson do. Unknown keys are ignored, as both Sentinels ignore them.

Each rule is decoded by a :class:`RuleReader`, which collects every problem as a message naming the rule
(its index and resource) and the field, e.g.::

    flow rule #2 (resource "org.example.DemoService:sayHello"): threshold: must be >= 0, got -1

Valid rules become frozen dataclasses (equal by value, so an identical push compares equal and is a
no-op). :class:`RuleManager` holds one kind's rules and applies Sentinel's reuse on reload (G
``calculateReuseIndexFor``): an equal old controller is kept as is; otherwise the first old controller
whose statistics are compatible lends its statistic to a fresh controller; otherwise a new one is built.
Each old controller is reused at most once. ``regex`` rules apply to every matching resource (full
match, as Java's ``Pattern.matches``), each resource with its own controller.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from governance.base import RuleError

DIALECTS = ("go", "java")
_MISSING = object()
UINT32_MAX = 2**32 - 1
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


@dataclass(frozen=True)
class Validation:
    """The outcome of decoding a document: the valid rules (in order) and every error message."""

    rules: tuple
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class ParseContext:
    """Facts some validations need (G checks MemoryAdaptive water marks against the machine's memory)."""

    total_memory: int | None = None


def decode_document(document: Any) -> list:
    """JSON text/bytes or a decoded list -> list of rule items. Empty or ``null`` means "no rules"."""
    if document is None:
        return []
    if isinstance(document, (bytes, bytearray, memoryview)):
        try:
            document = bytes(document).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RuleError([f"document: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    if isinstance(document, str):
        if not document.strip():
            return []
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise RuleError([f"document: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]) from None
        if document is None:
            return []
    if isinstance(document, tuple):
        document = list(document)
    if not isinstance(document, list):
        raise RuleError([f"document: must be a JSON array of rule objects, got {type(document).__name__}"])
    return document


def check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise RuleError([f"dialect: must be one of {', '.join(DIALECTS)}, got {dialect!r}"])
    return dialect


class RuleReader:
    """Typed, case-insensitive access to one raw rule object, collecting field errors."""

    def __init__(self, kind: str, index: int, raw: dict) -> None:
        self.kind = kind
        self.index = index
        self.raw = raw
        self._keys = {k.lower(): k for k in raw if isinstance(k, str)}
        resource = self.get("resource")
        self.resource = resource if isinstance(resource, str) else ""
        self.errors: list[str] = []
        self._failed: set[str] = set()

    # ---- access -------------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        key = self._keys.get(name.lower())
        return _MISSING if key is None else self.raw[key]

    def has(self, name: str) -> bool:
        value = self.get(name)
        return value is not _MISSING and value is not None

    def fail(self, name: str, problem: str) -> None:
        """Record a problem with field ``name`` (only the first problem of each field is kept)."""
        if name in self._failed:
            return
        self._failed.add(name)
        self.errors.append(f'{self.kind} rule #{self.index} (resource "{self.resource}"): {name}: {problem}')

    def string(self, name: str, default: str = "") -> str:
        value = self.get(name)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        self.fail(name, f"must be a string, got {_show(value)}")
        return default

    def integer(self, name: str, default: int = 0, lo: int | None = None, hi: int | None = None) -> int:
        value = self.get(name)
        if value is _MISSING or value is None:
            return default
        number = _as_int(value)
        if number is None:
            self.fail(name, f"must be an integer, got {_show(value)}")
            return default
        if lo is not None and number < lo:
            self.fail(name, f"must be >= {lo}, got {number}")
            return default
        if hi is not None and number > hi:
            self.fail(name, f"must be <= {hi}, got {number}")
            return default
        return number

    def number(self, name: str, default: float = 0.0) -> float:
        value = self.get(name)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(name, f"must be a finite number, got {_show(value)}")
            return default
        return float(value)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, bool):
            return value
        self.fail(name, f"must be true or false, got {_show(value)}")
        return default

    def enum(self, name: str, default: int, names: dict[str, int]) -> int:
        """An int enum, also accepting the member names (G's CRDs spell them ``"WarmUp"``...)."""
        value = self.get(name)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, str):
            key = value.strip().lower()
            for member, number in names.items():
                if member.lower() == key:
                    return number
            self.fail(name, f"unknown value {value!r} (expected one of {', '.join(names)} or their numbers)")
            return default
        number = _as_int(value)
        if number is None:
            self.fail(name, f"must be an integer or one of {', '.join(names)}, got {_show(value)}")
            return default
        return number

    def mapping(self, name: str) -> dict | None:
        value = self.get(name)
        if value is _MISSING or value is None:
            return None
        if isinstance(value, dict):
            return value
        self.fail(name, f"must be an object, got {_show(value)}")
        return None

    def regex_ok(self, name: str, pattern: str) -> bool:
        try:
            re.compile(pattern)
        except re.error as exc:
            self.fail(name, f"invalid regular expression: {exc}")
            return False
        return True


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    return None


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, list, dict)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_items(kind: str, items: list, decode: Callable[[RuleReader], Any]) -> Validation:
    """Run ``decode`` over every item; items that are not objects or that collect errors are dropped."""
    rules: list = []
    errors: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"{kind} rule #{index}: must be a JSON object, got {_show(item)}")
            continue
        reader = RuleReader(kind, index, item)
        rule = decode(reader)
        if reader.errors:
            errors.extend(reader.errors)
        elif rule is not None:
            rules.append(rule)
    return Validation(tuple(rules), tuple(errors))


def java_round(value: float) -> int:
    """``Math.round``: half rounds up (towards positive infinity), unlike Python's banker's ``round``."""
    return math.floor(value + 0.5)


def float_equals(a: float, b: float) -> bool:
    """G ``util.Float64Equals`` (precision 1e-8)."""
    return abs(a - b) < 1e-8


def build_with_reuse(rules: Iterable, old: Iterable, equals: Callable, reusable: Callable,
                     generate: Callable) -> list:
    """Sentinel-golang's reload algorithm for one resource (``build*`` with ``calculateReuseIndexFor``).

    ``equals(old_rule, new_rule)``: keep the old controller object unchanged. ``reusable(old_rule,
    new_rule)``: call ``generate(rule, old_controller)`` so the new controller adopts the old one's
    statistic. Otherwise ``generate(rule, None)``. ``generate`` may return None to skip a rule.
    """
    remaining = list(old)
    built = []
    for rule in rules:
        equal_idx = reuse_idx = -1
        for idx, ctrl in enumerate(remaining):
            if equals(ctrl.rule, rule):
                equal_idx = idx
                break
            if reuse_idx < 0 and reusable(ctrl.rule, rule):
                reuse_idx = idx
        if equal_idx >= 0:
            built.append(remaining.pop(equal_idx))
            continue
        donor = remaining[reuse_idx] if reuse_idx >= 0 else None
        ctrl = generate(rule, donor)
        if ctrl is None:
            continue
        if donor is not None:
            remaining.pop(reuse_idx)
        built.append(ctrl)
    return built


class Prepared:
    """A rule set being built beside the one in force (see :meth:`RuleManager.prepare`)."""

    __slots__ = ("rules", "exact", "regex", "pending", "controllers", "old", "base", "known")

    def __init__(self, rules: tuple, exact: dict, regex: list, pending: list, old: dict, base: tuple,
                 known: list[str]) -> None:
        self.rules, self.exact, self.regex, self.pending = rules, exact, regex, pending
        self.controllers: dict[str, tuple] = {}
        self.old = old            # the controllers in force when preparing began (reuse donors)
        self.base = base          # the rules in force then: installing over other rules starts again
        self.known = known        # the resources known then (regex rules are built for those that match)


class RuleManager:
    """One rule kind's current rules and per-resource controllers.

    Subclasses define ``equals``, ``reusable`` and ``generate(resource, rule, donor)``. Controllers
    expose ``.rule``. Rules with ``regex=True`` are compiled once at load and matched (never at entry
    time) when a resource's plan is compiled.

    Loading is :meth:`prepare` → :meth:`build` (any number of times, a budget of resources each) →
    :meth:`install`: the new controllers are built beside the ones in force, which requests keep using,
    and the whole set is swapped in at once. A caller may yield to its event loop between ``build``
    steps, so that a large push never stalls it; :meth:`load` does all three at once.
    """

    kind = ""

    def __init__(self) -> None:
        self.rules: tuple = ()
        self._exact: dict[str, list] = {}
        self._regex: list[tuple[re.Pattern, Any]] = []
        self._controllers: dict[str, tuple] = {}

    def load(self, rules: tuple, known_resources: Iterable[str]) -> bool:
        prepared = self.prepare(rules, known_resources)
        if prepared is None:
            return False
        self.install(prepared)
        return True

    def prepare(self, rules: tuple, known_resources: Iterable[str]) -> Prepared | None:
        """Start building ``rules`` (None when they are the rules in force); nothing visible changes."""
        if rules == self.rules:
            return None
        exact: dict[str, list] = {}
        regex: list[tuple[re.Pattern, Any]] = []
        for rule in rules:
            if getattr(rule, "regex", False):
                regex.append((re.compile(rule.resource), rule))
            else:
                exact.setdefault(rule.resource, []).append(rule)
        old = self._controllers
        known = list(known_resources)
        targets = set(exact) | {r for r in set(known) | set(old) if any(p.fullmatch(r) for p, _ in regex)}
        return Prepared(rules, exact, regex, sorted(targets, reverse=True), old, self.rules, known)

    def build(self, prepared: Prepared, budget: int | None = None) -> bool:
        """Build the controllers of up to ``budget`` more resources (all when None); True when all are built."""
        live = self.rules, self._exact, self._regex
        self.rules, self._exact, self._regex = prepared.rules, prepared.exact, prepared.regex   # what _build reads
        try:
            pending = prepared.pending
            while pending and (budget is None or budget > 0):
                resource = pending.pop()
                prepared.controllers[resource] = self._build(resource, prepared.old.get(resource, ()))
                if budget is not None:
                    budget -= 1
        finally:
            self.rules, self._exact, self._regex = live
        return not prepared.pending

    def install(self, prepared: Prepared) -> None:
        """Swap the prepared rule set in (building what is left first)."""
        if self.rules is not prepared.base or self._controllers is not prepared.old:
            again = self.prepare(prepared.rules, prepared.known)   # the rules changed meanwhile: start over
            if again is None:
                return
            prepared = again
        self.build(prepared)
        self.rules, self._exact, self._regex = prepared.rules, prepared.exact, prepared.regex
        self._controllers = prepared.controllers

    def controllers_for(self, resource: str) -> tuple:
        ctrls = self._controllers.get(resource)
        if ctrls is None:
            if not self._regex or not any(p.fullmatch(resource) for p, _ in self._regex):
                return ()
            ctrls = self._controllers[resource] = self._build(resource, ())
        return ctrls

    def resources(self) -> list[str]:
        return list(self._controllers)

    def has_exact(self, resource: str) -> bool:
        """Whether a rule names ``resource`` itself (not through a regex)."""
        return resource in self._exact

    def all_controllers(self) -> Iterable[tuple[str, Any]]:
        for resource, ctrls in self._controllers.items():
            for ctrl in ctrls:
                yield resource, ctrl

    def rules_of(self, resource: str) -> list:
        rules = list(self._exact.get(resource, ()))
        rules.extend(rule for pattern, rule in self._regex if pattern.fullmatch(resource))
        return rules

    def _build(self, resource: str, old: Iterable) -> tuple:
        generate = lambda rule, donor: self.generate(resource, rule, donor)  # noqa: E731
        return tuple(build_with_reuse(self.rules_of(resource), old, self.equals, self.reusable, generate))

    # ---- subclass hooks -----------------------------------------------------------------------------
    def equals(self, old: Any, new: Any) -> bool:
        return old == new

    def reusable(self, old: Any, new: Any) -> bool:
        return False

    def generate(self, resource: str, rule: Any, donor: Any) -> Any:
        raise NotImplementedError
