"""SOFARegistry scenario (the issue's benchmark): 2,000 data ids × 10 publishers in the project's test session
server, read by one ``meshd run`` whose ``sofaregistry`` source subscribes to all 2,000 services.

The session server runs in a child process (``bench.sofaregistry_server``, pinned to the load CPU) so that
neither its CPU nor its memory is meshd's; meshd is pinned to the proxy CPU as in every scenario.

Measured:

- ``ready_s``: meshd's spawn until ``GET /ready`` answers 200 (``sync_timeout`` is longer than the wait, so ready
  means synced: every subscribed data id had a push applied);
- ``full_sync_s``: spawn until every cluster was seen with all its endpoints, checked one ``GET /clusters/{name}``
  at a time after ``/ready`` (the whole ``/clusters`` document, 20,000 endpoints, would inflate meshd's RSS);
  this includes the check itself and is the number held against the target;
- ``change_routable_ms``: one change at a time, ``gap`` apart (a publisher added to, or removed from, a random
  data id; the source's debounced snapshot writes, all 2,000 data ids, fall among them), from the server's
  change (its ``time.monotonic()``, one clock for every process) until ``GET /clusters/{name}`` shows the
  endpoint as a healthy host of positive weight (added) or no longer shows it (removed): the host set the
  balancer picks from. ``poll_ms`` is the cost of one such poll, the resolution of the measure;
- meshd's RSS (``VmRSS``) at ready, after the check, at the end; its CPU seconds until ready and in all.

Targets (the issue): full sync < 20 s, one change routable < 200 ms p99, RSS < 300 MB.
"""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import sofaregistry_server as srv
from bench.harness import LOAD_CPU, PY, ROOT, cpu_seconds, meshd_proc, pinned, rss_bytes
from integration.ports import free_port

TARGETS = {"full_sync_s": 20.0, "change_p99_ms": 200.0, "rss_mb": 300.0}


class Admin:
    """meshd's admin API on one keep-alive connection."""

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

    def routable(self, cluster: str) -> set[str]:
        """The addresses of the cluster's hosts the balancer may pick (healthy, positive weight)."""
        status, body = self.get(f"/clusters/{cluster}")
        if status != 200:
            return set()
        return {e["address"] for e in json.loads(body)["endpoints"] if e["healthy"] and e["weight"] > 0}


class ServerProcess:
    """``python -m bench.sofaregistry_server`` as a child: one JSON command a line in, one answer a line out."""

    def __init__(self, work: Path, services: int, publishers: int) -> None:
        self.log = work / "sofaregistry-server.log"
        with open(self.log, "wb") as log:
            self.p = subprocess.Popen(pinned(LOAD_CPU, [PY, "-m", "bench.sofaregistry_server", str(services),
                                                        str(publishers)]),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=ROOT,
                                      text=True, bufsize=1, start_new_session=True)
        self.info = self._answer()

    def _answer(self) -> dict[str, Any]:
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"the session server process exited: see {self.log}")
        return json.loads(line)

    def send(self, **cmd: Any) -> dict[str, Any]:
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        return self._answer()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.info['port']}"

    def close(self) -> None:
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
                self.p.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait(5)


def _stats(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"n": len(ms), "p50": round(ms[len(ms) // 2], 2),
            "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max": round(ms[-1], 2)}


def _mb(pid: int) -> float:
    return round(rss_bytes(pid) / 2 ** 20, 1)


def _wait_ready(admin: Admin, deadline: float) -> None:
    while admin.get("/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"meshd not ready by the deadline: {admin.get('/ready')[1][:2000]!r}")
        time.sleep(0.05)


def _check_all(admin: Admin, services: int, publishers: int, deadline: float) -> int:
    """Every cluster holds its ``publishers`` endpoints (one cluster at a time; missing ones polled again); how
    many did not on the first pass."""
    missing, first = list(range(services)), None
    while missing:
        missing = [i for i in missing if len(admin.routable(srv.interface(i))) < publishers]
        first = len(missing) if first is None else first
        if missing and time.monotonic() > deadline:
            raise RuntimeError(f"{len(missing)} clusters incomplete, e.g. {srv.interface(missing[0])}")
        if missing:
            time.sleep(0.1)
    return first or 0


def _changes(server: ServerProcess, admin: Admin, services: int, publishers: int, changes: int,
             gap: float) -> dict[str, Any]:
    """Alternately add a publisher to a random data id and remove a random publisher of another one, ``gap``
    seconds apart (so that the source's debounced snapshot writes, 1 s after a change, fall among them)."""
    rng = random.Random(7)
    pubs = {i: {srv.regist_id(i, j): srv.initial_address(i, j, publishers) for j in range(publishers)}
            for i in range(services)}
    latencies: dict[str, list[float]] = {"add": [], "remove": []}
    polls: list[float] = []
    for k in range(changes):
        time.sleep(gap)
        i = rng.randrange(services)
        if k % 2 == 0:
            kind, rid, addr = "add", f"bench-extra-{k}", srv.address(0xFF0000 + k, 12201)
            pubs[i][rid] = addr
            t0 = server.send(op="add", i=i, regist_id=rid, address=addr)["t"]
        else:
            kind, rid = "remove", rng.choice(sorted(pubs[i]))
            addr = pubs[i].pop(rid)
            t0 = server.send(op="remove", i=i, regist_id=rid)["t"]
        while True:
            p0 = time.monotonic()
            present = addr in admin.routable(srv.interface(i))
            now = time.monotonic()
            polls.append((now - p0) * 1000)
            if present == (kind == "add"):
                break
            if now - t0 > 10:
                raise RuntimeError(f"{kind} of {addr} in {srv.data_id(i)} not seen by meshd within 10 s")
            time.sleep(0.001)
        latencies[kind].append((now - t0) * 1000)
    return {"change_routable_ms": _stats(latencies["add"] + latencies["remove"]),
            "add_ms": _stats(latencies["add"]), "remove_ms": _stats(latencies["remove"]), "poll_ms": _stats(polls)}


def run(work: Path, services: int = 2000, publishers: int = 10, changes: int = 200,
        gap: float = 0.02) -> dict[str, Any]:
    server = ServerProcess(work, services, publishers)
    proc = None
    try:
        admin_address = f"127.0.0.1:{free_port()}"
        config = {"admin": {"address": admin_address}, "access_log": {"path": None},
                  "discovery": [{"type": "sofaregistry", "name": "sofaregistry", "servers": server.address,
                                 "app": "meshd-bench", "services": [srv.unique_name(i) for i in range(services)],
                                 "sync_timeout": "120s", "snapshot_path": str(work / "sofaregistry-snapshot.json")}]}
        started = time.monotonic()
        proc = meshd_proc(config, work, "meshd-sofaregistry")
        admin = Admin(admin_address)
        deadline = started + 120
        _wait_ready(admin, deadline)
        ready_s = time.monotonic() - started
        rss_ready, cpu_ready = _mb(proc.pid), cpu_seconds(proc.pid)
        incomplete = _check_all(admin, services, publishers, deadline)
        full_s = time.monotonic() - started
        rss_sync = _mb(proc.pid)
        result: dict[str, Any] = {
            "data_ids": services, "publishers_per_data_id": publishers, "server_setup_s": server.info["setup_s"],
            "ready_s": round(ready_s, 2), "full_sync_s": round(full_s, 2), "incomplete_at_ready": incomplete,
            "meshd_cpu_to_ready_s": round(cpu_ready, 2), "rss_at_ready_mb": rss_ready, "rss_after_sync_mb": rss_sync,
            "change_gap_ms": round(gap * 1000)}
        result.update(_changes(server, admin, services, publishers, changes, gap))
        result.update({"rss_at_end_mb": _mb(proc.pid), "meshd_cpu_s": round(cpu_seconds(proc.pid), 2),
                       "server": server.send(op="stats"), "targets": TARGETS})
        rss_max = max(rss_ready, rss_sync, result["rss_at_end_mb"])
        result["met"] = {"full_sync_s": full_s < TARGETS["full_sync_s"],
                         "change_p99_ms": result["change_routable_ms"]["p99"] < TARGETS["change_p99_ms"],
                         "rss_mb": rss_max < TARGETS["rss_mb"]}
        result["ok"] = all(result["met"].values())
        return result
    finally:
        if proc is not None:
            proc.close()
        server.close()


if __name__ == "__main__":
    from bench.harness import workdir
    print(json.dumps(run(workdir()), indent=2))
