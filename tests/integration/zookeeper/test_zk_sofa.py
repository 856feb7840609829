"""ZooKeeperSource reading a SOFARPC tree: the node-data online flag, uniqueId/version mapping, path-less URLs."""

import asyncio

import pytest

from discovery.model import ClusterModel
from discovery.zookeeper import ZooKeeperSource
from zk_tree import add_sofa_provider, endpoints, eventually, running

pytestmark = pytest.mark.zookeeper
SVC = "com.alipay.test.HelloService"


def source(zk_server, chroot, **kw):
    kw.setdefault("services", [SVC])
    return ZooKeeperSource("zk", zk_server.address, chroot=chroot, layout="sofarpc", session_timeout=10, **kw)


def test_online_flag_flips_and_empty_data_is_online(zk_server, zk_chroot, zk):
    async def scenario():
        java = add_sofa_provider(zk, SVC, "10.0.0.1", data=b"\x01", uniqueId="blue", appName="app")
        add_sofa_provider(zk, SVC, "10.0.0.2", data=b"", language="nodejs", group="SOFA")   # sofa-rpc-node
        off = add_sofa_provider(zk, SVC, "10.0.0.3", data=b"\x00")
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model):
            eps = endpoints(model, SVC)
            assert {a: e.enabled for a, e in eps.items()} == \
                {"10.0.0.1:12200": True, "10.0.0.2:12200": True, "10.0.0.3:12200": False}
            assert (eps["10.0.0.1:12200"].group, eps["10.0.0.1:12200"].version) == ("blue", "1.0")
            assert eps["10.0.0.2:12200"].metadata["group"] == "SOFA" and eps["10.0.0.2:12200"].group == ""
            zk.set(off, b"\x01")
            await eventually(lambda: endpoints(model, SVC)["10.0.0.3:12200"].enabled, 1.0, "online")
            zk.set(java, b"\x00")
            await eventually(lambda: not endpoints(model, SVC)["10.0.0.1:12200"].enabled, 1.0, "offline")
            zk.delete(off)
            await eventually(lambda: "10.0.0.3:12200" not in endpoints(model, SVC), 1.0, "removed")
            add_sofa_provider(zk, SVC, "10.0.0.4", data=b"\x00")
            await eventually(lambda: "10.0.0.4:12200" in endpoints(model, SVC), 1.0, "added offline")
            assert not endpoints(model, SVC)["10.0.0.4:12200"].enabled
    asyncio.run(scenario())


def test_pathless_url_without_port_and_legacy_weight(zk_server, zk_chroot, zk):
    async def scenario():
        add_sofa_provider(zk, SVC, "192.168.1.120", port=None, _WEIGHT="30", xxx="yyy")
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model):
            ep = endpoints(model, SVC)["192.168.1.120:12200"]
            assert ep.weight == 100 and ep.metadata["_WEIGHT"] == "30" and ep.metadata["xxx"] == "yyy"
    asyncio.run(scenario())


def test_services_all_under_the_sofa_root(zk_server, zk_chroot, zk):
    async def scenario():
        add_sofa_provider(zk, SVC, "10.0.0.1")
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot, services="all"), model):
            add_sofa_provider(zk, "com.alipay.test.Other", "10.0.0.2", weight="7")
            await eventually(lambda: endpoints(model, "com.alipay.test.Other").get("10.0.0.2:12200"), 1.0, "new")
            assert endpoints(model, "com.alipay.test.Other")["10.0.0.2:12200"].weight == 7
    asyncio.run(scenario())
