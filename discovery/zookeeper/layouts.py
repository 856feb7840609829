"""The two ZooKeeper trees meshd reads: Dubbo's and SOFARPC's (pure: paths, node validation, endpoints).

==========  =========================================================  ===============================
layout      provider nodes                                             node data
==========  =========================================================  ===============================
dubbo       ``/{root=/dubbo}/{URL.encode(iface)}/providers/{URL.encode(url)}``  ignored
sofarpc     ``/{root=/sofa-rpc}/{iface}/providers/{URLEncoder.encode(url)}``    ``\\x00`` offline; ``\\x01``/empty online
==========  =========================================================  ===============================

Dubbo also has ``configurators/`` (override rules, :mod:`discovery.zookeeper.overrides`) next to ``providers/``.

A provider node becomes an :class:`~discovery.model.EndpointSpec`: every URL parameter is kept in ``metadata``
(plus ``protocol`` = the scheme, and ``interface`` when the URL had to borrow it from its path or znode);
weight, enabled, group, version and zone are typed. Dubbo: ``weight`` (default 100, ``default.weight`` as in
2.6), ``disabled``/``enabled``, ``group``, ``version``, warm-up from ``timestamp``/``warmup``. SOFARPC: ``weight``
or ``_WEIGHT``, ``uniqueId`` → group, ``version`` (default ``1.0``), the data byte → enabled, warm-up from
``startTime``/``warmupTime``/``warmupWeight``. A node that cannot be an endpoint (bad URL, no port and no
default for its scheme, a non-integer weight, another interface than its directory) raises :class:`URLError`.

Warm-up weights (a freshly started provider gets a reduced weight that grows until it is warm):

Dubbo (``dubbo-cluster/.../loadbalance/AbstractLoadBalance.java``, ``getWeight`` and
``calculateWarmupWeight``), for a provider URL with ``timestamp`` (ms since the epoch, the provider's start):

    uptime = now - timestamp
    uptime < 0                 -> weight 1                       (clock skew: the provider looks "from the future")
    0 < uptime < warmup        -> ww = (int)(uptime / ((float) warmup / weight)), clamped to [1, weight]
    otherwise                  -> weight

Java evaluates the division in 32-bit floats; :func:`dubbo_warmup_weight` reproduces that bit for bit so that
meshd and a Dubbo consumer compute the same weights. Dubbo applies a default ``warmup`` of 10 minutes to every
provider with a timestamp; meshd does so only when configured (``default_warmup_ms``), see the source.

SOFARPC (``RegistryUtils.processWarmUpWeight``): with ``warmupTime``, ``warmupWeight`` and ``startTime`` the
provider has the flat ``warmupWeight`` until ``startTime + warmupTime``, then its weight.

``dubbo_weight``/``sofa_weight`` return ``(weight, warming)``; ``warming`` says the value will change with time,
so the caller re-evaluates it periodically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from discovery.dubbo_params import (DUBBO_DEFAULT_WARMUP_MS, dubbo_warmup_weight, dubbo_weight,  # noqa: F401
                                   enabled as _enabled, f32, int_param as _int, param as _param)
from discovery.model import INTEGER, EndpointSpec
from discovery.sofa_params import sofa_weight
from discovery.zookeeper.overrides import Override, apply_overrides
from discovery.zookeeper.urls import RegistryURL, URLError, decode_name, java_urlencode, parse_url

#: Re-exported from discovery.dubbo_params (their historical home).
REEXPORTED = (DUBBO_DEFAULT_WARMUP_MS, dubbo_warmup_weight, f32)


#: Ports assumed for URLs that name none (SOFARPC's javadoc shows ``bolt://192.168.1.120?...``).
DEFAULT_PORTS = {"dubbo": 20880, "bolt": 12200, "tr": 12200, "tri": 50051, "grpc": 50051, "rest": 80, "http": 80}
#: Schemes that never name a provider: client-side markers and rules that ended up in the wrong directory.
NOT_PROVIDERS = frozenset({"empty", "override", "absent", "consumer", "route", "condition", "script", "tag"})
DEFAULT_WEIGHT = 100


# -- provider nodes --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProviderNode:
    """A validated provider znode: its name (identity), URL, interface and address."""

    name: str
    url: RegistryURL
    interface: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return self.url.address(self.port)


class Layout:
    """Common shape of a registry tree; see the subclasses."""

    name = ""
    default_root = ""
    reads_data = False            # does node data matter (SOFARPC online flag)?
    has_configurators = False
    integer_keys: tuple[str, ...] = ()

    def service_path(self, root: str, interface: str) -> str:
        return f"{root.rstrip('/')}/{self.encode_interface(interface)}"

    def encode_interface(self, interface: str) -> str:
        return interface

    def providers_path(self, root: str, interface: str) -> str:
        return f"{self.service_path(root, interface)}/providers"

    def consumers_path(self, root: str, interface: str) -> str:
        return f"{self.service_path(root, interface)}/consumers"

    def configurators_path(self, root: str, interface: str) -> str | None:
        return None

    def online(self, data: bytes | None) -> bool:
        return True

    def parse_provider(self, name: str, directory: str) -> ProviderNode | None:
        """Validate one provider znode listed under ``directory``'s providers; None for ``empty://`` markers."""
        try:
            url = parse_url(decode_name(name))
        except (URLError, UnicodeDecodeError) as exc:
            raise URLError(f"provider node {name!r} under {directory}: {exc}") from None
        if url.scheme in NOT_PROVIDERS:
            if url.scheme == "empty":
                return None
            raise URLError(f"provider node {name!r} under {directory}: {url.scheme}:// is not a provider URL")
        interface = url.interface(directory)
        if interface != directory:
            raise URLError(f"provider node {name!r}: names interface {interface!r} but is listed under {directory!r}")
        port = url.port if url.port is not None else DEFAULT_PORTS.get(url.scheme)
        if port is None:
            raise URLError(f"provider node {name!r}: no port, and scheme {url.scheme!r} has no default port")
        for key in self.integer_keys:
            text = _param(url.params, key).strip()
            if text and not INTEGER.fullmatch(text):
                raise URLError(f"provider node {name!r}: {key}={text!r} is not an integer")
        return ProviderNode(name, url, interface, url.host, port)

    def endpoint(self, node: ProviderNode, online: bool, overrides: Iterable[Override], now_ms: int,
                 default_warmup_ms: int | None) -> tuple[EndpointSpec, bool]:
        """The endpoint for ``node`` at ``now_ms``, and whether its weight is still warming up."""
        raise NotImplementedError

    @staticmethod
    def _metadata(node: ProviderNode, params: Mapping[str, str]) -> dict[str, str]:
        metadata = dict(params)
        if node.url.scheme:
            metadata["protocol"] = node.url.scheme
        metadata.setdefault("interface", node.interface)
        return metadata


class DubboLayout(Layout):
    name = "dubbo"
    default_root = "/dubbo"
    has_configurators = True
    integer_keys = ("weight", "warmup", "timestamp")

    def encode_interface(self, interface: str) -> str:
        return java_urlencode(interface)

    def configurators_path(self, root: str, interface: str) -> str | None:
        return f"{self.service_path(root, interface)}/configurators"

    def endpoint(self, node, online, overrides, now_ms, default_warmup_ms):
        params = apply_overrides(overrides, node.host, node.port, node.url.params)
        weight = _int(params, "weight", DEFAULT_WEIGHT)
        warmup = _int(params, "warmup", default_warmup_ms or 0)
        effective, warming = dubbo_weight(weight, _int(params, "timestamp", 0), warmup, now_ms)
        spec = EndpointSpec(
            address=node.address, weight=effective, zone=params.get("zone", ""), group=_param(params, "group"),
            version=_param(params, "version"), enabled=_enabled(params), metadata=self._metadata(node, params),
        )
        return spec, warming


class SofaLayout(Layout):
    name = "sofarpc"
    default_root = "/sofa-rpc"
    reads_data = True
    integer_keys = ("weight", "_WEIGHT", "startTime", "warmupTime", "warmupWeight")

    def online(self, data: bytes | None) -> bool:
        return data != b"\x00"

    def endpoint(self, node, online, overrides, now_ms, default_warmup_ms):
        params = node.url.params
        weight = _int(params, "weight", _int(params, "_WEIGHT", DEFAULT_WEIGHT))
        effective, warming = sofa_weight(weight, _int(params, "startTime", 0), _int(params, "warmupTime", 0),
                                         _int(params, "warmupWeight", weight), now_ms)
        spec = EndpointSpec(
            address=node.address, weight=effective, zone=params.get("zone", ""), group=params.get("uniqueId", ""),
            version=params.get("version") or "1.0", enabled=online and _enabled(params),
            metadata=self._metadata(node, params),
        )
        return spec, warming


LAYOUTS: dict[str, Layout] = {"dubbo": DubboLayout(), "sofarpc": SofaLayout()}


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"layout {name!r} is not one of {sorted(LAYOUTS)}") from None
