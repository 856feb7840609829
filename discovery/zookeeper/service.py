"""What ZooKeeper says about one interface, and the endpoints that follow from it (pure, no I/O).

:class:`ServiceState` holds the raw registry view of one interface: the provider znode names (validated
once, when they first appear), their data (SOFARPC online flag) and the configurator rules. The ZooKeeper
source feeds it from watches (or from the on-disk snapshot) and asks :meth:`ServiceState.endpoints` for the
endpoint list at a given time; warm-up makes that list a function of time.

Readiness: a service is *ready* once its provider list was read, its configurators were read (Dubbo) and
the data of every listed provider is known (SOFARPC). The source publishes nothing for a service before it is
ready, so that a provider disabled by a rule or flagged offline never shows up enabled, even briefly.

Several provider URLs at one address: when one process exports two versions or groups of an interface, each
(group, version) becomes its own endpoint, told apart by ``instance = "group/version"`` (the model keys it
``address#group/version``), so routing by version or group can still select either. URLs that share address,
group and version (duplicates differing only in other parameters) keep the enabled one with the highest
weight (ties: node name); :attr:`ServiceState.shared_addresses` counts the URLs dropped that way.
"""

from __future__ import annotations

from typing import Iterable

from discovery.model import EndpointSpec, assign_instances
from discovery.zookeeper.layouts import Layout, ProviderNode
from discovery.zookeeper.overrides import Override, parse_override
from discovery.zookeeper.urls import URLError


class ServiceState:
    """The raw nodes of one interface; see the module docstring."""

    def __init__(self, interface: str, layout: Layout) -> None:
        self.interface = interface
        self.layout = layout
        self.providers: dict[str, ProviderNode | None] = {}   # znode name -> node (None: ignored/invalid)
        self.data: dict[str, bytes | None] = {}               # SOFARPC: name -> data (None: unreadable)
        self.overrides: dict[str, Override | None] = {}
        self.errors: dict[str, str] = {}                      # znode name -> why it is not used
        self.providers_exist = False                          # the providers/ directory exists
        self.listed = False                                   # the provider list was read at least once
        self.rules_read = not layout.has_configurators
        self.shared_addresses = 0

    # -- feeding --------------------------------------------------------------------------------------
    def set_providers(self, names: Iterable[str] | None) -> list[str]:
        """Replace the provider list (None: the directory does not exist); returns new errors, one line each."""
        self.providers_exist = names is not None
        names = set(names or ())
        self.listed = True
        for gone in set(self.providers) - names:
            del self.providers[gone]
            self.data.pop(gone, None)
            self.errors.pop(gone, None)
        errors = []
        for name in names - set(self.providers):
            try:
                self.providers[name] = self.layout.parse_provider(name, self.interface)
            except URLError as exc:
                self.providers[name] = None
                self.errors[name] = str(exc)
                errors.append(str(exc))
        return errors

    def needs_data(self) -> list[str]:
        """SOFARPC provider names whose data has not been read yet."""
        if not self.layout.reads_data:
            return []
        return [n for n, node in self.providers.items() if node is not None and n not in self.data]

    def set_data(self, name: str, data: bytes | None) -> bool:
        """Record a provider's data (None: it could not be read); returns whether anything changed."""
        if name not in self.providers or (name in self.data and self.data[name] == data):
            return False
        self.data[name] = data
        return True

    def set_overrides(self, names: Iterable[str]) -> list[str]:
        """Replace the configurator rules; returns new errors, one line each."""
        names = set(names)
        self.rules_read = True
        for gone in set(self.overrides) - names:
            del self.overrides[gone]
            self.errors.pop(gone, None)
        errors = []
        for name in names - set(self.overrides):
            try:
                self.overrides[name] = parse_override(name)
            except URLError as exc:
                self.overrides[name] = None
                self.errors[name] = str(exc)
                errors.append(str(exc))
        return errors

    # -- reading --------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.listed and self.rules_read and not self.needs_data()

    def endpoints(self, now_ms: int, default_warmup_ms: int | None = None) -> tuple[list[EndpointSpec], bool]:
        """The endpoints at ``now_ms`` and whether any weight is still warming up (so it changes with time)."""
        rules = [r for r in self.overrides.values() if r is not None]
        chosen: dict[str, tuple[tuple, EndpointSpec]] = {}
        warming = False
        shared = 0
        for name, node in self.providers.items():
            if node is None or (self.layout.reads_data and self.data.get(name) is None):
                continue
            online = self.layout.online(self.data.get(name))
            spec, warm = self.layout.endpoint(node, online, rules, now_ms, default_warmup_ms)
            rank = (not spec.enabled, -spec.weight, name)
            slot = (spec.address, spec.group, spec.version)
            previous = chosen.get(slot)
            if previous is not None:
                shared += 1
                if previous[0] <= rank:
                    continue
            chosen[slot] = (rank, spec)
            warming = warming or warm
        self.shared_addresses = shared
        return assign_instances(spec for _, spec in chosen.values()), warming

    # -- snapshot -------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "exists": self.providers_exist,
            "providers": {n: (self.data[n].hex() if self.data.get(n) is not None else None) for n in self.providers},
            "configurators": sorted(self.overrides),
        }

    @classmethod
    def from_json(cls, interface: str, layout: Layout, doc: dict) -> tuple["ServiceState", list[str]]:
        """Rebuild a state saved by :meth:`to_json`; returns it and the errors of nodes that do not validate."""
        state = cls(interface, layout)
        providers = doc.get("providers") or {}
        if not isinstance(providers, dict):
            raise ValueError(f"snapshot of {interface}: 'providers' is not an object")
        errors = state.set_providers(providers)
        state.providers_exist = bool(doc.get("exists", bool(providers)))
        if layout.reads_data:
            for name, data in providers.items():
                state.set_data(name, bytes.fromhex(data) if isinstance(data, str) else None)
        errors += state.set_overrides(doc.get("configurators") or ())
        return state, errors
