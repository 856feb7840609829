"""``Cluster`` → :class:`XdsCluster`: discovery type, EDS service name, meshd cluster settings, static endpoints.

``settings`` is in the config-file shape of meshd's ``ClusterSettings`` and holds only what the Cluster
sets (meshd's defaults apply to the rest, ``panic_threshold`` included: Envoy's implicit 50 is not
copied, meshd's default of 0 is deliberate). Mapping, and what is refused (ResourceError naming the value):

- ``type``: EDS (its ``eds_config`` must be ``ads {}`` or ``self {}``), STATIC (IP addresses only),
  STRICT_DNS; LOGICAL_DNS, ORIGINAL_DST and custom ``cluster_type``\\ s are refused.
- ``lb_policy``: ROUND_ROBIN / LEAST_REQUEST / RANDOM → ``round_robin`` / ``least_request`` / ``random``;
  RING_HASH, MAGLEV, CLUSTER_PROVIDED, ... refused. ``load_balancing_policy`` (when set it wins, as in
  Envoy): the first policy of the list meshd knows (RoundRobin, LeastRequest, Random) is used, as gRPC
  does; none known → refused.
- ``connect_timeout``; ``typed_extension_protocol_options`` HttpProtocolOptions
  ``common_http_protocol_options.idle_timeout`` / ``max_requests_per_connection`` (Istio's connection pool).
- ``circuit_breakers``: the thresholds of the DEFAULT priority (HIGH is ignored), with ``retry_budget``.
- ``outlier_detection``: the consecutive-error detectors. A detector Envoy does not enforce
  (``enforcing_consecutive_* = 0``, which is Envoy's *default* for gateway failures, or a threshold of 0)
  gets the threshold :data:`DISABLED` (never reached: meshd cannot switch one detector off). Enforcement
  between 1 and 99 % counts as enforced. Success-rate detection is ignored (Envoy enables it by default,
  meshd does not implement it); failure-percentage detection, which is opt-in, is refused.
- ``health_checks`` (at most one, meshd runs one active check per cluster): tcp (connect only: send /
  receive payloads refused) and http (path, host, expected status ranges); grpc and custom checks are
  refused rather than skipped — dropping an active check would send traffic to hosts it would eject.
- ``lb_subset_config`` → ``subset`` (selectors, fallback policies, default subset; ``list_as_any`` and
  ``metadata_fallback_policy: FALLBACK_LIST`` refused); ``common_lb_config.healthy_panic_threshold`` →
  ``panic_threshold``; ``common_lb_config.zone_aware_lb_config`` → ``zone_aware: {}`` unless its
  ``routing_enabled`` is 0 % (meshd has no partial zone routing nor ``min_cluster_size``: ignored).
- TLS → ``tls`` (:mod:`discovery.xds.tls` maps the ``UpstreamTlsContext`` and says what it refuses; the
  files it names are :class:`~discovery.xds.tls.Pem` placeholders until the source resolves them):
  ``transport_socket`` ``envoy.transport_sockets.tls`` → TLS to every endpoint, ``raw_buffer`` (or none) →
  plaintext; another transport socket is refused. ``transport_socket_matches`` (Envoy: the first entry whose
  ``match`` is contained in the endpoint's ``filter_metadata["envoy.transport_socket_match"]`` wins, else the
  cluster's ``transport_socket``; entries after one with an empty ``match`` are never used) in the two shapes
  meshd can dial: one TLS entry with a non-empty ``match`` and plaintext for the rest — Istio's ``{tlsMode:
  istio}`` → TLS, ``{}`` → raw_buffer — becomes ``tls.endpoints: marked`` with ``marker`` = the match's keys
  as :mod:`discovery.xds.endpoints` flattens endpoint metadata (``envoy.transport_socket_match.tlsMode:
  istio``); every endpoint ending up with the same TLS is ``endpoints: all``. Anything else (two TLS entries,
  plaintext entries matched ahead of the TLS one, TLS by default with plaintext exceptions) is refused, naming
  the entry; so is ``transport_socket_matcher``.
- DNS settings and everything else are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import base_pb2

from discovery.model import EndpointSpec
from discovery.xds.decoding import (Problem, at, at_least, check_ads, check_name, duration, freeze, indexed,
                                    positive_duration, refuse, run, struct_strings, unpack, unpack_field,
                                    value_string)
from discovery.xds.endpoints import TRANSPORT_SOCKET_MATCH, assignment_endpoints
from discovery.xds.istio import parse_istio_cluster_name
from discovery.xds.tls import secret_names, transport_socket

Cluster = cluster_pb2.Cluster
DISABLED = 2 ** 31 - 1
"""The consecutive-failure threshold standing for a detector Envoy would not enforce."""

_LB_POLICIES = {Cluster.ROUND_ROBIN: "round_robin", Cluster.LEAST_REQUEST: "least_request", Cluster.RANDOM: "random"}
_TYPED_LB = {
    "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin": "round_robin",
    "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest": "least_request",
    "envoy.extensions.load_balancing_policies.random.v3.Random": "random",
}
_DISCOVERY = {Cluster.EDS: "EDS", Cluster.STATIC: "STATIC", Cluster.STRICT_DNS: "STRICT_DNS"}
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_SUBSET_FALLBACK = {0: "no_fallback", 1: "any_endpoint", 2: "default_subset"}
_SELECTOR_FALLBACK = {0: "not_defined", 1: "no_fallback", 2: "any_endpoint", 3: "default_subset", 4: "keys_subset"}


@dataclass(frozen=True)
class XdsCluster:
    """A decoded Cluster (see the module docstring for ``settings``)."""

    name: str
    discovery: str                               # "EDS" | "STATIC" | "STRICT_DNS"
    eds_service_name: str                        # EDS: service_name, else the cluster name; "" otherwise
    settings: Mapping[str, Any]                  # meshd ClusterSettings, config-file shape
    endpoints: tuple[EndpointSpec, ...] | None   # STATIC / STRICT_DNS: load_assignment; None for EDS
    metadata: Mapping[str, str]                  # parse_istio_cluster_name(name), or empty

    @property
    def secret_names(self) -> frozenset[str]:
        """The SDS secrets its ``tls`` needs (the cluster warms until they are all there)."""
        return secret_names(self.settings.get("tls"))


def decode_cluster(any_: Any) -> XdsCluster:
    """An ``Any`` holding a ``Cluster`` → :class:`XdsCluster`, or ResourceError."""
    cluster = unpack(any_, Cluster, "cluster")
    return run("cluster", cluster.name, lambda: _decode(cluster))


def _decode(c: cluster_pb2.Cluster) -> XdsCluster:
    check_name(c.name, "name")
    if c.WhichOneof("cluster_discovery_type") == "cluster_type":
        raise Problem(f"cluster_type: custom cluster type {c.cluster_type.name!r} is not supported")
    discovery = _DISCOVERY.get(c.type)
    if discovery is None:
        raise Problem(f"type: {Cluster.DiscoveryType.Name(c.type)} is not supported (EDS, STATIC, STRICT_DNS)")
    service_name, endpoints = "", None
    if discovery == "EDS":
        with at("eds_cluster_config.eds_config"):
            check_ads(c.eds_cluster_config.eds_config)
        service_name = c.eds_cluster_config.service_name or c.name
    else:
        with at("load_assignment"):
            endpoints = assignment_endpoints(c.load_assignment, static=discovery == "STATIC")
    istio = parse_istio_cluster_name(c.name)
    return XdsCluster(c.name, discovery, service_name, freeze(_settings(c)), endpoints,
                      MappingProxyType(istio or {}))


def _settings(c: cluster_pb2.Cluster) -> dict[str, Any]:
    out: dict[str, Any] = {"lb_policy": _lb_policy(c)}
    if c.HasField("connect_timeout"):
        out["connect_timeout"] = positive_duration(c, "connect_timeout")
    out.update(_protocol_options(c))
    if c.HasField("circuit_breakers"):
        with at("circuit_breakers"):
            if breakers := _circuit_breakers(c.circuit_breakers):
                out["circuit_breakers"] = breakers
    if c.HasField("outlier_detection"):
        with at("outlier_detection"):
            out["outlier_detection"] = _outlier_detection(c.outlier_detection)
    if c.health_checks:
        if len(c.health_checks) > 1:
            raise Problem(f"health_checks: {len(c.health_checks)} checks; meshd runs one per cluster")
        with at("health_checks[0]"):
            out["health_checks"] = [_health_check(c.health_checks[0])]
    if c.HasField("lb_subset_config"):
        with at("lb_subset_config"):
            out["subset"] = _subset(c.lb_subset_config)
    if c.HasField("common_lb_config"):
        with at("common_lb_config"):
            out.update(_common_lb(c.common_lb_config))
    tls = _tls(c)
    if tls is not None:
        out["tls"] = tls
    return out


def _tls(c: cluster_pb2.Cluster) -> dict[str, Any] | None:
    """``transport_socket`` and ``transport_socket_matches`` → ``tls`` (see the module docstring)."""
    refuse(c, ("transport_socket_matcher",))
    default = None
    if c.HasField("transport_socket"):
        with at("transport_socket"):
            default = transport_socket(c.transport_socket, upstream=True)
    marked: list[tuple[str, dict[str, str], dict[str, Any] | None]] = []
    for i, entry in enumerate(c.transport_socket_matches):
        label = indexed("transport_socket_matches", i, entry.name)
        with at(label):
            if not entry.HasField("transport_socket"):
                raise Problem("transport_socket: missing")
            with at("transport_socket"):
                socket = transport_socket(entry.transport_socket, upstream=True)
        match = {f"{TRANSPORT_SOCKET_MATCH}.{k}": value_string(v) for k, v in sorted(entry.match.fields.items())}
        if not match:                    # matches every endpoint: the default, and later entries never apply
            default = socket
            break
        marked.append((label, match, socket))
    shapes = ("meshd dials every endpoint with one TLS setting, or those matching one set of keys with TLS "
              "and the others in plaintext")
    if default is not None:
        for label, _, socket in marked:
            if socket != default:
                raise Problem(f"{label}: {'plaintext' if socket is None else 'another TLS setting'} for some "
                              f"endpoints while the others get TLS is not supported ({shapes})")
        return default
    first_tls = next((i for i, (_, _, socket) in enumerate(marked) if socket is not None), None)
    if first_tls is None:
        return None
    label, match, socket = marked[first_tls]
    if first_tls > 0:
        raise Problem(f"{marked[0][0]}: plaintext for the endpoints it matches, ahead of the TLS entry {label}, "
                      f"is not supported ({shapes})")
    for other, _, other_socket in marked[first_tls + 1:]:
        if other_socket is not None:
            raise Problem(f"{other}: a second TLS entry (after {label}) is not supported ({shapes})")
    return {**socket, "endpoints": "marked", "marker": match}


def _lb_policy(c: cluster_pb2.Cluster) -> str:
    if c.HasField("load_balancing_policy"):
        names = []
        for policy in c.load_balancing_policy.policies:
            type_name = policy.typed_extension_config.typed_config.type_url.rpartition("/")[2]
            if type_name in _TYPED_LB:
                return _TYPED_LB[type_name]
            names.append(policy.typed_extension_config.name or type_name)
        raise Problem(f"load_balancing_policy: none of the policies {names} is supported "
                      f"(round_robin, least_request, random)")
    policy = _LB_POLICIES.get(c.lb_policy)
    if policy is None:
        raise Problem(f"lb_policy: {Cluster.LbPolicy.Name(c.lb_policy)} is not supported "
                      f"(ROUND_ROBIN, LEAST_REQUEST, RANDOM)")
    return policy


def _protocol_options(c: cluster_pb2.Cluster) -> dict[str, Any]:
    out: dict[str, Any] = {}
    common = None
    if c.HasField("common_http_protocol_options"):
        common = c.common_http_protocol_options
    for key, any_ in c.typed_extension_protocol_options.items():
        if any_.type_url.endswith("/" + _HTTP_OPTIONS):
            from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
            with at(f"typed_extension_protocol_options[{key}]"):
                options = unpack_field(any_, http_protocol_options_pb2.HttpProtocolOptions)
            if options.HasField("common_http_protocol_options"):
                common = options.common_http_protocol_options
    if c.HasField("max_requests_per_connection") and c.max_requests_per_connection.value:
        out["max_requests_per_connection"] = c.max_requests_per_connection.value
    if common is not None:
        if common.HasField("idle_timeout") and (common.idle_timeout.seconds or common.idle_timeout.nanos):
            out["idle_timeout"] = duration(common.idle_timeout)
        if common.HasField("max_requests_per_connection") and common.max_requests_per_connection.value:
            out["max_requests_per_connection"] = common.max_requests_per_connection.value
    return out


def _circuit_breakers(cb: circuit_breaker_pb2.CircuitBreakers) -> dict[str, Any]:
    default = [t for t in cb.thresholds if t.priority == base_pb2.DEFAULT]
    if not default:
        return {}
    t = default[0]
    out: dict[str, Any] = {}
    for field, low in (("max_connections", 1), ("max_pending_requests", 0), ("max_requests", 1), ("max_retries", 0)):
        if t.HasField(field):
            out[field] = at_least(getattr(t, field).value, low, f"thresholds(DEFAULT).{field}")
    if t.HasField("retry_budget"):
        budget: dict[str, Any] = {}
        if t.retry_budget.HasField("budget_percent"):
            budget["budget_percent"] = t.retry_budget.budget_percent.value
            if not 0 <= budget["budget_percent"] <= 100:
                raise Problem(f"thresholds(DEFAULT).retry_budget.budget_percent: {budget['budget_percent']} "
                              f"is not a percentage")
        if t.retry_budget.HasField("min_retry_concurrency"):
            budget["min_retry_concurrency"] = t.retry_budget.min_retry_concurrency.value
        out["retry_budget"] = budget
    return out


def _outlier_detection(od: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # (meshd key, Envoy threshold field, Envoy enforcing field, Envoy's default enforcement %)
    for key, enforcing, default_enforcing in (
            ("consecutive_5xx", "enforcing_consecutive_5xx", 100),
            ("consecutive_gateway_failure", "enforcing_consecutive_gateway_failure", 0),
            ("consecutive_local_origin_failure", "enforcing_consecutive_local_origin_failure", 100)):
        threshold = getattr(od, key).value if od.HasField(key) else None
        enforced = getattr(od, enforcing).value if od.HasField(enforcing) else default_enforcing
        if enforced == 0 or threshold == 0:
            out[key] = DISABLED
        elif threshold is not None:
            out[key] = threshold
    for key in ("interval", "base_ejection_time", "max_ejection_time"):
        if od.HasField(key):
            out[key] = positive_duration(od, key)
    if od.HasField("max_ejection_percent"):
        out["max_ejection_percent"] = at_least(od.max_ejection_percent.value, 0, "max_ejection_percent", 100)
    if od.split_external_local_origin_errors:
        out["split_external_local_origin_errors"] = True
    for key in ("enforcing_failure_percentage", "enforcing_failure_percentage_local_origin"):
        if od.HasField(key) and getattr(od, key).value > 0:
            raise Problem(f"{key}: failure-percentage ejection is not supported")
    return out


def _health_check(hc: Any) -> dict[str, Any]:
    kind = hc.WhichOneof("health_checker")
    out: dict[str, Any] = {}
    if kind == "tcp_health_check":
        tcp = hc.tcp_health_check
        if tcp.HasField("send") or tcp.receive:
            raise Problem("tcp_health_check: send/receive payloads are not supported (meshd checks connect only)")
        out["type"] = "tcp"
    elif kind == "http_health_check":
        out["type"] = "http"
        with at("http_health_check"):
            out["http"] = _http_check(hc.http_health_check)
    else:
        raise Problem(f"{kind or 'health_checker'}: " + (f"{kind.replace('_health_check', '')} health checks are "
                                                         f"not supported (tcp, http)" if kind else "missing"))
    out["timeout"] = positive_duration(hc, "timeout")
    out["interval"] = positive_duration(hc, "interval")
    if hc.HasField("interval_jitter"):
        out["interval_jitter"] = duration(hc.interval_jitter)
    for key in ("healthy_threshold", "unhealthy_threshold"):
        if hc.HasField(key):
            out[key] = at_least(getattr(hc, key).value, 1, key)
    return out


def _http_check(http: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if http.path:
        out["path"] = http.path
    if http.host:
        out["host"] = http.host
    if http.expected_statuses:
        statuses: list[int] = []
        for i, r in enumerate(http.expected_statuses):
            if not 100 <= r.start < r.end <= 600:
                raise Problem(f"expected_statuses[{i}]: [{r.start}, {r.end}) is not a range of HTTP statuses")
            statuses.extend(range(r.start, r.end))
        out["expected_statuses"] = sorted(set(statuses))
    return out


def _subset(cfg: Any) -> dict[str, Any]:
    if cfg.list_as_any:
        raise Problem("list_as_any: is not supported")
    if cfg.metadata_fallback_policy:
        raise Problem("metadata_fallback_policy: FALLBACK_LIST is not supported")
    selectors = []
    for i, sel in enumerate(cfg.subset_selectors):
        with at(indexed("subset_selectors", i)):
            if not sel.keys:
                raise Problem("keys: must not be empty")
            selector: dict[str, Any] = {"keys": list(sel.keys)}
            if sel.fallback_policy:
                selector["fallback_policy"] = _SELECTOR_FALLBACK[sel.fallback_policy]
            if sel.fallback_keys_subset:
                selector["fallback_keys_subset"] = list(sel.fallback_keys_subset)
            selectors.append(selector)
    return {"selectors": selectors, "fallback_policy": _SUBSET_FALLBACK[cfg.fallback_policy],
            **({"default_subset": struct_strings(cfg.default_subset)} if cfg.default_subset.fields else {})}


def _common_lb(common: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if common.HasField("healthy_panic_threshold"):
        value = common.healthy_panic_threshold.value
        if not 0 <= value <= 100:
            raise Problem(f"healthy_panic_threshold: {value} is not a percentage")
        out["panic_threshold"] = value
    if common.WhichOneof("locality_config_specifier") == "zone_aware_lb_config":
        zone = common.zone_aware_lb_config
        if not zone.HasField("routing_enabled") or zone.routing_enabled.value > 0:
            out["zone_aware"] = {}
    return out
