"""Config-center scenario: push-to-applied latency per rule source, and 1,000 flow rules pushed under Dubbo load.

Part one: one ``meshd run`` (pinned to the proxy core) with three rule sources — a rules folder (kind
``isolation``), a ZooKeeper node in Sentinel's layout (kind ``circuit_breaker``) and ``PUT /rules/flow`` —
gets ``pushes`` documents from each, alternating two valid ones so that every push is a change. Applied
means the store's version for the kind moved (``GET /rules/status``, polled on one keep-alive connection
every millisecond); for ``PUT`` it is the request's round trip, which is answered once the document is
applied and fsync'ed. Reported: p50/p99/max per source (target p99 < 50 ms).

Part two: pipelined Dubbo load through the same meshd (about 50k req/s on this machine with governance
off); after a third of the run, ``PUT`` of 1,000 flow rules (one on the called method with a threshold no
call reaches, 999 on other methods). Reported: the load's failed and unanswered calls (target 0), the
push's round trip, the store's ``longest_step_ms`` (the longest stretch the push's own steps held the event
loop: validation and controller building run in slices), and the loop lag meshd's probe measured every
millisecond during the push (and, for comparison, during a second of the same load without one): the
stall any cause made, persisting included (target < 5 ms).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness import LOAD_CPU, PY, ROOT, Proc, meshd_proc, pinned, wait_port
from bench.rpc_scenario import IFACE, _request
from integration.ports import free_port
from integration.zookeeper import ZooKeeperServer

NODE = "/SENTINEL_GROUP/meshd-degrade-rules"


class Admin:
    """One keep-alive connection to meshd's admin API."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def loop_lag_max_ms(self) -> float:
        """The largest event-loop lag since the previous call (reading the gauge starts a new window)."""
        for line in self.request("GET", "/stats/prometheus")[1].decode().splitlines():
            if line.startswith("meshd_event_loop_lag_max_seconds "):
                return round(float(line.split()[1]) * 1000, 3)
        raise RuntimeError("meshd_event_loop_lag_max_seconds not exported")

    def version(self, kind: str) -> int | None:
        return json.loads(self.request("GET", "/rules/status")[1])["kinds"][kind]["version"]

    def wait_version(self, kind: str, above: int | None, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            version = self.version(kind)
            if version is not None and (above is None or version > above):
                return version
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind}: no version above {above} within {timeout}s")
            time.sleep(0.001)


def _stats(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"n": len(ms), "p50": round(ms[len(ms) // 2], 2), "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
            "max": round(ms[-1], 2)}


def _config(work: Path, backend: int, rpc: int, admin: str, zk: str) -> dict[str, Any]:
    (work / "rules").mkdir(exist_ok=True)
    return {
        "admin": {"address": admin}, "access_log": {"path": None}, "loop_lag_interval": "1ms",
        "listeners": [{"name": "rpc", "address": f"127.0.0.1:{rpc}", "protocol": "dubbo"}],
        "clusters": [{"name": IFACE, "endpoints": [{"address": f"127.0.0.1:{backend}"}],
                      "connections_per_endpoint": 2,
                      "circuit_breakers": {"max_requests": 100000, "max_pending_requests": 100000}}],
        "config_center": {"state_dir": str(work / "state"), "sources": [
            {"type": "file", "path": str(work / "rules"), "kinds": ["isolation"]},
            {"type": "zookeeper", "servers": zk, "data_ids": {"circuit_breaker": "meshd-degrade-rules"},
             "dialect": "go"},
            {"type": "http"}]},
    }


def _push_latencies(work: Path, admin: Admin, zk_client, pushes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    folder = work / "rules"
    last = None
    ms: list[float] = []
    for i in range(pushes):
        doc = json.dumps([{"resource": f"{IFACE}:other", "threshold": 1000 + i % 2}]).encode()
        tmp = folder / ".isolation.json.tmp"
        tmp.write_bytes(doc)
        started = time.perf_counter()
        tmp.replace(folder / "isolation.json")
        last = admin.wait_version("isolation", last)
        ms.append((time.perf_counter() - started) * 1000)
    out["file"] = _stats(ms)
    ms, last = [], None
    zk_client.ensure_path("/SENTINEL_GROUP")
    for i in range(pushes):
        doc = json.dumps([{"resource": f"{IFACE}:other", "strategy": 2, "threshold": 100 + i % 2,
                           "statIntervalMs": 1000, "retryTimeoutMs": 1000}]).encode()
        started = time.perf_counter()
        if zk_client.exists(NODE):
            zk_client.set(NODE, doc)
        else:
            zk_client.create(NODE, doc)
        last = admin.wait_version("circuit_breaker", last)
        ms.append((time.perf_counter() - started) * 1000)
    out["zookeeper"] = _stats(ms)
    ms = []
    for i in range(pushes):
        doc = json.dumps([{"resource": f"{IFACE}:other", "threshold": 100000 + i % 2}]).encode()
        started = time.perf_counter()
        status, body = admin.request("PUT", "/rules/flow?dialect=go", doc)
        ms.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"PUT /rules/flow: {status} {body[:200]!r}")
    out["http"] = _stats(ms)
    return out


def _big_push_under_load(admin: Admin, rpc: int, rules: int, seconds: float) -> dict[str, Any]:
    frame = _request("dubbo")
    load: dict[str, Any] = {}

    def run_load() -> None:
        cmd = pinned(LOAD_CPU, [PY, str(ROOT / "bench" / "loadgen.py"), "frames", str(rpc), "8", str(seconds), "8",
                                frame.hex(), "dubbo"])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, env={"PYTHONPATH": str(ROOT)})
        load.update(json.loads(done.stdout.strip().splitlines()[-1]))

    thread = threading.Thread(target=run_load)
    thread.start()
    time.sleep(seconds / 3 - 1.0)
    admin.loop_lag_max_ms()                   # a new window: one second of load without a push
    time.sleep(1.0)
    lag_without_push = admin.loop_lag_max_ms()
    document = [{"resource": f"{IFACE}:sayHello", "threshold": 10_000_000}] + [
        {"resource": f"{IFACE}:m{i}", "threshold": 1000 + i} for i in range(rules - 1)]
    started = time.perf_counter()
    status, body = admin.request("PUT", "/rules/flow?dialect=go", json.dumps(document).encode())
    push_ms = (time.perf_counter() - started) * 1000
    time.sleep(0.1)
    lag_with_push = admin.loop_lag_max_ms()   # the window of the push (and its persisting)
    thread.join()
    if status != 200:
        raise RuntimeError(f"PUT of {rules} flow rules: {status} {body[:300]!r}")
    entry = json.loads(admin.request("GET", "/rules/history?kind=flow")[1])["history"][-1]
    return {"rules": rules, "push_round_trip_ms": round(push_ms, 1), "longest_step_ms": entry.get("longest_step_ms"),
            "loop_lag_max_ms": {"load_only_1s": lag_without_push, "push_window": lag_with_push},
            "load_rps": round(load["rps"]), "load_requests": load["requests"], "load_errors": load["errors"],
            "load_p99_ms": round(load["p99_ms"], 2)}


def run(work: Path, pushes: int = 100, rules: int = 1000, seconds: float = 9.0) -> dict[str, Any]:
    procs: list[Proc] = []
    zk = ZooKeeperServer()
    zk.start()
    zk_client = zk.kazoo_client()
    try:
        backend = free_port()
        procs.append(Proc("dubbo-server", pinned(LOAD_CPU, [PY, str(ROOT / "bench" / "fast_rpc_server.py"), "dubbo",
                                                            str(backend)]), work, env={"PYTHONPATH": str(ROOT)}))
        wait_port(backend)
        rpc, admin_address = free_port(), f"127.0.0.1:{free_port()}"
        procs.append(meshd_proc(_config(work, backend, rpc, admin_address, zk.address), work, "meshd-rules"))
        wait_port(rpc)
        admin = Admin(admin_address)
        result: dict[str, Any] = {"pushes_per_source": pushes, "push_to_applied_ms": _push_latencies(
            work, admin, zk_client, pushes)}
        result["under_load"] = _big_push_under_load(admin, rpc, rules, seconds)
        worst = max(v["p99"] for v in result["push_to_applied_ms"].values())
        result["targets"] = {"push_to_applied_p99_ms": 50.0, "load_errors": 0, "loop_lag_max_ms": 5.0}
        under = result["under_load"]
        result["ok"] = worst < 50.0 and under["load_errors"] == 0 and under["loop_lag_max_ms"]["push_window"] < 5.0
        return result
    finally:
        for p in reversed(procs):
            p.close()
        zk_client.stop()
        zk_client.close()
        zk.close()


if __name__ == "__main__":
    from bench.harness import workdir
    print(json.dumps(run(workdir(), pushes=30), indent=2))
