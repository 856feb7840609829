"""The Istio-shaped mesh the xDS tests serve: service ``greeter.default.svc.cluster.local:50051`` with
subsets ``v1``/``v2`` (each its own EDS cluster, as istiod does), backed by real gRPC backends."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from integration.xds import istio

HOST = "greeter.default.svc.cluster.local"
PORT = 50051
LISTENER = f"{HOST}:{PORT}"
TARGET = f"xds:///{LISTENER}"
ROUTE = istio.cluster_name("outbound", PORT, "", HOST)
V1 = istio.cluster_name("outbound", PORT, "v1", HOST)
V2 = istio.cluster_name("outbound", PORT, "v2", HOST)


def cla(cluster: str, backends: Sequence[Any], subset: str = "v1", zone: str = "z1") -> Any:
    """A ClusterLoadAssignment of one locality with the given backends, Istio metadata included."""
    endpoints = [istio.lb_endpoint("127.0.0.1", b.port, workload=f"{b.name};default;greeter;{subset};Kubernetes",
                                   lb_labels={"version": subset}) for b in backends]
    return istio.load_assignment(cluster, istio.locality(endpoints, "r1", zone, f"{zone}-a"))


def routes(*, cluster: str | None = None, weighted: Mapping[str, int] | None = None,
           header_to_v2: bool = False) -> Any:
    """The route config: optionally ``x-canary: yes`` to v2 first, then the default route."""
    entries = [istio.route(cluster=V2, headers={"x-canary": "yes"}, name="canary")] if header_to_v2 else []
    entries.append(istio.route(cluster=cluster, weighted=weighted, name="default"))
    return istio.service_route_config(HOST, PORT, entries)


def mesh(v1: Sequence[Any], v2: Sequence[Any] = (), **route_kwargs: Any) -> list[Any]:
    """Listener, routes, both subset clusters and their endpoints (default route: all to v1)."""
    if not route_kwargs:
        route_kwargs = {"cluster": V1}
    return [istio.api_listener(HOST, PORT), routes(**route_kwargs),
            istio.eds_cluster(V1), istio.eds_cluster(V2), cla(V1, v1, "v1"), cla(V2, v2, "v2")]
