"""SofaRegistrySource against the test session server (integration.sofaregistry), on meshd's own codecs."""

from __future__ import annotations

import asyncio

from discovery.model import ClusterModel
from integration.sofaregistry import messages as m
from meshd.codec import bolt
from meshd.codec.hessian2 import JavaObject
from tests.integration.sofaregistry.conftest import DATA_ID, IFACE, addrs, source, wait_until


def test_subscribes_as_the_java_client_and_follows_pushes(sofaregistry_server, tmp_path):
    server = sofaregistry_server
    server.add_publisher(DATA_ID, ["127.0.0.1:12201?_WEIGHT=50&p=1&v=4.0&_SERIALIZETYPE=hessian2&app_name=calc"],
                         zone="zone-a")

    async def scenario():
        model = ClusterModel()
        src = source(server.address, tmp_path, zone="zone-a")
        await src.start(model)
        try:
            assert await src.wait_synced(3)
            assert addrs(model) == ["127.0.0.1:12201"]
            ep = model.cluster(IFACE).endpoints["127.0.0.1:12201"]
            assert (ep.weight, ep.version, ep.group) == (50, "1.0", "")
            assert ep.metadata["protocol"] == "bolt" and ep.metadata["serialization"] == "hessian2"
            assert ep.metadata["app_name"] == "calc" and ep.metadata["interface"] == IFACE
            (register,) = [r for r in server.registers() if r["class"] == m.SUBSCRIBER_REGISTER]
            assert register["dataId"] == DATA_ID and register["group"] == "SOFA" and register["scope"] == "zone"
            assert register["instanceId"] == "DEFAULT_INSTANCE_ID" and register["zone"] == "zone-a"
            assert register["appName"] == "meshd-test" and register["eventType"] == "REGISTER"
            assert register["version"] == 1 and register["registId"] and register["acceptMulti"] is False
            assert register["ip"] == "127.0.0.1" and register["timestamp"] > 0
            # every push was answered Result{success=true}
            answers = server.push_results()
            assert answers and all(isinstance(a, JavaObject) and a.class_name == m.RESULT and a["success"]
                                   for _, _, a in answers)

            second = server.add_publisher(DATA_ID, ["127.0.0.1:12202?weight=70"], zone="zone-a")
            await wait_until(lambda: addrs(model) == ["127.0.0.1:12201", "127.0.0.1:12202"], 1, "second provider")
            assert model.cluster(IFACE).endpoints["127.0.0.1:12202"].weight == 70
            server.remove_publisher(DATA_ID, second)
            await wait_until(lambda: addrs(model) == ["127.0.0.1:12201"], 1, "provider removed")

            # an old version is answered (success) and ignored
            applied = src.counters["applied"]
            answers = await asyncio.to_thread(server.push_old, DATA_ID, {"zone-a": ["127.0.0.9:1?p=1"]})
            assert answers and all(a["success"] for a in answers)
            assert src.counters["old_versions"] == 1 and src.counters["applied"] == applied
            assert addrs(model) == ["127.0.0.1:12201"]
        finally:
            await src.stop()
    asyncio.run(scenario())


def test_zones_local_first_then_the_other_zone(sofaregistry_server, tmp_path):
    server = sofaregistry_server
    local = server.add_publisher(DATA_ID, ["127.0.0.1:12301?p=1"], zone="zone-a")
    server.add_publisher(DATA_ID, ["127.0.0.2:12302?p=1"], zone="zone-b")

    async def scenario():
        model = ClusterModel()
        zone_scope = source(server.address, tmp_path / "z", zone="zone-a", scope="zone")
        wide = source(server.address, tmp_path / "w", zone="zone-a", scope="dataCenter")
        wide_model = ClusterModel()
        await zone_scope.start(model)
        await wide.start(wide_model)
        try:
            assert await zone_scope.wait_synced(3) and await wide.wait_synced(3)
            assert addrs(model) == ["127.0.0.1:12301"]                  # scope zone: the server sends one zone
            eps = wide_model.cluster(IFACE).endpoints
            assert sorted(eps) == ["127.0.0.1:12301", "127.0.0.2:12302"]
            assert (eps["127.0.0.1:12301"].zone, eps["127.0.0.1:12301"].priority) == ("zone-a", 0)
            assert (eps["127.0.0.2:12302"].zone, eps["127.0.0.2:12302"].priority) == ("zone-b", 1)
            server.remove_publisher(DATA_ID, local)
            await wait_until(lambda: addrs(wide_model) == ["127.0.0.2:12302"], 1, "zone-b alone")
            await wait_until(lambda: addrs(model) == [], 1, "zone scope empty")
        finally:
            await zone_scope.stop()
            await wide.stop()
    asyncio.run(scenario())


def test_publish_unpublish_and_restart_restores_everything(sofaregistry_server, tmp_path):
    server = sofaregistry_server

    async def scenario():
        model = ClusterModel()
        src = source(server.address, tmp_path, zone="zone-a")
        await src.start(model)
        try:
            assert await src.wait_synced(3)
            reg = await src.publish(IFACE, "127.0.0.1:12400", application="calc", timeout=3000,
                                    parameters={"zone": "zone-a"})
            (pub,) = server.publishers(DATA_ID)
            text = pub.data[0]
            assert text.startswith("127.0.0.1:12400?rpcVer=") and "&p=1&v=4.0&_SERIALIZETYPE=hessian2" in text
            assert "&_TIMEOUT=3000&app_name=calc" in text and "&startTime=" in text and pub.zone == "zone-a"
            await wait_until(lambda: addrs(model) == ["127.0.0.1:12400"], 1, "own provider pushed back")
            assert src.registered(reg)

            server.restart()                  # every connection and register gone; the client re-registers
            await wait_until(lambda: len(server.publishers(DATA_ID)) == 1 and server.subscribers(), 3,
                             "publisher and subscriber restored")
            assert src.connections == 2
            await wait_until(lambda: not model.is_stale("sofareg"), 2, "fresh again")
            assert addrs(model) == ["127.0.0.1:12400"]

            await src.unpublish(reg)
            await wait_until(lambda: not server.publishers(DATA_ID), 1, "unpublished at the server")
            await wait_until(lambda: addrs(model) == [], 1, "gone from the model")
        finally:
            await src.stop()
    asyncio.run(scenario())


def test_failover_to_the_next_server_keeps_endpoints(sofaregistry_server_factory, tmp_path):
    first = sofaregistry_server_factory()
    second = sofaregistry_server_factory(peer=first)
    first.add_publisher(DATA_ID, ["127.0.0.1:12501?p=1"])

    async def scenario():
        model = ClusterModel()
        src = source(f"{first.address},{second.address}", tmp_path)
        await src.start(model)
        try:
            assert await src.wait_synced(3) and src.server == first.address
            await asyncio.to_thread(first.stop)
            await wait_until(lambda: src.server == second.address and src.connection == "connected", 3,
                             "failover to the second server")
            assert addrs(model) == ["127.0.0.1:12501"]                   # kept through the switch
            await wait_until(lambda: second.subscribers(), 2, "subscriber on the second server")
            await wait_until(lambda: not model.is_stale("sofareg"), 2, "fresh on the second server")
        finally:
            await src.stop()
    asyncio.run(scenario())


def test_garbage_from_the_server_is_ignored_and_nothing_known_is_lost(sofaregistry_server, tmp_path):
    server = sofaregistry_server
    server.add_publisher(DATA_ID, ["127.0.0.1:12601?p=1"])

    async def scenario():
        model = ClusterModel()
        src = source(server.address, tmp_path)
        await src.start(model)
        try:
            assert await src.wait_synced(3)
            # an unknown class: answered NO_PROCESSOR (as sofa-bolt does), counted
            (answer,) = await asyncio.to_thread(server.send_object, JavaObject("com.example.Unknown", {"x": 1}))
            assert isinstance(answer, bolt.BoltResponse) and answer.status == 0x0006
            # a push for a register id never subscribed, and one whose fields are garbage
            stray = m.received_data("com.other.Svc:1.0@DEFAULT", "SOFA", "DEFAULT_INSTANCE_ID", "dc", "zone",
                                    ["no-such-register"], {"DEFAULT_ZONE": ["127.0.0.9:1"]}, 10 ** 18, "DEFAULT_ZONE")
            (answer,) = await asyncio.to_thread(server.send_object, stray)
            assert answer.status == 0 and src.counters["unknown_subscriber"] == 1
            broken = JavaObject(m.RECEIVED_DATA, {"dataId": DATA_ID, "version": "not a long"})
            (answer,) = await asyncio.to_thread(server.send_object, broken)
            assert answer.status == 0 and src.counters["garbage"] == 2
            assert "ReceivedData.version" in src.last_error
            assert addrs(model) == ["127.0.0.1:12601"] and src.connection == "connected"
            # a truncated frame whose rest is garbage (its content cannot be read: that frame is lost), then bytes
            # that cannot be framed: the connection goes, the endpoints stay
            frame = bolt.encode_object(99, stray, request=True)
            server.send_raw(frame[:30])
            await asyncio.sleep(0.1)
            assert src.connection == "connected" and src.counters["garbage"] == 2      # waits for the rest
            server.send_raw(b"\xff" * (len(frame) + 64))
            await wait_until(lambda: src.connections == 2 and src.connection == "connected", 3, "reconnected")
            assert src.counters["garbage"] == 3
            assert addrs(model) == ["127.0.0.1:12601"]
            await wait_until(lambda: not model.is_stale("sofareg"), 2, "fresh after reconnecting")
        finally:
            await src.stop()
    asyncio.run(scenario())


def test_cold_start_from_the_snapshot(sofaregistry_server, tmp_path):
    server = sofaregistry_server
    server.add_publisher(DATA_ID, ["127.0.0.1:12701?p=1"])

    async def scenario():
        src = source(server.address, tmp_path)
        await src.start(ClusterModel())
        assert await src.wait_synced(3)
        await src.stop()                              # writes the snapshot
        cold = source("127.0.0.1:1", tmp_path, sync_timeout=0.5)
        model = ClusterModel()
        await cold.start(model)
        try:
            assert await cold.wait_synced(2) and cold.snapshot_loaded == 1
            assert addrs(model) == ["127.0.0.1:12701"] and model.is_stale("sofareg")
        finally:
            await cold.stop()
    asyncio.run(scenario())
