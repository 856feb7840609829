"""HTTPS scenario: meshd terminating TLS against nginx terminating TLS (one worker each, the proxy core, plain
upstream keep-alive to the same backend), same run, interleaved.

- keep-alive: wrk over 50 TLS connections kept open (the steady-state cost of TLS records);
- new handshakes: wrk with ``Connection: close`` (every request a new TLS 1.3 handshake, ECDSA P-256 server
  certificate, no session resumption), 50 connections: the handshake rate.

Targets (issue 20): meshd ≥ 0.6 × nginx keep-alive req/s, ≥ 0.5 × nginx new-handshake rate.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from bench.harness import LOAD_CPU, PROXY_CPU, PY, ROOT, Proc, Target, ensure_tools, interleave, meshd_proc, pinned
from bench.harness import run_wrk, wait_port
from integration.certs import TestPKI
from integration.ports import free_port


def _meshd_config(port: int, backend: int, admin: int, cert: str, key: str) -> dict:
    return {
        "admin": {"address": f"127.0.0.1:{admin}"}, "access_log": {"path": None},
        "listeners": [{"name": "bench", "address": f"127.0.0.1:{port}", "protocol": "http", "route_config": "r",
                       "tls": {"certificates": [{"cert": cert, "key": key}], "min_version": "1.3"}}],
        "route_configs": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]}],
        "clusters": [{"name": "backend", "endpoints": [{"address": f"127.0.0.1:{backend}"}]}],
    }


def _nginx(work: Path, port: int, backend: int, cert: str, key: str) -> Proc:
    conf = work / "nginx-tls.conf"
    conf.write_text(textwrap.dedent(f"""
        worker_processes 1;
        daemon off;
        pid {work}/nginx-tls.pid;
        error_log {work}/nginx-tls-error.log;
        events {{ worker_connections 4096; }}
        http {{
          access_log off;
          ssl_session_cache off;
          ssl_session_tickets off;
          upstream b {{ server 127.0.0.1:{backend}; keepalive 128; }}
          server {{
            listen 127.0.0.1:{port} ssl;
            ssl_certificate {cert};
            ssl_certificate_key {key};
            ssl_protocols TLSv1.3;
            keepalive_requests 1000000;
            location / {{ proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; }}
          }}
        }}"""))
    return Proc("nginx", pinned(PROXY_CPU, ["nginx", "-c", str(conf), "-p", str(work)]), work)


def run(work: Path, rounds: int = 5, seconds: float = 5.0, connections: int = 50) -> dict[str, Any]:
    tools = ensure_tools({"wrk": "wrk", "nginx": "nginx-light"})
    if not tools["wrk"]:
        return {"skipped": "needs wrk (Debian package wrk) for HTTPS load"}
    pki = TestPKI(work / "pki")
    leaf = pki.leaf("bench", dns=["localhost"])
    procs: list[Proc] = []
    try:
        backend_port = free_port()
        procs.append(Proc("backend", pinned(LOAD_CPU, [PY, "-m", "integration.servers.http_backend", "--port",
                                                       str(backend_port), "--body", "hello"]), work,
                          env={"PYTHONPATH": str(ROOT)}))
        wait_port(backend_port)
        mport = free_port()
        meshd = meshd_proc(_meshd_config(mport, backend_port, free_port(), leaf.cert, leaf.key), work)
        procs.append(meshd)
        wait_port(mport)
        targets = [Target("meshd", mport, meshd.pid)]
        if tools["nginx"]:
            port = free_port()
            proc = _nginx(work, port, backend_port, leaf.cert, leaf.key)
            procs.append(proc)
            wait_port(port)
            targets.append(Target("nginx", port, proc.worker_pid()))
        result: dict[str, Any] = {"connections": connections, "rounds": rounds, "seconds_per_round": seconds}
        for mode, headers in (("keepalive", ()), ("handshakes", ("Connection: close",))):
            measure = lambda t, h=headers: run_wrk(t.port, connections, seconds, scheme="https", headers=h)
            for t in targets:
                t.rounds.clear()
            interleave(targets, rounds, measure,
                       warm=lambda t, h=headers: run_wrk(t.port, connections, 1.0, scheme="https", headers=h))
            result[mode] = {t.name: t.summary() for t in targets}
        if tools["nginx"]:
            result["ratios"] = {f"meshd/nginx {m}": round(result[m]["meshd"]["rps"] / result[m]["nginx"]["rps"], 3)
                                for m in ("keepalive", "handshakes")}
        return result
    finally:
        for p in reversed(procs):
            p.close()


if __name__ == "__main__":
    from bench.harness import workdir
    print(json.dumps(run(workdir(), rounds=3, seconds=3), indent=2))
