"""Metadata subset load balancing (Envoy's subset LB), maintained incrementally from host changes.

A request carries metadata to match (``{"version": "1.0.0", "group": "g1"}``) from its route
(``metadata_match``, weighted clusters) and from the request itself (Dubbo version/group and
attachments, Bolt header-map entries, HTTP headers through ``header_to_metadata``).

The index keeps, per selector (a sorted tuple of metadata keys), a map from value tuples to the hosts
that have exactly those values. Selectors come from the cluster's ``subset.selectors``; a request whose
key set no configured selector covers gets an *implicit* selector for its key set, built once and kept
current like the others — so registry metadata always narrows the choice (a Dubbo call for version
1.0.0 never reaches a 2.0.0 provider unless a fallback says so).

Lookup (:meth:`SubsetIndex.lookup`), Envoy's semantics:

1. the selector for exactly the request's key set → the subset for the request's values; when no
   configured selector has exactly those keys, the configured selector with the most keys among them
   chooses, and the request's other keys filter its subset (RPC requests always carry ``version`` and,
   where providers declare one, ``group``: a ``[tag, version]`` selector still applies to them);
2. the subset is empty or missing → that selector's ``fallback_policy``: ``keys_subset`` retries with
   ``fallback_keys_subset`` keys only; ``no_fallback`` / ``any_endpoint`` / ``default_subset`` decide
   directly; ``not_defined`` defers to the cluster's policy;
3. the cluster's ``fallback_policy``: ``no_fallback`` → no host, ``any_endpoint`` → every host,
   ``default_subset`` → the hosts matching ``default_subset``.

Host values: ``group`` and ``version`` are the endpoint's typed fields (the discovery adapters normalise
them: SOFARPC's uniqueId is the group, its registry ``group=SOFA`` is not), "" when the endpoint has
none — so a request without a group matches providers without one, as Dubbo's own matching does.
Every other key is the endpoint's metadata. :attr:`SubsetIndex.declared` counts, for ``group`` and
``version``, the hosts that declare a non-empty value: the RPC path only selects on a key the cluster's
endpoints use at all.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from meshd.config import SubsetConfig
from meshd.upstream.host import Host

NO_FALLBACK, ANY_ENDPOINT, DEFAULT_SUBSET, NOT_DEFINED, KEYS_SUBSET = (
    "no_fallback", "any_endpoint", "default_subset", "not_defined", "keys_subset")


TYPED = ("group", "version")


class Selection(dict):
    """Subset metadata that never changes (a route's ``metadata_match``): its lookup key is computed once."""

    __slots__ = ("key",)

    def __init__(self, items: Mapping[str, str] = ()) -> None:
        super().__init__(items)
        self.key = tuple(sorted(self.items()))



def host_value(host: Host, key: str) -> str | None:
    ep = host.endpoint
    if key == "version":
        return ep.version
    if key == "group":
        return ep.group
    return ep.metadata.get(key)


class _Selector:
    __slots__ = ("keys", "fallback", "fallback_keys", "subsets", "implicit")

    def __init__(self, keys: tuple[str, ...], fallback: str = NOT_DEFINED, fallback_keys: tuple[str, ...] = (),
                 implicit: bool = False) -> None:
        self.keys = keys
        self.fallback = fallback
        self.fallback_keys = fallback_keys
        self.subsets: dict[tuple[str, ...], dict[str, Host]] = {}
        self.implicit = implicit

    def values(self, host: Host) -> tuple[str, ...] | None:
        out = []
        for key in self.keys:
            value = host_value(host, key)
            if value is None:
                return None
            out.append(value)
        return tuple(out)

    def add(self, host: Host) -> tuple[str, ...] | None:
        values = self.values(host)
        if values is not None:
            self.subsets.setdefault(values, {})[host.key] = host
        return values

    def remove(self, host: Host, values: tuple[str, ...] | None) -> None:
        if values is None:
            return
        subset = self.subsets.get(values)
        if subset is not None:
            subset.pop(host.key, None)
            if not subset:
                del self.subsets[values]


class SubsetIndex:
    """See the module docstring. ``version`` changes whenever any subset's membership changes."""

    def __init__(self, config: SubsetConfig) -> None:
        self.config = config
        self._selectors: dict[tuple[str, ...], _Selector] = {}
        for sel in config.selectors:
            keys = tuple(sorted(sel.keys))
            self._selectors[keys] = _Selector(keys, sel.fallback_policy, tuple(sorted(sel.fallback_keys_subset)))
        self._hosts: dict[str, Host] = {}
        self._memberships: dict[str, list[tuple[_Selector, tuple[str, ...] | None]]] = {}
        self.declared: dict[str, int] = {"group": 0, "version": 0}
        self.version = 0

    # -- maintenance, from host diffs ---------------------------------------------------------------
    def add(self, host: Host) -> None:
        self._hosts[host.key] = host
        self._memberships[host.key] = [(sel, sel.add(host)) for sel in self._selectors.values()]
        self._declare(host, 1)
        self.version += 1

    def remove(self, host: Host) -> None:
        if self._hosts.pop(host.key, None) is not None:
            self._declare(host, -1)
        for sel, values in self._memberships.pop(host.key, ()):
            sel.remove(host, values)
        self.version += 1

    def _declare(self, host: Host, delta: int) -> None:
        ep = host.endpoint
        if ep.group:
            self.declared["group"] += delta
        if ep.version:
            self.declared["version"] += delta

    def update(self, host: Host) -> None:
        """Metadata of ``host`` changed: move it between subsets where its values changed."""
        old = self._memberships.get(host.key)
        if old is None:
            return self.add(host)
        self._recount()
        new = []
        for sel, values in old:
            fresh = sel.values(host)
            if fresh != values:
                sel.remove(host, values)
                sel.add(host)
            new.append((sel, fresh))
        self._memberships[host.key] = new
        self.version += 1

    def _recount(self) -> None:
        self.declared = {"group": sum(1 for h in self._hosts.values() if h.endpoint.group),
                         "version": sum(1 for h in self._hosts.values() if h.endpoint.version)}

    def apply(self, added: Iterable[Host], removed: Iterable[Host], changed: Iterable[Host]) -> None:
        for h in removed:
            self.remove(h)
        for h in added:
            self.add(h)
        for h in changed:
            self.update(h)

    # -- lookup -------------------------------------------------------------------------------------
    def lookup(self, metadata: Mapping[str, str]) -> list[Host] | None:
        """Hosts for ``metadata`` after fallbacks; None means "every host" (any_endpoint)."""
        keys = tuple(sorted(metadata))
        sel = self._selectors.get(keys)
        rest: dict[str, str] = {}
        if sel is None:
            sel = self._covering(keys)
            if sel is None:
                sel = self._implicit(keys)
            else:
                rest = {k: v for k, v in metadata.items() if k not in sel.keys}
        hosts = self._subset(sel, metadata)
        if hosts and rest:
            hosts = [h for h in hosts if all(host_value(h, k) == v for k, v in rest.items())]
        if hosts:
            return hosts
        policy = sel.fallback
        if policy == KEYS_SUBSET and sel.fallback_keys:
            narrowed = {k: metadata[k] for k in sel.fallback_keys if k in metadata}
            narrowed.update(rest)
            return self.lookup(narrowed) if narrowed else None
        if policy == NOT_DEFINED:
            policy = self.config.fallback_policy
        if policy == ANY_ENDPOINT:
            return None
        if policy == DEFAULT_SUBSET:
            default = self.config.default_subset
            if not default:
                return None
            dkeys = tuple(sorted(default))
            return self._subset(self._selectors.get(dkeys) or self._implicit(dkeys), default)
        return []

    def _covering(self, keys: tuple[str, ...]) -> _Selector | None:
        """The configured selector with the most keys, all of them among ``keys`` (None when none is)."""
        best = None
        for sel in self._selectors.values():
            if not sel.implicit and set(sel.keys) <= set(keys) and (best is None or len(sel.keys) > len(best.keys)):
                best = sel
        return best

    def _subset(self, sel: _Selector, metadata: Mapping[str, str]) -> list[Host]:
        subset = sel.subsets.get(tuple(metadata[k] for k in sel.keys))
        return list(subset.values()) if subset else []

    def _implicit(self, keys: tuple[str, ...]) -> _Selector:
        sel = self._selectors[keys] = _Selector(keys, implicit=True)
        for address, host in self._hosts.items():
            self._memberships[address].append((sel, sel.add(host)))
        return sel

    def describe(self) -> dict:
        return {
            ",".join(sel.keys): {"|".join(values): sorted(hosts) for values, hosts in sorted(sel.subsets.items())}
            for sel in self._selectors.values()
        }
