"""End to end: ``meshd run`` with a ``sofaregistry`` source against the test session servers (integration.sofaregistry).

An app's real sofa-rpc-node Bolt server is published through one meshd's SOFA mesh API (``registry: sofareg``);
a second meshd, subscribed through the session server, routes a real sofa-rpc-node client's calls to it. Zones,
a session server restart and a failover to the second server run under a steady sofa-rpc-node load that must
not lose a call.
"""

from __future__ import annotations

import time
from typing import Any

from integration.load import SteadyLoad
from integration.process import free_port
from tests.e2e.test_registry_api import bolt_calls, publish_body, sofa_ok
from tests.e2e.test_zookeeper_discovery import api_get, endpoints, needs_peers, wait_for

CALC = "com.example.Calc"
DATA_ID = f"{CALC}:1.0@DEFAULT"


def sofareg(servers: str, **extra: Any) -> dict:
    return {"type": "sofaregistry", "name": "sofareg", "servers": servers, "app": "meshd-it", "zone": "zone-a",
            "sync_timeout": "3s", "reconnect_delay": "100ms", **extra}


def app_side(servers: str) -> tuple[dict, str]:
    """The app's meshd: the SOFA mesh API publishing through the session servers."""
    api = f"127.0.0.1:{free_port()}"
    return {"listeners": [], "access_log": {"path": None}, "discovery": [sofareg(servers)],
            "registry_api": {"sofa": {"address": api, "registry": "sofareg", "bolt_address": "127.0.0.1:0"}}}, api


def consumer_side(servers: str, **extra: Any) -> dict:
    """A consumer's meshd: subscribed to the service, routing Bolt by the ``service`` header."""
    return {"listeners": [{"name": "bolt", "address": "127.0.0.1:0", "protocol": "bolt"}],
            "access_log": {"path": None}, "discovery": [sofareg(servers, services=[f"{CALC}:1.0"], **extra)]}


class _Bolt:
    """What :class:`SteadyLoad` needs of a meshd: the address of its Bolt listener."""

    def __init__(self, port: int) -> None:
        self.port = port

    def listener_address(self, protocol: str) -> str:
        return f"127.0.0.1:{self.port}"


@needs_peers
def test_published_through_the_mesh_api_routed_by_a_second_meshd(meshd_run, sofaregistry_server):
    from integration import peers
    config, api = app_side(sofaregistry_server.address)
    app_meshd = meshd_run(config, name="app-meshd")
    consumer = meshd_run(consumer_side(sofaregistry_server.address), name="consumer-meshd")
    app, app_port = peers.start_server("bolt_server.js", "--interface", CALC, "--server-id", "calc-app")
    try:
        sofa_ok(api, "/configs/application", {"appName": "calc-app", "zone": "zone-a"})
        reply = sofa_ok(api, "/services/publish", publish_body(f"{CALC}:1.0", app_port, timeout="3000"))
        (pub,) = sofaregistry_server.publishers(DATA_ID)
        assert pub.data[0].startswith(f"127.0.0.1:{app_port}?") and "&p=1&" in pub.data[0] and pub.zone == "zone-a"
        assert reply["url"] == f"bolt://{pub.data[0]}"
        wait_for(lambda: f"127.0.0.1:{app_port}" in endpoints(consumer, CALC), 2.0, "provider at the consumer")
        ep = endpoints(consumer, CALC)[f"127.0.0.1:{app_port}"]
        assert (ep["zone"], ep["version"], ep["metadata"]["app_name"]) == ("zone-a", "1.0", "calc-app")
        port = consumer.port("bolt")
        assert bolt_calls(port, "--method", "add", "--args", "[2,3]") == [5] * 5
        assert bolt_calls(port, "--method", "whoami", "--args", "[]") == ["calc-app"] * 5

        sofa_ok(api, "/services/unpublish", {"serviceName": f"{CALC}:1.0"})
        took = wait_for(lambda: f"127.0.0.1:{app_port}" not in endpoints(consumer, CALC), 1.0,
                        "unpublished provider gone from the consumer")
        assert took < 1.0 and sofaregistry_server.publishers(DATA_ID) == []
        status = api_get(consumer.admin_address, "/clusters")[1]
        (source,) = [s for s in status["sources"] if s["name"] == "sofareg"]
        assert source["connection"] == "connected" and source["counters"]["garbage"] == 0
        sofa_ok(api, "/services/publish", publish_body(f"{CALC}:1.0", app_port))
        wait_for(lambda: len(sofaregistry_server.publishers(DATA_ID)) == 1, 1.0, "published again")
        assert app_meshd.terminate() == 0          # stopping withdraws it: an UNREGISTER before the connection goes
        last = [r for r in sofaregistry_server.registers() if r["class"].endswith("PublisherRegister")][-1]
        assert last["eventType"] == "UNREGISTER" and sofaregistry_server.publishers(DATA_ID) == []
    finally:
        app.stop()


@needs_peers
def test_zones_restart_and_failover_under_steady_load_lose_no_call(meshd_run, sofaregistry_server_factory):
    from integration import peers
    first = sofaregistry_server_factory(zone="zone-a")
    second = sofaregistry_server_factory(peer=first, zone="zone-a")
    both = f"{first.address},{second.address}"
    config, api = app_side(f"{second.address},{first.address}")       # the app's meshd on the second server
    meshd_run(config, name="app-meshd")
    consumer = meshd_run(consumer_side(both, scope="dataCenter"), name="consumer-meshd")
    local, local_port = peers.start_server("bolt_server.js", "--interface", CALC, "--server-id", "local")
    remote, remote_port = peers.start_server("bolt_server.js", "--interface", CALC, "--server-id", "remote")
    load = None
    try:
        sofa_ok(api, "/configs/application", {"appName": "calc-app", "zone": "zone-a"})
        sofa_ok(api, "/services/publish", publish_body(f"{CALC}:1.0", local_port))
        other_zone = first.add_publisher(DATA_ID, [f"127.0.0.1:{remote_port}?p=1&_WEIGHT=100"], zone="zone-b")
        wait_for(lambda: len(endpoints(consumer, CALC)) == 2, 2.0, "both zones at the consumer")
        eps = endpoints(consumer, CALC)
        assert eps[f"127.0.0.1:{local_port}"]["priority"] == 0 and eps[f"127.0.0.1:{remote_port}"]["priority"] == 1
        port = consumer.port("bolt")
        assert bolt_calls(port, "--method", "whoami", "--args", "[]") == ["local"] * 5   # the local zone first

        load = SteadyLoad(_Bolt(port), "bolt")
        load.wait_ok(50)
        first.restart()                       # the consumer's server: it reconnects and re-subscribes
        wait_for(lambda: source(consumer)["connections"] >= 2 and source(consumer)["connection"] == "connected",
                 5.0, "consumer reconnected after the restart")
        settle(load)
        second.stop()                         # the app's server goes away: its meshd fails over to the first
        wait_for(lambda: len([p for p in first.publishers(DATA_ID) if p.conn is not None]) == 1, 5.0,
                 "the app's publisher re-registered on the first server")
        settle(load)
        if source(consumer)["server"] == second.address:
            wait_for(lambda: source(consumer)["server"] == first.address, 5.0, "consumer failed over")
        settle(load)

        sofa_ok(api, "/services/unpublish", {"serviceName": f"{CALC}:1.0"})    # local zone gone: zone-b serves
        wait_for(lambda: list(endpoints(consumer, CALC)) == [f"127.0.0.1:{remote_port}"], 2.0, "only zone-b left")
        settle(load)
        assert bolt_calls(port, "--method", "whoami", "--args", "[]") == ["remote"] * 5
        summary = load.stop()
        load = None
        assert summary["ok"] > 200 and summary["errors"] == 0 and summary["mismatched"] == 0, summary
        first.remove_publisher(DATA_ID, other_zone)
    finally:
        if load is not None:
            load.stop()
        local.stop()
        remote.stop()


def source(m: Any) -> dict:
    return next(s for s in m.admin_json("/clusters")["sources"] if s["name"] == "sofareg")


def settle(load: SteadyLoad, calls: int = 30) -> None:
    """Let the load make ``calls`` more calls (so that a fault's aftermath is exercised), failing on any error."""
    target = load.ok + calls
    load.wait_ok(target)
    assert not load.errors, load.errors[:3]
    time.sleep(0.05)

