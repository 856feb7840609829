"""The test Nacos server against the official nacos-sdk-python 3.x async gRPC client (``v2.nacos``).

Every test runs the client on its own event loop (``asyncio.run``) while the server runs in-process on its
loop thread, both on 127.0.0.1. Waits are on callbacks or server state, each with a deadline.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.integration.nacos.conftest import Recorder, v2_config, wait_until

pytest.importorskip("v2.nacos", reason="nacos-sdk-python>=3,<4 is not installed (pip install the test extras)")
from v2.nacos import (ConfigParam, DeregisterInstanceParam, ListServiceParam,  # noqa: E402
                      NacosConfigService, NacosNamingService, RegisterInstanceParam, SubscribeServiceParam)


def hosts(instances) -> list[tuple[str, int]]:
    return sorted((i.ip, i.port) for i in instances)


async def naming(server, tmp: Path, name: str, **kw) -> NacosNamingService:
    return await NacosNamingService.create_naming_service(v2_config(server.server_addr, tmp / name, **kw))


def test_push_of_another_clients_registration_deregistration_and_disconnect(nacos_server, tmp_path):
    """A subscriber is pushed B's register, deregister, and the drop of B's instance when B's connection
    closes; hosts carry float weight, cluster, metadata and instanceId; pushes are acked in lastRefTime order."""
    async def scenario() -> None:
        a, b = await naming(nacos_server, tmp_path, "a"), await naming(nacos_server, tmp_path, "b")
        rec = Recorder()

        async def on_change(instances) -> None:
            rec.add(list(instances))
        try:
            await a.register_instance(RegisterInstanceParam(service_name="orders", ip="127.0.0.1", port=7001,
                                                            cluster_name="c1", metadata={"version": "1.0"}))
            await a.subscribe(SubscribeServiceParam(service_name="orders", subscribe_callback=on_change))
            await rec.wait_for(lambda v: hosts(v) == [("127.0.0.1", 7001)], 5, "A's own instance")

            await b.register_instance(RegisterInstanceParam(service_name="orders", ip="127.0.0.1", port=7002,
                                                            weight=2.5, metadata={"zone": "z1"}))
            both = await rec.wait_for(lambda v: len(v) == 2, 5, "push of B's registration")
            other = next(i for i in both if i.port == 7002)
            assert (other.weight, other.clusterName, other.metadata) == (2.5, "DEFAULT", {"zone": "z1"})
            assert other.instanceId == "127.0.0.1#7002#DEFAULT#DEFAULT_GROUP@@orders"
            assert {i.clusterName for i in both} == {"c1", "DEFAULT"}

            await b.deregister_instance(DeregisterInstanceParam(service_name="orders", ip="127.0.0.1", port=7002))
            await rec.wait_for(lambda v: hosts(v) == [("127.0.0.1", 7001)], 5, "push of B's deregistration")

            await b.register_instance(RegisterInstanceParam(service_name="orders", ip="127.0.0.1", port=7003))
            await rec.wait_for(lambda v: len(v) == 2, 5, "push of B's second registration")
            await b.shutdown()
            b = None
            await rec.wait_for(lambda v: hosts(v) == [("127.0.0.1", 7001)], 5, "push after B's connection closed")
            assert nacos_server.hosts("orders") == [("127.0.0.1", 7001)]
        finally:
            await a.shutdown()
            if b is not None:
                await b.shutdown()

    asyncio.run(scenario())
    pushes = [p for p in nacos_server.pushes if p.type == "NotifySubscriberRequest"]
    assert len(pushes) >= 4 and all(p.acked for p in pushes), [(p.type, p.acked) for p in pushes]
    stamps = [p.body["serviceInfo"]["lastRefTime"] for p in pushes]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_config_publish_read_listen_and_remove(nacos_server, tmp_path):
    """Missing config reads as "" (errorCode 300); publish/read round-trips; a listener gets another client's
    publish (via ConfigChangeNotifyRequest) and the removal."""
    async def scenario() -> None:
        c1 = await NacosConfigService.create_config_service(v2_config(nacos_server.server_addr, tmp_path / "c1"))
        c2 = await NacosConfigService.create_config_service(v2_config(nacos_server.server_addr, tmp_path / "c2"))
        rec = Recorder()

        async def listener(tenant, group, data_id, content) -> None:
            rec.add((group, data_id, content))
        try:
            assert await c1.get_config(ConfigParam(data_id="app.yaml", group="G")) == ""
            assert await c1.publish_config(ConfigParam(data_id="app.yaml", group="G", content="k: 1"))
            assert await c1.get_config(ConfigParam(data_id="app.yaml", group="G")) == "k: 1"
            await c1.add_listener("app.yaml", "G", listener)
            await wait_until(lambda: nacos_server.listeners().get("public/G/app.yaml"), 10, "c1's batch listen")

            assert await c2.publish_config(ConfigParam(data_id="app.yaml", group="G", content="k: 2"))
            assert await rec.wait_for(lambda v: v[2] == "k: 2", 10, "listener call") == ("G", "app.yaml", "k: 2")
            assert nacos_server.configs()["public/G/app.yaml"]["content"] == "k: 2"

            assert await c2.remove_config(ConfigParam(data_id="app.yaml", group="G"))
            await rec.wait_for(lambda v: v[2] == "", 10, "listener call for the removal")
            assert "public/G/app.yaml" not in nacos_server.configs()
        finally:
            await c1.shutdown()
            await c2.shutdown()

    asyncio.run(scenario())
    notifies = [p for p in nacos_server.pushes if p.type == "ConfigChangeNotifyRequest"]
    assert notifies and all(p.acked for p in notifies)
    queries = nacos_server.requests("ConfigQueryRequest")
    assert queries[0]["body"]["dataId"] == "app.yaml"


def test_namespaces_groups_clusters_and_service_list(nacos_server, tmp_path):
    """Instances live in (namespace, group, service, cluster); other namespaces do not see them."""
    async def scenario() -> None:
        ns_a = await naming(nacos_server, tmp_path, "a", namespace="ns-a")
        public = await naming(nacos_server, tmp_path, "p")
        try:
            await ns_a.register_instance(RegisterInstanceParam(service_name="pay", group_name="G1", ip="127.0.0.1",
                                                               port=7101, cluster_name="east", weight=0.5,
                                                               enabled=False))
            listed = await ns_a.list_services(ListServiceParam(namespace_id="ns-a", group_name="G1"))
            assert (listed.count, listed.services) == (1, ["pay"])
            inst = nacos_server.instances()["ns-a/G1@@pay"][0]
            assert (inst["clusterName"], inst["weight"], inst["enabled"]) == ("east", 0.5, False)
            assert inst["instanceId"] == "127.0.0.1#7101#east#G1@@pay"
            from v2.nacos import GetServiceParam
            other = await public.get_service(GetServiceParam(service_name="pay", group_name="G1"))
            assert other.hosts == []
        finally:
            await ns_a.shutdown()
            await public.shutdown()

    asyncio.run(scenario())


def test_garbage_pushes_are_not_acked_and_the_client_survives(nacos_server_factory, tmp_path):
    """A push whose JSON does not parse, a host without a port and an unknown push type are dropped by the
    client (no ack); the next genuine push still arrives and is acked."""
    server = nacos_server_factory(push_timeout=1.0)

    async def scenario() -> None:
        a = await naming(server, tmp_path, "a")
        rec = Recorder()

        async def on_change(instances) -> None:
            rec.add(list(instances))
        try:
            server.register("inventory", "127.0.0.1", 7201)
            await a.subscribe(SubscribeServiceParam(service_name="inventory", subscribe_callback=on_change))
            await rec.wait_for(lambda v: len(v) == 1, 5, "initial instances")
            records = [r for kind in ("bad-json", "no-port", "unknown-type") for r in server.push_garbage(kind)]
            assert len(records) == 3
            await wait_until(lambda: all(r.acked is not None for r in records), 5, "garbage push outcomes")
            assert [r.acked for r in records] == [False, False, False]
            server.register("inventory", "127.0.0.1", 7202)
            await rec.wait_for(lambda v: len(v) == 2, 5, "genuine push after garbage")
        finally:
            await a.shutdown()

    asyncio.run(scenario())
    assert server.pushes[-1].acked in (True, None)


def test_server_restart_client_reconnects_and_redoes(nacos_server, tmp_path):
    """After a restart (empty server) the client reconnects at once, the config client re-listens at once,
    and the naming client re-registers and re-subscribes on its 30 s redo cycle (nacos-sdk-python 3.2)."""
    async def scenario() -> float:
        a = await naming(nacos_server, tmp_path, "a")
        cfg = await NacosConfigService.create_config_service(v2_config(nacos_server.server_addr, tmp_path / "c"))
        rec = Recorder()

        async def listener(tenant, group, data_id, content) -> None:
            rec.add(content)
        try:
            await a.register_instance(RegisterInstanceParam(service_name="cart", ip="127.0.0.1", port=7301))
            async def ignore(_instances) -> None:
                pass
            await a.subscribe(SubscribeServiceParam(service_name="cart", subscribe_callback=ignore))
            await cfg.add_listener("flags", "G", listener)
            await wait_until(lambda: nacos_server.listeners().get("public/G/flags"), 10, "batch listen")
            before = set(nacos_server.connections())

            nacos_server.restart()
            assert nacos_server.instances() == {}
            await wait_until(lambda: len(set(nacos_server.connections()) - before) >= 2, 10, "reconnections")
            await wait_until(lambda: nacos_server.listeners().get("public/G/flags"), 10, "re-listen after restart")
            nacos_server.publish_config("flags", "G", "on")
            await rec.wait_for(lambda v: v == "on", 10, "config push after restart")
            started = time.monotonic()
            await wait_until(lambda: nacos_server.hosts("cart") == [("127.0.0.1", 7301)], 40, "naming redo")
            await wait_until(lambda: nacos_server.subscribers().get("public/DEFAULT_GROUP@@cart"), 5, "resubscribe")
            return time.monotonic() - started
        finally:
            await a.shutdown()
            await cfg.shutdown()

    redo_delay = asyncio.run(scenario())
    assert redo_delay < 35, redo_delay


def test_go_away_keeps_state_and_clients_come_back(nacos_server, tmp_path):
    """While the server is away its ports are closed and connections cut (ephemeral gRPC instances go);
    persistent state stays, and a config changed meanwhile reaches the listener after the reconnect."""
    async def scenario() -> None:
        cfg = await NacosConfigService.create_config_service(v2_config(nacos_server.server_addr, tmp_path / "c"))
        rec = Recorder()

        async def listener(tenant, group, data_id, content) -> None:
            rec.add(content)
        try:
            nacos_server.register("static", "127.0.0.1", 7401)
            nacos_server.publish_config("mode", "G", "a")
            await cfg.add_listener("mode", "G", listener)
            await wait_until(lambda: nacos_server.listeners().get("public/G/mode"), 10, "batch listen")
            nacos_server.go_away(1.5)
            assert nacos_server.connections() == {} and not nacos_server.running
            nacos_server.call(lambda s: s.publish_config("mode", "G", "b"))
            nacos_server.wait_back(10)
            assert nacos_server.hosts("static") == [("127.0.0.1", 7401)]
            await rec.wait_for(lambda v: v == "b", 15, "change made while the server was away")
        finally:
            await cfg.shutdown()

    asyncio.run(scenario())
