"""Faults against a real ZooKeeper: partitions, restarts, session expiry, ZooKeeper down at start-up.

Invariant checked throughout: nothing is emptied because a session dropped; endpoints go stale and come back.
"""

import asyncio
import json

import pytest
from kazoo.client import KazooClient

from discovery.model import ClusterModel
from discovery.zookeeper import ZooKeeperSource
from integration.zookeeper import ZooKeeperProxy
from zk_tree import add_dubbo_provider, endpoints, eventually, in_thread, never, running

pytestmark = pytest.mark.zookeeper
SVC = "org.example.DemoService"
CHROOT = "/faults"


@pytest.fixture
def writer(private_zk):
    admin = KazooClient(private_zk.address)
    admin.start(timeout=15)
    admin.ensure_path(CHROOT)
    admin.stop()
    client = KazooClient(private_zk.hosts(CHROOT), timeout=20)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


def source(hosts, **kw):
    kw.setdefault("services", [SVC])
    kw.setdefault("session_timeout", 10)
    return ZooKeeperSource("zk", hosts, chroot=CHROOT, **kw)


def stale_flags(model):
    return {a: e.stale for a, e in endpoints(model, SVC).items()}


def test_partition_marks_stale_keeps_endpoints_and_resyncs_on_reconnect(private_zk, writer):
    async def scenario():
        add_dubbo_provider(writer, SVC, "10.0.0.1", 20880)
        gone = add_dubbo_provider(writer, SVC, "10.0.0.2", 20880)
        model = ClusterModel()
        with ZooKeeperProxy(private_zk.address) as proxy:
            async with running(source(proxy.address), model) as src:
                assert stale_flags(model) == {"10.0.0.1:20880": False, "10.0.0.2:20880": False}
                proxy.partition()
                await eventually(lambda: src.status()["stale"], 2.0, "stale after the partition")
                assert src.status()["connection"] == "suspended"
                assert stale_flags(model) == {"10.0.0.1:20880": True, "10.0.0.2:20880": True}   # kept
                writer.delete(gone)                                   # changes the source cannot see yet
                add_dubbo_provider(writer, SVC, "10.0.0.3", 20880)
                await never(lambda: set(endpoints(model, SVC)) != {"10.0.0.1:20880", "10.0.0.2:20880"}, 0.3,
                            "endpoints changed while partitioned")
                proxy.heal()
                await eventually(lambda: stale_flags(model) == {"10.0.0.1:20880": False, "10.0.0.3:20880": False},
                                 5.0, "resync after reconnect")
                assert src.status()["sessions"] == 1 and not src.status()["stale"]
                add_dubbo_provider(writer, SVC, "10.0.0.4", 20880)    # watches were re-armed
                await eventually(lambda: "10.0.0.4:20880" in endpoints(model, SVC), 1.0, "watch after reconnect")
    asyncio.run(scenario())


def test_server_restart_keeps_endpoints_then_registrations_and_watches_work(private_zk, writer):
    # Whether the session survives a restart is not guaranteed: a reconnect that lands while the server is
    # starting can hang until kazoo's connect timeout (session_timeout / hosts) and the session may expire.
    # Either way the endpoints stay (stale), and afterwards our node exists and the watches work.
    async def scenario():
        add_dubbo_provider(writer, SVC, "10.0.0.1", 20880)
        model = ClusterModel()
        async with running(source(private_zk.address, session_timeout=4), model) as src:
            reg = await src.publish(SVC, "10.0.0.9:20880")
            await eventually(lambda: "10.0.0.9:20880" in endpoints(model, SVC), 1.0, "own provider visible")
            await in_thread(private_zk.stop)
            await eventually(lambda: src.status()["stale"], 2.0, "stale while ZooKeeper is down")
            assert set(endpoints(model, SVC)) == {"10.0.0.1:20880", "10.0.0.9:20880"}
            await in_thread(private_zk.start)
            await eventually(lambda: not src.status()["stale"], 15.0, "fresh after the restart")
            assert src.status()["sessions"] in (1, 2)
            await eventually(lambda: writer.retry(writer.exists, reg.path) is not None, 5.0, "registration present")
            assert set(endpoints(model, SVC)) == {"10.0.0.1:20880", "10.0.0.9:20880"}
            add_dubbo_provider(writer, SVC, "10.0.0.2", 20880)
            await eventually(lambda: "10.0.0.2:20880" in endpoints(model, SVC), 1.0, "watch after restart")
    asyncio.run(scenario())


def test_dropped_connection_reconnects_and_clears_stale(private_zk, writer):
    async def scenario():
        add_dubbo_provider(writer, SVC, "10.0.0.1", 20880)
        model = ClusterModel()
        async with running(source(private_zk.address), model) as src:
            await in_thread(private_zk.drop_connection, src.client)
            await eventually(lambda: not src.status()["stale"] and src.status()["connection"] == "connected",
                             5.0, "back after the dropped connection")
            assert list(endpoints(model, SVC)) == ["10.0.0.1:20880"]
    asyncio.run(scenario())


def test_session_expiry_recreates_registrations_and_keeps_watching(zk_server, zk_chroot, zk):
    async def scenario():
        model = ClusterModel()
        src = ZooKeeperSource("zk", zk_server.address, chroot=zk_chroot, services=[SVC], session_timeout=10)
        async with running(src, model):
            provider = await src.publish(SVC, "10.0.0.9:20880", version="1.0.0")
            consumer = await src.subscribe_consumer("org.example.Other", "10.0.0.9")
            old_session = src.client.client_id[0]
            await in_thread(zk_server.expire_session, src.client)
            new_session = src.client.client_id[0]
            assert new_session != old_session
            for reg in (provider, consumer):
                await eventually(lambda: (zk.exists(reg.path) or 0) and zk.exists(reg.path).ephemeralOwner == new_session,
                                 5.0, f"{reg.kind} node re-created under the new session")
            await eventually(lambda: src.status()["sessions"] == 2 and not src.status()["stale"], 5.0, "resynced")
            add_dubbo_provider(zk, SVC, "10.0.0.1", 20880)
            await eventually(lambda: "10.0.0.1:20880" in endpoints(model, SVC), 1.0, "watch after expiry")
            assert "10.0.0.9:20880" in endpoints(model, SVC)
    asyncio.run(scenario())


def test_partition_longer_than_the_session_expires_it_server_side(private_zk, writer):
    async def scenario():
        add_dubbo_provider(writer, SVC, "10.0.0.1", 20880)
        model = ClusterModel()
        with ZooKeeperProxy(private_zk.address) as proxy:
            async with running(source(proxy.address, session_timeout=2), model) as src:
                reg = await src.publish(SVC, "10.0.0.9:20880")
                await eventually(lambda: "10.0.0.9:20880" in endpoints(model, SVC), 1.0, "own provider visible")
                proxy.partition()
                await eventually(lambda: writer.exists(reg.path) is None, 10.0, "server expired our session")
                assert set(endpoints(model, SVC)) == {"10.0.0.1:20880", "10.0.0.9:20880"}   # still kept, stale
                assert all(e.stale for e in endpoints(model, SVC).values())
                proxy.heal()
                await eventually(lambda: writer.exists(reg.path) is not None, 10.0, "registration re-created")
                await eventually(lambda: not src.status()["stale"], 5.0, "fresh again")
                assert src.status()["sessions"] == 2
                assert set(endpoints(model, SVC)) == {"10.0.0.1:20880", "10.0.0.9:20880"}
    asyncio.run(scenario())


def test_zookeeper_down_at_start_uses_the_snapshot_then_converges(private_zk, writer, tmp_path):
    snapshot = tmp_path / "zk-snapshot.json"

    async def scenario():
        # Persistent provider nodes (as dubbo-py registers them) so that they survive the restart.
        writer.create(f"/dubbo/{SVC}/providers/" + _node("10.0.0.1"), makepath=True)
        stays_gone = writer.create(f"/dubbo/{SVC}/providers/" + _node("10.0.0.2"))
        first = ClusterModel()
        async with running(source(private_zk.address, snapshot_path=str(snapshot), snapshot_delay=0.05), first):
            await eventually(snapshot.exists, 2.0, "snapshot written")
        services = json.loads(snapshot.read_text())["services"]
        assert len(services[SVC]["providers"]) == 2

        await in_thread(private_zk.stop)
        model = ClusterModel()
        # As in the restart test: a reconnect that lands while the server is still starting hangs until kazoo's
        # connect timeout (session_timeout / hosts), so the session is short and the convergence window outlasts it.
        src = source(private_zk.address, snapshot_path=str(snapshot), snapshot_delay=0.05, sync_timeout=0.5,
                     session_timeout=4)
        async with running(src, model, synced=False):
            assert await src.wait_synced(5), "the snapshot must make the source count as synced"
            assert stale_flags(model) == {"10.0.0.1:20880": True, "10.0.0.2:20880": True}
            assert src.status()["snapshot"]["loaded_services"] == 1 and src.status()["connection"] != "connected"
            await in_thread(private_zk.start)
            await in_thread(writer.retry, writer.delete, stays_gone)
            await in_thread(writer.retry, writer.create, f"/dubbo/{SVC}/providers/" + _node("10.0.0.3"))
            await eventually(lambda: stale_flags(model) == {"10.0.0.1:20880": False, "10.0.0.3:20880": False},
                             15.0, "converged with ZooKeeper")
            await eventually(lambda: "10.0.0.3" in snapshot.read_text() and "10.0.0.2" not in snapshot.read_text(),
                             2.0, "snapshot rewritten")
    asyncio.run(scenario())


def test_zookeeper_down_without_snapshot_still_counts_as_synced(tmp_path):
    async def scenario():
        model = ClusterModel()
        src = source("127.0.0.1:1", snapshot_path=str(tmp_path / "missing.json"), sync_timeout=0.2)
        async with running(src, model, synced=False):
            assert await src.wait_synced(3)
            assert "no such file" in src.status()["last_error"] and src.status()["stale"]
            assert model.clusters() == {}
    asyncio.run(scenario())


def _node(host: str) -> str:
    from urllib.parse import quote_plus
    from zk_tree import dubbo_provider_url
    return quote_plus(dubbo_provider_url(SVC, host, 20880), safe="")
