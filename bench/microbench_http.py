"""Python cost of one proxied HTTP request, without sockets: the real protocol classes on fake transports.

Drives HttpDownstream → routing → HttpPool → UpstreamHttpConnection → response back, N times on one
keep-alive connection, and reports µs per request (median of rounds). Kernel time is excluded on
purpose: this is the number the hot-path optimisations move. Run: ``python -m bench.microbench_http``.
"""

from __future__ import annotations

import json
import statistics
import time

import uvloop

from integration.transport import FakeTransport
from meshd import writebatch
from meshd.config import build_config
from meshd.proxy.http import HttpDownstream
from meshd.upstream.http import UpstreamHttpConnection

REQUEST = b"GET /hello HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"


async def measure(n: int = 20000, rounds: int = 5, subset_retry: bool = False) -> dict:
    from meshd.app import Meshd
    route: dict = {"cluster": "b"}
    if subset_retry:
        route.update(metadata_match={"version": "v1"},
                     retry_policy={"retry_on": "5xx,reset", "num_retries": 2, "per_try_timeout": "1s"})
    config = build_config({
        "admin": {"address": "127.0.0.1:0"}, "access_log": {"path": None},
        "listeners": [{"name": "h", "address": "127.0.0.1:0", "protocol": "http", "route_config": "r"}],
        "route_configs": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": route}]}]}],
        "clusters": [{"name": "b", "subset": {"selectors": [["version"]]},
                      "endpoints": [{"address": "127.0.0.1:9", "metadata": {"version": "v1"}}]}],
    })
    app = Meshd(config)
    await app.start()
    ctx = app.listeners[0].ctx
    host = app.clusters.get("b").hosts["127.0.0.1:9"]
    from meshd.upstream.http import HttpPool
    pool = host.pools["http"] = HttpPool(host, app.clusters.get("b"))
    up = UpstreamHttpConnection(pool)
    up_t = FakeTransport()
    up.connection_made(up_t)
    pool.state.idle.append(up)
    app.clusters.get("b").connections += 1
    down = HttpDownstream(ctx)
    down_t = FakeTransport()
    down.connection_made(down_t)
    per_request = []
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(n):
            down.data_received(REQUEST)
            writebatch.flush()                # the end of the loop iteration (writebatch.defer)
            up.data_received(RESPONSE)
            writebatch.flush()
        per_request.append((time.process_time() - t0) / n * 1e6)
        assert down_t.out[-1].endswith(b"hello") and len(up_t.out) >= n
        down_t.out.clear()
        up_t.out.clear()
    await app.stop()
    return {"us_per_request": round(statistics.median(per_request), 2), "rounds": [round(x, 2) for x in per_request]}


if __name__ == "__main__":
    import sys
    print(json.dumps(uvloop.run(measure(subset_retry="--subset-retry" in sys.argv))))
