"""Nacos scenario: 2,000 Dubbo services × 10 instances in the project's Nacos test server (``integration.nacos``,
in this process), read by one ``meshd run`` through the official client (``services: all``, ``naming: dubbo``).

Measured: time from starting meshd until every cluster holds its 10 endpoints (``GET /clusters/{name}`` of a
sample, then the whole ``/clusters`` once), meshd's RSS then, and the latency of one change (an instance
registered in a random service) until meshd shows it, over ``changes`` changes. Targets (issue 17): full
sync < 20 s, one change routable < 200 ms p99, RSS < 300 MB.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from pathlib import Path
from typing import Any

from bench.harness import meshd_proc, rss_bytes
from integration.nacos.server import BlockingNacosServer
from integration.ports import free_port


def _interface(i: int) -> str:
    return f"org.example.bench.Service{i:04d}"


def _service(i: int) -> str:
    return f"providers:{_interface(i)}:1.0.0:"


def _metadata(i: int, port: int) -> dict[str, str]:
    """What Dubbo's NacosRegistry copies into an instance: the provider URL's parameters."""
    return {"interface": _interface(i), "version": "1.0.0", "side": "provider", "dubbo": "2.0.2",
            "application": "bench", "methods": "sayHello", "protocol": "dubbo", "weight": "100",
            "timestamp": str(1_700_000_000_000 + port)}


class Admin:
    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, bytes]:
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except OSError:
                self.conn = None
        return 0, b""

    def endpoints(self, cluster: str) -> list[str]:
        status, body = self.get(f"/clusters/{cluster}")
        return [e["address"] for e in json.loads(body)["endpoints"]] if status == 200 else []


def _stats(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"n": len(ms), "p50": round(ms[len(ms) // 2], 2),
            "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max": round(ms[-1], 2)}


def run(work: Path, services: int = 2000, instances: int = 10, changes: int = 50) -> dict[str, Any]:
    server = BlockingNacosServer().start()
    proc = None
    try:
        for i in range(services):
            for j in range(instances):
                port = 30000 + j
                server.register(_service(i), "127.0.0.1", port, metadata=_metadata(i, port))
        admin_address = f"127.0.0.1:{free_port()}"
        config = {"admin": {"address": admin_address}, "access_log": {"path": None},
                  "discovery": [{"type": "nacos", "name": "nacos", "server_addresses": server.server_addr,
                                 "services": "all", "naming": "dubbo", "sync_timeout": "60s",
                                 "snapshot_path": str(work / "nacos-snapshot.json")}]}
        started = time.monotonic()
        proc = meshd_proc(config, work, "meshd-nacos")
        admin = Admin(admin_address)
        sample = [_interface(i) for i in range(0, services, max(1, services // 50))] + [_interface(services - 1)]
        deadline = started + 120
        while any(len(admin.endpoints(c)) < instances for c in sample):
            if time.monotonic() > deadline:
                raise RuntimeError("meshd did not sync the Nacos services within 120 s")
            time.sleep(0.05)
        status, body = admin.get("/clusters")
        clusters = [c for c in json.loads(body)["clusters"]] if status == 200 else []
        while sum(1 for c in clusters if len(c["endpoints"]) == instances) < services:
            if time.monotonic() > deadline:
                raise RuntimeError("meshd did not sync every Nacos service within 120 s")
            time.sleep(0.2)
            clusters = json.loads(admin.get("/clusters")[1])["clusters"]
        full_s = time.monotonic() - started
        rss_mb = rss_bytes(proc.pid) / 2 ** 20
        del clusters, body
        rng = random.Random(7)
        latencies = []
        for k in range(changes):
            i = rng.randrange(services)
            port = 40000 + k
            t0 = time.monotonic()
            server.register(_service(i), "127.0.0.1", port, metadata=_metadata(i, port))
            while f"127.0.0.1:{port}" not in admin.endpoints(_interface(i)):
                if time.monotonic() - t0 > 10:
                    raise RuntimeError(f"instance :{port} of {_service(i)} not in meshd within 10 s")
                time.sleep(0.001)
            latencies.append((time.monotonic() - t0) * 1000)
        change = _stats(latencies)
        result = {"services": services, "instances_per_service": instances, "full_sync_s": round(full_s, 2),
                  "rss_after_sync_mb": round(rss_mb, 1), "change_visible_ms": change,
                  "rss_at_end_mb": round(rss_bytes(proc.pid) / 2 ** 20, 1),
                  "targets": {"full_sync_s": 20.0, "change_p99_ms": 200.0, "rss_mb": 300.0}}
        result["ok"] = full_s < 20.0 and change["p99"] < 200.0 and rss_mb < 300.0
        return result
    finally:
        if proc is not None:
            proc.close()
        server.close()


if __name__ == "__main__":
    from bench.harness import workdir
    print(json.dumps(run(workdir()), indent=2))
