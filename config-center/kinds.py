"""Rule kinds: how the store decodes, validates, compares, diffs and applies one kind of runtime rule.

The store (:mod:`config_center.store`) knows no rule semantics. Each kind it serves is a :class:`RuleKind`:

- ``validate(document, dialect)`` turns a decoded document (JSON values: a list for the Sentinel kinds, a
  mapping for route and cluster overrides, ``None`` for "no rules") into its *normal form*, the JSON value
  that is compared, stored, persisted and applied; it raises :class:`RuleRejected` with every problem, each
  message naming the kind, the rule (index or name), the field and the bad value. It must not change state;
- ``apply(normal, dialect)`` puts a validated document in force, atomically (all of it or none of it);
- ``entries(normal)`` names the rules of a document for the history's diff (key → rule).

A kind whose documents can be large may also give ``validate_steps`` and ``apply_steps``: generators doing
the same work in slices, yielding between them, so that the store's asynchronous push lets the event loop
serve requests while a thousand rules are checked and built (the rules in force serve meanwhile; the
new set is still swapped in at once).

:func:`sentinel_kind` builds the five governance kinds from the engine's own validation, the same code that
validates the config file's ``governance`` section; the daemon builds the route and cluster override kinds
from its config models (``meshd/rule_kinds.py``). An empty document (``None``, ``""``, ``[]``, ``{}``)
clears the kind, as in Sentinel's datasources.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Generator, Mapping

from governance import DIALECTS, RULE_KINDS, RuleError, Validation

#: The kinds beside the Sentinel ones: route overrides (by route name) and cluster overrides (by cluster).
ROUTE_KIND = "routes"
CLUSTER_KIND = "clusters"
#: Every kind the store serves, in the order the admin API lists them.
ALL_KINDS: tuple[str, ...] = (*RULE_KINDS, ROUTE_KIND, CLUSTER_KIND)


class RuleRejected(Exception):
    """A document that cannot be applied; ``problems`` holds one readable message per problem."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class RuleKind:
    """One kind of runtime rule (see the module docstring)."""

    name: str
    validate: Callable[[Any, str], Any]
    apply: Callable[[Any, str], None]
    entries: Callable[[Any], Mapping[str, Any]]
    dialects: tuple[str, ...] = ()            # the dialects the kind is written in; () when it has none
    default_dialect: str = ""
    validate_steps: Callable[[Any, str], Generator[None, None, Any]] | None = None
    apply_steps: Callable[[Any, str], Generator[None, None, None]] | None = None


def decode(raw: Any) -> Any:
    """A pushed document as JSON values: bytes and text are parsed as JSON (blank means no rules)."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RuleRejected([f"document: not UTF-8 ({exc.reason} at byte {exc.start})"]) from None
    if isinstance(raw, str):
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RuleRejected([f"document: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]) \
                from None
    return raw


def canonical(normal: Any) -> bytes:
    """The bytes two documents are compared by: sorted keys, no insignificant white space."""
    return json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest(normal: Any, dialect: str) -> str:
    return hashlib.sha256(dialect.encode() + b"\0" + canonical(normal)).hexdigest()[:16]


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str]]:
    """Rules added, removed and changed between two documents of one kind (by the kind's rule keys)."""
    return {"added": sorted(k for k in new if k not in old), "removed": sorted(k for k in old if k not in new),
            "changed": sorted(k for k in new if k in old and old[k] != new[k])}


#: Rules validated, and resources whose controllers are built, per step of a sliced push (about 0.5 ms each).
STEP_RULES = 100
_RULE_INDEX = re.compile(r"^(\w+ rule #)(\d+)")


def sentinel_kind(name: str, validate_rules: Callable[[str, Any, str], Any],
                  load: Callable[[str, Any, str], Any], default_dialect: str = "go", *,
                  stage: Callable[[str, Any], Any] | None = None, build: Callable[[Any, int], bool] | None = None,
                  commit: Callable[[Any, str], Any] | None = None) -> RuleKind:
    """A governance kind: ``validate_rules(kind, document, dialect)`` is the engine's dry run (a
    :class:`governance.Validation`), ``load(kind, document, dialect)`` its strict, atomic load. With
    ``stage(kind, validation)``, ``build(staged, budget)`` and ``commit(staged, dialect)`` (the engine's
    staged load) the kind also has sliced steps."""
    validated: dict[int, Any] = {}            # the Validation of the document validated last, by identity

    def check(document: Any) -> list | None:
        if document in (None, "", [], {}):
            return None
        if not isinstance(document, list):
            raise RuleRejected([f"{name}: expected a JSON array of rules, got {type(document).__name__}"])
        return document

    def validate(document: Any, dialect: str) -> Any:
        document = check(document)
        if document is None:
            return []
        validation = validate_rules(name, document, dialect)
        if validation.errors:                 # the engine's messages name the kind, rule, field and value
            raise RuleRejected(list(validation.errors))
        return document

    def validate_steps(document: Any, dialect: str) -> Generator[None, None, Any]:
        document = check(document)
        if document is None:
            return []
        rules: list = []
        errors: list[str] = []
        for start in range(0, len(document), STEP_RULES):
            part = validate_rules(name, document[start:start + STEP_RULES], dialect)
            rules.extend(part.rules)
            errors.extend(_RULE_INDEX.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + start}", e) for e in part.errors)
            yield
        if errors:
            raise RuleRejected(errors)
        validated.clear()
        validated[id(document)] = Validation(tuple(rules), ())
        return document

    def apply(normal: Any, dialect: str) -> None:
        try:
            load(name, normal, dialect)
        except RuleError as exc:
            raise RuleRejected(list(exc.messages)) from None

    def apply_steps(normal: Any, dialect: str) -> Generator[None, None, None]:
        validation = validated.pop(id(normal), None) or validate_rules(name, normal, dialect)
        staged = stage(name, validation)
        while not build(staged, STEP_RULES):
            yield
        commit(staged, dialect)

    def entries(normal: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for rule in normal or ():
            resource = str(rule.get("resource", rule.get("Resource", ""))) if isinstance(rule, dict) else ""
            n = seen[resource] = seen.get(resource, -1) + 1
            out[f"{resource}#{n}"] = rule
        return out

    sliced = stage is not None and build is not None and commit is not None
    return RuleKind(name, validate, apply, entries, DIALECTS, default_dialect,
                    validate_steps if sliced else None, apply_steps if sliced else None)


def mapping_entries(normal: Any) -> dict[str, Any]:
    """Rule keys of an override document: its names."""
    return dict(normal or {})
