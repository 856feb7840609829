"""The rule-source protocol, and how a rule-source type is declared (as discovery sources are).

A :class:`RuleSource` watches one place (a file, a ZooKeeper node, a Nacos config, an HTTP endpoint) and
hands every document it reads to its :class:`Sink`, which pushes it through the rule store under the
source's name. It owns the kinds it lists in ``kinds`` (the store rejects other sources' pushes for them);
a source with no ``kinds`` (the HTTP push) may push any kind that no other source owns.

Contract of a source:

- ``start(sink)`` returns without waiting for the remote end; documents arrive later through
  ``await sink.push(kind, document)`` (bytes or text JSON, or JSON values; ``None`` clears the kind) or
  ``sink.reject(kind, problem)`` for a document the source itself cannot decode (YAML it cannot parse);
- a source that loses its connection keeps quiet: the rules in force stay in force; only a document that
  was seen and is then deleted (a file removed, a node deleted) clears its kind;
- ``status()`` says whether it is connected, what it saw last per kind (``last_seen``) and its last error.

Declaring a type: a :class:`RuleSourceType` names the config model (a :class:`configkit.Model` with a
``type`` literal), the class and the factory; :mod:`config_center.catalog` lists them, one line each, and
the ``config_center.sources`` config union is derived from that list.
"""

from __future__ import annotations

import abc
import typing
from dataclasses import dataclass
from typing import Any, Callable

from configkit import Model
from config_center.store import PushResult, RuleStore


class Sink:
    """Where a source delivers: the store, under the source's name and default dialect."""

    __slots__ = ("store", "source", "dialect")

    def __init__(self, store: RuleStore, source: str, dialect: str = "") -> None:
        self.store, self.source, self.dialect = store, source, dialect

    async def push(self, kind: str, document: Any, dialect: str | None = None) -> PushResult:
        """Apply through the store (in slices: the event loop keeps serving while a large document is built)."""
        return await self.store.push_async(self.source, kind, document, dialect or self.dialect or None)

    def push_now(self, kind: str, document: Any, dialect: str | None = None) -> PushResult:
        """Apply at once, for producers that cannot wait (the dashboard's synchronous command handlers)."""
        return self.store.push(self.source, kind, document, dialect or self.dialect or None)

    def reject(self, kind: str, problem: str) -> PushResult:
        return self.store.reject(self.source, kind, problem)


class RuleSource(abc.ABC):
    """Base class of the rule sources; see the module docstring."""

    type: str = "source"

    def __init__(self, name: str, kinds: tuple[str, ...] = (), dialect: str = "") -> None:
        self.name = name
        self.kinds = kinds
        self.dialect = dialect
        self.connected = False
        self.last_error = ""
        self.last_seen: dict[str, Any] = {}     # kind → what identifies the version read (mtime, node version)
        self.sink: Sink | None = None

    @abc.abstractmethod
    async def start(self, sink: Sink) -> None:
        """Begin watching; deliver documents to ``sink``."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop watching and release every resource."""

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "kinds": list(self.kinds) or "any unowned",
                "dialect": self.dialect or None, "connected": self.connected, "last_seen": dict(self.last_seen),
                "last_error": self.last_error or None}


@dataclass(frozen=True, slots=True)
class RuleSourceContext:
    """What the daemon hands a rule-source factory besides the source's config section."""

    resolve_path: Callable[[str], str]


@dataclass(frozen=True, slots=True)
class RuleSourceType:
    """One kind of rule source: its config model, class and factory."""

    config: type[Model]
    source: type[RuleSource]
    build: Callable[[Any, RuleSourceContext], RuleSource]

    @property
    def name(self) -> str:
        (value,) = typing.get_args(self.config.model_fields["type"].annotation)
        return value
