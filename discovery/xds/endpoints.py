"""``ClusterLoadAssignment`` (EDS, and a STATIC / STRICT_DNS cluster's ``load_assignment``) → ``EndpointSpec``s.

Contract, for every ``LocalityLbEndpoints`` (all of them: MOSN kept only the last) and every ``LbEndpoint``:

- ``address``: ``socket_address.address:port_value`` (IPv6 in brackets); a named port, a pipe, an
  internal address, a UDP socket or an ``endpoint_name`` reference is a ResourceError naming it;
- ``zone``: the locality as ``region/zone/sub_zone`` without empty trailing parts; ``priority``: the
  locality's priority. The locality's own ``load_balancing_weight`` is not used: meshd balances by
  endpoint weight (Envoy too, unless the cluster asks for locality-weighted balancing);
- ``weight``: the endpoint's ``load_balancing_weight``, else 1 — xDS weights are relative and kept as
  they are (registry sources use a 100 scale; the two are never compared inside one cluster);
- ``health``: HEALTHY / UNKNOWN are picked as they are; UNHEALTHY → ``Health.UNHEALTHY``, DRAINING →
  ``Health.DRAINING`` (not picked); TIMEOUT → ``Health.UNHEALTHY`` (Envoy's own reading of it); DEGRADED →
  ``Health.UNHEALTHY``: meshd has no "degraded, last resort" tier, so like gRPC it does not pick them
  (the cluster's ``panic_threshold`` can still bring them back). ``enabled`` stays True: it is the
  operator's switch, not the control plane's;
- ``metadata``: every ``filter_metadata`` namespace flattened to strings (``envoy.lb`` keys as plain
  keys, other namespaces as ``<namespace>.<key>``, non-string values JSON), plus ``region``, ``zone``,
  ``sub_zone`` from the locality and ``app``, ``version``, ``istio.namespace``, ... parsed from Istio's
  ``istio.workload`` (:func:`discovery.xds.istio.parse_istio_workload`). Precedence, lowest first:
  locality keys, Istio-derived keys, namespaced keys, ``envoy.lb`` keys (the control plane's explicit
  subset labels win). ``typed_filter_metadata`` is not read;
  The TLS marks of ``filter_metadata["envoy.transport_socket_match"]`` (Istio's ``tlsMode: istio``) are
  kept as ``envoy.transport_socket_match.<key>``: the keys a cluster's ``tls.marker`` names
  (:mod:`discovery.xds.clusters`, ``transport_socket_matches``);
- ``group`` / ``version``: from the metadata keys ``group`` / ``version`` when present, so that a
  Dubbo-style control plane's ``envoy.lb {version: 1.0.0}`` routes like registry metadata.

Endpoints must be unique by (address, group, version) across the whole assignment; several at one
address get ``instance = "group/version"`` (:func:`discovery.model.assign_instances`). A non-empty
``policy.drop_overloads`` is refused: meshd cannot drop a share of requests.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from envoy.config.core.v3 import address_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from discovery.model import EndpointSpec, Health, assign_instances
from discovery.xds.decoding import Problem, at, indexed, run, struct_strings, unpack
from discovery.xds.istio import parse_istio_workload

_HEALTH = {
    health_check_pb2.UNKNOWN: Health.UNKNOWN,
    health_check_pb2.HEALTHY: Health.HEALTHY,
    health_check_pb2.UNHEALTHY: Health.UNHEALTHY,
    health_check_pb2.DRAINING: Health.DRAINING,
    health_check_pb2.TIMEOUT: Health.UNHEALTHY,
    health_check_pb2.DEGRADED: Health.UNHEALTHY,
}
LB_NAMESPACE = "envoy.lb"
#: The namespace whose keys select an endpoint's transport socket (``Cluster.transport_socket_matches``).
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"


@dataclass(frozen=True)
class XdsAssignment:
    """A decoded ClusterLoadAssignment: the EDS service name and every endpoint of every locality."""

    cluster_name: str
    endpoints: tuple[EndpointSpec, ...]


def decode_assignment(any_: Any) -> XdsAssignment:
    """An ``Any`` holding a ``ClusterLoadAssignment`` → :class:`XdsAssignment`, or ResourceError."""
    cla = unpack(any_, endpoint_pb2.ClusterLoadAssignment, "cluster load assignment")
    name = cla.cluster_name

    def decode() -> XdsAssignment:
        if not name:
            raise Problem("cluster_name: must not be empty")
        return XdsAssignment(name, assignment_endpoints(cla))

    return run("cluster load assignment", name, decode)


def assignment_endpoints(cla: endpoint_pb2.ClusterLoadAssignment, static: bool = False) -> tuple[EndpointSpec, ...]:
    """Every endpoint of ``cla``; ``static`` (a STATIC cluster) requires IP addresses. Raises Problem."""
    drops = [d for d in cla.policy.drop_overloads if d.drop_percentage.numerator > 0]
    if drops:
        raise Problem(f"policy.drop_overloads: dropping requests ({drops[0].category!r}) is not supported")
    specs: list[EndpointSpec] = []
    for i, group in enumerate(cla.endpoints):
        with at(indexed("endpoints", i)):
            specs.extend(_locality_endpoints(group, static))
    try:
        return tuple(assign_instances(specs))
    except ValueError as exc:
        raise Problem(f"endpoints: {exc}") from None


def _locality_endpoints(group: Any, static: bool) -> list[EndpointSpec]:
    loc = group.locality
    parts = [loc.region, loc.zone, loc.sub_zone]
    while parts and not parts[-1]:
        parts.pop()
    zone = "/".join(parts)
    locality_meta = {k: v for k, v in (("region", loc.region), ("zone", loc.zone), ("sub_zone", loc.sub_zone)) if v}
    if group.HasField("leds_cluster_locality_config"):
        raise Problem("leds_cluster_locality_config: LEDS is not supported")
    out = []
    for j, lb in enumerate(group.lb_endpoints):
        with at(indexed("lb_endpoints", j)):
            out.append(_endpoint(lb, zone, group.priority, locality_meta, static))
    return out


def _endpoint(lb: Any, zone: str, priority: int, locality_meta: dict[str, str], static: bool) -> EndpointSpec:
    which = lb.WhichOneof("host_identifier")
    if which != "endpoint":
        raise Problem(f"{which or 'endpoint'}: " + ("a named endpoint reference is not supported" if which
                                                     else "missing"))
    with at("endpoint.address"):
        address = socket_address(lb.endpoint.address, require_ip=static)
    weight = 1
    if lb.HasField("load_balancing_weight"):
        weight = lb.load_balancing_weight.value
        if weight < 1:
            raise Problem("load_balancing_weight: must be at least 1")
    health = _HEALTH.get(lb.health_status)
    if health is None:
        raise Problem(f"health_status: unknown value {lb.health_status}")
    metadata = endpoint_metadata(lb.metadata, locality_meta)
    return EndpointSpec(address=address, weight=weight, health=health, zone=zone, priority=priority,
                        group=metadata.get("group", ""), version=metadata.get("version", ""), metadata=metadata)


def socket_address(address: address_pb2.Address, require_ip: bool = False) -> str:
    """``host:port`` of an ``Address`` holding a TCP ``socket_address`` with a numeric port; else Problem."""
    which = address.WhichOneof("address")
    if which != "socket_address":
        raise Problem(f"{which}: a {which} address is not supported (only socket_address)" if which
                      else "socket_address: missing")
    sa = address.socket_address
    if sa.protocol != address_pb2.SocketAddress.TCP:
        protocol = address_pb2.SocketAddress.Protocol.Name(sa.protocol)
        raise Problem(f"socket_address.protocol: {protocol} is not supported")
    if sa.WhichOneof("port_specifier") == "named_port":
        raise Problem(f"socket_address.named_port: named port {sa.named_port!r} is not supported")
    if not sa.address:
        raise Problem("socket_address.address: must not be empty")
    if not 0 < sa.port_value < 65536:
        raise Problem(f"socket_address.port_value: {sa.port_value} is not a valid port")
    host = sa.address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if require_ip:
            raise Problem(f"socket_address.address: {host!r} is not an IP address "
                          f"(a STATIC cluster needs one)") from None
        ip = None
    if ip is not None and ip.version == 6:
        host = f"[{host}]"
    return f"{host}:{sa.port_value}"


def endpoint_metadata(md: Any, base: dict[str, str]) -> dict[str, str]:
    """Flatten ``Metadata.filter_metadata`` as the module docstring says, over ``base``."""
    derived: dict[str, str] = {}
    namespaced: dict[str, str] = {}
    plain: dict[str, str] = {}
    for namespace in sorted(md.filter_metadata):
        values = struct_strings(md.filter_metadata[namespace])
        if namespace == LB_NAMESPACE:
            plain.update(values)
            continue
        namespaced.update({f"{namespace}.{k}": v for k, v in values.items()})
        if namespace == "istio" and "workload" in values:
            derived.update(parse_istio_workload(values["workload"]))
    return {**base, **derived, **namespaced, **plain}
