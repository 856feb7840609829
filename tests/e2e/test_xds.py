"""End to end: ``meshd run`` as an Istio data plane, fed by the ADS test control plane (``integration.xds``), in
SotW and in Delta: Istio-shaped clusters, endpoints and routes carry real HTTP and Dubbo traffic (weights,
header routes, retries, timeouts); EDS changes, removals, NACKs and a control-plane restart under load; and
dual mode, one Dubbo interface with providers in ZooKeeper and in xDS, called by a real Dubbo consumer."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter

import pytest
from envoy.config.route.v3 import route_components_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from integration import peers
from integration.xds import istio
from integration.xds.snapshot import CLUSTER as CDS
from tests.e2e.test_rpc_proxy import IFACE, Raw, dubbo_request
from tests.e2e.test_zookeeper_discovery import (add_dubbo_provider, zk_root, zk_server,  # noqa: F401 (fixtures)
                                                zk_writer)

HOST = "reviews.default.svc.cluster.local"
V1 = istio.cluster_name("outbound", 9080, "v1", HOST)
V2 = istio.cluster_name("outbound", 9080, "v2", HOST)
ROUTES = "9080"
NODE_ID = istio.sidecar_node_id("127.0.0.1", "app-1", "default")


def xds_source(server, delta: bool) -> dict:
    return {"type": "xds", "name": "istio", "server": server.address, "delta": delta, "initial_fetch_timeout": "3s",
            "node": {"id": NODE_ID, "cluster": "app", "locality": {"region": "r1", "zone": "z1"},
                     "metadata": {"ISTIO_VERSION": "1.24.0", "NAMESPACE": "default", "CLUSTER_ID": "Kubernetes"}}}


def http_config(server, delta: bool) -> dict:
    return {"listeners": [{"name": "http", "address": "127.0.0.1:0", "protocol": "http",
                           "route_config": {"xds": "istio", "name": ROUTES}}],
            "discovery": [xds_source(server, delta)], "access_log": {"path": None}}


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(int(seconds * 1000))
    return d


def http_routes() -> object:
    """Istio-shaped: x-canary → v2; /slow → v1 with a 200 ms timeout; /retry → v1 retried on 5xx; / → 80/20."""
    canary = istio.route(cluster=V2, headers={"x-canary": "yes"}, name="canary")
    slow = istio.route(cluster=V1, prefix="/slow", name="slow")
    slow.route.timeout.CopyFrom(duration(0.2))
    retry = istio.route(cluster=V1, prefix="/retry", name="retry")
    retry.route.retry_policy.CopyFrom(route_components_pb2.RetryPolicy(
        retry_on="5xx,connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        num_retries=wrappers_pb2.UInt32Value(value=2), per_try_timeout=duration(1.0)))
    split = istio.route(weighted={V1: 80, V2: 20}, name="split")
    return istio.route_config(ROUTES, istio.virtual_host("reviews", ["*"], [canary, slow, retry, split]))


def assignment(cluster: str, backends, zone: str = "z1", lb_labels: dict | None = None) -> object:
    endpoints = [istio.lb_endpoint("127.0.0.1", b.port, workload=f"{b.name};default;reviews;v1;Kubernetes",
                                   lb_labels=lb_labels) for b in backends]
    return istio.load_assignment(cluster, istio.locality(endpoints, "r1", zone, "s1"))


def get(port: int, path: str = "/", headers: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers={"Host": "reviews", **(headers or {})})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    server = json.loads(body)["server"] if resp.status == 200 and body.startswith(b"{") else ""
    return resp.status, server


def eventually(pred, what: str, timeout: float = 5.0, step: float = 0.005) -> float:
    started = time.monotonic()
    while not pred():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(step)
    return time.monotonic() - started


@pytest.fixture
def mesh(xds_server, http_backend):
    backends = {name: http_backend(name) for name in ("v1a", "v1b", "v2")}
    xds_server.apply(upsert=[istio.eds_cluster(V1), istio.eds_cluster(V2),
                             assignment(V1, [backends["v1a"], backends["v1b"]]), assignment(V2, [backends["v2"]]),
                             http_routes()])
    return backends


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_an_istio_snapshot_routes_http_by_weight_header_retry_and_timeout(delta, meshd_run, xds_server, mesh):
    m = meshd_run(http_config(xds_server, delta))
    port = m.port("http")
    served = Counter(get(port)[1] for _ in range(2000))
    v2_share = served["v2"] / 2000
    assert 0.15 <= v2_share <= 0.25, f"80/20 split: v2 got {v2_share:.1%} ({served})"
    assert {get(port, headers={"x-canary": "yes"})[1] for _ in range(20)} == {"v2"}
    mesh["v1a"].script.fail_next = 1
    mesh["v1b"].script.fail_next = 1
    assert get(port, "/retry")[0] == 200, "a 5xx is retried (twice at most) per the route's retry policy"
    assert mesh["v1a"].script.fail_next == mesh["v1b"].script.fail_next == 0
    started = time.monotonic()
    status, _ = get(port, "/slow", {"x-backend-delay-ms": "1000"})
    assert status == 504 and time.monotonic() - started < 0.9, "the route's 200 ms timeout answered"
    dump = m.admin_json("/config_dump")["dynamic"]["istio"]
    assert set(dump["cds"]) == {V1, V2} and ROUTES in dump["rds"]
    assert dump["cds"][V1]["metadata"] == {"direction": "outbound", "port": "9080", "subset": "v1", "host": HOST}
    clusters = {c["name"]: c for c in m.admin_json("/clusters")["clusters"]}
    v1 = clusters[V1]["endpoints"]
    assert {e["metadata"]["app"] for e in v1} == {"reviews"} and all(e["zone"].startswith("r1/z1") for e in v1)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_eds_changes_removals_and_a_nack_while_traffic_continues(delta, meshd_run, xds_server, mesh):
    m = meshd_run(http_config(xds_server, delta))
    port = m.port("http")
    assert get(port, headers={"x-canary": "yes"})[1] == "v2"
    started = time.monotonic()
    xds_server.upsert(assignment(V2, [mesh["v1a"]]))
    eventually(lambda: get(port, headers={"x-canary": "yes"})[1] == "v1a", "the EDS change routable")
    print(f"EDS change routable after {(time.monotonic() - started) * 1000:.1f} ms ({'delta' if delta else 'sotw'})")

    mark = xds_server.mark()
    bad = istio.eds_cluster(V1, lb_policy=istio.cluster_pb2.Cluster.MAGLEV)
    xds_server.upsert(bad)
    nack = xds_server.wait_nack(CDS, since=mark[0])
    assert "MAGLEV" in nack.error_detail and V1 in nack.error_detail
    assert {get(port)[0] for _ in range(50)} == {200}, "traffic continues on the previous configuration"
    assert m.admin_json("/config_dump")["dynamic"]["istio"]["last_nack"]["cds"]["error"] == nack.error_detail

    xds_server.apply(upsert=[istio.eds_cluster(V1)], replace={CDS: [istio.eds_cluster(V1)]})   # V2 removed
    eventually(lambda: V2 not in {c["name"] for c in m.admin_json("/clusters")["clusters"]},
               "the removed cluster leaving /clusters")


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_the_control_plane_restarted_under_steady_load_fails_no_request(delta, meshd_run, xds_server, mesh):
    m = meshd_run(http_config(xds_server, delta))
    port = m.port("http")
    results: list[int] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            results.append(get(port)[0])

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    time.sleep(0.3)
    xds_server.stop()
    eventually(lambda: m.admin_json("/clusters")["sources"][0]["stale"], "the source marked stale", timeout=10)
    time.sleep(0.5)
    xds_server.start()
    eventually(lambda: m.admin_json("/clusters")["sources"][0]["connected"], "reconnected", timeout=15)
    xds_server.upsert(assignment(V2, [mesh["v1b"]]))
    eventually(lambda: get(port, headers={"x-canary": "yes"})[1] == "v1b", "a change after the restart")
    stop.set()
    thread.join(10)
    assert len(results) > 50 and set(results) == {200}, Counter(results)
    assert not m.admin_json("/clusters")["sources"][0]["stale"]


needs_peers = pytest.mark.skipif(not peers.installed(), reason=peers.missing_reason() or
                                 "third-party peers not installed: run `python -m integration.peers install`")


@needs_peers
def test_dual_mode_one_dubbo_interface_in_zookeeper_and_in_xds(meshd_run, provider, xds_server, zk_server, zk_root,
                                                               zk_writer):
    in_zk, in_xds = provider("dubbo", "zk-provider"), provider("dubbo", "xds-provider")
    node = add_dubbo_provider(zk_writer, IFACE, in_zk.address)
    service_host = IFACE.lower()                     # Istio ServiceEntry hosts are lower-case
    cluster = istio.cluster_name("outbound", 20880, "", service_host)
    xds_server.apply(upsert=[istio.eds_cluster(cluster), assignment(cluster, [in_xds], lb_labels={"version": "1.0.0"})])
    m = meshd_run({
        "listeners": [{"name": "dubbo", "address": "127.0.0.1:0", "protocol": "dubbo"}],
        "discovery": [{"type": "zookeeper", "name": "zk", "servers": zk_server.hosts(zk_root), "services": [IFACE]},
                      {**xds_source(xds_server, False), "merge": "service"}],
        "access_log": {"path": None}})
    eventually(lambda: len(next((c for c in m.admin_json("/clusters")["clusters"] if c["name"] == IFACE),
                                {"endpoints": []})["endpoints"]) == 2, "both providers in the interface's cluster")
    endpoints = next(c for c in m.admin_json("/clusters")["clusters"] if c["name"] == IFACE)["endpoints"]
    assert sorted(tuple(e["sources"]) for e in endpoints) == [("istio",), ("zk",)]

    out = peers.run_node("dubbo_consumer.js", "--address", f"127.0.0.1:{m.port('dubbo')}", "--method", "sayHello",
                         "--args", '["x"]', "--count", "40", "--concurrency", "4", "--version", "1.0.0")
    results = [x for x in peers.json_lines(out.stdout) if x.get("event") == "result"]
    assert len(results) == 40 and all(r["ok"] for r in results), results[:3]
    assert {str(r["value"]).split(":")[0] for r in results} == {"zk-provider", "xds-provider"}

    raw = Raw(m.port("dubbo"), "dubbo")
    answers: list[int] = []
    stop = threading.Event()

    def load() -> None:
        rid = 0
        while not stop.is_set():
            rid += 1
            raw.send(dubbo_request(rid=rid))
            answers.append(raw.read().status)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    time.sleep(0.3)
    zk_writer.delete(node)                           # the registry's providers leave: xDS serves alone
    eventually(lambda: len(in_zk.script.requests) and len(next(c for c in m.admin_json("/clusters")["clusters"]
                                                              if c["name"] == IFACE)["endpoints"]) == 1,
               "the ZooKeeper provider gone")
    seen = len(in_xds.script.requests)
    eventually(lambda: len(in_xds.script.requests) > seen + 20, "calls reaching the xDS provider")
    stop.set()
    thread.join(10)
    assert answers and set(answers) == {20}, Counter(answers)


def socket_listener(name: str, port: int, route_config_name: str) -> object:
    """A sidecar-style Listener on 0.0.0.0:<port>: one filter chain, HCM with RDS over ADS, router last."""
    from envoy.config.core.v3 import address_pb2
    from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
    from envoy.extensions.filters.http.router.v3 import router_pb2
    from google.protobuf import any_pb2

    def pack(message):
        packed = any_pb2.Any()
        packed.Pack(message)
        return packed

    manager = hcm.HttpConnectionManager(
        stat_prefix=name, rds=hcm.Rds(config_source=istio._ads(), route_config_name=route_config_name),
        http_filters=[hcm.HttpFilter(name=istio.ROUTER_FILTER, typed_config=pack(router_pb2.Router()))])
    return listener_pb2.Listener(
        name=name, address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address="0.0.0.0",
                                                                                         port_value=port)),
        filter_chains=[listener_components_pb2.FilterChain(filters=[listener_components_pb2.Filter(
            name="envoy.filters.network.http_connection_manager", typed_config=pack(manager))])])


def test_lds_listeners_become_meshd_listeners_on_loopback(meshd_run, xds_server, mesh):
    from integration.ports import free_port
    from integration.xds.snapshot import LISTENER
    port = free_port()
    name = f"0.0.0.0_{port}"
    xds_server.upsert(socket_listener(name, port, ROUTES))
    source = {**xds_source(xds_server, False), "resources": ["clusters", "endpoints", "routes", "listeners"]}
    m = meshd_run({"discovery": [source], "access_log": {"path": None}})
    eventually(lambda: any(x["name"] == f"istio:{name}" for x in m.admin_json("/listeners")["listeners"]),
               "the LDS listener bound")
    bound = next(x for x in m.admin_json("/listeners")["listeners"] if x["name"] == f"istio:{name}")
    assert bound["bound"] == f"127.0.0.1:{port}", "0.0.0.0 in LDS binds loopback unless the config allows more"
    assert get(port, headers={"x-canary": "yes"}) == (200, "v2"), "its RDS routes are in force"
    xds_server.remove(LISTENER, name)
    eventually(lambda: all(x["name"] != f"istio:{name}" for x in m.admin_json("/listeners")["listeners"]),
               "the removed LDS listener closed")
    with pytest.raises(OSError):
        get(port)


def test_one_cluster_by_name_on_the_admin_api(meshd_run, xds_server, mesh):
    from urllib.parse import quote
    m = meshd_run(http_config(xds_server, False))
    eventually(lambda: m.admin(f"/clusters/{quote(V1, safe='')}")[0] == 200, "the xDS cluster")
    one = m.admin_json(f"/clusters/{quote(V1, safe='')}")
    assert one["name"] == V1 and len(one["endpoints"]) == 2 and one["sources"] == ["istio"]
    assert m.admin("/clusters/nope")[0] == 404
