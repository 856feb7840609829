"""Registration through ZooKeeperSource in both layouts: exact nodes, ephemeral ownership, removal, errors."""

import asyncio
import os
from urllib.parse import unquote_plus

import pytest
from kazoo.security import make_digest_acl

from discovery.model import ClusterModel
from discovery.zookeeper import RegistrationError, ZooKeeperSource
from zk_tree import endpoints, eventually, running

pytestmark = pytest.mark.zookeeper
SVC = "org.example.DemoService"


def source(zk_server, chroot, layout="dubbo", **kw):
    return ZooKeeperSource("zk", zk_server.address, chroot=chroot, layout=layout, services=[SVC],
                           session_timeout=10, clock=lambda: 1_700_000_000.0, **kw)


def children(zk, path):
    return [unquote_plus(n) for n in zk.get_children(path)] if zk.exists(path) else []


def test_dubbo_publish_writes_the_sdk_node_and_unpublish_removes_it(zk_server, zk_chroot, zk):
    async def scenario():
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model) as src:
            reg = await src.publish(SVC, "10.0.0.5:20880", application="demo", group="g1", version="1.0.0",
                                    methods=["sayHello", "sayBye"], weight=100)
            expected = ("dubbo://10.0.0.5:20880/org.example.DemoService?anyhost=true&application=demo"
                        "&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&group=g1"
                        "&interface=org.example.DemoService&methods=sayHello,sayBye"
                        f"&pid={os.getpid()}&release=2.7.23&revision=1.0.0&side=provider"
                        "&timestamp=1700000000000&version=1.0.0&weight=100")
            assert reg.url == expected and children(zk, f"/dubbo/{SVC}/providers") == [expected]
            data, stat = zk.get(reg.path)
            assert data == b"" and stat.ephemeralOwner == src.client.client_id[0]
            await eventually(lambda: "10.0.0.5:20880" in endpoints(model, SVC), 1.0, "own provider visible")
            assert endpoints(model, SVC)["10.0.0.5:20880"].group == "g1"
            assert src.registrations() == (reg,) and src.status()["registrations"][0]["url"] == expected
            await src.unpublish(reg)
            assert children(zk, f"/dubbo/{SVC}/providers") == [] and src.registrations() == ()
            with pytest.raises(RegistrationError, match="is not registered"):
                await src.unpublish(reg)
    asyncio.run(scenario())


def test_dubbo_consumer_node_and_its_watch(zk_server, zk_chroot, zk):
    async def scenario():
        other = "org.example.OtherService"
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model) as src:
            reg = await src.subscribe_consumer(other, "10.0.0.9", application="web", version="1.0.0")
            (url,) = children(zk, f"/dubbo/{other}/consumers")
            assert url == reg.url and url.startswith(f"consumer://10.0.0.9/{other}?application=web&category=consumers")
            await eventually(lambda: model.cluster(other) is not None, 1.0, "subscribed service watched")
            await src.unsubscribe_consumer(reg)
            assert children(zk, f"/dubbo/{other}/consumers") == [] and model.cluster(other) is None
            twice = await src.subscribe_consumer(other, "10.0.0.9", application="web")
            assert await src.subscribe_consumer(other, "10.0.0.9", application="web") == twice
            await src.unsubscribe_consumer(twice)                 # one subscription, one watch reference
            assert model.cluster(other) is None
    asyncio.run(scenario())


def test_sofa_publish_and_consumer(zk_server, zk_chroot, zk):
    async def scenario():
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot, layout="sofarpc"), model) as src:
            reg = await src.publish(SVC, "10.0.0.5:12200", application="app", group="blue")
            (url,) = children(zk, f"/sofa-rpc/{SVC}/providers")
            assert url == reg.url == (
                f"bolt://10.0.0.5:12200?version=1.0&uniqueId=blue&interface={SVC}&timeout=0&delay=-1"
                f"&id=rpc-cfg-0&dynamic=true&weight=100&accepts=100000&startTime=1700000000000&appName=app"
                f"&serialization=hessian2&protocol=bolt&language=java&pid={os.getpid()}&rpcVer=50707")
            assert zk.get(reg.path)[0] == b"\x01"
            await eventually(lambda: "10.0.0.5:12200" in endpoints(model, SVC), 1.0, "own SOFA provider")
            assert endpoints(model, SVC)["10.0.0.5:12200"].group == "blue"
            consumer = await src.subscribe_consumer(SVC, "10.0.0.9", application="web")
            (curl,) = children(zk, f"/sofa-rpc/{SVC}/consumers")
            assert curl == consumer.url and curl.startswith("bolt://10.0.0.9?version=1.0&uniqueId=&pid=")
            assert zk.get(consumer.path)[0] == b""
        # stop() removed both
        assert children(zk, f"/sofa-rpc/{SVC}/providers") == [] == children(zk, f"/sofa-rpc/{SVC}/consumers")
    asyncio.run(scenario())


def test_republishing_returns_the_same_node_or_replaces_it(zk_server, zk_chroot, zk):
    async def scenario():
        async with running(source(zk_server, zk_chroot), ClusterModel()) as src:
            first = await src.publish(SVC, "10.0.0.5:20880", version="1.0.0", weight=100)
            assert await src.publish(SVC, "10.0.0.5:20880", version="1.0.0", weight=100) == first
            second = await src.publish(SVC, "10.0.0.5:20880", version="1.0.0", weight=50)
            assert second != first and src.registrations() == (second,)
            assert children(zk, f"/dubbo/{SVC}/providers") == [second.url]
            third = await src.publish(SVC, "10.0.0.5:20880", version="2.0.0")          # another version
            assert len(children(zk, f"/dubbo/{SVC}/providers")) == 2
            assert src.registrations(kind="provider", interface=SVC) == (second, third)
    asyncio.run(scenario())


def test_stop_removes_every_registration(zk_server, zk_chroot, zk):
    async def scenario():
        src = source(zk_server, zk_chroot)
        async with running(src, ClusterModel()):
            await src.publish(SVC, "10.0.0.5:20880")
            await src.subscribe_consumer(SVC, "10.0.0.9")
        assert children(zk, f"/dubbo/{SVC}/providers") == [] == children(zk, f"/dubbo/{SVC}/consumers")
        with pytest.raises(RegistrationError, match="not running"):
            await src.publish(SVC, "10.0.0.5:20880")
    asyncio.run(scenario())


def test_node_left_by_another_session_is_taken_over(zk_server, zk_chroot, zk):
    async def scenario():
        async with running(source(zk_server, zk_chroot), ClusterModel()) as src:
            reg = await src.publish(SVC, "10.0.0.5:20880")
            await src.unpublish(reg)
            zk.create(reg.path, b"", ephemeral=True, makepath=True)     # "the previous meshd", not expired yet
            assert zk.get(reg.path)[1].ephemeralOwner == zk.client_id[0]
            again = await src.publish(SVC, "10.0.0.5:20880")
            assert again.path == reg.path
            assert zk.get(reg.path)[1].ephemeralOwner == src.client.client_id[0]
    asyncio.run(scenario())


def test_failed_publish_raises_and_leaves_nothing_behind(zk_server, zk_chroot, zk):
    async def scenario():
        locked = make_digest_acl("owner", "secret", all=True)
        zk.ensure_path(f"/dubbo/{SVC}")
        zk.create(f"/dubbo/{SVC}/providers", b"", acl=[locked])
        async with running(source(zk_server, zk_chroot), ClusterModel()) as src:
            with pytest.raises(RegistrationError, match="NoAuthError"):
                await src.publish(SVC, "10.0.0.5:20880")
            assert src.registrations() == () and src.status()["pending_deletes"] == []
            with pytest.raises(ValueError, match="port"):
                await src.publish(SVC, "10.0.0.5")
    asyncio.run(scenario())


def test_publish_while_disconnected_raises(zk_server, zk_chroot):
    async def scenario():
        src = ZooKeeperSource("zk", "127.0.0.1:1", services=[SVC], sync_timeout=0.2)
        async with running(src, ClusterModel(), synced=False):
            with pytest.raises(RegistrationError, match="not connected"):
                await src.publish(SVC, "10.0.0.5:20880")
            assert src.registrations() == ()
    asyncio.run(scenario())


def test_digest_auth(zk_server, zk_chroot, zk):
    async def scenario():
        acl = make_digest_acl("meshd", "pw", all=True)
        zk.ensure_path(f"/dubbo/{SVC}")
        zk.create(f"/dubbo/{SVC}/providers", b"", acl=[acl])
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot, auth="meshd:pw"), model) as src:
            reg = await src.publish(SVC, "10.0.0.5:20880")
            await eventually(lambda: "10.0.0.5:20880" in endpoints(model, SVC), 1.0, "authenticated read")
            assert reg.path
    asyncio.run(scenario())
