"""The Nacos rule source against the test Nacos server, with the official nacos-sdk-python 3.x client: Sentinel's
``SENTINEL_GROUP`` / ``{app}-flow-rules`` layout, pushes through a real :class:`RuleStore` into the engine, changes,
bad and garbage documents (rejected whole), deletion, a config missing at start, and a server restart / go-away
(which never clear rules)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from config_center.nacos import NacosRuleSource, default_data_ids
from config_center.source import Sink
from governance import Sentinel
from tests.integration.rule_sources import BLOCK, PASS, flow_store, threshold, until
from tests.integration.nacos.conftest import v2_config, wait_until

pytest.importorskip("v2.nacos", reason="nacos-sdk-python>=3,<4 is not installed (pip install the test extras)")
from v2.nacos import ConfigParam, NacosConfigService  # noqa: E402

GROUP = "SENTINEL_GROUP"
DATA_ID = default_data_ids("order-service", ["flow"])["flow"]        # Sentinel's name: order-service-flow-rules
KEY = f"public/{GROUP}/{DATA_ID}"


async def running(server, tmp: Path):
    engine = Sentinel()
    store = flow_store(engine)
    source = NacosRuleSource("nacos-rules", server.server_addr, {"flow": DATA_ID}, cache_dir=str(tmp / "source"))
    store.claim("nacos-rules", source.kinds)
    await source.start(Sink(store, "nacos-rules", "java"))
    await wait_until(lambda: server.listeners().get(KEY), 10, "the rule source listening")
    assert source.connected
    return engine, store, source


def test_published_config_is_applied_changes_follow_bad_ones_are_rejected_and_deletion_clears(nacos_server,
                                                                                             tmp_path):
    """Another app (the official client) publishes the flow rules: applied; a change follows; a bad document
    and garbage are rejected whole with the old rules in force; removing the config clears the kind."""
    async def scenario():
        other = await NacosConfigService.create_config_service(v2_config(nacos_server.server_addr, tmp_path / "app"))

        async def publish(content: str) -> None:
            assert await other.publish_config(ConfigParam(data_id=DATA_ID, group=GROUP, content=content))
        await publish(json.dumps(BLOCK))
        engine, store, source = await running(nacos_server, tmp_path)
        try:
            await until(lambda: threshold(engine) == 0, "the published rules applied")
            started = time.monotonic()
            await publish(json.dumps(PASS))
            await until(lambda: threshold(engine) == 100, "the changed config applied")
            print(f"nacos push-to-applied: {(time.monotonic() - started) * 1000:.1f} ms")
            assert store.current["flow"].source == "nacos-rules"
            md5 = nacos_server.configs()[KEY]["md5"]
            assert source.status()["last_seen"]["flow"] == f"{GROUP}/{DATA_ID} md5 {md5}", "Nacos's own md5"
            await publish('[{"resource": "svc:m", "count": -1, "grade": 1}, {"resource": "ok", "count": 5}]')
            await until(lambda: store.rejected.get(("nacos-rules", "flow")) == 1, "the bad document rejected")
            assert threshold(engine) == 100 and len(engine.rules("flow")) == 1, "rejected whole"
            assert "count" in source.status()["last_error"]
            await publish("{garbage")
            await until(lambda: store.rejected.get(("nacos-rules", "flow")) == 2, "garbage rejected")
            assert threshold(engine) == 100 and "invalid JSON" in source.status()["last_error"]
            assert await other.remove_config(ConfigParam(data_id=DATA_ID, group=GROUP))
            await until(lambda: threshold(engine) is None, "the deleted config clearing flow")
            assert store.history_json()[-1]["diff"]["removed"] == ["svc:m#0"]
            assert source.status()["last_seen"]["flow"] == "no config"
            assert [e["status"] for e in store.history_json()] == ["applied", "applied", "rejected", "rejected",
                                                                  "applied"]
        finally:
            await source.stop()
            await other.shutdown()
    asyncio.run(scenario())
    assert not list(Path.home().glob("nacos/cache/config/*order-service*")), "no cache under ~/nacos"


def test_a_config_missing_at_start_keeps_the_rules_in_force(nacos_server, tmp_path):
    async def scenario():
        engine, store, source = await running(nacos_server, tmp_path)
        try:
            store.push("rollback", "flow", BLOCK, "java")           # as if restored from the state file
            await asyncio.sleep(0.3)
            assert threshold(engine) == 0 and source.status()["last_seen"] == {"flow": "no config"}
            assert [e["status"] for e in store.history_json()] == ["applied"], "nothing pushed for the missing one"
            nacos_server.publish_config(DATA_ID, GROUP, json.dumps(PASS))
            await until(lambda: threshold(engine) == 100, "the config published later")
        finally:
            await source.stop()
    asyncio.run(scenario())


def test_restart_and_go_away_keep_the_rules_and_changes_after_them_are_followed(nacos_server, tmp_path):
    """A restart (the config is there again, as a real Nacos keeps it) and a go-away clear nothing and push no
    new version; the source tells it was disconnected; a change made while the server was away, and one
    after, are followed."""
    async def scenario():
        nacos_server.publish_config(DATA_ID, GROUP, json.dumps(BLOCK))
        engine, store, source = await running(nacos_server, tmp_path)
        try:
            await until(lambda: threshold(engine) == 0, "the config's rules applied")
            before = set(nacos_server.connections())
            nacos_server.restart()
            nacos_server.publish_config(DATA_ID, GROUP, json.dumps(BLOCK))    # persisted by a real server
            await wait_until(lambda: set(nacos_server.connections()) - before, 10, "the client reconnected")
            await wait_until(lambda: nacos_server.listeners().get(KEY), 10, "re-listen after the restart")
            await asyncio.sleep(0.3)
            assert threshold(engine) == 0 and store.current["flow"].version == 1, "nothing cleared, no new version"

            nacos_server.go_away(2.0)
            await until(lambda: not source.connected, "the source noticing the server went away", 5)
            assert threshold(engine) == 0 and "the rules in force stay" in source.status()["last_error"]
            nacos_server.call(lambda s: s.publish_config(DATA_ID, GROUP, json.dumps(PASS)))
            nacos_server.wait_back(10)
            await until(lambda: threshold(engine) == 100, "the change made while the server was away", 15)
            await until(lambda: source.connected, "connected again")
            nacos_server.publish_config(DATA_ID, GROUP, json.dumps(BLOCK))
            await until(lambda: threshold(engine) == 0, "a change after the go-away")
            assert [e["status"] for e in store.history_json()] == ["applied"] * 3
        finally:
            await source.stop()
    asyncio.run(scenario())
