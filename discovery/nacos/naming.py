"""Nacos instances → meshd endpoints, and Dubbo's Nacos service names (pure: no I/O, no client objects).

Service names. Dubbo's ``NacosRegistry`` names an interface-level service
``{category}:{interface}:{version}:{group}`` (``dubbo-registry-nacos/.../NacosServiceName.java``), e.g.
``providers:org.example.DemoService:1.0.0:`` (empty group). :func:`parse_service_name` reads one (None for
any other name); :func:`render_service_name` writes one. With ``naming: dubbo`` every
``providers:{iface}:*`` service feeds the cluster ``{iface}``; with ``naming: plain`` the Nacos service name is
the cluster.

Instances. :func:`instance_endpoint` maps one raw instance (the JSON the server sends:
``{instanceId, ip, port, weight, healthy, enabled, ephemeral, clusterName, serviceName, metadata}``) to an
:class:`~discovery.model.EndpointSpec`:

- every metadata key is kept as is, and every instance field reaches metadata as ``nacos.<field>``
  (``nacos.cluster`` for ``clusterName``);
- weight: Nacos floats, 1.0 = meshd's 100 (``round(w * 100)``); with ``naming: dubbo`` a Dubbo ``weight``
  URL parameter in the metadata wins (Dubbo reads its URL, not the Nacos weight), then the Dubbo warm-up
  (``timestamp``/``warmup``, :mod:`discovery.dubbo_params`) applies;
- ``enabled: false`` → ``enabled=False``; with ``naming: dubbo`` also Dubbo's ``disabled``/``enabled`` params;
- ``healthy: false`` → ``Health.UNHEALTHY`` (kept, not routable);
- group / version: from the service name (``naming: dubbo``), else the metadata ``group`` / ``version``;
  ``zone`` from the metadata.

An instance that cannot be an endpoint (no ip, no or bad port, a weight that is not a number, a Dubbo
``side=consumer`` entry among providers) raises :class:`InstanceError`; the caller logs it and skips that
instance only.

Push rules (:class:`ServiceView`, one per Nacos service):

- **lastRefTime ordering**: a push whose ``lastRefTime`` is not newer than the last applied one for that
  service is ignored (as the client's ``ServiceInfoCache.process_service``);
- **empty-push protection**: a push with no hosts for a service that had hosts is ignored, as the client does
  when ``update_cache_when_empty`` is false. Choice for a service that *really* empties (its last provider
  deregistered): meshd keeps its last hosts (flagged in ``ServiceView.empty_kept`` and reported in the source
  status) until a push with hosts arrives; the balancer's outlier detection copes with the dead addresses.
  This errs towards availability exactly like Dubbo and the Nacos clients: a server that lost its data
  (restart) must not empty the mesh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from discovery.dubbo_params import dubbo_weight, enabled as dubbo_enabled, int_param
from discovery.model import EndpointSpec, Health, assign_instances, parse_int, split_address

PROVIDERS = "providers"
CONSUMERS = "consumers"
SEP = ":"
#: The instance fields copied into metadata as ``nacos.<name>`` (``clusterName`` as ``nacos.cluster``).
FIELDS = {"instanceId": "nacos.instanceId", "ip": "nacos.ip", "port": "nacos.port", "weight": "nacos.weight",
          "healthy": "nacos.healthy", "enabled": "nacos.enabled", "ephemeral": "nacos.ephemeral",
          "clusterName": "nacos.cluster", "serviceName": "nacos.serviceName"}


class InstanceError(ValueError):
    """One instance that cannot be an endpoint; the message names the service, the instance and the cause."""


@dataclass(frozen=True, slots=True)
class DubboName:
    """A parsed Dubbo service name: ``{category}:{interface}:{version}:{group}``."""

    category: str
    interface: str
    version: str = ""
    group: str = ""

    def render(self) -> str:
        return render_service_name(self.interface, self.version, self.group, self.category)


def parse_service_name(name: str) -> DubboName | None:
    """``providers:org.x.Svc:1.0.0:g`` → DubboName; None when ``name`` is not a Dubbo service name."""
    parts = name.split(SEP)
    if len(parts) < 2 or parts[0] not in (PROVIDERS, CONSUMERS) or not parts[1] or len(parts) > 4:
        return None
    parts += [""] * (4 - len(parts))
    return DubboName(parts[0], parts[1], parts[2], parts[3])


def render_service_name(interface: str, version: str = "", group: str = "", category: str = PROVIDERS) -> str:
    """Dubbo's ``NacosServiceName``: always four segments, empty ones kept (``providers:x.Svc::``)."""
    return SEP.join((category, interface, version, group))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _bool(value: Any, default: bool = True) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def instance_endpoint(service: str, host: Mapping[str, Any], *, naming: str = "plain",
                      now_ms: int = 0, default_warmup_ms: int | None = None) -> tuple[EndpointSpec, bool]:
    """The endpoint of one raw instance of Nacos ``service``, and whether its weight is still warming up."""
    if not isinstance(host, Mapping):
        raise InstanceError(f"service {service}: instance {host!r} is not an object")
    ip, port = host.get("ip"), host.get("port")
    who = f"service {service}: instance {ip}:{port}"
    if not isinstance(ip, str) or not ip.strip():
        raise InstanceError(f"{who}: no ip")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InstanceError(f"{who}: port {port!r} is not a number in 1..65535")
    raw_meta = host.get("metadata") or {}
    if not isinstance(raw_meta, Mapping):
        raise InstanceError(f"{who}: metadata is not an object")
    meta = {str(k): _text(v) for k, v in raw_meta.items()}
    weight_value = host.get("weight", 1.0)
    scaled = math.nan
    if not isinstance(weight_value, bool) and isinstance(weight_value, (int, float)):
        try:
            scaled = float(weight_value) * 100      # 1e307 * 100 is inf; an int past 1e308 raises
        except OverflowError:
            pass
    if not math.isfinite(scaled):
        raise InstanceError(f"{who}: weight {weight_value!r} is not a number")
    metadata = dict(meta)
    for key, name in FIELDS.items():
        if key in host:
            metadata[name] = _text(host[key])
    address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    try:
        split_address(address)
    except ValueError as exc:
        raise InstanceError(f"{who}: {exc}") from None
    weight = max(int(round(scaled)), 0)
    enabled = _bool(host.get("enabled"))
    health = Health.HEALTHY if _bool(host.get("healthy")) else Health.UNHEALTHY
    warming = False
    dubbo = parse_service_name(service) if naming == "dubbo" else None
    if dubbo is not None:
        if meta.get("side") == "consumer" or dubbo.category != PROVIDERS:
            raise InstanceError(f"{who}: a consumer entry, not a provider")
        text = meta.get("weight", "").strip()
        if text:
            value = parse_int(text)
            if value is None:
                raise InstanceError(f"{who}: Dubbo weight={text[:40]!r} is not an integer")
            weight = max(value, 0)
        warmup = int_param(meta, "warmup", default_warmup_ms or 0)
        weight, warming = dubbo_weight(weight, int_param(meta, "timestamp", 0), warmup, now_ms)
        enabled = enabled and dubbo_enabled(meta)
        group, version = dubbo.group, dubbo.version
        metadata.setdefault("interface", dubbo.interface)
    else:
        group, version = meta.get("group", ""), meta.get("version", "")
    spec = EndpointSpec(address=address, weight=weight,
                        health=health, zone=meta.get("zone", ""), group=group, version=version, enabled=enabled,
                        metadata=metadata)
    return spec, warming


@dataclass
class ServiceView:
    """The last applied view of one Nacos service (raw hosts), with the push rules of the module docstring."""

    name: str                                   # the Nacos service name (without the group)
    last_ref_time: int = -1
    hosts: list[dict[str, Any]] = field(default_factory=list)
    received: bool = False                      # any push or reply applied
    empty_kept: bool = False                    # the last push was empty and was ignored

    def offer(self, hosts: Sequence[Mapping[str, Any]], last_ref_time: int) -> str:
        """Apply a push/reply: ``"applied"``, ``"old"`` (lastRefTime not newer) or ``"empty-kept"``."""
        if self.received and last_ref_time <= self.last_ref_time:
            return "old"
        if not hosts and self.hosts:
            self.last_ref_time = last_ref_time
            self.empty_kept = True
            return "empty-kept"
        self.hosts = [dict(h) for h in hosts]
        self.last_ref_time, self.received, self.empty_kept = last_ref_time, True, False
        return "applied"

    def to_json(self) -> dict[str, Any]:
        return {"lastRefTime": self.last_ref_time, "hosts": self.hosts}

    @classmethod
    def from_json(cls, name: str, doc: Mapping[str, Any]) -> "ServiceView":
        hosts, ref = doc.get("hosts"), doc.get("lastRefTime")
        if not isinstance(hosts, list) or not isinstance(ref, int):
            raise ValueError("needs 'hosts' (a list) and 'lastRefTime' (an integer)")
        return cls(name, ref, [dict(h) for h in hosts if isinstance(h, Mapping)], True)


def cluster_of(service: str, naming: str) -> str | None:
    """The meshd cluster a Nacos service feeds (None: not a provider service under ``naming: dubbo``)."""
    if naming != "dubbo":
        return service
    dubbo = parse_service_name(service)
    return dubbo.interface if dubbo is not None and dubbo.category == PROVIDERS else None


def cluster_endpoints(views: Iterable[ServiceView], *, naming: str, clusters: Sequence[str] = (),
                      now_ms: int = 0, default_warmup_ms: int | None = None
                      ) -> tuple[list[EndpointSpec], bool, list[str]]:
    """The endpoints of one meshd cluster from the views of the Nacos services that feed it.

    ``clusters`` keeps only instances of those Nacos cluster names (all when empty). Returns the endpoints
    (several at one address told apart by group/version), whether any is warming up, and the errors of the
    instances left out.
    """
    specs, errors, warming = [], [], False
    wanted = set(clusters)
    for view in sorted(views, key=lambda v: v.name):
        for host in view.hosts:
            if wanted and host.get("clusterName", "DEFAULT") not in wanted:
                continue
            try:
                spec, warm = instance_endpoint(view.name, host, naming=naming, now_ms=now_ms,
                                               default_warmup_ms=default_warmup_ms)
            except InstanceError as exc:
                errors.append(str(exc))
                continue
            specs.append(spec)
            warming = warming or warm
    try:
        return assign_instances(specs), warming, errors
    except ValueError as exc:   # two instances with the same address, group and version: keep the first
        errors.append(str(exc))
        seen, unique = set(), []
        for spec in specs:
            key = (spec.address, spec.group, spec.version)
            if key not in seen:
                seen.add(key)
                unique.append(spec)
        return assign_instances(unique), warming, errors
