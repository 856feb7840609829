"""The pieces of the container e2e suite: real providers registered in ZooKeeper, real clients, meshd's config.

Providers run on the host (loopback, free ports) and are found by meshd (in a container, host network)
only through ZooKeeper (in a container), under the test's own chroot:

:class:`DubboProvider`
    sofa-rpc-node + dubbo-remoting (``integration/peers/dubbo_provider.js``); its Java-style provider URL
    node is written by a kazoo client of its own (session = the provider's life, like a Dubbo SDK's):
    :meth:`~DubboProvider.stop` closes that session first, so ZooKeeper drops the ephemeral node at once,
    then stops the process.
:class:`BoltProvider`
    sofa-rpc-node's own ``ZookeeperRegistry`` publishes it (SOFARPC layout, ephemeral node) with
    ``publishAddress`` 127.0.0.1 (``integration/peers/bolt_server_zk.js``); SIGTERM makes the SDK
    unpublish, then close.

Clients: :func:`call` runs a real consumer to completion (apache-dubbo-js for Dubbo, sofa-rpc-node for
Bolt) against a meshd listener; :class:`integration.load.SteadyLoad` keeps one running
(``integration/peers/steady_load.js``) and records every failed call, for the fault scenarios.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable
from urllib.parse import quote_plus

from integration import peers

DUBBO_IFACE = "org.example.DemoService"
BOLT_IFACE = "com.example.Calc"
# Registration sessions outlive a 10 s ZooKeeper pause (the server's maxSessionTimeout is 20 ticks = 40 s).
PROVIDER_SESSION_TIMEOUT = 30.0


# ---------------------------------------------------------------------------------------------- providers
def dubbo_provider_url(iface: str, host: str, port: int, **extra: str) -> str:
    """A provider URL as a Java Dubbo 2.7 provider writes it (docs/testing.md)."""
    params = {"interface": iface, "side": "provider", "dynamic": "true", "dubbo": "2.0.2", "revision": "1.0.0",
              "anyhost": "false", "methods": "sayHello,add,echo,whoami,sleep,fail", "pid": str(os.getpid()),
              "timestamp": str(int(time.time() * 1000)), **extra}
    return f"dubbo://{host}:{port}/{iface}?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))


class DubboProvider:
    """A dubbo-remoting provider on loopback, registered under ``chroot`` by its own ZooKeeper session."""

    protocol = "dubbo"
    interface = DUBBO_IFACE

    def __init__(self, zookeeper: Any, chroot: str, server_id: str, version: str = "1.0.0") -> None:
        self.zookeeper, self.chroot, self.server_id, self.version = zookeeper, chroot, server_id, version
        self.node: peers.NodeProcess | None = None
        self.session: Any = None
        self.port = 0

    def launch(self) -> "DubboProvider":
        self.node = peers.start_node("dubbo_provider.js", "--port", "0", "--server-id", self.server_id,
                                     "--version", self.version)
        return self

    def wait_ready(self, timeout: float = 30.0) -> "DubboProvider":
        self.port = int(self.node.wait_json(lambda o: o.get("event") == "listening", timeout)["port"])
        self.session = self.zookeeper.kazoo_client(self.chroot, timeout=PROVIDER_SESSION_TIMEOUT)
        url = dubbo_provider_url(self.interface, "127.0.0.1", self.port, version=self.version,
                                 application=self.server_id)
        self.session.ensure_path(f"/dubbo/{self.interface}/providers")
        self.session.create(f"/dubbo/{self.interface}/providers/{quote_plus(url, safe='')}", b"", ephemeral=True)
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Unregister (close the ZooKeeper session: the ephemeral node goes with it), then stop serving."""
        if self.session is not None:
            self.session.stop()
            self.session.close()
            self.session = None
        if self.node is not None:
            self.node.stop()


class BoltProvider:
    """A sofa-rpc-node Bolt provider that publishes itself in ZooKeeper (SOFARPC layout) under ``chroot``."""

    protocol = "bolt"
    interface = BOLT_IFACE

    def __init__(self, zookeeper: Any, chroot: str, server_id: str) -> None:
        self.zookeeper, self.chroot, self.server_id = zookeeper, chroot, server_id
        self.node: peers.NodeProcess | None = None
        self.port = 0
        self.url = ""

    def launch(self) -> "BoltProvider":
        self.node = peers.start_node("bolt_server_zk.js", "--zk", self.zookeeper.connection_string(),
                                     "--root", f"{self.chroot}/sofa-rpc", "--interface", self.interface,
                                     "--server-id", self.server_id, "--app-name", "meshd-e2e")
        return self

    def wait_ready(self, timeout: float = 30.0) -> "BoltProvider":
        ready = self.node.wait_json(lambda o: o.get("event") == "published", timeout)
        self.port, self.url = int(ready["port"]), ready["url"]
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """SIGTERM: the SDK removes its provider node, closes its server and its ZooKeeper session."""
        if self.node is not None:
            self.node.stop(timeout=10)


def start_all(providers: list) -> list:
    """Launch every provider process first, then wait for each: the node start-ups overlap."""
    for provider in providers:
        provider.launch()
    for provider in providers:
        provider.wait_ready()
    return providers


# ------------------------------------------------------------------------------------------ meshd config
def mesh_config(zookeeper: Any, chroot: str, source_options: dict | None = None, **extra: Any) -> dict:
    """Dubbo and Bolt listeners on free ports, both ZooKeeper layouts under ``chroot``, retrying routes.

    The routes send each interface to its discovered cluster and retry a request whose provider went away
    under it (connection refused or reset) on another provider. ``source_options`` go into both discovery
    sources (e.g. ``session_timeout``), ``extra`` replaces top-level keys.
    """
    source = {"type": "zookeeper", "servers": zookeeper.address, "chroot": chroot, "services": "all",
              **(source_options or {})}
    retry = {"retry_on": "connect-failure,reset", "num_retries": 2}
    config = {
        "listeners": [
            {"name": "dubbo", "address": "127.0.0.1:0", "protocol": "dubbo", "route_config": "rpc"},
            {"name": "bolt", "address": "127.0.0.1:0", "protocol": "bolt", "route_config": "rpc"},
        ],
        "route_configs": [{"name": "rpc", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"service": iface}, "route": {"cluster": iface, "retry_policy": retry}}
            for iface in (DUBBO_IFACE, BOLT_IFACE)]}]}],
        "discovery": [{**source, "name": "zk-dubbo", "layout": "dubbo"},
                      {**source, "name": "zk-sofa", "layout": "sofarpc"}],
        "drain_timeout": "2s",
    }
    config.update(extra)
    return config


def endpoints(meshd: Any) -> dict[str, dict[str, dict]]:
    """``{cluster: {address: endpoint}}`` from meshd's ``GET /clusters``."""
    clusters = meshd.admin_get("/clusters").json()["clusters"]
    return {c["name"]: {e["address"]: e for e in c["endpoints"]} for c in clusters}


def sources(meshd: Any) -> dict[str, dict]:
    return {s["name"]: s for s in meshd.admin_get("/clusters").json()["sources"]}


def wait_until(what: str, check: Callable[[], Any], timeout: float = 15.0, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout:.0f}s (last: {value!r})")
        time.sleep(every)


def addresses(meshd: Any, cluster: str) -> set[str]:
    return set(endpoints(meshd).get(cluster, {}))


# ------------------------------------------------------------------------------------------------ clients
def call(meshd: Any, protocol: str, method: str, args: list, *, count: int = 1, concurrency: int = 1,
         types: str = "") -> list[dict]:
    """Run a real consumer through meshd's ``protocol`` listener; return its per-call results."""
    script, iface = ("dubbo_consumer.js", DUBBO_IFACE) if protocol == "dubbo" else ("bolt_client.js", BOLT_IFACE)
    extra = ["--types", types] if types else []
    done = peers.run_node(script, "--address", meshd.listener_address(protocol), "--interface", iface,
                          "--method", method, "--args", json.dumps(args), "--count", str(count),
                          "--concurrency", str(concurrency), *extra, timeout=60)
    lines = peers.json_lines(done.stdout)
    results = [x for x in lines if x.get("event") == "result"]
    assert len(results) == count, f"{script} ran {len(results)} of {count} calls:\n{done.stdout[-2000:]}\n" \
                                  f"{done.stderr[-2000:]}"
    return results


def values(results: list[dict]) -> list:
    """The values of successful calls; fails listing the errors if any call failed."""
    failed = [r["error"] for r in results if not r["ok"]]
    assert not failed, f"{len(failed)} of {len(results)} calls failed, first: {failed[0]}"
    return [r["value"] for r in results]
