"""The test Nacos server against the npm ``nacos`` client (v1 HTTP API, UDP push, config long polling).

The client runs as ``integration/peers/nacos_client.js`` (commands on stdin, JSON lines on stdout); the test
plays "another application" through the server's control API. Skips, naming what is missing, when node/npm
or the npm package is not installed (``npm install --prefix .cache/peers nacos@2.6.3``).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from typing import Any, Iterator

import pytest

from integration import peers

NPM_NACOS = "2.6.3"


class NodeNacos:
    """The driver script with a stdin pipe; ``do(op, **args)`` sends a command and returns its result line."""

    def __init__(self, server_addr: str, cache_dir: str) -> None:
        cmd = ["node", str(peers.script("nacos_client")), "--server", server_addr, "--cache-dir", cache_dir]
        proc = subprocess.Popen(cmd, env=peers.node_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=peers.peers_dir())
        self.node = peers.NodeProcess(proc)
        self._ids = itertools.count(1)
        self.node.wait_json(lambda o: o.get("event") in ("ready", "fatal"), timeout=20)

    def send(self, op: str, **args: Any) -> int:
        cid = next(self._ids)
        assert self.node.proc.stdin is not None
        self.node.proc.stdin.write(json.dumps({"id": cid, "op": op, **args}) + "\n")
        self.node.proc.stdin.flush()
        return cid

    def do(self, op: str, timeout: float = 15, **args: Any) -> Any:
        cid = self.send(op, **args)
        line = self.node.wait_json(lambda o: o.get("event") == "result" and o.get("id") == cid, timeout)
        assert line["ok"], line
        return line["value"]

    def wait(self, event: str, pred: Any = lambda o: True, timeout: float = 15) -> dict[str, Any]:
        return self.node.wait_json(lambda o: o.get("event") == event and pred(o), timeout)

    def close(self) -> None:
        try:
            self.send("exit")
            self.node.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.node.stop()


@pytest.fixture
def node_nacos(nacos_server, tmp_path) -> Iterator[NodeNacos]:
    reason = peers.missing_reason()
    if reason:
        pytest.skip(reason)
    if not (peers.node_modules() / "nacos" / "package.json").exists():
        pytest.skip(f"npm package nacos is not installed in {peers.node_modules()} "
                    f"(npm install --prefix {peers.peers_dir()} nacos@{NPM_NACOS})")
    client = NodeNacos(nacos_server.server_addr, str(tmp_path / "node-cache"))
    yield client
    client.close()


def _ports(line: dict[str, Any]) -> list[int]:
    return sorted(h["port"] for h in line["hosts"])


def test_npm_client_registers_subscribes_and_gets_udp_pushes(nacos_server, node_nacos):
    """Registration via POST /instance (float weight, metadata); subscription via /instance/list?udpPort;
    another application's register/deregister reach the client as acked UDP ``dom`` pushes."""
    node_nacos.do("register", service="shop", group="DEFAULT_GROUP", ip="127.0.0.1", port=7501, weight=1.5,
                  metadata={"lang": "node"})
    inst = nacos_server.instances()["public/DEFAULT_GROUP@@shop"][0]
    assert (inst["port"], inst["weight"], inst["metadata"], inst["owner"]) == (7501, 1.5, {"lang": "node"}, "beat")

    node_nacos.do("subscribe", service="shop", group="DEFAULT_GROUP")
    first = node_nacos.wait("hosts", lambda o: _ports(o) == [7501])
    assert first["hosts"][0]["instanceId"] == "127.0.0.1#7501#DEFAULT#DEFAULT_GROUP@@shop"
    sub = nacos_server.subscribers()["public/DEFAULT_GROUP@@shop"][0]
    assert sub["transport"] == "udp" and sub["address"].startswith("127.0.0.1:") and sub["clusters"] == "DEFAULT"

    nacos_server.register("shop", "127.0.0.1", 7502, weight=3.0, metadata={"v": "2"})
    both = node_nacos.wait("hosts", lambda o: _ports(o) == [7501, 7502], timeout=5)
    assert next(h for h in both["hosts"] if h["port"] == 7502)["weight"] == 3.0
    nacos_server.deregister("shop", "127.0.0.1", 7502)
    node_nacos.wait("hosts", lambda o: _ports(o) == [7501], timeout=5)

    deadline = time.monotonic() + 5
    while not all(p["acked"] for p in nacos_server.udp_pushes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pushes = nacos_server.udp_pushes()
    assert len(pushes) >= 2 and all(p["acked"] for p in pushes), pushes

    node_nacos.do("deregister", service="shop", group="DEFAULT_GROUP", ip="127.0.0.1", port=7501)
    assert nacos_server.hosts("shop") == []


def test_npm_client_config_publish_read_and_long_poll(nacos_server, node_nacos):
    """getConfig of a missing item is null (HTTP 404); publish/read round-trip; a change by another
    application ends the long poll at once and the listener gets the new content."""
    assert node_nacos.do("getConfig", dataId="db.json", group="G") is None
    assert node_nacos.do("publish", dataId="db.json", group="G", content='{"pool": 4}') is True
    assert node_nacos.do("getConfig", dataId="db.json", group="G") == '{"pool": 4}'
    node_nacos.do("listen", dataId="db.json", group="G")
    node_nacos.wait("config", lambda o: o["content"] == '{"pool": 4}')
    deadline = time.monotonic() + 10
    while "public/G/db.json" not in nacos_server.listeners() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert nacos_server.listeners()["public/G/db.json"] == ["http:long-poll"]
    started = time.monotonic()
    nacos_server.publish_config("db.json", "G", '{"pool": 8}')
    node_nacos.wait("config", lambda o: o["content"] == '{"pool": 8}', timeout=5)
    assert time.monotonic() - started < 3
    assert node_nacos.do("remove", dataId="db.json", group="G") is True
    assert nacos_server.configs() == {}


def test_npm_client_survives_a_udp_push_that_does_not_parse(nacos_server, node_nacos):
    """A ``dom`` datagram with broken JSON is logged by the client (``PushReceiverError`` on its own emitter,
    not the naming client's ``error`` event) and never acked; the next genuine push is applied and acked."""
    nacos_server.register("broken", "127.0.0.1", 7601)
    node_nacos.do("subscribe", service="broken", group="DEFAULT_GROUP")
    node_nacos.wait("hosts", lambda o: _ports(o) == [7601])
    assert nacos_server.push_garbage_udp("bad-json") == 1
    deadline = time.monotonic() + 5
    while "PushReceiverError" not in "".join(node_nacos.node.stderr) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "PushReceiverError" in "".join(node_nacos.node.stderr)
    nacos_server.register("broken", "127.0.0.1", 7602)
    node_nacos.wait("hosts", lambda o: _ports(o) == [7601, 7602], timeout=5)
    while nacos_server.udp_pushes()[-1]["acked"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    bad, good = nacos_server.udp_pushes()[-2:]
    assert (bad["acked"], good["acked"]) in ((None, True), (False, True)), (bad, good)
