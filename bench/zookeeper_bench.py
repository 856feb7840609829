"""Benchmark: ZooKeeper discovery at scale (2,000 services x 10 providers) against a real ZooKeeper 3.8.

1. Write the tree (Java-style Dubbo provider URLs, ``/dubbo/{iface}/providers/...``) with pipelined kazoo
   transactions, one per service.
2. Start a :class:`ZooKeeperSource` with ``services: all`` and time its first full sync (every provider in
   the model).
3. Change one provider at a time (create, then delete, in random services) and time each change until
   the model publishes the diff (a model subscriber timestamps it): p50 / p99 / max.
4. Process memory: RSS before the source started and after the sync (the delta is the source + model).
5. A real ``meshd run`` (one dubbo listener, a ``zookeeper`` discovery source watching ``all``): time from
   spawn to ``/ready`` (ready = synced: ``sync_timeout`` is longer than the wait), its RSS then (the issue's
   "meshd memory" is this number: the cluster runtimes, subset indexes and pools' bookkeeping come on top of
   the model), the endpoints it reports, and the time from one provider change to the new endpoint being
   *routable*: a provider node with a fresh version is created in a random service while a client calls that
   version through meshd (status 20 only once meshd routes to it; a scriptable provider answers).

Targets: full sync < 20 s, one change < 200 ms p99, memory (meshd RSS after sync) < 300 MB. ``run()``
returns a dict; ``python bench/zookeeper_bench.py`` prints it as JSON. Needs the Debian ``zookeeper`` package.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parents[1]
try:
    from discovery.model import ClusterModel
    from discovery.zookeeper import ZooKeeperSource
    from integration.zookeeper import ZooKeeperServer
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(ROOT))
    from discovery.model import ClusterModel
    from discovery.zookeeper import ZooKeeperSource
    from integration.zookeeper import ZooKeeperServer

import yaml
from kazoo.client import KazooClient

from integration.ports import free_port
from integration.process import LoopThread
from integration.servers.rpc_provider import RpcProvider
from meshd.codec import dubbo
from meshd.codec.base import NEED_DATA

TARGETS = {"full_sync_s": 20.0, "change_p99_ms": 200.0, "rss_delta_mb": 300.0, "meshd_rss_mb": 300.0}
CHROOT = "/bench"
MESHD_SYNC_WAIT = 150.0


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def provider_url(iface: str, host: str, port: int, timestamp: int) -> str:
    params = {
        "anyhost": "true", "application": f"app-{iface.rsplit('.', 1)[1]}", "deprecated": "false", "dubbo": "2.0.2",
        "dynamic": "true", "generic": "false", "interface": iface, "methods": "sayHello,sayBye,query,update",
        "pid": "4242", "release": "2.7.23", "revision": "1.0.0", "side": "provider", "timestamp": str(timestamp),
        "version": "1.0.0", "group": "g1", "weight": "100", "serialization": "hessian2", "timeout": "3000",
    }
    return f"dubbo://{host}:{port}/{iface}?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))


def node(iface: str, host: str, port: int = 20880) -> str:
    return f"/dubbo/{iface}/providers/" + quote_plus(provider_url(iface, host, port, 1_600_000_000_000), safe="")


def write_tree(client: KazooClient, services: int, providers: int, window: int = 64) -> float:
    """Create every service's directories and providers, one transaction per service, ``window`` in flight."""
    start = time.perf_counter()
    client.ensure_path("/dubbo")
    pending = []
    for s in range(services):
        iface = f"org.example.bench.Service{s:04d}"
        txn = client.transaction()
        txn.create(f"/dubbo/{iface}")
        txn.create(f"/dubbo/{iface}/providers")
        for p in range(providers):
            txn.create(node(iface, f"10.{s // 250}.{s % 250}.{p + 1}"))
        pending.append(txn.commit_async())
        if len(pending) >= window:
            _check(pending.pop(0).get(timeout=60))
    for result in pending:
        _check(result.get(timeout=60))
    return time.perf_counter() - start


def _check(results) -> None:
    failures = [r for r in results if isinstance(r, Exception)]
    if failures:
        raise RuntimeError(f"writing the tree failed: {failures[0]!r}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def measure(server: ZooKeeperServer, writer: KazooClient, services: int, providers: int, changes: int,
                  snapshot: str | None) -> dict:
    gc.collect()
    rss_before = rss_mb()
    model = ClusterModel()
    source = ZooKeeperSource("zk", server.address, chroot=CHROOT, services="all", session_timeout=30,
                             sync_timeout=60, snapshot_path=snapshot)
    start = time.perf_counter()
    await source.start(model)
    if not await source.wait_synced(120):
        raise RuntimeError(f"no full sync within 120 s: {source.status()}")
    full_sync = time.perf_counter() - start
    gc.collect()
    rss_after = rss_mb()
    latencies = await measure_changes(model, writer, services, changes)
    watches = source.status()["watches"]
    await source.stop()
    return {
        "endpoints": sum(len(c.endpoints) for c in model.clusters().values()), "clusters": len(model.clusters()),
        "full_sync_s": round(full_sync, 3),
        "change_ms": {"n": len(latencies), "p50": round(statistics.median(latencies), 2),
                      "p99": round(percentile(latencies, 0.99), 2), "max": round(max(latencies), 2)},
        "rss_before_mb": round(rss_before, 1), "rss_after_sync_mb": round(rss_after, 1),
        "rss_delta_mb": round(rss_after - rss_before, 1), "watches": watches,
        "snapshot_bytes": os.path.getsize(snapshot) if snapshot and os.path.exists(snapshot) else 0,
    }


async def measure_changes(model: ClusterModel, writer: KazooClient, services: int, changes: int) -> list[float]:
    """Milliseconds from each provider create/delete to the model's diff (``changes`` of each)."""
    # The subscriber timestamps the diff; the measuring coroutine waits on an event rather than polling, so
    # that it does not hold the GIL against kazoo's threads (polling adds ~4 ms per thread hop).
    seen: dict[str, float] = {}
    arrived = asyncio.Event()
    watched = [""]

    def on_diff(diff) -> None:
        for endpoint in diff.added + diff.removed:
            seen.setdefault(endpoint.address, time.perf_counter())
            if endpoint.address == watched[0]:
                arrived.set()

    model.subscribe(on_diff)
    rng = random.Random(7)
    latencies = []
    for i in range(changes):
        iface = f"org.example.bench.Service{rng.randrange(services):04d}"
        address = f"10.255.{i // 250}.{i % 250 + 1}"
        path = node(iface, address, 20999)
        for action in (writer.create_async, writer.delete_async):   # one create, then its delete
            watched[0] = f"{address}:20999"
            seen.pop(watched[0], None)
            arrived.clear()
            t0 = time.perf_counter()
            action(path)
            await asyncio.wait_for(arrived.wait(), 10)
            latencies.append((seen[watched[0]] - t0) * 1000)
    return latencies


# -- a real meshd process ----------------------------------------------------------------------------
def http_get(address: str, path: str, timeout: float = 60.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


class DubboClient:
    """One Dubbo connection making one call at a time (meshd's own codec)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.decoder = dubbo.DubboDecoder()
        self.rid = 0

    def status(self, service: str, version: str, group: str) -> int:
        self.rid += 1
        self.sock.sendall(dubbo.encode_request(self.rid, service, "sayHello", ["bench"],
                                               param_types=["java.lang.String"], version=version,
                                               attachments={"group": group}))
        while True:
            ev = self.decoder.next_event()
            if ev is NEED_DATA:
                self.decoder.receive_data(self.sock.recv(65536))
            elif isinstance(ev, dubbo.DubboResponse) and ev.request_id == self.rid:
                return ev.status

    def close(self) -> None:
        self.sock.close()


def start_meshd(server: ZooKeeperServer, workdir: Path) -> tuple[subprocess.Popen, str, int]:
    """``meshd run`` watching every service of the bench tree; returns (process, admin address, dubbo port)."""
    admin, port = f"127.0.0.1:{free_port()}", free_port()
    config = {
        "admin": {"address": admin}, "access_log": {"path": None},
        "listeners": [{"name": "dubbo", "address": f"127.0.0.1:{port}", "protocol": "dubbo"}],
        "discovery": [{"type": "zookeeper", "name": "zk", "servers": server.address, "chroot": CHROOT,
                       "services": "all", "session_timeout": "30s", "sync_timeout": f"{MESHD_SYNC_WAIT + 30:.0f}s",
                       "snapshot_path": str(workdir / "meshd-snapshot.json")}],
    }
    path = workdir / "meshd.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = open(workdir / "meshd.log", "ab")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "meshd", "run", "-c", str(path), "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    log.close()
    return proc, admin, port


def wait_ready(proc: subprocess.Popen, admin: str, workdir: Path) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < MESHD_SYNC_WAIT:
        if proc.poll() is not None:
            raise RuntimeError(f"meshd exited with {proc.returncode}: {(workdir / 'meshd.log').read_text()[-2000:]}")
        if http_get(admin, "/ready", timeout=5)[0] == 200:
            return time.perf_counter() - start
        time.sleep(0.05)
    raise RuntimeError(f"meshd not ready (synced) within {MESHD_SYNC_WAIT} s")


def routable_latencies(writer: KazooClient, provider: RpcProvider, port: int, services: int,
                       changes: int) -> list[float]:
    """Milliseconds from creating a provider node (a fresh version in a random service) until a call for that
    version through meshd succeeds; each node is deleted again afterwards."""
    client = DubboClient(port)
    rng = random.Random(11)
    latencies = []
    try:
        for i in range(changes):
            iface = f"org.example.bench.Service{rng.randrange(services):04d}"
            version = f"routable-{i}"
            url = provider_url(iface, provider.host, provider.port, int(time.time() * 1000)).replace(
                "version=1.0.0", f"version={version}")
            path = f"/dubbo/{iface}/providers/" + quote_plus(url, safe="")
            t0 = time.perf_counter()
            writer.create(path, b"", ephemeral=True)
            while client.status(iface, version, "g1") != 20:     # the bench providers' group
                if time.perf_counter() - t0 > 10:
                    raise RuntimeError(f"{iface} version {version} not routable within 10 s")
                time.sleep(0.0005)
            latencies.append((time.perf_counter() - t0) * 1000)
            writer.delete(path)
    finally:
        client.close()
    return latencies


def measure_meshd(server: ZooKeeperServer, writer: KazooClient, services: int, changes: int,
                  workdir: Path) -> dict:
    proc, admin, port = start_meshd(server, workdir)
    loop = LoopThread()
    try:
        ready_s = wait_ready(proc, admin, workdir)
        rss_ready = rss_mb(proc.pid)
        status, body = http_get(admin, "/clusters", timeout=120)
        if status != 200:
            raise RuntimeError(f"/clusters answered {status}")
        dump = json.loads(body)
        counted = {"clusters": len(dump["clusters"]),
                   "endpoints": sum(len(c["endpoints"]) for c in dump["clusters"])}
        del dump, body
        provider = loop.run(RpcProvider("dubbo", "bench").start())
        latencies = routable_latencies(writer, provider, port, services, changes)
        loop.run(provider.stop())
        rss_end = rss_mb(proc.pid)
    finally:
        loop.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return {
        "ready_s": round(ready_s, 3), "rss_after_sync_mb": round(rss_ready, 1), **counted,
        "change_to_routable_ms": {"n": len(latencies), "p50": round(statistics.median(latencies), 2),
                                  "p99": round(percentile(latencies, 0.99), 2), "max": round(max(latencies), 2)},
        "rss_at_end_mb": round(rss_end, 1),
    }


def run(services: int = 2000, providers: int = 10, changes: int = 50) -> dict:
    reason = ZooKeeperServer.available()
    if reason:
        return {"skipped": reason}
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
    with ZooKeeperServer() as server, tempfile.TemporaryDirectory() as tmp:
        admin = KazooClient(server.address)
        admin.start(timeout=30)
        admin.ensure_path(CHROOT)
        admin.stop()
        admin.close()
        writer = KazooClient(server.hosts(CHROOT), timeout=30)
        writer.start(timeout=30)
        try:
            write_s = write_tree(writer, services, providers)
            result = runner(measure(server, writer, services, providers, changes, f"{tmp}/zk-snapshot.json"))
            result["meshd"] = measure_meshd(server, writer, services, max(10, changes // 2), Path(tmp))
        finally:
            writer.stop()
            writer.close()
    result = {"services": services, "providers_per_service": providers, "write_tree_s": round(write_s, 2),
              **result, "targets": TARGETS}
    meshd = result["meshd"]
    result["ok"] = (result["full_sync_s"] < TARGETS["full_sync_s"] and result["change_ms"]["p99"] <
                    TARGETS["change_p99_ms"] and result["rss_delta_mb"] < TARGETS["rss_delta_mb"] and
                    meshd["ready_s"] < TARGETS["full_sync_s"] and meshd["change_to_routable_ms"]["p99"] <
                    TARGETS["change_p99_ms"] and meshd["rss_after_sync_mb"] < TARGETS["meshd_rss_mb"] and
                    meshd["endpoints"] == result["endpoints"] == services * providers)
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
