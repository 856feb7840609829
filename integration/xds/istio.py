"""Builders for the resources istiod sends to proxyless gRPC (``istio/istio:pilot/pkg/networking/grpcgen``), and the bootstrap it writes.

Contract: small functions returning protobuf messages, correct for both grpcio and grpc-js-xds:
- :func:`cluster_name` ``("outbound", 9080, "v1", "reviews.default.svc.cluster.local")`` →
  ``outbound|9080|v1|reviews.default.svc.cluster.local`` (Istio BuildSubsetKey; subset ``""`` for none).
- :func:`eds_cluster`: a Cluster of type EDS whose ``eds_config`` is ``ads{}`` (resource API V3) and whose
  ``service_name`` is the cluster name (Istio: EDS service name = cluster name = CLA ``cluster_name``).
- :func:`lb_endpoint`, :func:`locality`, :func:`load_assignment`: endpoints with ``health_status``,
  optional ``load_balancing_weight``, Istio ``filter_metadata["istio"]["workload"]`` and optional
  ``filter_metadata["envoy.lb"]`` labels (the Envoy-native subset style); a locality (region/zone/sub_zone)
  always carries ``load_balancing_weight`` = the sum of its endpoint weights (gRPC silently ignores a
  locality without it).
- :func:`route`, :func:`virtual_host`, :func:`route_config`: prefix and header matches, one cluster or
  ``weighted_clusters`` (weight-0 entries skipped, as Istio does), optional ``max_stream_duration`` (the
  only timeout proxyless gRPC reads).
- :func:`api_listener`: the gRPC client listener ``host:port`` with an HttpConnectionManager that gets its
  routes by RDS over ADS (name ``outbound|port||host``) and ends its filter chain with the router.
- :func:`grpc_bootstrap`: the bootstrap document (``pkg/istio-agent/grpcxds``): one ``xds_v3`` server with
  insecure creds, an Istio sidecar node id and metadata (``GENERATOR=grpc``).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, duration_pb2, struct_pb2, wrappers_pb2

ROUTER_FILTER = "envoy.filters.http.router"
HEALTHY = health_check_pb2.HEALTHY
UNHEALTHY = health_check_pb2.UNHEALTHY
UNKNOWN = health_check_pb2.UNKNOWN


def cluster_name(direction: str, port: int, subset: str, host: str) -> str:
    """Istio's ``direction|port|subset|hostname`` cluster name."""
    return f"{direction}|{port}|{subset}|{host}"


def _ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource(),
                                          resource_api_version=config_source_pb2.V3)


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def eds_cluster(name: str, lb_policy: int = cluster_pb2.Cluster.ROUND_ROBIN,
                connect_timeout: float = 10.0) -> cluster_pb2.Cluster:
    """An EDS cluster over ADS, named and EDS-keyed ``name`` (pass ``Cluster.MAGLEV`` etc. to get NACKs)."""
    return cluster_pb2.Cluster(
        name=name, type=cluster_pb2.Cluster.EDS, lb_policy=lb_policy, connect_timeout=_duration(connect_timeout),
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=_ads(), service_name=name))


def lb_endpoint(host: str, port: int, *, health: int = HEALTHY, weight: int | None = None,
                workload: str | None = None, lb_labels: Mapping[str, str] | None = None,
                tls_mode: str | None = None) -> endpoint_components_pb2.LbEndpoint:
    """One endpoint; ``workload`` is Istio's ``"<name>;<ns>;<canonical-svc>;<rev>;<cluster-id>"``."""
    ep = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=host, port_value=port))),
        health_status=health)
    if weight is not None:
        ep.load_balancing_weight.value = weight
    for namespace, fields in (("istio", {"workload": workload} if workload else None),
                              ("envoy.lb", lb_labels),
                              ("envoy.transport_socket_match", {"tlsMode": tls_mode} if tls_mode else None)):
        if fields:
            ep.metadata.filter_metadata[namespace].CopyFrom(_struct(fields))
    return ep


def _struct(fields: Mapping[str, str]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(dict(fields))
    return s


def locality(endpoints: Sequence[endpoint_components_pb2.LbEndpoint], region: str = "", zone: str = "",
             sub_zone: str = "", priority: int = 0,
             weight: int | None = None) -> endpoint_components_pb2.LocalityLbEndpoints:
    """Endpoints of one locality; ``load_balancing_weight`` defaults to the sum of endpoint weights."""
    total = sum(ep.load_balancing_weight.value if ep.HasField("load_balancing_weight") else 1 for ep in endpoints)
    return endpoint_components_pb2.LocalityLbEndpoints(
        locality=base_pb2.Locality(region=region, zone=zone, sub_zone=sub_zone), lb_endpoints=list(endpoints),
        load_balancing_weight=wrappers_pb2.UInt32Value(value=weight if weight is not None else max(total, 1)),
        priority=priority)


def load_assignment(name: str, *localities: endpoint_components_pb2.LocalityLbEndpoints
                    ) -> endpoint_pb2.ClusterLoadAssignment:
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=name, endpoints=list(localities))


def route(*, cluster: str | None = None, weighted: Mapping[str, int] | None = None, prefix: str = "/",
          headers: Mapping[str, str] | None = None, max_stream_duration: float | None = None,
          name: str = "") -> route_components_pb2.Route:
    """A route to one ``cluster`` or to ``weighted`` ``{cluster: weight}``; ``headers`` are exact matches."""
    if (cluster is None) == (weighted is None):
        raise ValueError("route() needs exactly one of cluster= or weighted=")
    action = route_components_pb2.RouteAction()
    if cluster is not None:
        action.cluster = cluster
    else:
        action.weighted_clusters.clusters.extend(
            route_components_pb2.WeightedCluster.ClusterWeight(name=c, weight=wrappers_pb2.UInt32Value(value=w))
            for c, w in (weighted or {}).items() if w > 0)
    if max_stream_duration is not None:
        action.max_stream_duration.max_stream_duration.CopyFrom(_duration(max_stream_duration))
    match = route_components_pb2.RouteMatch(prefix=prefix, headers=[
        route_components_pb2.HeaderMatcher(name=k, string_match=string_pb2.StringMatcher(exact=v))
        for k, v in (headers or {}).items()])
    return route_components_pb2.Route(name=name, match=match, route=action)


def virtual_host(name: str, domains: Iterable[str], routes: Iterable[route_components_pb2.Route]
                 ) -> route_components_pb2.VirtualHost:
    return route_components_pb2.VirtualHost(name=name, domains=list(domains), routes=list(routes))


def route_config(name: str, *virtual_hosts: route_components_pb2.VirtualHost) -> route_pb2.RouteConfiguration:
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=list(virtual_hosts))


def service_route_config(host: str, port: int, routes: Iterable[route_components_pb2.Route]
                         ) -> route_pb2.RouteConfiguration:
    """Istio's proxyless route config ``outbound|port||host`` with one virtual host ``host:port``."""
    return route_config(cluster_name("outbound", port, "", host),
                        virtual_host(f"{host}:{port}", [f"{host}:{port}", host], routes))


def api_listener(host: str, port: int, route_config_name: str | None = None) -> listener_pb2.Listener:
    """The client-side Listener ``host:port``: HCM with RDS over ADS, router as the last HTTP filter."""
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=f"{host}:{port}",
        rds=hcm_pb2.Rds(config_source=_ads(),
                        route_config_name=route_config_name or cluster_name("outbound", port, "", host)),
        http_filters=[hcm_pb2.HttpFilter(name=ROUTER_FILTER, typed_config=_pack(router_pb2.Router()))])
    return listener_pb2.Listener(name=f"{host}:{port}",
                                 api_listener=api_listener_pb2.ApiListener(api_listener=_pack(manager)))


def sidecar_node_id(ip: str = "127.0.0.1", pod: str = "client", namespace: str = "default") -> str:
    """``sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`` (exactly four parts, as istiod parses it)."""
    return f"sidecar~{ip}~{pod}.{namespace}~{namespace}.svc.cluster.local"


def grpc_bootstrap(server_uri: str, node_id: str | None = None, *, namespace: str = "default",
                   locality: Mapping[str, str] | None = None,
                   metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The proxyless gRPC bootstrap (dump it as JSON into ``GRPC_XDS_BOOTSTRAP(_CONFIG)``)."""
    meta = {"GENERATOR": "grpc", "ISTIO_VERSION": "1.24.0", "NAMESPACE": namespace,
            "INSTANCE_IPS": "127.0.0.1", "CLUSTER_ID": "Kubernetes", **(metadata or {})}
    return {
        "xds_servers": [{"server_uri": server_uri, "channel_creds": [{"type": "insecure"}],
                         "server_features": ["xds_v3"]}],
        "node": {"id": node_id or sidecar_node_id(namespace=namespace),
                 "locality": dict(locality or {"region": "r1", "zone": "z1", "sub_zone": "s1"}),
                 "metadata": meta},
    }
