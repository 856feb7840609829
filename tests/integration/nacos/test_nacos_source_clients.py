"""Providers registered by the two other official clients — the npm ``nacos`` client (v1 HTTP, beats) and
nacos-sdk-python 2.0 (the v1 ``nacos`` module, own virtualenv) — reach meshd's Nacos source (``services:
all``: it finds their services by listing) within a second, with their metadata, and leave within a second."""

from __future__ import annotations

import asyncio
import time

from discovery.model import ClusterModel
from discovery.nacos import NacosSource
from tests.integration.nacos.test_nacos_npm_client import node_nacos  # noqa: F401  (fixture)
from tests.integration.nacos.test_nacos_v1_python_client import v1_client, v1_python  # noqa: F401  (fixtures)


def endpoints(model: ClusterModel, cluster: str) -> dict:
    c = model.cluster(cluster)
    return dict(c.endpoints) if c else {}


async def until(pred, what: str, timeout: float) -> float:
    started = time.monotonic()
    while not pred():
        assert time.monotonic() - started < timeout, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def beat_after_delete(nacos_server) -> bool:
    types = [r["type"] for r in nacos_server.requests()]
    deletes = [i for i, t in enumerate(types) if t == "DELETE /nacos/v1/ns/instance"]
    assert deletes, "the client sent no DELETE"
    return "PUT /nacos/v1/ns/instance/beat" in types[deletes[-1] + 1:]


async def watched(nacos_server, tmp_path, register, deregister, service: str) -> None:
    # a second instance keeps the service from emptying: a push with no hosts is ignored, as the clients do
    nacos_server.register(service, "127.0.0.1", 7699)
    source = NacosSource("nacos", nacos_server.server_addr, services="all", naming="plain", list_interval=0.2,
                         snapshot_path=str(tmp_path / "snap.json"), cache_dir=str(tmp_path / "c"), sync_timeout=3.0)
    model = ClusterModel()
    await source.start(model)
    try:
        assert await source.wait_synced(5)
        await asyncio.get_running_loop().run_in_executor(None, register)
        await until(lambda: "127.0.0.1:7601" in endpoints(model, service), "the provider in meshd", 1.5)
        ep = endpoints(model, service)["127.0.0.1:7601"]
        assert ep.metadata["lang"] == "other-client" and ep.weight == 150, (ep.metadata, ep.weight)
        await asyncio.get_running_loop().run_in_executor(None, deregister)
        if beat_after_delete(nacos_server):
            # the v1 Python client sends its DELETE before it stops its beat task, and a beat for an unknown
            # instance re-registers it (the 2.x server does that too): the client's race, so delete once more
            await asyncio.get_running_loop().run_in_executor(None, deregister)
        await until(lambda: "127.0.0.1:7601" not in endpoints(model, service), "the provider gone", 1.5)
    finally:
        await source.stop()


def test_a_provider_registered_by_the_npm_client_comes_and_goes(nacos_server, node_nacos, tmp_path):
    asyncio.run(watched(
        nacos_server, tmp_path,
        lambda: node_nacos.do("register", service="shop", group="DEFAULT_GROUP", ip="127.0.0.1", port=7601,
                              weight=1.5, metadata={"lang": "other-client"}),
        lambda: node_nacos.do("deregister", service="shop", group="DEFAULT_GROUP", ip="127.0.0.1", port=7601),
        "shop"))


def test_a_provider_registered_by_the_v1_python_client_comes_and_goes(nacos_server, v1_client, tmp_path):
    asyncio.run(watched(
        nacos_server, tmp_path,
        lambda: v1_client.do("register", service="inv", ip="127.0.0.1", port=7601, weight=1.5,
                             metadata={"lang": "other-client"}, heartbeat=1),
        lambda: v1_client.do("deregister", service="inv", ip="127.0.0.1", port=7601),
        "inv"))
