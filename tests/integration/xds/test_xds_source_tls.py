"""The xDS source over TLS and mTLS (``tls: {ca, cert, key}``) against the ADS test server on 127.0.0.1, with
throw-away certificates (trustme): the control plane's certificate is verified, the client certificate is
presented, and a source that does not trust the server's CA gets nothing."""

from __future__ import annotations

import asyncio
import time

import grpc
import trustme

from discovery.model import ClusterModel
from discovery.xds.source import XdsSource
from integration.xds import istio
from integration.xds.server import AdsServer

CLUSTER = istio.cluster_name("outbound", 9080, "", "reviews.default.svc.cluster.local")


def server_credentials(ca: trustme.CA) -> grpc.ServerCredentials:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    return grpc.ssl_server_credentials([(cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes())],
                                       root_certificates=ca.cert_pem.bytes(), require_client_auth=True)


async def run(server: AdsServer, tls: tuple, wait: float) -> ClusterModel:
    model = ClusterModel()
    source = XdsSource("istio", server.address, node_id=istio.sidecar_node_id(), tls=tls, initial_fetch_timeout=2.0)
    await source.start(model)
    try:
        deadline = time.monotonic() + wait
        while model.cluster(CLUSTER) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return model
    finally:
        await source.stop()


def test_mtls_to_the_control_plane():
    async def scenario():
        ca = trustme.CA()
        server = await AdsServer(credentials=server_credentials(ca)).start()
        server.upsert(istio.eds_cluster(CLUSTER))
        client = ca.issue_cert("meshd.default.svc")
        try:
            model = await run(server, (ca.cert_pem.bytes(), client.private_key_pem.bytes(),
                                       client.cert_chain_pems[0].bytes()), wait=10)
            assert model.cluster(CLUSTER) is not None, "clusters arrive over mTLS"
            other = trustme.CA()
            model = await run(server, (other.cert_pem.bytes(), client.private_key_pem.bytes(),
                                       client.cert_chain_pems[0].bytes()), wait=1.5)
            assert model.cluster(CLUSTER) is None, "a server whose CA is not trusted is not talked to"
            model = await run(server, (ca.cert_pem.bytes(), None, None), wait=1.5)
            assert model.cluster(CLUSTER) is None, "without a client certificate the server refuses the stream"
        finally:
            await server.stop()
    asyncio.run(scenario())
