"""HTTP/1.1 scenario: direct vs meshd vs nginx vs haproxy, 50 keep-alive connections.

One fast local backend (integration.servers.http_backend with a fixed 5-byte body, pinned with the load
generator). Proxies run one worker on the proxy core with upstream keep-alive and no access log; meshd
also runs as shipped, with its access log (to a file: ``meshd_access_log``). Then a
latency probe at half of meshd's peak: wrk with a per-connection delay (closed loop with think time, the
connection count calibrated to offer that rate), through meshd and direct, reporting p99 added latency.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from bench.harness import (LOAD_CPU, PROXY_CPU, PY, ROOT, Proc, Target, ensure_tools, interleave,
                           meshd_proc, pinned, run_builtin_http, run_wrk, wait_port)
from integration.ports import free_port


def _meshd_config(port: int, backend: int, admin: int, access_log: str | None = None) -> dict:
    return {
        "admin": {"address": f"127.0.0.1:{admin}"},
        "access_log": {"path": access_log},
        "listeners": [{"name": "bench", "address": f"127.0.0.1:{port}", "protocol": "http", "route_config": "r"}],
        "route_configs": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]}],
        "clusters": [{"name": "backend", "endpoints": [{"address": f"127.0.0.1:{backend}"}]}],
    }


def _nginx(work: Path, port: int, backend: int) -> Proc:
    conf = work / "nginx.conf"
    conf.write_text(textwrap.dedent(f"""
        worker_processes 1;
        daemon off;
        pid {work}/nginx.pid;
        error_log {work}/nginx-error.log;
        events {{ worker_connections 4096; }}
        http {{
          access_log off;
          upstream b {{ server 127.0.0.1:{backend}; keepalive 128; }}
          server {{
            listen 127.0.0.1:{port};
            location / {{ proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; }}
          }}
        }}"""))
    return Proc("nginx", pinned(PROXY_CPU, ["nginx", "-c", str(conf), "-p", str(work)]), work)


def _haproxy(work: Path, port: int, backend: int) -> Proc:
    conf = work / "haproxy.cfg"
    conf.write_text(textwrap.dedent(f"""
        global
          nbthread 1
          maxconn 4096
        defaults
          mode http
          timeout connect 5s
          timeout client 30s
          timeout server 30s
          http-reuse always
        frontend f
          bind 127.0.0.1:{port}
          default_backend b
        backend b
          server s1 127.0.0.1:{backend}
        """))
    return Proc("haproxy", pinned(PROXY_CPU, ["haproxy", "-f", str(conf), "-db"]), work)


def run(work: Path, rounds: int = 5, seconds: float = 5.0, connections: int = 50) -> dict[str, Any]:
    tools = ensure_tools({"wrk": "wrk", "nginx": "nginx-light", "haproxy": "haproxy"})
    load = run_wrk if tools["wrk"] else run_builtin_http
    procs: list[Proc] = []
    try:
        backend_port = free_port()
        procs.append(Proc("backend", pinned(LOAD_CPU, [PY, "-m", "integration.servers.http_backend", "--port",
                                                       str(backend_port), "--body", "hello"]), work,
                          env={"PYTHONPATH": str(ROOT)}))
        wait_port(backend_port)
        targets = [Target("direct", backend_port)]
        mport = free_port()
        meshd = meshd_proc(_meshd_config(mport, backend_port, free_port()), work)
        procs.append(meshd)
        wait_port(mport)
        targets.append(Target("meshd", mport, meshd.pid))
        # the shipped default logs every request (to stdout); here to a file, as a user would keep it
        lport = free_port()
        logged = meshd_proc(_meshd_config(lport, backend_port, free_port(), str(work / "access.log")), work,
                            name="meshd_access_log")
        procs.append(logged)
        wait_port(lport)
        targets.append(Target("meshd_access_log", lport, logged.pid))
        for name, starter in (("nginx", _nginx), ("haproxy", _haproxy)):
            if tools[name]:
                port = free_port()
                proc = starter(work, port, backend_port)
                procs.append(proc)
                wait_port(port)
                targets.append(Target(name, port, proc.worker_pid()))
        interleave(targets, rounds, lambda t: load(t.port, connections, seconds),
                   warm=lambda t: load(t.port, connections, 1.0))
        result: dict[str, Any] = {"load_generator": "wrk" if tools["wrk"] else "builtin",
                                  "connections": connections, "rounds": rounds, "seconds_per_round": seconds,
                                  "targets": {t.name: t.summary() for t in targets}}
        result["latency_at_half_peak"] = _latency_probe(work, targets, load, connections, seconds, tools["wrk"])
        by = result["targets"]
        result["ratios"] = {k: round(by["meshd"]["rps"] / by[b]["rps"], 3)
                            for k, b in (("meshd/direct", "direct"), ("meshd/nginx", "nginx"),
                                         ("meshd/haproxy", "haproxy")) if b in by}
        result["ratios"]["meshd_access_log/meshd"] = round(by["meshd_access_log"]["rps"] / by["meshd"]["rps"], 3)
        return result
    finally:
        for p in reversed(procs):
            p.close()


def _latency_probe(work: Path, targets: list[Target], load, connections: int, seconds: float,
                   have_wrk: bool) -> dict[str, Any]:
    """p99 through meshd vs direct at about half of meshd's peak rate: a closed loop with think time
    (wrk's delay(), whole milliseconds), its connection count calibrated on meshd to offer that rate."""
    if not have_wrk:
        return {"skipped": "needs wrk for rate-limited load"}
    by = {t.name: t for t in targets}
    target = by["meshd"].median().rps / 2
    delay_ms = 2
    script = work / "delay.lua"
    script.write_text(f"function delay() return {delay_ms} end\n")
    conns = max(1, round(target * (delay_ms + 0.3) / 1000))
    calibration = run_wrk(by["meshd"].port, conns, 2, script=str(script))
    conns = max(1, min(connections * 4, round(conns * target / max(calibration.rps, 1.0))))
    out: dict[str, Any] = {"target_rps": round(target), "think_time_ms": delay_ms, "connections": conns}
    for name in ("direct", "meshd"):
        rounds = [run_wrk(by[name].port, conns, seconds, script=str(script)) for _ in range(3)]
        m = sorted(rounds, key=lambda r: r.p99_ms)[1]
        out[name] = {"rps": round(m.rps), "p50_ms": round(m.p50_ms, 3), "p99_ms": round(m.p99_ms, 3)}
    out["p99_added_ms"] = round(out["meshd"]["p99_ms"] - out["direct"]["p99_ms"], 3)
    return out


if __name__ == "__main__":
    from bench.harness import workdir
    print(json.dumps(run(workdir(), rounds=3, seconds=3), indent=2))
