"""The demo's control plane: a minimal ADS server (SotW) with one Istio-style EDS cluster, its endpoints read
from a YAML file it watches, so that the demo shows meshd as an xDS data plane with nothing installed.

It answers each stream's first request of a type with what it has, ACKs with nothing, NACKs with a log
line, and pushes a new ClusterLoadAssignment (a new version) to every stream when the file changes. It is
a demo, not a control plane: one cluster, no Delta, no listeners or routes (the protocol-complete test
control plane is ``integration.xds``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, AsyncIterator

import yaml

log = logging.getLogger("meshd.demo")

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


class DemoControlPlane:
    """``await DemoControlPlane(name, path).start()``; ``address`` is where meshd's xds source connects."""

    def __init__(self, cluster: str, endpoints_file: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cluster, self.path, self.host, self.port = cluster, endpoints_file, host, port
        self.version = 0
        self._stamp: tuple | None = None
        self._addresses: list[str] = []
        self._streams: list[asyncio.Queue] = []
        self._server: Any = None
        self._poller: asyncio.Task | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> "DemoControlPlane":
        import grpc
        from envoy.service.discovery.v3 import ads_pb2_grpc

        plane = self

        class Servicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
            async def StreamAggregatedResources(self, requests, context):  # noqa: N802 - the gRPC method name
                async for response in plane._stream(requests):
                    yield response

        self._server = grpc.aio.server()
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(Servicer(), self._server)
        self.port = self._server.add_insecure_port(f"{self.host}:{self.port}")
        await self._server.start()
        self._reload()
        self._poller = asyncio.get_running_loop().create_task(self._poll())
        return self

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if self._server is not None:
            await self._server.stop(0)

    # -- the endpoints file ------------------------------------------------------------------------------
    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self._reload()

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            data = yaml.safe_load(self.path.read_text()) or {}
            addresses = [str(a) for a in data.get("endpoints", [])]
        except (OSError, yaml.YAMLError, AttributeError) as exc:
            log.warning("demo control plane: %s: %s (keeping the endpoints it had)", self.path, exc)
            return
        if addresses != self._addresses or not self.version:
            self._addresses = addresses
            self.version += 1
            log.info("demo control plane: version %d, endpoints %s", self.version, addresses)
            for queue in self._streams:
                queue.put_nowait(EDS)

    # -- resources ----------------------------------------------------------------------------------------
    def _resources(self, type_url: str) -> list[Any]:
        from envoy.config.cluster.v3 import cluster_pb2
        from envoy.config.core.v3 import address_pb2, config_source_pb2
        from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec, endpoint_pb2
        from google.protobuf import struct_pb2

        if type_url == CDS:
            ads = config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource())
            return [cluster_pb2.Cluster(name=self.cluster, type=cluster_pb2.Cluster.EDS,
                                        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
                                            eds_config=ads, service_name=self.cluster))]
        endpoints = []
        for address in self._addresses:
            host, _, port = address.rpartition(":")
            ep = ec.LbEndpoint(endpoint=ec.Endpoint(address=address_pb2.Address(
                socket_address=address_pb2.SocketAddress(address=host, port_value=int(port)))))
            labels = struct_pb2.Struct()
            labels.update({"version": "1.0.0"})      # Dubbo-style metadata: the call's version selects it
            ep.metadata.filter_metadata["envoy.lb"].CopyFrom(labels)
            endpoints.append(ep)
        locality = ec.LocalityLbEndpoints(lb_endpoints=endpoints)
        locality.load_balancing_weight.value = max(len(endpoints), 1)
        return [endpoint_pb2.ClusterLoadAssignment(cluster_name=self.cluster, endpoints=[locality])]

    def _response(self, type_url: str, nonce: int) -> Any:
        from envoy.service.discovery.v3 import discovery_pb2
        from google.protobuf import any_pb2

        packed = []
        for message in self._resources(type_url):
            any_ = any_pb2.Any()
            any_.Pack(message)
            packed.append(any_)
        return discovery_pb2.DiscoveryResponse(version_info=str(self.version), type_url=type_url, resources=packed,
                                               nonce=str(nonce))

    async def _stream(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        queue: asyncio.Queue = asyncio.Queue()
        self._streams.append(queue)
        subscribed: set[str] = set()

        async def read() -> None:
            async for request in requests:
                if request.HasField("error_detail"):
                    log.warning("demo control plane: NACK of %s: %s", request.type_url, request.error_detail.message)
                elif request.version_info != str(self.version) or request.type_url not in subscribed:
                    subscribed.add(request.type_url)
                    queue.put_nowait(request.type_url)
            queue.put_nowait(None)

        reader = asyncio.ensure_future(read())
        nonce = 0
        try:
            while (type_url := await queue.get()) is not None:
                if type_url in subscribed and type_url in (CDS, EDS):
                    nonce += 1
                    yield self._response(type_url, nonce)
        finally:
            reader.cancel()
            self._streams.remove(queue)
