"""End to end: ``meshd run`` with the Nacos source against the Nacos test server: a real Dubbo consumer reaches
the version it asked for; the server away under steady load fails no call, and an empty restart converges
once the providers re-register; ZooKeeper and Nacos together for one interface; the Dubbo pub/sub registry
API publishes into Nacos."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from integration import peers
from integration.ports import free_port
from tests.e2e.test_rpc_proxy import IFACE, Raw, dubbo_request
from tests.e2e.test_zookeeper_discovery import add_dubbo_provider, zk_root, zk_server, zk_writer  # noqa: F401

needs_peers = pytest.mark.skipif(not peers.installed(), reason=peers.missing_reason() or
                                 "third-party peers not installed: run `python -m integration.peers install`")


def register(server, provider, version: str, group: str = "") -> None:
    """As a Java provider's Dubbo NacosRegistry registers: the service name and the URL's parameters."""
    host, port = provider.address.rsplit(":", 1)
    server.register(f"providers:{IFACE}:{version}:{group}", host, int(port), metadata={
        "interface": IFACE, "version": version, "group": group, "side": "provider", "dubbo": "2.0.2",
        "methods": "sayHello,echo", "application": "java-demo", "protocol": "dubbo"})


def nacos_source(server, **extra) -> dict:
    return {"type": "nacos", "name": "nacos", "server_addresses": server.server_addr, "services": [IFACE],
            "naming": "dubbo", **extra}


def config(*sources, **extra) -> dict:
    return {"listeners": [{"name": "dubbo", "address": "127.0.0.1:0", "protocol": "dubbo"}],
            "discovery": list(sources), "access_log": {"path": None}, **extra}


def interface_endpoints(m) -> list[dict]:
    status, body = m.admin(f"/clusters/{IFACE}")
    return json.loads(body)["endpoints"] if status == 200 else []


def eventually(pred, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class DubboLoad:
    """Calls through meshd in a thread until stopped; every status is kept."""

    def __init__(self, port: int) -> None:
        self.raw, self.statuses, self._stop = Raw(port, "dubbo"), [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rid = 0
        while not self._stop.is_set():
            rid += 1
            self.raw.send(dubbo_request(rid=rid))
            self.statuses.append(self.raw.read().status)
            time.sleep(0.005)

    def stop(self) -> Counter:
        self._stop.set()
        self._thread.join(10)
        return Counter(self.statuses)


@needs_peers
def test_a_real_dubbo_consumer_reaches_the_version_it_asked_for(meshd_run, nacos_server, provider):
    v1, v2 = provider("dubbo", "provider-1.0.0"), provider("dubbo", "provider-2.0.0")
    register(nacos_server, v1, "1.0.0")
    register(nacos_server, v2, "2.0.0")
    m = meshd_run(config(nacos_source(nacos_server)))
    eventually(lambda: len(interface_endpoints(m)) == 2, "both versions in the interface's cluster")
    assert sorted(e["metadata"]["version"] for e in interface_endpoints(m)) == ["1.0.0", "2.0.0"]
    for version, name in (("2.0.0", "provider-2.0.0"), ("1.0.0", "provider-1.0.0")):
        out = peers.run_node("dubbo_consumer.js", "--address", f"127.0.0.1:{m.port('dubbo')}", "--method", "sayHello",
                             "--args", '["x"]', "--count", "10", "--concurrency", "2", "--version", version)
        results = [x for x in peers.json_lines(out.stdout) if x.get("event") == "result"]
        assert len(results) == 10 and all(r["ok"] for r in results), results[:2]
        assert {str(r["value"]).split(":")[0] for r in results} == {name}


def test_the_server_away_under_load_fails_no_call_and_an_empty_restart_converges(meshd_run, nacos_server, provider):
    p = provider("dubbo", "p")
    register(nacos_server, p, "1.0.0")
    m = meshd_run(config(nacos_source(nacos_server)))
    eventually(lambda: len(interface_endpoints(m)) == 1, "the provider in meshd")
    load = DubboLoad(m.port("dubbo"))
    nacos_server.go_away(10.0)                  # the 10 s
    eventually(lambda: m.admin_json("/clusters")["sources"][0]["stale"], "the source marked stale")
    assert len(interface_endpoints(m)) == 1, "nothing is emptied while Nacos is away"
    nacos_server.wait_back(20)
    eventually(lambda: not m.admin_json("/clusters")["sources"][0]["stale"], "resynced after the server came back")
    nacos_server.restart()                      # back empty: the providers register again
    q = provider("dubbo", "q")
    register(nacos_server, p, "1.0.0")
    register(nacos_server, q, "1.0.0")
    eventually(lambda: len(interface_endpoints(m)) == 2, "meshd converged on what registered after the restart",
               timeout=15)
    counts = load.stop()
    assert set(counts) == {20} and sum(counts.values()) > 50, counts


def test_zookeeper_and_nacos_together_for_one_interface(meshd_run, nacos_server, provider, zk_server, zk_root,
                                                        zk_writer):
    in_zk, in_nacos = provider("dubbo", "zk"), provider("dubbo", "nacos")
    add_dubbo_provider(zk_writer, IFACE, in_zk.address)
    register(nacos_server, in_nacos, "1.0.0")
    zk = {"type": "zookeeper", "name": "zk", "servers": zk_server.hosts(zk_root), "services": [IFACE]}
    m = meshd_run(config(zk, nacos_source(nacos_server)))
    eventually(lambda: len(interface_endpoints(m)) == 2, "the union of both registries")
    assert sorted(tuple(e["sources"]) for e in interface_endpoints(m)) == [("nacos",), ("zk",)]
    raw = Raw(m.port("dubbo"), "dubbo")
    answered = Counter()
    for rid in range(1, 21):
        raw.send(dubbo_request(rid=rid))
        assert raw.read().status == 20
    answered.update({"zk": len(in_zk.script.requests), "nacos": len(in_nacos.script.requests)})
    assert answered["zk"] > 0 and answered["nacos"] > 0, answered


def test_the_dubbo_pubsub_api_publishes_into_nacos(meshd_run, nacos_server):
    api = f"127.0.0.1:{free_port()}"
    m = meshd_run(config(nacos_source(nacos_server), registry_api={"dubbo": {"address": api, "registry": "nacos"}}))
    import urllib.request
    body = json.dumps({"service": {"interface": IFACE, "version": "1.0.0", "port": 20999}}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"http://{api}/pub", data=body, method="POST"),
                                timeout=10) as resp:
        reply = json.loads(resp.read())
    assert reply["err_no"] == 0, reply
    eventually(lambda: ("127.0.0.1", 20999) in nacos_server.hosts(f"providers:{IFACE}:1.0.0:"),
               "the app's provider registered in Nacos")
    instance = next(i for i in nacos_server.instances()[next(k for k in nacos_server.instances()
                                                              if f"providers:{IFACE}:1.0.0:" in k)])
    assert instance["metadata"]["interface"] == IFACE and instance["metadata"]["side"] == "provider"
    m.kill()
