"""RPC scenarios: pipelined Dubbo and Bolt load (DEPTH requests in flight per connection).

Targets in one invocation, interleaved: direct to a fast frame-aware responder; through meshd's plain
``tcp`` listener (a uvloop byte relay, no parsing: the ceiling a Python L7 proxy can approach); through
meshd's ``dubbo``/``bolt`` listener; and through that listener with governance on (a flow rule, a
breaker and an isolation rule on the method, none of which trips). Reports req/s, p50/p99, proxy CPU
per request, and the ratios meshd/relay and governance-on/off.
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
    out = subprocess.run(pinned(LOAD_CPU, [PY, str(ROOT / "bench" / "loadgen.py"), "frames", str(port),
                                           str(connections), str(seconds), str(depth), frame.hex(), protocol]),
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
        for port in (plain["rpc"], plain["relay"], gov_ports["rpc"], floor_port):
            wait_port(port)
        targets += [Target("byte_relay", plain["relay"], m.pid), Target("python_mux_floor", floor_port, f.pid),
                    Target("meshd", plain["rpc"], m.pid), Target("meshd_governance", gov_ports["rpc"], g.pid)]
        interleave(targets, rounds, lambda t: _load(t.port, protocol, frame, connections, depth, seconds),
                   warm=lambda t: _load(t.port, protocol, frame, connections, depth, 1.0))
        by = {t.name: t.summary() for t in targets}
        return {"protocol": protocol, "connections": connections, "in_flight_per_connection": depth,
                "rounds": rounds, "seconds_per_round": seconds, "request_bytes": len(frame), "targets": by,
                "ratios": {"meshd/byte_relay": round(by["meshd"]["rps"] / by["byte_relay"]["rps"], 3),
                           "python_mux_floor/byte_relay": round(by["python_mux_floor"]["rps"] / by["byte_relay"]["rps"],
                                                                3),
                           "meshd/python_mux_floor": round(by["meshd"]["rps"] / by["python_mux_floor"]["rps"], 3),
                           "meshd/direct": round(by["meshd"]["rps"] / by["direct"]["rps"], 3),
                           "governance_on/off": round(by["meshd_governance"]["rps"] / by["meshd"]["rps"], 3)}}
    finally:
        for p in reversed(procs):
            p.close()


if __name__ == "__main__":
    import sys
    from bench.harness import workdir
    print(json.dumps(run(workdir(), sys.argv[1] if len(sys.argv) > 1 else "dubbo", rounds=3, seconds=3), indent=2))
