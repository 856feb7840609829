"""End to end: runtime rules from a file, a ZooKeeper node and ``PUT`` reach live HTTP and Dubbo traffic through
``meshd run``; bad documents are rejected whole while traffic keeps the old rules; rollback; a restart with
every source down comes back with the persisted rules; route overrides change live routing."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.test_rpc_proxy import IFACE, Raw, dubbo_request
from tests.e2e.test_zookeeper_discovery import zk_root, zk_server, zk_writer  # noqa: F401  (fixtures)

NODE = "/SENTINEL_GROUP/meshd-flow-rules"
HTTP_RESOURCE = "GET:svc/api/"
DUBBO_RESOURCE = f"{IFACE}:sayHello"


def flow(threshold: float) -> list[dict]:
    """Go-dialect flow rules for the HTTP route and the Dubbo method (``threshold`` 0 blocks every call)."""
    return [{"resource": HTTP_RESOURCE, "threshold": threshold}, {"resource": DUBBO_RESOURCE, "threshold": threshold}]


def config(backend, provider, sources: list[dict]) -> dict:
    return {
        "listeners": [{"name": "http", "address": "127.0.0.1:0", "protocol": "http", "route_config": "main"},
                      {"name": "dubbo", "address": "127.0.0.1:0", "protocol": "dubbo"}],
        "route_configs": [{"name": "main", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"name": "api", "match": {"prefix": "/api/"}, "route": {"cluster": "c"}}]}]}],
        "clusters": [{"name": "c", "endpoints": [{"address": backend.address}]},
                     {"name": IFACE, "endpoints": [{"address": provider.address}]}],
        "config_center": {"sources": sources},
        "access_log": {"path": None},
    }


class Traffic:
    """An HTTP client and a Dubbo client through meshd; ``statuses()`` is one call of each."""

    def __init__(self, m) -> None:
        self.http_port = m.port("http")
        self.dubbo = Raw(m.port("dubbo"), "dubbo")
        self.rid = 0

    def http_status(self, headers: dict | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        conn.request("GET", "/api/x", headers={"Host": "svc", **(headers or {})})
        status = conn.getresponse().status
        conn.close()
        return status

    def dubbo_status(self) -> int:
        self.rid += 1
        self.dubbo.send(dubbo_request(rid=self.rid))
        return self.dubbo.read().status

    def statuses(self) -> tuple[int, int]:
        return self.http_status(), self.dubbo_status()


BLOCKED, PASSING = (429, 100), (200, 20)


def wait_for(traffic: Traffic, expected: tuple[int, int], what: str, timeout: float = 5.0) -> float:
    """Call until the answers are ``expected``; returns how long it took (push to applied, seen by a client)."""
    started = time.monotonic()
    while (got := traffic.statuses()) != expected:
        assert time.monotonic() - started < timeout, f"{what}: still {got} after {timeout}s"
        time.sleep(0.005)
    return time.monotonic() - started


class SteadyLoad:
    """Calls on both protocols in a thread until stopped; every answer that is not ``expected`` is kept."""

    def __init__(self, m, expected: tuple[int, int]) -> None:
        self.traffic, self.expected, self.calls, self.wrong = Traffic(m), expected, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self.traffic.statuses()
            self.calls += 1
            if got != self.expected:
                self.wrong.append(got)

    def stop(self) -> "SteadyLoad":
        self._stop.set()
        self._thread.join(10)
        return self


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rejected_total(m, source: str) -> float:
    prefix = f'meshd_rules_rejected_total{{kind="flow",source="{source}"}} '
    line = next((x for x in m.admin("/stats/prometheus")[1].splitlines() if x.startswith(prefix)), None)
    return float(line[len(prefix):]) if line else 0.0


@pytest.mark.parametrize("source", ["file", "zookeeper", "http"])
def test_a_rule_from_each_source_takes_effect_and_a_bad_one_is_rejected_under_load(
        source, meshd_run, http_backend, provider, tmp_path, zk_server, zk_root, zk_writer):
    backend, dubbo = http_backend("b"), provider("dubbo", "p")
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    spec = {"file": {"type": "file", "path": str(rules_dir), "kinds": ["flow"], "poll_interval": "50ms"},
            "zookeeper": {"type": "zookeeper", "servers": zk_server.hosts(zk_root), "data_ids": {"flow":
                                                                                               "meshd-flow-rules"},
                          "dialect": "go"},
            "http": {"type": "http"}}[source]
    m = meshd_run(config(backend, dubbo, [spec]))
    traffic = Traffic(m)
    assert traffic.statuses() == PASSING

    def push(document) -> None:
        body = document if isinstance(document, str) else json.dumps(document)
        if source == "file":
            write_atomically(rules_dir / "flow.json", body)
        elif source == "zookeeper":
            if zk_writer.exists(NODE):
                zk_writer.set(NODE, body.encode())
            else:
                zk_writer.create(NODE, body.encode(), makepath=True)
        else:
            status, reply = m.admin("/rules/flow?dialect=go", "PUT", body.encode())
            assert status in (200, 400), reply

    push(flow(0))
    latency = wait_for(traffic, BLOCKED, "the blocking rule")
    print(f"{source}: push to applied (seen by a client) {latency * 1000:.1f} ms")

    load = SteadyLoad(m, BLOCKED)
    for bad in (flow(0) + [{"resource": "x", "threshold": -1}], "[{not json"):
        before = rejected_total(m, spec["type"])
        push(bad)
        deadline = time.monotonic() + 5
        while rejected_total(m, spec["type"]) == before:
            assert time.monotonic() < deadline, f"the bad document from {source} was not rejected"
            time.sleep(0.02)
    time.sleep(0.2)
    assert load.stop().calls > 10 and load.wrong == [], "the rules in force kept working while bad ones arrived"
    status = m.admin_json("/rules/status")
    mine = next(s for s in status["sources"] if s["type"] == spec["type"])
    assert mine["last_result"] == "rejected" and mine["last_rejection"]
    assert status["kinds"]["flow"]["source"] == spec.get("name", spec["type"])
    history = m.admin_json("/rules/history?kind=flow")["history"]
    assert [e["status"] for e in history] == ["applied", "rejected", "rejected"]
    assert 'resource "x"' in history[1]["errors"][0] and "threshold" in history[1]["errors"][0]

    push(flow(1000))
    wait_for(traffic, PASSING, "the lifted rule")


def test_rollback_and_a_restart_with_every_source_down(meshd_run, http_backend, provider, zk_server, zk_root,
                                                       zk_writer):
    backend, dubbo = http_backend("b"), provider("dubbo", "p")
    sources = [{"type": "zookeeper", "name": "zk", "servers": zk_server.hosts(zk_root),
                "data_ids": {"flow": "meshd-flow-rules"}, "dialect": "go"}, {"type": "http"}]
    m = meshd_run(config(backend, dubbo, sources))
    traffic = Traffic(m)
    zk_writer.create(NODE, json.dumps(flow(0)).encode(), makepath=True)
    wait_for(traffic, BLOCKED, "v1 from ZooKeeper")
    zk_writer.set(NODE, json.dumps(flow(1000)).encode())
    wait_for(traffic, PASSING, "v2 from ZooKeeper")
    versions = [e["version"] for e in m.admin_json("/rules/history?kind=flow")["history"]]
    status, reply = m.admin("/rules/flow", "PUT", json.dumps(flow(0)).encode())
    assert status == 409 and "owned by rule source 'zk'" in reply
    rolled = m.admin_json("/rules/rollback", "POST", {"kind": "flow", "version": versions[0]})
    assert rolled["status"] == "applied" and rolled["version"] > versions[-1]
    assert traffic.statuses() == BLOCKED, "the rollback put v1 back in force"
    assert m.admin("/rules/rollback", "POST", b'{"kind": "flow"}')[0] == 400
    m.kill()

    dead = {**sources[0], "servers": "127.0.0.1:1"}                 # ZooKeeper unreachable after the restart
    again = meshd_run(config(backend, dubbo, [dead, sources[1]]), name="meshd")
    traffic = Traffic(again)
    assert traffic.statuses() == BLOCKED, "the persisted (rolled-back) rules are in force"
    status = again.admin_json("/rules/status")
    assert status["kinds"]["flow"]["restored"] is True and status["kinds"]["flow"]["source"] == "rollback"
    assert next(s for s in status["sources"] if s["name"] == "zk")["connected"] is False


def test_route_overrides_change_live_routing_and_come_off_again(meshd_run, http_backend, provider):
    backend, dubbo = http_backend("b"), provider("dubbo", "p")
    m = meshd_run(config(backend, dubbo, [{"type": "http"}]))
    traffic = Traffic(m)
    slow = {"x-backend-delay-ms": "400"}
    assert traffic.http_status(slow) == 200
    status, reply = m.admin("/rules/routes", "PUT", json.dumps({"api": {"timeout": "100ms"}}).encode())
    assert status == 200 and json.loads(reply)["rules"] == 1
    assert traffic.http_status(slow) == 504, "the overridden route timeout answers"
    assert m.admin_json("/rules")["routes"]["rules"] == {"api": {"timeout": "100ms"}}
    status, reply = m.admin("/rules/routes", "PUT", json.dumps({"nope": {"timeout": "1s"}}).encode())
    assert status == 400 and "no route is named 'nope'" in reply
    assert traffic.http_status(slow) == 504, "the rejected override changed nothing"
    assert m.admin("/rules/routes", "PUT", b"{}")[0] == 200
    assert traffic.http_status(slow) == 200
