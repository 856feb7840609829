"""Subset routing + retry policy vs plain routing (HTTP), same backends, same run, interleaved.

Two meshd processes on the proxy core: one routes plainly to a two-endpoint cluster; the other routes
with ``metadata_match: {version: v1}`` (subset index lookup, one of the two endpoints) and a retry policy
(``5xx,reset,connect-failure``, 2 retries, per-try timeout) that never fires. Target: ≥ 0.9 × plain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness import (LOAD_CPU, PY, ROOT, Proc, Target, ensure_tools, interleave, meshd_proc,
                           pinned, run_builtin_http, run_wrk, wait_port)
from integration.ports import free_port


def _config(port: int, backends: list[int], subset: bool) -> dict:
    route: dict[str, Any] = {"cluster": "backend"}
    if subset:
        route["metadata_match"] = {"version": "v1"}
        route["retry_policy"] = {"retry_on": "5xx,reset,connect-failure", "num_retries": 2,
                                 "per_try_timeout": "1s"}
    return {
        "admin": {"address": f"127.0.0.1:{free_port()}"},
        "access_log": {"path": None},
        "listeners": [{"name": "bench", "address": f"127.0.0.1:{port}", "protocol": "http", "route_config": "r"}],
        "route_configs": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": route}]}]}],
        "clusters": [{"name": "backend", "subset": {"selectors": [["version"]]},
                      "endpoints": [{"address": f"127.0.0.1:{backends[0]}", "metadata": {"version": "v1"}},
                                    {"address": f"127.0.0.1:{backends[1]}", "metadata": {"version": "v1"}}]}],
    }


def run(work: Path, rounds: int = 5, seconds: float = 5.0, connections: int = 50) -> dict[str, Any]:
    tools = ensure_tools({"wrk": "wrk"})
    load = run_wrk if tools["wrk"] else run_builtin_http
    procs: list[Proc] = []
    try:
        backends = []
        for i in range(2):
            port = free_port()
            procs.append(Proc(f"backend{i}", pinned(LOAD_CPU, [PY, "-m", "integration.servers.http_backend",
                                                               "--port", str(port), "--body", "hello"]), work,
                              env={"PYTHONPATH": str(ROOT)}))
            wait_port(port)
            backends.append(port)
        targets = []
        for name, subset in (("plain", False), ("subset_and_retry", True)):
            port = free_port()
            proc = meshd_proc(_config(port, backends, subset), work, f"meshd-{name}")
            procs.append(proc)
            wait_port(port)
            targets.append(Target(name, port, proc.pid))
        interleave(targets, rounds, lambda t: load(t.port, connections, seconds),
                   warm=lambda t: load(t.port, connections, 1.0))
        by = {t.name: t.summary() for t in targets}
        return {"connections": connections, "rounds": rounds, "seconds_per_round": seconds, "targets": by,
                "ratios": {"subset_and_retry/plain": round(by["subset_and_retry"]["rps"] / by["plain"]["rps"], 3)}}
    finally:
        for p in reversed(procs):
            p.close()
