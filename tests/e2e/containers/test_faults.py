"""End to end in containers, under faults: ZooKeeper frozen, meshd restarted, a provider stopped.

Real clients keep calling through meshd (``steady_load``: apache-dubbo-js and sofa-rpc-node, every answer
checked against what its caller sent) while the fault happens. This module has a ZooKeeper container of
its own (pausing it must not freeze other modules' tests); each test still has its own chroot and meshd.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from integration import faults
from tests.e2e.containers.mesh import BOLT_IFACE, DUBBO_IFACE, addresses, call, endpoints, sources, values, wait_until

PAUSE_SECONDS = 10.0
RECONNECT_ALLOWANCE_MS = 5000


@pytest.fixture(scope="module")
def mesh_zookeeper(meshd_images):
    from integration.containers import ZooKeeperContainer
    container = ZooKeeperContainer().start()
    try:
        yield container
    finally:
        container.stop()


def both_loads(m, steady_load, warm: int = 50) -> list:
    loads = [steady_load(m.meshd, "dubbo"), steady_load(m.meshd, "bolt")]
    for load in loads:
        load.wait_ok(warm)
    return loads


def assert_no_failed_calls(summaries: list[dict], loads: list) -> None:
    for load, summary in zip(loads, summaries):
        assert (summary["errors"], summary["mismatched"]) == (0, 0), \
            f"{load.protocol}: {summary}, first errors: {load.errors[:3]}"


def test_zookeeper_paused_for_10s_under_load_fails_no_call(mesh, mesh_zookeeper, steady_load):
    # meshd's ZooKeeper connection times out during the pause (4 s session), so it must serve from its last
    # endpoints (stale) and resync afterwards (on a new session when the old one expired meanwhile); the
    # providers' sessions (30 s) survive the pause, so their ephemeral nodes stay.
    m = mesh(dubbo=2, bolt=2, source_options={"session_timeout": "4s"})
    before = endpoints(m.meshd)
    loads = both_loads(m, steady_load)

    with faults.paused(mesh_zookeeper):
        frozen_at = time.monotonic()
        ok_at_pause = [load.ok for load in loads]
        wait_until("meshd marks both ZooKeeper sources stale while ZooKeeper is frozen",
                   lambda: all(s["stale"] for s in sources(m.meshd).values()), timeout=PAUSE_SECONDS - 1)
        during = endpoints(m.meshd)
        assert {c: set(e) for c, e in during.items()} == {c: set(e) for c, e in before.items()}
        assert all(e["stale"] for eps in during.values() for e in eps.values())
        time.sleep(max(0.0, PAUSE_SECONDS - (time.monotonic() - frozen_at)))    # the fault lasts 10 s
        served_while_frozen = [load.ok - ok for load, ok in zip(loads, ok_at_pause)]

    assert min(served_while_frozen) > 100, f"calls served while ZooKeeper was frozen: {served_while_frozen}"
    wait_until("both sources connected, synced and no longer stale",
               lambda: all(s["connection"] == "connected" and s["synced"] and not s["stale"]
                           for s in sources(m.meshd).values()), timeout=30)
    after = endpoints(m.meshd)
    assert {c: set(e) for c, e in after.items()} == {c: set(e) for c, e in before.items()}
    for load in loads:
        load.wait_ok(load.ok + 50)
    assert_no_failed_calls([load.stop() for load in loads], loads)


def test_meshd_restarted_comes_back_with_its_endpoints_and_clients_reconnect(mesh, steady_load):
    m = mesh(dubbo=2, bolt=2)
    before = endpoints(m.meshd)
    loads = both_loads(m, steady_load)

    started = m.meshd.get_wrapped_container().attrs["State"]["StartedAt"]
    faults.restart_meshd(m.meshd)          # SIGTERM (drain), start again, wait for /healthz and /ready
    ready_at_ms = time.time() * 1000
    m.meshd.get_wrapped_container().reload()
    assert m.meshd.get_wrapped_container().attrs["State"]["StartedAt"] != started

    back = endpoints(m.meshd)              # ready means discovered again: the same providers, not stale
    assert {c: set(e) for c, e in back.items()} == {c: set(e) for c, e in before.items()}
    assert not any(e["stale"] for eps in back.values() for e in eps.values())
    assert all(s["synced"] for s in sources(m.meshd).values())
    ok_at_ready = [load.ok for load in loads]
    for load, ok in zip(loads, ok_at_ready):
        load.wait_ok(ok + 100, timeout=30)      # the same client processes reconnected and call again
    summaries = [load.stop() for load in loads]
    for load, summary in zip(loads, summaries):
        assert summary["mismatched"] == 0, summary
        # apache-dubbo-js redials a closed connection after 3 s, sofa-rpc-node at once
        late = [e for e in load.errors if e["sent_ms"] > ready_at_ms + RECONNECT_ALLOWANCE_MS]
        assert not late, f"{load.protocol}: calls started after meshd was ready (+{RECONNECT_ALLOWANCE_MS} ms) " \
                         f"failed: {late[:3]}"
    # and a new client finds meshd on the same ports
    assert values(call(m.meshd, "dubbo", "sayHello", ["again", 2])) == ["hello again x2"]
    assert values(call(m.meshd, "bolt", "add", [2, 2], types="int,int")) == [4]


def test_a_stopped_provider_leaves_within_seconds_and_calls_keep_succeeding(mesh, steady_load):
    m = mesh(dubbo=2, bolt=2)
    loads = both_loads(m, steady_load)
    leaving = {DUBBO_IFACE: m.dubbo[0], BOLT_IFACE: m.bolt[0]}
    staying = {DUBBO_IFACE: m.dubbo[1], BOLT_IFACE: m.bolt[1]}

    for cluster, provider in leaving.items():
        provider.stop()
        wait_until(f"{provider.server_id} gone from meshd's {cluster} within 5 s",
                   lambda: addresses(m.meshd, cluster) == {staying[cluster].address}, timeout=5)

    for load in loads:
        load.wait_ok(load.ok + 100)
    assert_no_failed_calls([load.stop() for load in loads], loads)
    assert Counter(values(call(m.meshd, "dubbo", "whoami", [], count=10))) == {"dubbo-2": 10}
    assert Counter(values(call(m.meshd, "bolt", "whoami", [], count=10))) == {"bolt-2": 10}
