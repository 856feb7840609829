"""xDS scenario: 5,000 EDS clusters × 20 endpoints pushed to one ``meshd run`` over ADS (the project's test
control plane, ``integration.xds``, in this process).

Measured: time from starting meshd to its ACK of the full EDS state (every cluster's endpoints applied to the
model: meshd ACKs a response only after applying it), meshd's RSS then, and the latency of one EDS change
(one cluster's endpoint moved) to meshd's ACK of it, over ``changes`` changes (p50/p99/max). Targets: full
apply < 10 s, one change < 100 ms p99, RSS < 500 MB.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.harness import meshd_proc, rss_bytes, wait_port
from integration.ports import free_port
from integration.xds import istio
from integration.xds.snapshot import CLUSTER, ENDPOINT
from integration.xds.threaded import AdsServerThread


def _names(clusters: int) -> list[str]:
    return [istio.cluster_name("outbound", 8080, "", f"svc{i}.default.svc.cluster.local") for i in range(clusters)]


def _assignment(name: str, base_port: int, endpoints: int) -> Any:
    eps = [istio.lb_endpoint("127.0.0.1", base_port + j, workload=f"w{j};default;{name};v1;Kubernetes")
           for j in range(endpoints)]
    return istio.load_assignment(name, istio.locality(eps, "r1", "z1", "s1"))


def _stats(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"n": len(ms), "p50": round(ms[len(ms) // 2], 2),
            "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max": round(ms[-1], 2)}


def run(work: Path, clusters: int = 5000, endpoints: int = 20, changes: int = 100) -> dict[str, Any]:
    names = _names(clusters)
    server = AdsServerThread().start()
    proc = None
    try:
        build_started = time.monotonic()
        server.apply(upsert=[istio.eds_cluster(n) for n in names] +
                     [_assignment(n, 20000 + (i % 1000), endpoints) for i, n in enumerate(names)])
        build_s = time.monotonic() - build_started
        eds_version = server.version(ENDPOINT)
        admin = f"127.0.0.1:{free_port()}"
        config = {"admin": {"address": admin}, "access_log": {"path": None},
                  "discovery": [{"type": "xds", "name": "istio", "server": server.address,
                                 "initial_fetch_timeout": "60s", "node": {"id": istio.sidecar_node_id()}}]}
        started = time.monotonic()
        proc = meshd_proc(config, work, "meshd-xds")
        server.wait_ack(CLUSTER, server.version(CLUSTER), timeout=120)
        cds_s = time.monotonic() - started
        server.wait_ack(ENDPOINT, eds_version, timeout=120)
        full_s = time.monotonic() - started
        wait_port(int(admin.rsplit(":", 1)[1]))
        rss_mb = rss_bytes(proc.pid) / 2 ** 20
        latencies = []
        for k in range(changes):
            name = names[(k * 37) % clusters]
            changed = server.upsert(_assignment(name, 30000 + k, endpoints))
            t0 = time.monotonic()
            server.wait_ack(ENDPOINT, changed[ENDPOINT], timeout=30)
            latencies.append((time.monotonic() - t0) * 1000)
        change = _stats(latencies)
        result = {"clusters": clusters, "endpoints_per_cluster": endpoints, "snapshot_build_s": round(build_s, 2),
                  "cds_acked_s": round(cds_s, 2), "full_apply_s": round(full_s, 2), "rss_after_full_mb": round(rss_mb, 1),
                  "eds_change_to_ack_ms": change, "rss_at_end_mb": round(rss_bytes(proc.pid) / 2 ** 20, 1),
                  "targets": {"full_apply_s": 10.0, "change_p99_ms": 100.0, "rss_mb": 500.0}}
        result["ok"] = full_s < 10.0 and change["p99"] < 100.0 and rss_mb < 500.0
        return result
    finally:
        if proc is not None:
            proc.close()
        server.close()


if __name__ == "__main__":
    from bench.harness import workdir
    print(json.dumps(run(workdir()), indent=2))
