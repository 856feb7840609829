"""The adapter protocol every discovery source implements, and how a source type is declared.

A source runs on the asyncio loop that owns the :class:`~discovery.model.ClusterModel`. ``start``
begins feeding the model and returns quickly (it must not wait for the registry); ``synced`` becomes
true after the first complete view was applied, or after the source gave up waiting and fell back to
a snapshot. ``/ready`` waits on every source's first sync, for at most the source's ``sync_timeout``.

Declaring a source type. Each source module declares one :class:`SourceType`: its configuration model
(a :class:`configkit.Model` with a ``type: Literal["<name>"]`` and a ``name`` field), the source class and
a factory that builds the source from a validated config section. :mod:`discovery.catalog` lists the
declarations, one line each; the daemon derives from that list the ``discovery:`` config union, the
builder and the list of known types that ``meshd validate`` prints. Adding a source is therefore one
module (or folder) with its declaration, and one line in the catalog.

A source that can also register the local application (publish providers, subscribe consumers) is a
:class:`~discovery.registration.Registry` as well; the registry APIs accept any such source. A source may
also offer ``collect()`` (a prometheus-client collector: the daemon registers it) and ``config_dump()``
(what it accepted, for ``/config_dump``).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import typing
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from configkit import Model
from discovery.model import ClusterModel
from discovery.wire import BoltWire


class Source(abc.ABC):
    """Base class: a name, a sync event, a status dictionary for the admin API, the source's background
    tasks (``_spawn``; ``_cancel_tasks`` on stop) and its recent errors (``_error``)."""

    kind: str = "source"
    #: How long ``/ready`` waits for the first sync before it gives up on this source (seconds).
    sync_timeout: float = 5.0

    def __init__(self, name: str) -> None:
        self.name = name
        self.model: ClusterModel | None = None
        self._synced = asyncio.Event()
        self.last_error: str = ""
        self._errors: deque[str] = deque(maxlen=20)
        self._tasks: set[asyncio.Task] = set()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def mark_synced(self) -> None:
        self._synced.set()

    async def wait_synced(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    @abc.abstractmethod
    async def start(self, model: ClusterModel) -> None:
        """Begin feeding ``model``; return without waiting for the first sync."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop watching and release every resource (sessions, tasks, files)."""

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.kind, "synced": self.synced,
            "stale": bool(self.model and self.model.is_stale(self.name)), "last_error": self.last_error,
            "errors": list(self._errors),
        }

    def _spawn(self, coro: Any) -> None:
        """Run ``coro`` as one of this source's tasks (cancelled by ``_cancel_tasks``)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _error(self, message: str) -> None:
        """A problem worth showing: logged, kept as ``last_error`` and among the last 20 in ``_errors``."""
        logging.getLogger(type(self).__module__).warning("%s: %s", self.name, message)
        self.last_error = message
        self._errors.append(message)


#: Publishes route configurations a source serves, in the config file's ``route_configs`` shape:
#: ``publish(source, {name: config or None (withdrawn)})`` validates them all, then puts them all in force;
#: it returns None, or the problems (and then changes nothing), for the source's NACK.
RoutePublisher = Callable[[str, "Mapping[str, Mapping[str, Any] | None]"], "str | None"]


def _no_routes(source: str, configs: Mapping[str, Mapping[str, Any] | None]) -> str | None:
    return None


#: Publishes listeners a source serves, in the config file's ``listeners`` shape (``None`` removes one):
#: ``publish(source, {name: listener or None})`` validates them all (None, or the problems, for a NACK), then
#: binds and unbinds in the background (a port that cannot be bound is logged and shown on ``/listeners``).
ListenerPublisher = Callable[[str, "Mapping[str, Mapping[str, Any] | None]"], "str | None"]


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What the daemon hands a source factory besides the source's own config section."""

    #: A path as written in the config (relative to the config file's folder) → an absolute path.
    resolve_path: Callable[[str], str]
    #: Validates one cluster mapping against the daemon's full cluster schema; raises ``ValueError`` naming
    #: the problem (the file source checks whole clusters with it).
    validate_cluster: Callable[[Mapping[str, Any]], None]
    #: Where a source that serves routes (:attr:`SourceType.routes`) publishes them; validated by the daemon.
    publish_routes: RoutePublisher = _no_routes
    #: The route configuration names the daemon's own listeners take from this source.
    route_names: frozenset[str] = frozenset()
    #: Where a source that serves listeners publishes them (the xDS source with ``listeners`` in resources).
    publish_listeners: ListenerPublisher = _no_routes
    #: The daemon's Bolt + hessian2 codecs, for a source whose registry speaks Bolt (SOFARegistry); None where
    #: the daemon lends none (a source that needs it then refuses to be built, naming it).
    bolt: BoltWire | None = None


@dataclass(frozen=True, slots=True)
class SourceType:
    """One kind of discovery source: its config model, its class and its factory (see the module docstring)."""

    config: type[Model]
    source: type[Source]
    build: Callable[[Any, SourceContext], Source]
    routes: bool = False                      # whether its sources also serve route configurations

    @property
    def name(self) -> str:
        """The ``type:`` value that selects this source in the config (the config model's ``type`` literal)."""
        (value,) = typing.get_args(self.config.model_fields["type"].annotation)
        return value
