"""ZooKeeperSource reading a Dubbo tree in a real ZooKeeper: watches, metadata, rules, warm-up, services: all."""

import asyncio
from urllib.parse import quote_plus

import pytest

from discovery.model import ClusterModel
from discovery.zookeeper import ZooKeeperSource
from zk_tree import add_dubbo_provider, add_override, endpoints, eventually, never, running

pytestmark = pytest.mark.zookeeper
SVC = "org.example.DemoService"


def source(zk_server, chroot, **kw):
    kw.setdefault("services", [SVC])
    return ZooKeeperSource("zk", zk_server.address, chroot=chroot, session_timeout=10, **kw)


def test_provider_added_and_removed_within_a_second(zk_server, zk_chroot, zk):
    async def scenario():
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880, version="1.0.0")
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model):
            assert list(endpoints(model, SVC)) == ["10.0.0.5:20880"]
            for i in range(5):
                path = add_dubbo_provider(zk, SVC, "10.0.1.%d" % i, 20880)
                await eventually(lambda: f"10.0.1.{i}:20880" in endpoints(model, SVC), 1.0, "provider added")
                zk.delete(path)
                await eventually(lambda: f"10.0.1.{i}:20880" not in endpoints(model, SVC), 1.0, "provider removed")
            assert list(endpoints(model, SVC)) == ["10.0.0.5:20880"]
    asyncio.run(scenario())


def test_java_style_provider_keeps_every_parameter(zk_server, zk_chroot, zk):
    async def scenario():
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880, anyhost="true", application="demo", deprecated="false",
                           generic="false", group="g1", methods="sayHello,sayBye", pid="4242", release="2.7.23",
                           timestamp="1700000000000", version="1.0.0", weight="60", serialization="hessian2",
                           tag="gray", zone="z1")
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model):
            ep = endpoints(model, SVC)["10.0.0.5:20880"]
            assert (ep.group, ep.version, ep.weight, ep.zone, ep.enabled, ep.stale) == \
                ("g1", "1.0.0", 60, "z1", True, False)
            for key in ("anyhost", "application", "deprecated", "dubbo", "dynamic", "generic", "methods", "pid",
                        "release", "revision", "side", "timestamp", "serialization", "tag"):
                assert key in ep.metadata, key
            assert ep.metadata["protocol"] == "dubbo" and ep.metadata["methods"] == "sayHello,sayBye"
    asyncio.run(scenario())


def test_pathless_urls_as_sofa_rpc_node_with_dubbo_remoting_writes_them(zk_server, zk_chroot, zk):
    async def scenario():
        url = f"dubbo://192.0.2.2:20880?interface={SVC}&version=1.0.0&group=SOFA&language=nodejs"
        add_dubbo_provider(zk, SVC, "", 0, url=url)
        add_dubbo_provider(zk, SVC, "", 0, url="dubbo://192.0.2.3:20881?version=1.0.0")  # no interface= either
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model):
            eps = endpoints(model, SVC)
            assert sorted(eps) == ["192.0.2.2:20880", "192.0.2.3:20881"]
            assert eps["192.0.2.3:20881"].metadata["interface"] == SVC
    asyncio.run(scenario())


def test_service_without_providers_directory_appears_when_it_is_created(zk_server, zk_chroot, zk):
    async def scenario():
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model):
            assert model.cluster(SVC) is not None and endpoints(model, SVC) == {}   # known, empty
            add_dubbo_provider(zk, SVC, "10.0.0.7", 20880)                         # creates providers/ too
            await eventually(lambda: "10.0.0.7:20880" in endpoints(model, SVC), 1.0, "provider after mkdir")
            zk.delete(f"/dubbo/{SVC}", recursive=True)
            await eventually(lambda: endpoints(model, SVC) == {}, 1.0, "directory deleted")
            assert model.cluster(SVC) is not None                                  # configured: stays known
            add_dubbo_provider(zk, SVC, "10.0.0.8", 20880)
            await eventually(lambda: "10.0.0.8:20880" in endpoints(model, SVC), 1.0, "directory re-created")
    asyncio.run(scenario())


def test_configurators_override_weight_disable_host_specific_and_removal(zk_server, zk_chroot, zk):
    async def scenario():
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880, weight="100")
        add_dubbo_provider(zk, SVC, "10.0.0.6", 20880, weight="100")
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model):
            everyone = add_override(zk, SVC, "0.0.0.0", weight="200")
            await eventually(lambda: {e.weight for e in endpoints(model, SVC).values()} == {200}, 1.0, "weight 200")
            one = add_override(zk, SVC, "10.0.0.6:20880", weight="50")
            await eventually(lambda: endpoints(model, SVC)["10.0.0.6:20880"].weight == 50, 1.0, "host-specific")
            assert endpoints(model, SVC)["10.0.0.5:20880"].weight == 200
            off = add_override(zk, SVC, "10.0.0.5", disabled="true")
            await eventually(lambda: not endpoints(model, SVC)["10.0.0.5:20880"].enabled, 1.0, "disabled")
            assert not endpoints(model, SVC)["10.0.0.5:20880"].routable
            for path in (off, one, everyone):
                zk.delete(path)
            await eventually(lambda: all(e.enabled and e.weight == 100 for e in endpoints(model, SVC).values()),
                             1.0, "rules removed")
    asyncio.run(scenario())


def test_disabled_provider_never_shows_up_enabled_at_start(zk_server, zk_chroot, zk):
    async def scenario():
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880)
        add_override(zk, SVC, "10.0.0.5:20880", disabled="true")
        model = ClusterModel()
        seen = []
        model.subscribe(lambda d: seen.extend(e.enabled for e in d.added))
        async with running(source(zk_server, zk_chroot), model):
            assert seen == [False]
    asyncio.run(scenario())


class ManualClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_warmup_ramps_with_a_manual_clock(zk_server, zk_chroot, zk):
    async def scenario():
        clock = ManualClock(1_700_000_000.0)
        start_ms = int(clock.now * 1000)
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880, timestamp=str(start_ms), warmup="100000", weight="100")
        add_dubbo_provider(zk, SVC, "10.0.0.6", 20880, timestamp=str(start_ms - 10**7), warmup="100000")
        clock.now += 10.0
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot, clock=clock, warmup_interval=3600), model) as src:
            weight = lambda: endpoints(model, SVC)["10.0.0.5:20880"].weight
            assert weight() == 10 and endpoints(model, SVC)["10.0.0.6:20880"].weight == 100
            assert src.status()["warming"] == [SVC]
            observed = []
            for _ in range(9):
                clock.now += 10.0
                assert src.refresh_warmup() == 1
                observed.append(weight())
            assert observed == [20, 30, 40, 50, 60, 70, 80, 90, 100]
            assert src.status()["warming"] == [] and src.refresh_warmup() == 0
    asyncio.run(scenario())


def test_warmup_timer_reapplies_on_its_own(zk_server, zk_chroot, zk):
    async def scenario():
        clock = ManualClock(1_700_000_000.0)
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880, timestamp=str(int(clock.now * 1000)), warmup="100000")
        clock.now += 50.0
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot, clock=clock, warmup_interval=0.05), model):
            assert endpoints(model, SVC)["10.0.0.5:20880"].weight == 50
            clock.now += 25.0
            await eventually(lambda: endpoints(model, SVC)["10.0.0.5:20880"].weight == 75, 1.0, "timer re-apply")
    asyncio.run(scenario())


def test_services_all_picks_up_new_interfaces_and_drops_deleted_ones(zk_server, zk_chroot, zk):
    async def scenario():
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880)
        zk.ensure_path("/dubbo/config/dubbo")            # Dubbo 3 config center: not a service
        zk.ensure_path("/dubbo/mapping/org.example.DemoService")
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot, services="all"), model) as src:
            assert set(model.clusters()) == {SVC}
            add_dubbo_provider(zk, "org.example.NewService", "10.0.0.9", 20880)
            await eventually(lambda: "10.0.0.9:20880" in endpoints(model, "org.example.NewService"), 1.0,
                             "new interface")
            zk.delete("/dubbo/org.example.NewService", recursive=True)
            await eventually(lambda: model.cluster("org.example.NewService") is None, 1.0, "interface withdrawn")
            assert set(model.clusters()) == {SVC} and src.status()["clusters"] == 1
    asyncio.run(scenario())


def test_custom_root(zk_server, zk_chroot, zk):
    async def scenario():
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880, root="/g1")
        add_dubbo_provider(zk, SVC, "10.0.0.6", 20880)                 # under /dubbo: not ours
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot, root="/g1", services="all"), model):
            assert list(endpoints(model, SVC)) == ["10.0.0.5:20880"]
    asyncio.run(scenario())


def test_watch_and_unwatch_services_at_runtime(zk_server, zk_chroot, zk):
    async def scenario():
        other = "org.example.OtherService"
        add_dubbo_provider(zk, other, "10.0.0.5", 20880)
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model) as src:
            assert model.cluster(other) is None
            assert await src.watch_service(other, timeout=2)
            assert list(endpoints(model, other)) == ["10.0.0.5:20880"]
            assert await src.watch_service(other, timeout=2)         # a second reference
            assert src.unwatch_service(other)
            assert model.cluster(other) is not None                  # still referenced once
            add_dubbo_provider(zk, other, "10.0.0.6", 20880)
            await eventually(lambda: len(endpoints(model, other)) == 2, 1.0, "watched service follows")
            assert src.unwatch_service(other) and not src.unwatch_service(other)
            assert model.cluster(other) is None
            assert not src.unwatch_service(SVC)                      # configured, not referenced
            with pytest.raises(ValueError, match="not a Java interface"):
                await src.watch_service("not an interface")
    asyncio.run(scenario())


def test_bad_nodes_are_reported_and_the_rest_keeps_working(zk_server, zk_chroot, zk):
    async def scenario():
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880)
        zk.create(f"/dubbo/{SVC}/providers/{quote_plus('dubbo://10.0.0.6:20880/' + SVC + '?weight=heavy', safe='')}")
        zk.create(f"/dubbo/{SVC}/providers/not-a-url")
        add_override(zk, SVC, "0.0.0.0", weight="lots")
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model) as src:
            assert list(endpoints(model, SVC)) == ["10.0.0.5:20880"]
            status = src.status()
            assert status["invalid_nodes"] == 3 and "weight='lots'" in " ".join(status["errors"])
            assert "weight='heavy'" in " ".join(status["errors"])
            add_dubbo_provider(zk, SVC, "10.0.0.7", 20880)
            await eventually(lambda: "10.0.0.7:20880" in endpoints(model, SVC), 1.0, "still watching")
    asyncio.run(scenario())


def test_unrelated_change_publishes_no_diff(zk_server, zk_chroot, zk):
    async def scenario():
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880)
        model = ClusterModel()
        async with running(source(zk_server, zk_chroot), model):
            diffs = []
            model.subscribe(diffs.append)
            zk.create(f"/dubbo/{SVC}/consumers/x", makepath=True)      # consumers are not watched
            zk.create(f"/dubbo/{SVC}/configurators", b"")              # empty rule directory
            await never(lambda: diffs, 0.3, "a diff for an unrelated change")
    asyncio.run(scenario())


def test_a_failing_model_subscriber_does_not_stall_the_source(zk_server, zk_chroot, zk):
    async def scenario():
        add_dubbo_provider(zk, SVC, "10.0.0.5", 20880)
        model = ClusterModel()
        calls = []

        def broken(diff):
            calls.append(diff)
            if len(calls) == 1:
                raise RuntimeError("subscriber bug")

        model.subscribe(broken)
        async with running(source(zk_server, zk_chroot), model) as src:    # still syncs
            assert not src.status()["stale"]
            add_dubbo_provider(zk, SVC, "10.0.0.6", 20880)
            await eventually(lambda: "10.0.0.6:20880" in endpoints(model, SVC), 1.0, "after the failure")
    asyncio.run(scenario())
