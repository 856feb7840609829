"""RPC scenarios: pipelined Dubbo and Bolt load (DEPTH requests in flight per connection).

Targets in one invocation, interleaved: direct to a fast frame-aware responder; through meshd's plain
``tcp`` listener (a uvloop byte relay, no parsing: the ceiling a Python L7 proxy can approach); through
meshd's ``dubbo``/``bolt`` listener; and through that listener with governance on (a flow rule, a
breaker and an isolation rule on the method, none of which trips). Reports req/s, p50/p99, proxy CPU
per request, and the ratios meshd/relay and governance-on/off.

Production-shaped targets (issue 18), in the same interleaving: the request a Java caller sends (Dubbo 2.7:
``timeout``, ``remote.application`` and a per-request ``traceparent`` attachment; SOFARPC: the Java header
map with a ``sofaTraceId`` unique per request), to an interface with two providers of version 1.0.0 and
one of 2.0.0 (which must never be reached), through a route with a timeout and a retry policy, the access
log to a file; ``production`` with a flow and an error-ratio breaker rule on both resources,
``production_rules_off`` without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness import (LOAD_CPU, PROXY_CPU, PY, ROOT, Proc, Round, Target, interleave, meshd_proc, pinned,
                           wait_port)
from integration.ports import free_port
from meshd.codec import bolt, dubbo

IFACE = "org.example.BenchService"


def _request(protocol: str) -> bytes:
    if protocol == "dubbo":
        return dubbo.encode_request(1, IFACE, "sayHello", ["world", 7], param_types=["java.lang.String", "int"],
                                    version="1.0.0", attachments={"application": "bench"})
    return bolt.encode_request(1, f"{IFACE}:1.0", "sayHello", ["world", 7], arg_types=["java.lang.String", "int"],
                               method_header=False)


TRACE = "0" * 24                      # the per-request trace id's digits; the load generator rewrites them


def _production_request(protocol: str) -> bytes:
    if protocol == "dubbo":
        return dubbo.encode_request(1, IFACE, "sayHello", ["world", 7], param_types=["java.lang.String", "int"],
                                    version="1.0.0", attachments={
                                        "path": IFACE, "interface": IFACE, "version": "1.0.0", "application": "shop",
                                        "remote.application": "shop", "timeout": "3000",
                                        "traceparent": f"00-{TRACE}00000000-00f067aa0ba902b7-01"})
    return bolt.encode_request(1, f"{IFACE}:1.0", "sayHello", ["world", 7], arg_types=["java.lang.String", "int"],
                               method_header=True, timeout=3000, headers={
                                   "sofa_head_target_service": f"{IFACE}:1.0", "sofa_head_target_app": "bench",
                                   "rpc_trace_context.sofaTraceId": f"0a0fe8{TRACE}",
                                   "rpc_trace_context.sofaRpcId": "0", "rpc_trace_context.sofaCallerApp": "shop",
                                   "rpc_trace_context.sofaCallerIp": "127.0.0.1",
                                   "rpc_trace_context.sofaPenAttrs": "", "rpc_trace_context.sysPenAttrs": ""})


def _production_config(protocol: str, backends: list[int], port: int, rules: bool, log: Path) -> dict:
    v1, v2 = ("1.0.0", "2.0.0") if protocol == "dubbo" else ("1.0", "2.0")   # Bolt: the service's version
    cfg: dict[str, Any] = {
        "admin": {"address": f"127.0.0.1:{free_port()}"},
        "access_log": {"path": str(log)},
        "listeners": [{"name": "rpc", "address": f"127.0.0.1:{port}", "protocol": protocol, "route_config": "r"}],
        "route_configs": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {}, "route": {"cluster": IFACE, "timeout": "3s", "retry_policy": {
                "retry_on": "connect-failure,reset,overloaded", "num_retries": 2}}}]}]}],
        "clusters": [{"name": IFACE, "connections_per_endpoint": 1,
                      "circuit_breakers": {"max_requests": 100000, "max_pending_requests": 100000},
                      "endpoints": [{"address": f"127.0.0.1:{b}", "metadata": {"version": v}}
                                    for b, v in zip(backends, (v1, v1, v2))]}],
    }
    if rules:
        resources = (IFACE, f"{IFACE}:sayHello")
        cfg["governance"] = {
            "flow": [{"resource": r, "threshold": 10_000_000} for r in resources],
            "circuit_breaker": [{"resource": r, "strategy": 1, "threshold": 0.9, "minRequestAmount": 100,
                                 "statIntervalMs": 1000, "retryTimeoutMs": 1000} for r in resources]}
    return cfg


def _meshd_config(protocol: str, backend: int, ports: dict[str, int], governance: bool) -> dict:
    cfg: dict[str, Any] = {
        "admin": {"address": f"127.0.0.1:{free_port()}"},
        "access_log": {"path": None},
        "listeners": [{"name": "rpc", "address": f"127.0.0.1:{ports['rpc']}", "protocol": protocol}],
        "clusters": [{"name": IFACE, "endpoints": [{"address": f"127.0.0.1:{backend}"}],
                      "connections_per_endpoint": 2,
                      "circuit_breakers": {"max_requests": 100000, "max_pending_requests": 100000}}],
    }
    if ports.get("relay"):
        cfg["listeners"].append({"name": "relay", "address": f"127.0.0.1:{ports['relay']}", "protocol": "tcp",
                                 "cluster": IFACE})
    if governance:
        method = f"{IFACE}:sayHello"
        cfg["governance"] = {
            "flow": [{"resource": method, "threshold": 10_000_000}],
            "circuit_breaker": [{"resource": method, "strategy": 1, "threshold": 0.9, "minRequestAmount": 100,
                                 "statIntervalMs": 1000, "retryTimeoutMs": 1000}],
            "isolation": [{"resource": method, "threshold": 100000}],
        }
    return cfg


def _load(port: int, protocol: str, frame: bytes, connections: int, depth: int, seconds: float) -> Round:
    import subprocess
    trace = frame.find(TRACE.encode())
    extra = [str(trace), str(len(TRACE))] if trace >= 0 else []
    out = subprocess.run(pinned(LOAD_CPU, [PY, str(ROOT / "bench" / "loadgen.py"), "frames", str(port),
                                           str(connections), str(seconds), str(depth), frame.hex(), protocol,
                                           *extra]),
                         capture_output=True, text=True, timeout=seconds + 60, env={"PYTHONPATH": str(ROOT)})
    d = json.loads(out.stdout.strip().splitlines()[-1])
    return Round(d["requests"], d["seconds"], d["rps"], d["p50_ms"], d["p99_ms"], d["errors"])


def run(work: Path, protocol: str = "dubbo", rounds: int = 5, seconds: float = 5.0, connections: int = 8,
        depth: int = 8) -> dict[str, Any]:
    procs: list[Proc] = []
    frame = _request(protocol)
    try:
        backend_port = free_port()
        procs.append(Proc(f"{protocol}-server", pinned(LOAD_CPU, [PY, str(ROOT / "bench" / "fast_rpc_server.py"),
                                                                  protocol, str(backend_port)]), work,
                          env={"PYTHONPATH": str(ROOT)}))
        wait_port(backend_port)
        targets = [Target("direct", backend_port)]
        plain = {"rpc": free_port(), "relay": free_port()}
        m = meshd_proc(_meshd_config(protocol, backend_port, plain, False), work, f"meshd-{protocol}")
        procs.append(m)
        gov_ports = {"rpc": free_port()}
        g = meshd_proc(_meshd_config(protocol, backend_port, gov_ports, True), work, f"meshd-{protocol}-gov")
        procs.append(g)
        floor_port = free_port()
        f = Proc(f"{protocol}-python-mux-floor", pinned(PROXY_CPU, [PY, str(ROOT / "bench" / "python_mux_floor.py"),
                                                                   protocol, str(floor_port), str(backend_port)]),
                 work, env={"PYTHONPATH": str(ROOT)})
        procs.append(f)
        prod_backends = [free_port() for _ in range(3)]
        for i, port in enumerate(prod_backends):
            procs.append(Proc(f"{protocol}-server-{i}", pinned(LOAD_CPU, [
                PY, str(ROOT / "bench" / "fast_rpc_server.py"), protocol, str(port)]), work,
                env={"PYTHONPATH": str(ROOT)}))
            wait_port(port)
        prod: dict[str, tuple[int, dict]] = {}
        for name, rules in (("production", True), ("production_rules_off", False)):
            port = free_port()
            cfg = _production_config(protocol, prod_backends, port, rules, work / f"{name}-{protocol}-access.log")
            prod[name] = (port, cfg)
            procs.append(meshd_proc(cfg, work, f"meshd-{protocol}-{name}"))
        for port in (plain["rpc"], plain["relay"], gov_ports["rpc"], floor_port, *(p for p, _ in prod.values())):
            wait_port(port)
        targets += [Target("byte_relay", plain["relay"], m.pid), Target("python_mux_floor", floor_port, f.pid),
                    Target("meshd", plain["rpc"], m.pid), Target("meshd_governance", gov_ports["rpc"], g.pid)]
        targets += [Target(name, port, procs[-2 + i].pid) for i, (name, (port, _)) in enumerate(prod.items())]
        prod_frame = _production_request(protocol)
        frames = {name: prod_frame for name in prod}
        interleave(targets, rounds,
                   lambda t: _load(t.port, protocol, frames.get(t.name, frame), connections, depth, seconds),
                   warm=lambda t: _load(t.port, protocol, frames.get(t.name, frame), connections, depth, 1.0))
        by = {t.name: t.summary() for t in targets}
        for name, (_, cfg) in prod.items():
            by[name]["providers"] = _provider_requests(cfg)
            by[name]["paths"] = _paths(cfg)
        relay = by["byte_relay"]["rps"]
        return {"protocol": protocol, "connections": connections, "in_flight_per_connection": depth,
                "rounds": rounds, "seconds_per_round": seconds, "request_bytes": len(frame),
                "production_request_bytes": len(prod_frame), "targets": by,
                "ratios": {"meshd/byte_relay": round(by["meshd"]["rps"] / relay, 3),
                           "python_mux_floor/byte_relay": round(by["python_mux_floor"]["rps"] / relay, 3),
                           "meshd/python_mux_floor": round(by["meshd"]["rps"] / by["python_mux_floor"]["rps"], 3),
                           "meshd/direct": round(by["meshd"]["rps"] / by["direct"]["rps"], 3),
                           "governance_on/off": round(by["meshd_governance"]["rps"] / by["meshd"]["rps"], 3),
                           "production/byte_relay": round(by["production"]["rps"] / relay, 3),
                           "production_rules_off/byte_relay": round(by["production_rules_off"]["rps"] / relay, 3),
                           "production_rules_on/off": round(by["production"]["rps"] /
                                                            by["production_rules_off"]["rps"], 3)}}
    finally:
        for p in reversed(procs):
            p.close()


def _admin(cfg: dict, path: str) -> str:
    import urllib.request
    with urllib.request.urlopen(f"http://{cfg['admin']['address']}{path}", timeout=10) as r:
        return r.read().decode()


def _provider_requests(cfg: dict) -> dict[str, int]:
    """Requests each provider answered, by its version: the 2.0.0 provider must have none."""
    cluster = json.loads(_admin(cfg, f"/clusters/{IFACE}"))
    out: dict[str, int] = {}
    for ep in cluster["endpoints"]:
        key = f"{ep['address']} v{ep.get('version') or ep.get('metadata', {}).get('version')}"
        out[key] = ep["stats"]["requests"]
    return out


def _paths(cfg: dict) -> dict[str, float]:
    import re
    found = re.findall(r'meshd_rpc_requests_total{listener="rpc",path="(\w+)"} ([0-9.e+]+)',
                       _admin(cfg, "/stats/prometheus"))
    return {path: float(n) for path, n in found}


if __name__ == "__main__":
    import sys
    from bench.harness import workdir
    print(json.dumps(run(workdir(), sys.argv[1] if len(sys.argv) > 1 else "dubbo", rounds=3, seconds=3), indent=2))
