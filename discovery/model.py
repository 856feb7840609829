"""The single cluster model every discovery source feeds.

A *source* (file, ZooKeeper, Nacos, xDS, ...) reports, per cluster name, the full set of endpoints it
currently knows (:class:`EndpointSpec`). The model keeps each source's contribution apart and publishes
the *union*: one :class:`Endpoint` per key, remembering every source that reported it (dual mode). The
key is the address, or ``address#instance`` when a source tells several endpoints at one address apart
(one process exporting two versions or groups of an interface: both must stay selectable).
When sources disagree about an address, the source registered first (``source_order``, else first seen)
supplies the typed fields; metadata is merged with the same precedence.

Every mutation returns :class:`ClusterDiff` values (added / removed / changed endpoints) and hands the same
diffs to subscribers, so that subset indexes, pools and health checkers update incrementally.

A source that loses its registry calls :meth:`ClusterModel.set_stale`: its endpoints stay, flagged
stale, until it reports again. Nothing is removed because a session dropped.

Threading: the model is not thread-safe. Call it from one thread (the event loop); adapters whose client
library calls back on other threads (kazoo) post their updates with ``loop.call_soon_threadsafe``.
Subscribers are called synchronously, in subscription order, after the model has changed.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

EMPTY: Mapping[str, str] = MappingProxyType({})
KEEP: Any = object()
"""``apply(..., settings=KEEP)`` (the default) leaves the source's settings for the cluster as they were."""


class Health(enum.Enum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"
    UNKNOWN = "unknown"


INTEGER = re.compile(r"[+-]?[0-9]+")
"""A registry parameter's integer: a sign and digits, as Java's ``Integer.parseInt`` / ``Long.parseLong`` read it."""


def parse_int(text: str) -> int | None:
    """``text`` as an integer (:data:`INTEGER`), else None (also for more digits than ``int()`` converts)."""
    if INTEGER.fullmatch(text) is None:
        return None
    try:
        return int(text)
    except ValueError:          # more digits than int() converts (sys.get_int_max_str_digits())
        return None


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` → (host, port); raises ValueError naming the address."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host:                      # "[]:80"
            raise ValueError(f"{address!r} is not host:port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not a valid port")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One endpoint as one source reports it.

    ``metadata`` keeps every registry parameter as a string (URL parameters, Nacos metadata, xDS
    filter metadata); the typed fields are the ones routing and balancing read directly.
    """

    address: str
    weight: int = 100
    health: Health = Health.HEALTHY
    zone: str = ""
    priority: int = 0
    group: str = ""
    version: str = ""
    enabled: bool = True
    metadata: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    instance: str = ""            # tells apart several endpoints at one address ("" = the usual single one)

    @property
    def key(self) -> str:
        return f"{self.address}#{self.instance}" if self.instance else self.address

    def __post_init__(self) -> None:
        split_address(self.address)
        if self.weight < 0:
            raise ValueError(f"endpoint {self.address}: weight {self.weight} is negative")
        if not isinstance(self.metadata, MappingProxyType):
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))


def assign_instances(specs: Iterable[EndpointSpec]) -> list[EndpointSpec]:
    """Tell apart endpoints that share an address: each gets ``instance = "group/version"`` (the usual
    single endpoint per address keeps ``instance = ""``). Raises ValueError when two share address, group
    and version too — nothing could route between them."""
    specs = list(specs)
    counts: dict[str, int] = {}
    for spec in specs:
        counts[spec.address] = counts.get(spec.address, 0) + 1
    if all(n == 1 for n in counts.values()):
        return specs
    out, seen = [], set()
    for spec in specs:
        if counts[spec.address] > 1 and not spec.instance:
            spec = replace(spec, instance=f"{spec.group}/{spec.version}")
        if spec.key in seen:
            raise ValueError(f"endpoint {spec.address} is listed twice with group {spec.group!r} and version "
                             f"{spec.version!r}")
        seen.add(spec.key)
        out.append(spec)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Endpoint:
    """One endpoint of a cluster as the model publishes it (the merge of every source's report)."""

    address: str
    host: str
    port: int
    weight: int
    health: Health
    zone: str
    priority: int
    group: str
    version: str
    enabled: bool
    metadata: Mapping[str, str]
    sources: tuple[str, ...]
    stale: bool = False
    instance: str = ""

    @property
    def key(self) -> str:
        return f"{self.address}#{self.instance}" if self.instance else self.address

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Endpoint):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self.key)

    def _key(self) -> tuple:
        return (self.address, self.instance, self.weight, self.health, self.zone, self.priority, self.group, self.version,
                self.enabled, dict(self.metadata), self.sources, self.stale)

    @property
    def routable(self) -> bool:
        """Enabled, positive weight, and not reported unhealthy or draining by its source."""
        return self.enabled and self.weight > 0 and self.health in (Health.HEALTHY, Health.UNKNOWN)

    def to_json(self) -> dict:
        return {
            "address": self.address, "weight": self.weight, "health": self.health.value, "zone": self.zone,
            "priority": self.priority, "group": self.group, "version": self.version, "enabled": self.enabled,
            "metadata": dict(self.metadata), "sources": list(self.sources), "stale": self.stale,
            **({"instance": self.instance} if self.instance else {}),
        }


@dataclass(frozen=True, slots=True)
class ClusterDiff:
    """What one mutation changed in one cluster.

    ``created``/``deleted`` say the cluster itself appeared (first report by any source) or disappeared
    (no source reports it any more). ``settings_changed`` says a source-provided settings mapping changed.
    """

    cluster: str
    added: tuple[Endpoint, ...] = ()
    removed: tuple[Endpoint, ...] = ()
    changed: tuple[tuple[Endpoint, Endpoint], ...] = ()
    created: bool = False
    deleted: bool = False
    settings_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.created or self.deleted
                    or self.settings_changed)


@dataclass
class _Contribution:
    specs: dict[str, EndpointSpec] = field(default_factory=dict)
    settings: Mapping | None = None


class Cluster:
    """The published state of one cluster: endpoints by address, per-source contributions."""

    __slots__ = ("name", "endpoints", "version", "_by_source")

    def __init__(self, name: str) -> None:
        self.name = name
        self.endpoints: dict[str, Endpoint] = {}
        self.version = 0
        self._by_source: dict[str, _Contribution] = {}

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self._by_source)

    def settings(self, order: Callable[[str], int]) -> Mapping | None:
        """The settings mapping of the highest-precedence source that provided one."""
        for source in sorted(self._by_source, key=order):
            settings = self._by_source[source].settings
            if settings is not None:
                return settings
        return None

    def __repr__(self) -> str:
        return f"<Cluster {self.name} v{self.version} endpoints={sorted(self.endpoints)} sources={list(self._by_source)}>"


class ClusterModel:
    """Clusters by name, fed by sources, publishing diffs. See the module docstring."""

    def __init__(self, source_order: Iterable[str] = ()) -> None:
        self._clusters: dict[str, Cluster] = {}
        self._rank: dict[str, int] = {}
        for name in source_order:
            self._rank.setdefault(name, len(self._rank))
        self._stale: set[str] = set()
        self._subscribers: list[Callable[[ClusterDiff], None]] = []

    # -- reading -------------------------------------------------------------------------------------
    def cluster(self, name: str) -> Cluster | None:
        return self._clusters.get(name)

    def clusters(self) -> Mapping[str, Cluster]:
        return MappingProxyType(self._clusters)

    def is_stale(self, source: str) -> bool:
        return source in self._stale

    def settings(self, cluster: str) -> Mapping | None:
        c = self._clusters.get(cluster)
        return c.settings(self._order) if c else None

    def source_clusters(self, source: str) -> list[str]:
        return [name for name, c in self._clusters.items() if source in c._by_source]

    # -- subscribing ---------------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[ClusterDiff], None]) -> Callable[[], None]:
        """Call ``callback(diff)`` after every non-empty change; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    # -- writing -------------------------------------------------------------------------------------
    def apply(self, source: str, cluster: str, endpoints: Iterable[EndpointSpec],
              settings: Mapping | None = KEEP) -> ClusterDiff:
        """Replace ``source``'s contribution to ``cluster`` with ``endpoints`` (possibly none).

        A source that reports a cluster with no endpoints keeps the cluster known (an empty provider
        list is "no endpoints", not "unknown service"). Reporting clears the source's stale flag for
        nothing else: use :meth:`set_stale` for that.
        """
        self._rank.setdefault(source, len(self._rank))
        specs: dict[str, EndpointSpec] = {}
        for spec in endpoints:
            specs[spec.key] = spec
        c = self._clusters.get(cluster)
        created = c is None
        if c is None:
            c = self._clusters[cluster] = Cluster(cluster)
        old_settings = c.settings(self._order)
        contribution = c._by_source.setdefault(source, _Contribution())
        touched = set(contribution.specs) | set(specs)
        contribution.specs = specs
        if settings is not KEEP:
            contribution.settings = settings
        diff = self._recompute(c, touched, created=created,
                               settings_changed=c.settings(self._order) != old_settings)
        return self._publish(diff)

    def withdraw(self, source: str, cluster: str) -> ClusterDiff:
        """``source`` no longer reports ``cluster`` at all; the cluster goes when no source is left."""
        c = self._clusters.get(cluster)
        if c is None or source not in c._by_source:
            return ClusterDiff(cluster)
        old_settings = c.settings(self._order)
        contribution = c._by_source.pop(source)
        diff = self._recompute(c, set(contribution.specs),
                               settings_changed=c.settings(self._order) != old_settings)
        if not c._by_source:
            del self._clusters[cluster]
            diff = ClusterDiff(cluster, diff.added, diff.removed, diff.changed, deleted=True)
        return self._publish(diff)

    def replace_source(self, source: str, clusters: Mapping[str, Iterable[EndpointSpec]],
                       settings: Mapping[str, Mapping] | None = None) -> list[ClusterDiff]:
        """A full snapshot from ``source``: clusters it no longer lists are withdrawn, and each listed
        cluster's settings become ``settings.get(name)`` (None: the source provides none)."""
        settings = settings or {}
        diffs = [self.withdraw(source, name) for name in self.source_clusters(source) if name not in clusters]
        diffs += [self.apply(source, name, eps, settings.get(name)) for name, eps in clusters.items()]
        return [d for d in diffs if not d.empty]

    def set_stale(self, source: str, stale: bool) -> list[ClusterDiff]:
        """Mark every endpoint of ``source`` stale (registry unreachable) or fresh again."""
        if stale == (source in self._stale):
            return []
        (self._stale.add if stale else self._stale.discard)(source)
        diffs = []
        for c in list(self._clusters.values()):
            if source in c._by_source:
                diff = self._recompute(c, set(c._by_source[source].specs))
                if not diff.empty:
                    diffs.append(self._publish(diff))
        return diffs

    # -- internals -----------------------------------------------------------------------------------
    def _order(self, source: str) -> int:
        return self._rank.get(source, len(self._rank))

    def _recompute(self, c: Cluster, keys: set[str], created: bool = False,
                   settings_changed: bool = False) -> ClusterDiff:
        added, removed, changed = [], [], []
        sources = sorted(c._by_source, key=self._order)
        for key in sorted(keys):
            reports = [(s, c._by_source[s].specs[key]) for s in sources if key in c._by_source[s].specs]
            old = c.endpoints.get(key)
            new = self._merge(reports) if reports else None
            if new is None:
                if old is not None:
                    del c.endpoints[key]
                    removed.append(old)
            elif old is None:
                c.endpoints[key] = new
                added.append(new)
            elif old != new:
                c.endpoints[key] = new
                changed.append((old, new))
        diff = ClusterDiff(c.name, tuple(added), tuple(removed), tuple(changed), created=created,
                           settings_changed=settings_changed)
        if not diff.empty:
            c.version += 1
        return diff

    def _merge(self, reports: list[tuple[str, EndpointSpec]]) -> Endpoint:
        fresh = [r for r in reports if r[0] not in self._stale]
        # Fresh sources take precedence over stale ones, for the typed fields and the metadata alike.
        ordered = fresh + [r for r in reports if r[0] in self._stale]
        primary = ordered[0][1]
        metadata: dict[str, str] = {}
        for _, spec in reversed(ordered):
            metadata.update(spec.metadata)
        host, port = split_address(primary.address)
        return Endpoint(
            address=primary.address, host=host, port=port, weight=primary.weight, health=primary.health,
            zone=primary.zone, priority=primary.priority, group=primary.group, version=primary.version,
            enabled=primary.enabled, metadata=MappingProxyType(metadata),
            sources=tuple(s for s, _ in reports), stale=not fresh, instance=primary.instance,
        )

    def _publish(self, diff: ClusterDiff) -> ClusterDiff:
        if not diff.empty:
            for callback in list(self._subscribers):
                callback(diff)
        return diff

    def __repr__(self) -> str:
        return f"<ClusterModel clusters={len(self._clusters)} stale={sorted(self._stale)}>"
