"""The resource store of the test control plane: what the server serves, per type URL, with versions.

Contract:
- A :class:`Snapshot` holds, per xDS type URL, a map ``name -> StoredResource`` (the packed ``Any`` and the
  version at which that resource last changed) and a per-type version counter (the xDS protocol: versions are
  per type_url and per server, not per stream). Versions are decimal strings, ``"0"`` before any change.
- :meth:`Snapshot.apply` is the only mutator. One call is one transaction: every touched type gets exactly
  one new version, and the call returns the changed types in make-before-break push order
  (CDS, EDS, LDS, RDS, then SDS Secrets: the protocol's "eventual consistency" order; a client subscribes a
  secret once a cluster or listener names it, and a new name is answered at once, so the place of SDS in the
  order only decides which of two changes in one transaction a client hears of first). Setting a resource to bytes it
  already has is not a change;
  ``bump`` re-stamps every resource of a type with a new version even when nothing else changed.
- Resources are protobuf messages (Cluster, ClusterLoadAssignment, RouteConfiguration, Listener, Secret, or
  any message with a ``name``); their type URL and name are derived from the message. A resource is stored as
  given: invalid ones (that a client must NACK) are stored too.
- Not thread-safe: the server owns it on its event loop; :class:`~integration.xds.threaded.AdsServerThread`
  marshals calls from other threads onto that loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from google.protobuf import any_pb2
from google.protobuf.message import Message

TYPE_PREFIX = "type.googleapis.com/"
CLUSTER = TYPE_PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = TYPE_PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = TYPE_PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = TYPE_PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET = TYPE_PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"

#: Make-before-break order in which changed types are pushed to clients.
PUSH_ORDER: tuple[str, ...] = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)
#: Types whose SotW responses carry the full state and which support wildcard subscriptions.
WILDCARD_TYPES: frozenset[str] = frozenset({LISTENER, CLUSTER})
#: Short aliases accepted wherever a type URL is expected.
ALIASES: dict[str, str] = {"cds": CLUSTER, "eds": ENDPOINT, "lds": LISTENER, "rds": ROUTE, "sds": SECRET}


def type_url(value: str | Message) -> str:
    """The type URL of a message, or of an alias (``"cds"``), or the type URL itself."""
    if isinstance(value, Message):
        return TYPE_PREFIX + value.DESCRIPTOR.full_name
    return ALIASES.get(value, value)


def resource_name(message: Message) -> str:
    """The xDS name of a resource: ``cluster_name`` for a ClusterLoadAssignment, else its ``name``."""
    field = "cluster_name" if message.DESCRIPTOR.full_name.endswith("ClusterLoadAssignment") else "name"
    name = getattr(message, field, "")
    if not name:
        raise ValueError(f"{message.DESCRIPTOR.full_name} has no {field}: cannot serve it as an xDS resource")
    return str(name)


def push_order_key(url: str) -> int:
    return PUSH_ORDER.index(url) if url in PUSH_ORDER else len(PUSH_ORDER)


@dataclass(frozen=True)
class StoredResource:
    """One served resource: its name, the type version at which it last changed, and the packed message."""

    name: str
    version: str
    packed: any_pb2.Any


class Snapshot:
    """Per-type resources and versions; see the module docstring."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._resources: dict[str, dict[str, StoredResource]] = {}

    def version(self, url: str) -> str:
        """The current version of a type (``"0"`` if it never changed)."""
        return str(self._counters.get(type_url(url), 0))

    def resources(self, url: str) -> Mapping[str, StoredResource]:
        """The resources of a type, by name (a read-only view; do not keep it across changes)."""
        return self._resources.get(type_url(url), {})

    def types(self) -> list[str]:
        """The type URLs that ever had a change, in push order."""
        return sorted(self._counters, key=push_order_key)

    def names(self, url: str) -> list[str]:
        return sorted(self.resources(url))

    def apply(self, *, upsert: Iterable[Message] = (), replace: Mapping[str, Iterable[Message]] | None = None,
              remove: Mapping[str, Iterable[str]] | None = None, bump: Iterable[str] = ()) -> dict[str, str]:
        """One transaction: ``replace`` whole types, then ``upsert`` messages, ``remove`` names, ``bump``
        types. Returns ``{type_url: new_version}`` for the types that changed, in push order."""
        staged: dict[str, dict[str, any_pb2.Any]] = {}
        for url, messages in (replace or {}).items():
            staged[type_url(url)] = {}
            for msg in messages:
                self._stage(staged, msg, expect=type_url(url))
        for msg in upsert:
            self._stage(staged, msg)
        removals = {type_url(url): list(names) for url, names in (remove or {}).items()}
        bumps = {type_url(url) for url in bump}
        replaced = {type_url(url) for url in (replace or {})}
        changed: dict[str, str] = {}
        for url in sorted({*staged, *removals, *bumps}, key=push_order_key):
            if self._commit(url, staged.get(url), removals.get(url, ()), url in replaced, url in bumps):
                changed[url] = self.version(url)
        return changed

    def _stage(self, staged: dict[str, dict[str, any_pb2.Any]], msg: Message, expect: str | None = None) -> None:
        url = type_url(msg)
        if expect is not None and url != expect:
            raise ValueError(f"replace[{expect!r}] got a {url}")
        packed = any_pb2.Any()
        packed.Pack(msg, deterministic=True)  # byte comparison decides "changed"
        staged.setdefault(url, {})[resource_name(msg)] = packed

    def _commit(self, url: str, new: dict[str, any_pb2.Any] | None, removed: Iterable[str],
                replace_all: bool, bump: bool) -> bool:
        current = self._resources.get(url, {})
        target: dict[str, any_pb2.Any] = {} if replace_all else {n: r.packed for n, r in current.items()}
        target.update(new or {})
        for name in removed:
            target.pop(name, None)
        same = target.keys() == current.keys() and all(
            current[n].packed.value == p.value for n, p in target.items())
        if same and not bump:
            return False
        self._counters[url] = self._counters.get(url, 0) + 1
        version = str(self._counters[url])
        self._resources[url] = {
            name: (current[name] if not bump and name in current and current[name].packed.value == packed.value
                   else StoredResource(name, version, packed))
            for name, packed in target.items()}
        return True
