"""Server rules of the xDS protocol (envoyproxy/envoy:api/xds_protocol.rst) that the real gRPC clients do not exercise, checked as protocol transcripts with
a raw grpc.aio stream client: wildcard and full-state CDS, stale nonces, unsubscribe-by-empty-list, NACK
without resend, version bumps (SotW); and all of Delta (neither grpcio nor grpc-js-xds speaks Delta).
These tests use :class:`AdsServer` directly from asyncio (no loop thread), on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2 as d
from google.rpc import status_pb2

from integration.xds import istio
from integration.xds.server import AdsServer
from integration.xds.snapshot import CLUSTER, ENDPOINT, ROUTE

NODE = base_pb2.Node(id=istio.sidecar_node_id(pod="raw"))
QUIET = 0.3  # how long "nothing is sent" is watched


class Raw:
    """One raw ADS stream: ``send`` a request (returns once the server logged it), ``recv`` a response
    (bounded), ``quiet``: nothing arrives for a short while."""

    def __init__(self, server: AdsServer, call: Any) -> None:
        self.server = server
        self.call = call
        self._read: asyncio.Future[Any] | None = None  # a read that outlived a quiet() window

    async def send(self, req: Any) -> None:
        log = self.server.log
        before = len(log.requests)
        await self.call.write(req)
        await log.wait_for(lambda: len(log.requests) > before, 5, "request logged")

    async def _wait(self, timeout: float) -> Any:
        self._read = self._read or asyncio.ensure_future(self.call.read())
        got = await asyncio.wait_for(asyncio.shield(self._read), timeout)
        self._read = None
        return got

    async def recv(self, timeout: float = 5.0) -> Any:
        return await self._wait(timeout)

    async def quiet(self) -> None:
        try:
            got = await self._wait(QUIET)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"expected no response, got {got}")


def names(resp: Any) -> list[str]:
    if isinstance(resp, d.DeltaDiscoveryResponse):
        return [r.name for r in resp.resources]
    return [cluster_pb2.Cluster.FromString(r.value).name if r.type_url == CLUSTER else
            endpoint_pb2.ClusterLoadAssignment.FromString(r.value).cluster_name for r in resp.resources]


def run(scenario: Callable[[AdsServer, Any], Awaitable[None]]) -> None:
    async def main() -> None:
        server = await AdsServer().start()
        channel = grpc.aio.insecure_channel(server.address, options=[("grpc.enable_http_proxy", 0)])
        try:
            await asyncio.wait_for(scenario(server, ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)), 20)
        finally:
            await channel.close()
            await server.stop()
    asyncio.run(main())


def test_sotw_wildcard_full_state_stale_nonce_unsubscribe_nack_and_bump() -> None:
    async def scenario(server: AdsServer, stub: Any) -> None:
        server.upsert(istio.eds_cluster("A"), istio.eds_cluster("B"), istio.load_assignment("A"))
        s = Raw(server, stub.StreamAggregatedResources())
        await s.send(d.DiscoveryRequest(node=NODE, type_url=CLUSTER))  # legacy wildcard: empty list
        r1 = await s.recv()
        assert (names(r1), r1.version_info) == (["A", "B"], "1") and r1.nonce
        await s.send(d.DiscoveryRequest(type_url=CLUSTER, version_info="1", response_nonce=r1.nonce))
        await s.quiet()  # an ACK is never answered

        server.remove("cds", "B")
        r2 = await s.recv()
        assert (names(r2), r2.version_info) == (["A"], "2") and r2.nonce != r1.nonce  # full state: B deleted
        await s.send(d.DiscoveryRequest(type_url=CLUSTER, version_info="1", response_nonce=r1.nonce,
                                        resource_names=["A", "Z"]))
        await s.quiet()  # stale nonce: ignored
        assert server.log.requests[-1].kind == "stale"

        await s.send(d.DiscoveryRequest(type_url=ENDPOINT, resource_names=["A"]))
        e1 = await s.recv()
        assert names(e1) == ["A"]
        await s.send(d.DiscoveryRequest(type_url=ENDPOINT, version_info=e1.version_info, response_nonce=e1.nonce,
                                        resource_names=["A", "late"]))
        e2 = await s.recv()  # a newly named resource triggers a response even though nothing changed
        assert names(e2) == ["A"]
        server.upsert(istio.load_assignment("late"))
        e3 = await s.recv()  # a subscription to a missing name is remembered and served when it appears
        assert "late" in names(e3)
        await s.send(d.DiscoveryRequest(type_url=ENDPOINT, version_info=e3.version_info, response_nonce=e3.nonce))
        server.upsert(istio.load_assignment("A", istio.locality([istio.lb_endpoint("127.0.0.1", 1)])))
        await s.quiet()  # empty EDS list = not interested

        await s.send(d.DiscoveryRequest(type_url=CLUSTER, version_info="1", response_nonce=r2.nonce,
                                        error_detail=status_pb2.Status(code=3, message="bad cluster")))
        await s.quiet()  # NACK: logged, nothing resent
        nack = server.log.requests[-1]
        assert (nack.kind, nack.version, nack.error_detail) == ("nack", "1", "bad cluster")
        server.bump("cds")
        r3 = await s.recv()  # a bump resends the (unchanged) state with a new version
        assert (names(r3), r3.version_info) == (["A"], "3")

        named = Raw(server, stub.StreamAggregatedResources())  # once a list was named, an empty list is not wildcard
        await named.send(d.DiscoveryRequest(node=NODE, type_url=CLUSTER, resource_names=["A"]))
        n1 = await named.recv()
        await named.send(d.DiscoveryRequest(type_url=CLUSTER, response_nonce=n1.nonce, version_info="3"))
        await s.send(d.DiscoveryRequest(type_url=CLUSTER, version_info="3", response_nonce=r3.nonce))
        server.upsert(istio.eds_cluster("C"))
        assert names(await s.recv()) == ["A", "C"]  # the wildcard stream gets it
        await named.quiet()
    run(scenario)


def test_delta_subscriptions_removals_nack_and_reconnect_with_initial_versions() -> None:
    async def scenario(server: AdsServer, stub: Any) -> None:
        server.upsert(istio.eds_cluster("A"), istio.eds_cluster("B"), istio.load_assignment("A"))
        s = Raw(server, stub.DeltaAggregatedResources())
        await s.send(d.DeltaDiscoveryRequest(node=NODE, type_url=CLUSTER, resource_names_subscribe=["*"]))
        c1 = await s.recv()
        assert names(c1) == ["A", "B"] and not c1.removed_resources and c1.nonce
        versions = {r.name: r.version for r in c1.resources}
        await s.send(d.DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=c1.nonce))
        await s.quiet()

        await s.send(d.DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=["A", "ghost"]))
        e1 = await s.recv()
        assert (names(e1), list(e1.removed_resources)) == (["A"], ["ghost"])  # Delta's "does not exist"
        server.upsert(istio.load_assignment("ghost"))
        e2 = await s.recv()
        assert (names(e2), list(e2.removed_resources)) == (["ghost"], [])
        server.upsert(istio.load_assignment("A", istio.locality([istio.lb_endpoint("127.0.0.1", 1)])))
        e3 = await s.recv()
        assert names(e3) == ["A"]  # only what changed

        server.remove("cds", "B")
        c2 = await s.recv()
        assert (names(c2), list(c2.removed_resources)) == ([], ["B"])

        await s.send(d.DeltaDiscoveryRequest(type_url=ENDPOINT, response_nonce=e3.nonce,
                                             error_detail=status_pb2.Status(code=3, message="bad endpoints")))
        await s.quiet()  # NACK: nothing resent
        nack = server.log.requests[-1]
        assert (nack.kind, nack.version, nack.error_detail) == ("nack", e3.system_version_info, "bad endpoints")

        # subscription changes are honoured even with a stale nonce; unsubscribed names are forgotten
        await s.send(d.DeltaDiscoveryRequest(type_url=ENDPOINT, response_nonce=e1.nonce,
                                             resource_names_unsubscribe=["ghost"], resource_names_subscribe=["new"]))
        e4 = await s.recv()
        assert (names(e4), list(e4.removed_resources)) == ([], ["new"])
        server.remove("eds", "ghost")
        await s.quiet()
        a_version = server.snapshot.resources("eds")["A"].version

        # reconnect: the client declares what it has; only what differs is sent
        r = Raw(server, stub.DeltaAggregatedResources())
        await r.send(d.DeltaDiscoveryRequest(node=NODE, type_url=CLUSTER, resource_names_subscribe=["*"],
                                             initial_resource_versions={"A": versions["A"], "B": versions["B"]}))
        c3 = await r.recv()
        assert (names(c3), list(c3.removed_resources)) == ([], ["B"])
        await r.send(d.DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=["A"],
                                             initial_resource_versions={"A": a_version}))
        await r.quiet()  # nothing changed
        assert [x.kind for x in server.log.requests if x.stream == 2] == ["request", "request"]

        legacy = Raw(server, stub.DeltaAggregatedResources())  # first CDS request with no names: legacy wildcard
        await legacy.send(d.DeltaDiscoveryRequest(node=NODE, type_url=CLUSTER))
        assert names(await legacy.recv()) == ["A"]
    run(scenario)


def test_one_transaction_is_pushed_make_before_break() -> None:
    async def scenario(server: AdsServer, stub: Any) -> None:
        def route_to(cluster: str) -> Any:
            return istio.route_config("r", istio.virtual_host("vh", ["*"], [istio.route(cluster=cluster)]))
        server.upsert(istio.eds_cluster("old"), istio.load_assignment("old"), route_to("old"))
        s = Raw(server, stub.StreamAggregatedResources())
        for url, wanted in ((CLUSTER, ["*"]), (ENDPOINT, ["old", "new"]), (ROUTE, ["r"])):
            await s.send(d.DiscoveryRequest(node=NODE, type_url=url, resource_names=wanted))
            resp = await s.recv()
            await s.send(d.DiscoveryRequest(type_url=url, version_info=resp.version_info, response_nonce=resp.nonce,
                                            resource_names=wanted))
        mark = len(server.log.responses)
        server.replace("cds", [istio.eds_cluster("old"), istio.eds_cluster("spare")])  # CDS alone: one step
        server.apply(replace={"cds": [istio.eds_cluster("new")]},
                     upsert=[istio.load_assignment("new"), route_to("new")])
        order = [(r.type_url.rsplit(".", 1)[-1], r.resource_names) for r in server.log.responses[mark:]]
        assert order == [("Cluster", ("old", "spare")),
                         ("Cluster", ("new", "old", "spare")), ("ClusterLoadAssignment", ("new", "old")),
                         ("RouteConfiguration", ("r",)), ("Cluster", ("new",))], order
    run(scenario)
