"""NacosSource against the test Nacos server and the official nacos-sdk-python 3.x client (no mocks)."""

from __future__ import annotations

import asyncio
import time

import pytest

from discovery.model import ClusterModel
from tests.integration.nacos.conftest import v2_config, wait_until

pytest.importorskip("v2.nacos", reason="nacos-sdk-python>=3,<4 is not installed")
from v2.nacos import (DeregisterInstanceParam, GetServiceParam, NacosNamingService,  # noqa: E402
                      RegisterInstanceParam)
from discovery.nacos import NacosSource  # noqa: E402


def addrs(model, cluster):
    c = model.cluster(cluster)
    return sorted(c.endpoints) if c else []


def source(server, tmp, **kw):
    kw.setdefault("naming", "plain")
    return NacosSource("nacos", server.server_addr, snapshot_path=str(tmp / "snap.json"), cache_dir=str(tmp / "c"),
                       sync_timeout=kw.pop("sync_timeout", 3.0), list_interval=0.5, snapshot_delay=0.1, **kw)


def test_plain_providers_appear_leave_and_survive_a_restart(nacos_server, tmp_path):
    async def scenario():
        other = await NacosNamingService.create_naming_service(v2_config(nacos_server.server_addr, tmp_path / "o"))
        src = source(nacos_server, tmp_path, services=["orders"])
        model = ClusterModel()
        try:
            await other.register_instance(RegisterInstanceParam(service_name="orders", ip="127.0.0.1", port=7001,
                                                                metadata={"zone": "z1"}))
            await src.start(model)
            assert await src.wait_synced(5)
            await wait_until(lambda: addrs(model, "orders") == ["127.0.0.1:7001"], 1, "first provider")
            assert model.cluster("orders").endpoints["127.0.0.1:7001"].metadata["zone"] == "z1"
            await other.register_instance(RegisterInstanceParam(service_name="orders", ip="127.0.0.1", port=7002))
            await wait_until(lambda: len(addrs(model, "orders")) == 2, 1, "second provider")
            await other.deregister_instance(DeregisterInstanceParam(service_name="orders", ip="127.0.0.1", port=7002))
            await wait_until(lambda: addrs(model, "orders") == ["127.0.0.1:7001"], 1, "provider leaving")

            reg = await src.publish("orders", "127.0.0.1:7100", parameters={"role": "meshd"})
            await wait_until(lambda: ("127.0.0.1", 7100) in nacos_server.hosts("orders"), 2, "meshd's registration")
            seen = await other.get_service(GetServiceParam(service_name="orders"))
            assert any(h.port == 7100 and h.metadata.get("role") == "meshd" for h in seen.hosts)

            nacos_server.restart()                 # empty server; the clients reconnect
            started = time.monotonic()
            await wait_until(lambda: nacos_server.subscribers().get("public/DEFAULT_GROUP@@orders"), 3,
                             "meshd's resubscription (redo workaround)")
            await wait_until(lambda: ("127.0.0.1", 7100) in nacos_server.hosts("orders"), 3, "meshd re-registered")
            assert time.monotonic() - started < 3.5 and src.resyncs >= 1
            # meshd's own instance is back before the other client's 30 s redo: the server's truth is not empty
            await wait_until(lambda: "127.0.0.1:7100" in addrs(model, "orders"), 2, "own instance after restart")
            await other.register_instance(RegisterInstanceParam(service_name="orders", ip="127.0.0.1", port=7003))
            await wait_until(lambda: "127.0.0.1:7003" in addrs(model, "orders"), 2, "converged after restart")

            await src.unpublish(reg)
            await wait_until(lambda: ("127.0.0.1", 7100) not in nacos_server.hosts("orders"), 2, "unpublish")
        finally:
            await src.stop()
            await other.shutdown()
    asyncio.run(scenario())


def test_dubbo_versions_garbage_and_snapshot_cold_start(nacos_server, tmp_path):
    async def scenario():
        for version, port in (("1.0.0", 7201), ("2.0.0", 7202)):
            nacos_server.register(f"providers:org.x.Svc:{version}:", "127.0.0.1", port,
                                  metadata={"side": "provider", "weight": "50"})
        src = source(nacos_server, tmp_path, services=["org.x.Svc"], naming="dubbo")
        model = ClusterModel()
        await src.start(model)
        try:
            await wait_until(lambda: len(addrs(model, "org.x.Svc")) == 2, 2, "both versions")
            eps = model.cluster("org.x.Svc").endpoints
            assert {(e.version, e.weight) for e in eps.values()} == {("1.0.0", 50), ("2.0.0", 50)}
            for kind in ("bad-json", "no-port"):
                nacos_server.push_garbage(kind)
            await asyncio.sleep(0.3)
            assert len(addrs(model, "org.x.Svc")) == 2
            await wait_until(lambda: src.snapshot.written_ms is not None, 2, "snapshot written")
        finally:
            await src.stop()
        nacos_server.stop()
        cold = source(nacos_server, tmp_path, services=["org.x.Svc"], naming="dubbo", sync_timeout=1.0)
        model2 = ClusterModel()
        await cold.start(model2)
        try:
            assert await cold.wait_synced(4)
            assert len(addrs(model2, "org.x.Svc")) == 2 and model2.is_stale("nacos")
        finally:
            await cold.stop()
    asyncio.run(scenario())
