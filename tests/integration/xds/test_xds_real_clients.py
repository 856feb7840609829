"""The test ADS server against two real proxyless-xDS clients nobody here wrote: grpcio (C-core) and
@grpc/grpc-js-xds. Each test runs once per client; every RPC is real and goes to a real gRPC backend on
loopback, chosen by the client from what the server serves. Waits are on the server's ACK log or on the
client's observed routing, never sleeps. Both clients speak SotW ADS only (neither implements Delta:
grpc-js-xds only calls StreamAggregatedResources; grpcio has no Delta), so Delta is tested with a raw
stream client in test_xds_raw_streams.py."""

from __future__ import annotations

import pytest

from integration.xds import istio
from integration.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from xds_mesh import LISTENER as LDS_NAME
from xds_mesh import ROUTE as RDS_NAME
from xds_mesh import TARGET, V1, V2, cla, mesh, routes

CLIENTS = ["grpcio", pytest.param("node", marks=pytest.mark.peers)]  # node: needs the npm peers
SHORT = {LISTENER: "lds", ROUTE: "rds", CLUSTER: "cds", ENDPOINT: "eds"}


@pytest.mark.parametrize("kind", CLIENTS)
def test_client_follows_the_lds_rds_cds_eds_chain_and_endpoint_moves(kind, xds_server, xds_backends, xds_client):
    b = xds_backends("a", "b", "c")
    xds_server.upsert(*mesh([b["a"]], [b["c"]]))
    client = xds_client(kind, TARGET)
    assert client.call(5, rpc_timeout=10).counts == {"a": 5}

    # the client walked the chain by exact names (gRPC: LDS -> RDS -> CDS -> EDS, no wildcard)
    firsts = {}
    for r in xds_server.requests(kind="request"):
        firsts.setdefault(r.type_url, r)
    assert [SHORT[url] for url in firsts] == ["lds", "rds", "cds", "eds"]
    assert firsts[LISTENER].resource_names == (LDS_NAME,)
    assert firsts[ROUTE].resource_names == (RDS_NAME,)
    assert firsts[CLUSTER].resource_names == (V1,)
    assert firsts[ENDPOINT].resource_names == (V1,)
    assert {r.node_id for r in xds_server.requests()} == {istio.sidecar_node_id()}
    for url in firsts:
        xds_server.wait_ack(url, "1")

    # an EDS-only push moves all traffic
    version = xds_server.upsert(cla(V1, [b["b"]]))[ENDPOINT]
    xds_server.wait_ack("eds", version)
    client.call_until(lambda r: r.only == "b")

    # two weighted localities (zone z1, z2): both serve
    version = xds_server.upsert(istio.load_assignment(
        V1, istio.locality([istio.lb_endpoint("127.0.0.1", b["a"].port)], "r1", "z1", "z1-a"),
        istio.locality([istio.lb_endpoint("127.0.0.1", b["b"].port)], "r1", "z2", "z2-a")))[ENDPOINT]
    xds_server.wait_ack("eds", version)
    client.call_until(lambda r: set(r.counts) == {"a", "b"} and not r.errors, n=30)

    # route to v2: the client re-subscribes CDS and EDS with the new name set only (v1 dropped)
    version = xds_server.upsert(routes(cluster=V2))[ROUTE]
    xds_server.wait_ack("rds", version)
    client.call_until(lambda r: r.only == "c")
    xds_server.wait_request(lambda r: r.type_url == CLUSTER and r.resource_names == (V2,), what="CDS for v2 only")
    xds_server.wait_request(lambda r: r.type_url == ENDPOINT and r.resource_names == (V2,), what="EDS for v2 only")

    # removing the now unreferenced v1 cluster changes nothing this client subscribes to: nothing is sent
    mark = xds_server.mark()
    xds_server.remove("cds", V1)
    assert xds_server.responses("cds", since=mark[1]) == []
    assert client.call(10).counts == {"c": 10}


@pytest.mark.parametrize("kind", CLIENTS)
def test_weighted_clusters_and_header_route(kind, xds_server, xds_backends, xds_client):
    b = xds_backends("a", "b")
    xds_server.upsert(*mesh([b["a"]], [b["b"]], weighted={V1: 80, V2: 20}, header_to_v2=True))
    client = xds_client(kind, TARGET)
    client.call(1, rpc_timeout=10)
    split = client.call(200)
    assert not split.errors, split
    assert 0.10 <= split.share("b") <= 0.32, split  # 20 % +- 4 standard deviations of a binomial(200, 0.2)
    assert client.call(20, metadata={"x-canary": "yes"}).counts == {"b": 20}

    version = xds_server.upsert(routes(weighted={V1: 0, V2: 100}))[ROUTE]  # weight 0: entry skipped
    xds_server.wait_ack("rds", version)
    client.call_until(lambda r: r.only == "b", n=20)


@pytest.mark.parametrize("kind", CLIENTS)
def test_nack_is_logged_not_resent_and_the_client_keeps_its_config(kind, xds_server, xds_backends, xds_client):
    b = xds_backends("a", "b")
    xds_server.upsert(*mesh([b["a"]], [b["b"]]))
    client = xds_client(kind, TARGET)
    assert client.call(3, rpc_timeout=10).counts == {"a": 3}
    accepted = xds_server.version("cds")
    xds_server.wait_ack("cds", accepted)

    mark = xds_server.mark()
    bad = xds_server.upsert(istio.eds_cluster(V1, lb_policy=istio.cluster_pb2.Cluster.MAGLEV))[CLUSTER]
    nack = xds_server.wait_nack("cds", since=mark[0])
    assert nack.error_detail, nack
    assert nack.version == accepted != bad  # version_info = last accepted version
    print(f"{kind} NACK error_detail: {nack.error_detail!r} (code {nack.error_code})")

    # the client keeps routing on its cached cluster, and still takes EDS pushes for it
    assert client.call(10).counts == {"a": 10}
    version = xds_server.upsert(cla(V1, [b["b"]]))[ENDPOINT]
    xds_server.wait_ack("eds", version)
    client.call_until(lambda r: r.only == "b")

    # no resend loop: exactly one CDS response (the bad one) and one CDS request (the NACK) since the push
    assert [r.version for r in xds_server.responses("cds", since=mark[1])] == [bad]
    assert [r.kind for r in xds_server.requests("cds", since=mark[0])] == ["nack"]

    fixed = xds_server.upsert(istio.eds_cluster(V1, connect_timeout=5))[CLUSTER]
    xds_server.wait_ack("cds", fixed)
    assert client.call(5).counts == {"b": 5}


@pytest.mark.parametrize("kind", CLIENTS)
def test_client_survives_a_control_plane_restart_on_a_unix_socket(kind, xds_server, xds_backends, xds_client):
    b = xds_backends("a", "b")
    xds_server.upsert(*mesh([b["a"]]))
    client = xds_client(kind, TARGET, istio.grpc_bootstrap(xds_server.unix_uri))
    assert client.call(3, rpc_timeout=10).counts == {"a": 3}
    acked = {url: xds_server.wait_ack(url, "1") for url in (LISTENER, ROUTE, CLUSTER, ENDPOINT)}
    assert {r.stream for r in acked.values()} == {1}

    xds_server.stop()
    assert client.call(5).counts == {"a": 5}  # cached config keeps working without a control plane
    mark = xds_server.mark()
    xds_server.start()

    # on the new stream every type is re-requested with the last accepted version and an empty nonce
    for url in (LISTENER, ROUTE, CLUSTER, ENDPOINT):
        again = xds_server.wait_request(lambda r, u=url: r.type_url == u and r.stream > 1, timeout=15,
                                        what=f"re-subscription of {SHORT[url]}", since=mark[0])
        assert (again.kind, again.version, again.nonce) == ("request", "1", "")
        assert again.resource_names == acked[url].resource_names
    version = xds_server.upsert(cla(V1, [b["b"]]))[ENDPOINT]
    xds_server.wait_ack("eds", version)
    client.call_until(lambda r: r.only == "b")
