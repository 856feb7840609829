"""The registry APIs need nothing of a source but the registration protocol (discovery.registration.Registry).

Both APIs run in a real meshd against a real ZooKeeper, bound to a view of the ZooKeeper source that
exposes the protocol's members only: any other attribute the APIs reached for would fail these tests.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from discovery.registration import Registry
from meshd.app import Meshd
from meshd.config import DubboRegistryApi, SofaRegistryApi, build_config
from meshd.registry_api.dubbo import DubboPubSubApi
from meshd.registry_api.sofa import SofaMeshApi

SVC = "org.example.DemoService"
CALC = "com.example.Calc"
PROTOCOL = frozenset(n for n in dir(Registry) if not n.startswith("_")) | {"name", "kind"}


class ProtocolOnly:
    """A registry as the APIs may see it: the Registry members, nothing else."""

    def __init__(self, registry: Registry) -> None:
        object.__setattr__(self, "_registry", registry)
        object.__setattr__(self, "touched", set())

    def __getattr__(self, name: str):
        if name not in PROTOCOL:
            raise AttributeError(f"the registry APIs used {name!r}, which is not part of the Registry protocol")
        self.touched.add(name)
        value = getattr(self._registry, name)
        if name == "registered":              # the protocol's own helper must see this view too
            return lambda reg: Registry.registered(self, reg)
        return value


async def post(session: aiohttp.ClientSession, url: str, body: dict) -> dict:
    async with session.post(url, data=json.dumps(body)) as response:
        reply = await response.json(content_type=None)
        assert response.status == 200, reply
        return reply


def test_both_registry_apis_work_through_the_protocol_alone(zk_server, zk_chroot, zk, tmp_path):
    async def scenario():
        config = build_config({
            "listeners": [{"name": "rpc", "address": "127.0.0.1:0", "protocol": "auto"}],
            "discovery": [{"type": "zookeeper", "name": "zk", "servers": zk_server.hosts(zk_chroot),
                           "services": [], "sync_timeout": "3s"}],
            "access_log": {"path": None}, "admin": {"address": "127.0.0.1:0"},
        }, base_dir=tmp_path)
        app = Meshd(config)
        await app.start()
        try:
            assert await app.sources[0].wait_synced(10), "meshd's ZooKeeper source did not connect"
            view = ProtocolOnly(app.sources[0])
            dubbo_section = DubboRegistryApi(address="127.0.0.1:0", registry="zk")
            sofa_section = SofaRegistryApi(address="127.0.0.1:0", registry="zk", bolt_address="127.0.0.1:0")
            apis = [DubboPubSubApi(dubbo_section, view, app.model, app.listeners, app.add_listener),
                    SofaMeshApi(sofa_section, view, app.model, app.listeners, app.add_listener)]
            for api in apis:
                await api.start()
            dubbo, sofa = (f"http://{api.bound}" for api in apis)
            async with aiohttp.ClientSession() as session:
                await post(session, f"{dubbo}/pub", {"service": {"interface": SVC, "version": "1.0.0", "port": 20999}})
                sub = await post(session, f"{dubbo}/sub", {"service": {"interface": SVC, "version": "1.0.0"}})
                assert len(sub["providers"]) == 1 and sub["providers"][0].startswith("dubbo://127.0.0.1:20999/")
                await post(session, f"{sofa}/services/publish", {"serviceName": f"{CALC}:1.0", "port": 12201})
                sub = await post(session, f"{sofa}/services/subscribe", {"serviceName": f"{CALC}:1.0"})
                assert sub["datas"] and "12201" in sub["datas"][0]
                assert len(zk.get_children(f"/dubbo/{SVC}/providers")) == 1
                assert len(zk.get_children(f"/dubbo/{CALC}/consumers")) == 1
                assert (await post(session, f"{dubbo}/unpub", {"service": {"interface": SVC, "version": "1.0.0"}})
                        )["removed"] == 1
                await post(session, f"{dubbo}/unsub", {"service": {"interface": SVC, "version": "1.0.0"}})
                assert (await post(session, f"{sofa}/services/unpublish", {"serviceName": f"{CALC}:1.0"})
                        )["removed"] is True
                await post(session, f"{sofa}/services/unsubscribe", {"serviceName": f"{CALC}:1.0"})
            assert zk.get_children(f"/dubbo/{SVC}/providers") == [] == zk.get_children(f"/dubbo/{CALC}/consumers")
            assert {"publish", "unpublish", "subscribe_consumer", "unsubscribe_consumer", "wait_service",
                    "registered"} <= view.touched
            for api in apis:
                await api.stop()
        finally:
            await app.stop()
    asyncio.run(scenario())
