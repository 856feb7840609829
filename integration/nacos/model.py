"""The state of the test Nacos server, with no I/O: naming (namespaces, services, instances) and config.

Semantics follow the real server (``alibaba/nacos``: ``naming``, ``config``, ``core/remote``):

- namespace ``""`` and ``"public"`` are the same namespace (3.x); keys are ``(namespace, group, service)``;
  a service name given as ``group@@service`` (v1 clients) is split;
- an instance is keyed by ``(ip, port, cluster)``; ``instanceId`` is ``ip#port#cluster#group@@service``;
  ``weight`` is a float; ``owner`` says who keeps it alive: ``"grpc:<connection id>"`` (dropped with the
  connection), ``"beat"`` (v1 ephemeral: unhealthy after the heartbeat timeout, deleted after the ip-delete
  timeout, both 15 s / 30 s unless the preserved metadata says otherwise) or ``"persistent"``;
- every change to a service bumps its ``revision``, which is the ``lastRefTime`` clients see; revisions come
  from :class:`RefClock`, strictly increasing across all services and across server restarts;
- config items are keyed by ``(namespace, group, dataId)`` and carry the MD5 of their UTF-8 content.

Mutating methods return the keys they changed; the I/O shells (gRPC, HTTP) push to subscribers from those.
All methods are called on one event loop thread; nothing here locks.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

DEFAULT_NAMESPACE = "public"
DEFAULT_GROUP = "DEFAULT_GROUP"
DEFAULT_CLUSTER = "DEFAULT"
SPLITTER = "@@"
HEARTBEAT_INTERVAL_MS = 5000
HEARTBEAT_TIMEOUT_MS = 15000
IP_DELETE_TIMEOUT_MS = 30000

ServiceKey = tuple[str, str, str]   # (namespace, group, service)
ConfigKey = tuple[str, str, str]    # (namespace, group, dataId)


def namespace_of(value: str | None) -> str:
    """``""``/None and ``"public"`` name the same (default) namespace."""
    return value or DEFAULT_NAMESPACE


def split_service(name: str, group: str | None) -> tuple[str, str]:
    """``("G@@S", _)`` → ``("G", "S")``; ``("S", "G")`` → ``("G", "S")``; default group when none."""
    if SPLITTER in name:
        g, _, s = name.partition(SPLITTER)
        return g or group or DEFAULT_GROUP, s
    return group or DEFAULT_GROUP, name


def md5_hex(content: str) -> str:
    return hashlib.md5(content.encode("utf-8")).hexdigest()


class RefClock:
    """Strictly increasing millisecond stamps: ``max(now_ms, last + 1)``."""

    def __init__(self, now_ms: Callable[[], int] | None = None) -> None:
        self._now = now_ms or (lambda: int(time.time() * 1000))
        self.last = 0

    def next(self) -> int:
        self.last = max(self._now(), self.last + 1)
        return self.last


@dataclass
class Instance:
    """One registered instance (the mutable server-side record)."""

    ip: str
    port: int
    cluster: str = DEFAULT_CLUSTER
    weight: float = 1.0
    healthy: bool = True
    enabled: bool = True
    ephemeral: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    owner: str = "persistent"
    last_beat: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.ip, self.port, self.cluster)

    def preserved_ms(self, name: str, default: int) -> int:
        try:
            return int(self.metadata.get(f"preserved.{name}", default))
        except (TypeError, ValueError):
            return default

    def to_json(self, group: str, service: str) -> dict[str, Any]:
        """The instance as Nacos serializes it (Java ``Instance`` getters included)."""
        grouped = f"{group}{SPLITTER}{service}"
        return {
            "instanceId": f"{self.ip}#{self.port}#{self.cluster}#{grouped}",
            "ip": self.ip, "port": self.port, "weight": float(self.weight), "healthy": self.healthy,
            "enabled": self.enabled, "ephemeral": self.ephemeral, "clusterName": self.cluster,
            "serviceName": grouped, "metadata": dict(self.metadata),
            "instanceHeartBeatInterval": self.preserved_ms("heart.beat.interval", HEARTBEAT_INTERVAL_MS),
            "instanceHeartBeatTimeOut": self.preserved_ms("heart.beat.timeout", HEARTBEAT_TIMEOUT_MS),
            "ipDeleteTimeout": self.preserved_ms("ip.delete.timeout", IP_DELETE_TIMEOUT_MS),
            "instanceIdGenerator": self.metadata.get("preserved.instance.id.generator", "simple"),
        }


@dataclass
class Service:
    """A service's instances and its revision (the ``lastRefTime`` of its current content)."""

    namespace: str
    group: str
    name: str
    revision: int
    instances: dict[tuple[str, int, str], Instance] = field(default_factory=dict)

    def select(self, clusters: str = "", healthy_only: bool = False) -> list[Instance]:
        wanted = {c for c in clusters.split(",") if c}
        out = [i for i in self.instances.values() if not wanted or i.cluster in wanted]
        if healthy_only:
            out = [i for i in out if i.healthy and i.enabled]
        return sorted(out, key=lambda i: (i.ip, i.port, i.cluster))

    def info(self, clusters: str = "", healthy_only: bool = False, *, grouped_name: bool) -> dict[str, Any]:
        """``ServiceInfo`` JSON. gRPC clients get ``name`` = the bare service name (they prefix the group
        themselves); the v1 HTTP API answers ``name`` = ``group@@service``."""
        hosts = [i.to_json(self.group, self.name) for i in self.select(clusters, healthy_only)]
        return {
            "name": f"{self.group}{SPLITTER}{self.name}" if grouped_name else self.name,
            "groupName": self.group, "clusters": clusters, "cacheMillis": 10000, "hosts": hosts,
            "lastRefTime": self.revision, "checksum": md5_hex(repr(hosts) + str(self.revision)),
            "allIPs" if grouped_name else "allIps": False, "reachProtectionThreshold": False, "valid": True,
        }


@dataclass
class ConfigItem:
    content: str
    md5: str
    last_modified: int
    type: str = "text"
    app_name: str = ""


class NamingStore:
    """Services by key; see the module docstring for the rules."""

    def __init__(self, clock: RefClock) -> None:
        self.clock = clock
        self.services: dict[ServiceKey, Service] = {}

    def service(self, key: ServiceKey, create: bool = False) -> Service | None:
        svc = self.services.get(key)
        if svc is None and create:
            svc = self.services[key] = Service(*key, revision=self.clock.next())
        return svc

    def _touch(self, svc: Service) -> ServiceKey:
        svc.revision = self.clock.next()
        return (svc.namespace, svc.group, svc.name)

    def register(self, key: ServiceKey, inst: Instance) -> ServiceKey:
        svc = self.service(key, create=True)
        assert svc is not None
        svc.instances[inst.key] = inst
        return self._touch(svc)

    def deregister(self, key: ServiceKey, ip: str, port: int, cluster: str | None) -> ServiceKey | None:
        svc = self.services.get(key)
        if svc is None:
            return None
        victims = [k for k in svc.instances if k[0] == ip and k[1] == port and (not cluster or k[2] == cluster)]
        for k in victims:
            del svc.instances[k]
        return self._touch(svc) if victims else None

    def update(self, key: ServiceKey, ip: str, port: int, cluster: str, **changes: Any) -> ServiceKey | None:
        svc = self.services.get(key)
        inst = svc.instances.get((ip, port, cluster)) if svc else None
        if svc is None or inst is None:
            return None
        for name, value in changes.items():
            if value is not None:
                setattr(inst, name, value)
        return self._touch(svc)

    def beat(self, key: ServiceKey, ip: str, port: int, cluster: str, now: float) -> bool:
        """A v1 heartbeat; False when the instance is unknown (the client must re-register: code 20404)."""
        svc = self.services.get(key)
        inst = svc.instances.get((ip, port, cluster or DEFAULT_CLUSTER)) if svc else None
        if inst is None:
            return False
        inst.last_beat = now
        if not inst.healthy:
            inst.healthy = True
            self._touch(svc)  # type: ignore[arg-type]
        return True

    def drop_owner(self, owner: str) -> list[ServiceKey]:
        changed = []
        for svc in self.services.values():
            victims = [k for k, i in svc.instances.items() if i.owner == owner]
            for k in victims:
                del svc.instances[k]
            if victims:
                changed.append(self._touch(svc))
        return changed

    def expire(self, now: float) -> list[ServiceKey]:
        """Apply the v1 heartbeat rules to ``owner == "beat"`` instances."""
        changed = []
        for svc in self.services.values():
            dirty = False
            for k, inst in list(svc.instances.items()):
                if inst.owner != "beat":
                    continue
                idle_ms = (now - inst.last_beat) * 1000
                if idle_ms > inst.preserved_ms("ip.delete.timeout", IP_DELETE_TIMEOUT_MS):
                    del svc.instances[k]
                    dirty = True
                elif inst.healthy and idle_ms > inst.preserved_ms("heart.beat.timeout", HEARTBEAT_TIMEOUT_MS):
                    inst.healthy = False
                    dirty = True
            if dirty:
                changed.append(self._touch(svc))
        return changed

    def service_names(self, namespace: str, group: str) -> list[str]:
        return sorted(s.name for (ns, g, _), s in self.services.items() if ns == namespace and g == group)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """``{"ns/group@@service": [instance JSON + owner]}`` for inspection by tests."""
        out: dict[str, list[dict[str, Any]]] = {}
        for (ns, g, s), svc in sorted(self.services.items()):
            out[f"{ns}/{g}{SPLITTER}{s}"] = [{**i.to_json(g, s), "owner": i.owner} for i in svc.select()]
        return out


class ConfigStore:
    """Config items by key; publish with a CAS md5, remove, query."""

    def __init__(self, clock: RefClock) -> None:
        self.clock = clock
        self.items: dict[ConfigKey, ConfigItem] = {}

    def get(self, key: ConfigKey) -> ConfigItem | None:
        return self.items.get(key)

    def md5(self, key: ConfigKey) -> str:
        item = self.items.get(key)
        return item.md5 if item else ""

    def publish(self, key: ConfigKey, content: str, cas_md5: str | None = None, type: str = "text",
                app_name: str = "") -> bool:
        """False when ``cas_md5`` is given and does not match the current md5 (a CAS conflict)."""
        if cas_md5 and cas_md5 != self.md5(key):
            return False
        self.items[key] = ConfigItem(content, md5_hex(content), self.clock.next(), type or "text", app_name or "")
        return True

    def remove(self, key: ConfigKey) -> bool:
        return self.items.pop(key, None) is not None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {f"{ns}/{g}/{d}": {"content": i.content, "md5": i.md5, "type": i.type}
                for (ns, g, d), i in sorted(self.items.items())}


def changed_configs(store: ConfigStore, listening: Iterable[tuple[ConfigKey, str]]) -> list[ConfigKey]:
    """The keys among ``(key, client md5)`` whose md5 differs from the server's."""
    return [key for key, md5 in listening if (md5 or "") != store.md5(key)]
