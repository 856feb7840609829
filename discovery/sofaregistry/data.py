"""SOFARPC on SOFARegistry (pure): data ids, the provider strings in a push, and endpoints per zone.

- Data ids (``sofa-rpc:registry/registry-sofa/.../SofaRegistryHelper.java#buildListDataId``): the unique name
  ``iface:version[:uniqueId]`` + ``@DEFAULT`` for bolt and tr, ``@{protocol}`` otherwise. The cluster is the
  interface; version and uniqueId (the endpoint's group) are metadata, so the Bolt ``service`` header routes as it
  does with the ZooKeeper SOFARPC layout.
- Provider strings (``SofaRegistryHelper#convertProviderToUrls`` writes them, ``#parseProviderInfo`` reads them):
  ``[scheme://]ip:port[/path]?k=v&...``. ``p=1`` is bolt and ``p=13`` tr when there is no scheme;
  ``weight``/``_WEIGHT``, ``serialization``/``_SERIALIZETYPE`` (codes 1 hessian, 2 java, 4 hessian2,
  11 protobuf, 12 json), ``timeout``/``_TIMEOUT``, ``appName``/``app_name``; warm-up from ``warmupTime``, ``warmupWeight``,
  ``startTime``. Every parameter is kept as metadata, the typed ones as typed fields.
- Zones: a push carries the providers per zone. The local zone's providers get priority 0 and every other zone's
  priority 1, so the other zones serve only when the local one has no usable provider (zone failover).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from discovery.model import EndpointSpec, parse_int, split_address
from discovery.registration import INTERFACE
from discovery.sofa_params import PROTOCOL_CODES, SERIALIZATION_CODES, sofa_weight

DEFAULT_VERSION = "1.0"                  # SOFARPC's default service version
DEFAULT_PORT = 12200                     # SOFARPC's bolt port, for a provider string that names none
_NAME_PART = re.compile(r"[^\s:@#&=?/]+")


class DataError(ValueError):
    """A service name, data id or provider string that cannot be read; the message names it."""


@dataclass(frozen=True, slots=True)
class Service:
    """One SOFARPC service: its interface (the cluster), version, uniqueId and protocol."""

    interface: str
    version: str = DEFAULT_VERSION
    unique_id: str = ""
    protocol: str = "bolt"

    @classmethod
    def parse(cls, name: str, protocol: str = "bolt") -> "Service":
        """``iface[:version[:uniqueId]]`` (a bare interface is version 1.0)."""
        parts = name.split(":")
        if len(parts) > 3 or not INTERFACE.fullmatch(parts[0]):
            raise DataError(f"service {name!r} is not interface[:version[:uniqueId]]")
        for part in parts[1:]:
            if not _NAME_PART.fullmatch(part):
                raise DataError(f"service {name!r}: {part!r} is empty or holds a character a data id cannot carry")
        return cls(parts[0], parts[1] if len(parts) > 1 else DEFAULT_VERSION, parts[2] if len(parts) > 2 else "",
                   protocol)

    @classmethod
    def from_data_id(cls, data_id: str) -> "Service":
        name, sep, suffix = data_id.rpartition("@")
        if not sep or not suffix:
            raise DataError(f"data id {data_id!r} does not end in @DEFAULT or @<protocol>")
        return cls.parse(name, "bolt" if suffix == "DEFAULT" else suffix)

    @property
    def unique_name(self) -> str:
        return f"{self.interface}:{self.version}" + (f":{self.unique_id}" if self.unique_id else "")

    @property
    def data_id(self) -> str:
        return f"{self.unique_name}@{'DEFAULT' if self.protocol in ('bolt', 'tr') else self.protocol}"


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider string, read."""

    address: str
    protocol: str
    params: Mapping[str, str]


def parse_provider(text: str) -> Provider:
    """``[scheme://]ip:port[/path]?k=v&...`` as ``SofaRegistryHelper#parseProviderInfo`` reads it."""
    body, scheme = text.strip(), ""
    if "://" in body:
        scheme, _, body = body.partition("://")
    body, _, query = body.partition("?")
    host_port = body.partition("/")[0]
    params: dict[str, str] = {}
    for part in query.split("&"):
        part = part.strip()
        if part:
            key, sep, value = part.partition("=")
            params[key] = value if sep else key
    if ":" not in host_port:
        host_port = f"{host_port}:{DEFAULT_PORT}"
    try:
        host, port = split_address(host_port)
    except ValueError as exc:
        raise DataError(f"provider {text!r}: {exc}") from None
    if not host or any(c in host for c in " /?#@[]"):       # split_address took an IPv6 host's brackets off
        raise DataError(f"provider {text!r}: {host!r} is not a host")
    for key in ("weight", "_WEIGHT", "startTime", "warmupTime", "warmupWeight"):
        if key in params and parse_int(params[key]) is None:
            raise DataError(f"provider {text!r}: {key}={params[key]!r} is not an integer")
    protocol = scheme or PROTOCOL_CODES.get(params.get("p", ""), params.get("p", "")) or "bolt"
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Provider(address, protocol, params)


def provider_string(address: str, service: Service, *, app: str, weight: int, serialization: str, timeout: int | None,
                    start_ms: int, rpc_version: str, parameters: Mapping[str, str] = {}) -> str:
    """What ``SofaRegistryHelper#convertProviderToUrls`` writes for a provider (parameters last, as there)."""
    pairs = [("rpcVer", rpc_version), ("serialization", serialization), ("weight", str(weight))]
    if timeout:
        pairs.append(("timeout", str(timeout)))
    pairs.append(("appName", app))
    if service.protocol in ("bolt", "tr"):
        pairs.append(("p", "1" if service.protocol == "bolt" else "13"))
    pairs += [("v", "4.0"), ("_SERIALIZETYPE", serialization), ("_WEIGHT", str(weight))]
    if timeout:
        pairs.append(("_TIMEOUT", str(timeout)))
    pairs.append(("app_name", app))
    seen = {k for k, _ in pairs}
    pairs = [(k, parameters.get(k, v)) for k, v in pairs]
    pairs += [(k, v) for k, v in parameters.items() if k not in seen and k != "startTime"]
    pairs.append(("startTime", parameters.get("startTime", str(start_ms))))
    return address + "?" + "&".join(f"{k}={v}" for k, v in pairs if v != "")


def endpoint(provider: Provider, service: Service, zone: str, local_zone: str, segment: str,
             now_ms: int) -> tuple[EndpointSpec, bool]:
    """The endpoint of one provider of ``service`` in ``zone``; and whether its weight is still warming up."""
    params = provider.params
    weight = int(params.get("weight") or params.get("_WEIGHT") or 100)
    effective, warming = sofa_weight(weight, int(params.get("startTime") or 0), int(params.get("warmupTime") or 0),
                                     int(params.get("warmupWeight") or weight), now_ms)
    serialization = params.get("serialization") or params.get("_SERIALIZETYPE") or ""
    metadata = dict(params)
    metadata.update(interface=service.interface, version=service.version, protocol=provider.protocol, zone=zone)
    if service.unique_id:
        metadata["uniqueId"] = service.unique_id
    if serialization:
        metadata["serialization"] = SERIALIZATION_CODES.get(serialization, serialization)
    if segment:
        metadata["data_center"] = segment
    spec = EndpointSpec(address=provider.address, weight=effective, zone=zone, priority=0 if zone == local_zone else 1,
                        group=service.unique_id, version=service.version, metadata=metadata)
    return spec, warming


def zone_endpoints(service: Service, zones: Mapping[str, Iterable[str]], local_zone: str, segment: str,
                   now_ms: int) -> tuple[list[EndpointSpec], bool, list[str]]:
    """Every provider of one push's zones as endpoints (a provider listed in several zones counts once, in the
    local zone if it is there); whether any is warming up; the provider strings that could not be read."""
    specs: dict[str, EndpointSpec] = {}
    warming, errors = False, []
    for zone in sorted(zones, key=lambda z: (z != local_zone, z)):
        for text in zones[zone]:
            try:
                provider = parse_provider(text)
            except DataError as exc:
                errors.append(f"{service.data_id} zone {zone}: {exc}")
                continue
            if provider.address in specs:
                continue
            spec, warm = endpoint(provider, service, zone, local_zone, segment, now_ms)
            specs[provider.address] = spec
            warming = warming or warm
    return list(specs.values()), warming, errors
