"""The ZooKeeper rule source against a real ZooKeeper: Sentinel's node layout, pushes, deletions, garbage,
connection loss and session expiry (which never clear rules)."""

from __future__ import annotations

import asyncio
import json
import time

from config_center.source import Sink
from config_center.zookeeper import ZooKeeperRuleSource
from governance import Sentinel
from tests.integration.rule_sources import BLOCK, PASS, flow_store, threshold, until

NODE = "/SENTINEL_GROUP/meshd-flow-rules"


async def running(zk_server, chroot: str):
    engine = Sentinel()
    store = flow_store(engine)
    source = ZooKeeperRuleSource("zk", zk_server.hosts(chroot), "SENTINEL_GROUP", {"flow": "meshd-flow-rules"},
                                 session_timeout=4.0)
    store.claim("zk", source.kinds)
    await source.start(Sink(store, "zk", "java"))
    await until(lambda: source.connected, "the rule source connected")
    return engine, store, source


def test_node_data_is_pushed_changes_follow_and_a_deleted_node_clears_the_kind(zk_server, zk_chroot, zk):
    async def scenario():
        zk.create(NODE, json.dumps(BLOCK).encode(), makepath=True)
        engine, store, source = await running(zk_server, zk_chroot)
        try:
            await until(lambda: threshold(engine) == 0, "the node's rules applied")
            started = time.monotonic()
            zk.set(NODE, json.dumps(PASS).encode())
            await until(lambda: threshold(engine) == 100, "the changed node applied")
            print(f"zookeeper push-to-applied: {(time.monotonic() - started) * 1000:.1f} ms")
            assert store.current["flow"].source == "zk" and "version 1" in source.status()["last_seen"]["flow"]
            zk.set(NODE, b'[{"resource": "svc:m", "count": -1, "grade": 1}]')
            await until(lambda: store.rejected.get(("zk", "flow")) == 1, "the bad document rejected")
            assert threshold(engine) == 100 and "count" in source.status()["last_error"]
            zk.set(NODE, b"{garbage")
            await until(lambda: store.rejected.get(("zk", "flow")) == 2, "garbage rejected")
            assert threshold(engine) == 100
            zk.delete(NODE)
            await until(lambda: threshold(engine) is None, "the deleted node clearing flow")
            assert store.history_json()[-1]["diff"]["removed"] == ["svc:m#0"]
        finally:
            await source.stop()
    asyncio.run(scenario())


def test_a_node_missing_at_start_keeps_the_rules_in_force(zk_server, zk_chroot, zk):
    async def scenario():
        engine, store, source = await running(zk_server, zk_chroot)
        try:
            store.push("rollback", "flow", BLOCK, "java")           # as if restored from the state file
            await asyncio.sleep(0.3)
            assert threshold(engine) == 0 and source.status()["last_seen"] == {"flow": "no node"}
            zk.create(NODE, json.dumps(PASS).encode(), makepath=True)
            await until(lambda: threshold(engine) == 100, "the node created later")
        finally:
            await source.stop()
    asyncio.run(scenario())


def test_connection_loss_and_session_expiry_keep_the_rules_and_resync(zk_server, zk_chroot, zk):
    async def scenario():
        zk.create(NODE, json.dumps(BLOCK).encode(), makepath=True)
        engine, store, source = await running(zk_server, zk_chroot)
        loop = asyncio.get_running_loop()
        try:
            await until(lambda: threshold(engine) == 0, "the node's rules applied")
            await loop.run_in_executor(None, zk_server.drop_connection, source.client)
            assert threshold(engine) == 0 and store.current["flow"].version == 1
            await loop.run_in_executor(None, zk_server.expire_session, source.client)
            await until(lambda: source.connected, "reconnected with a new session")
            assert threshold(engine) == 0 and store.current["flow"].version == 1, "nothing cleared, no new version"
            assert [e["status"] for e in store.history_json()] == ["applied"], "the re-read was a no-op"
            zk.set(NODE, json.dumps(PASS).encode())
            await until(lambda: threshold(engine) == 100, "a change after the new session")
        finally:
            await source.stop()
    asyncio.run(scenario())
