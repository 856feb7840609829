"""Python cost of one proxied Dubbo (or Bolt) request without sockets: the real RpcDownstream, routing,
balancing, MuxConnection and response path on fake transports, BATCH requests per read (pipelining).
Reports µs per request (median of rounds). ``python -m bench.microbench_rpc [dubbo|bolt] [--governance]``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import uvloop

from bench.rpc_scenario import IFACE, _request
from integration.transport import FakeTransport
from meshd.codec import bolt, dubbo
from meshd.config import build_config


async def measure(protocol: str = "dubbo", governance: bool = False, n: int = 20000, rounds: int = 5,
                  batch: int = 8) -> dict:
    from meshd.app import Meshd
    from meshd.upstream.mux import MuxConnection, MuxPool
    config = {
        "admin": {"address": "127.0.0.1:0"}, "access_log": {"path": None},
        "listeners": [{"name": "rpc", "address": "127.0.0.1:0", "protocol": protocol}],
        "clusters": [{"name": IFACE, "endpoints": [{"address": "127.0.0.1:9"}]}],
    }
    if governance:
        method = f"{IFACE}:sayHello"
        config["governance"] = {"flow": [{"resource": method, "threshold": 1e12}],
                                "circuit_breaker": [{"resource": method, "strategy": 1, "threshold": 0.9,
                                                     "minRequestAmount": 100, "statIntervalMs": 1000,
                                                     "retryTimeoutMs": 1000}],
                                "isolation": [{"resource": method, "threshold": 100000}]}
    app = Meshd(build_config(config))
    await app.start()
    ctx = app.listeners[0].ctx
    cluster = app.clusters.get(IFACE)
    host = cluster.hosts["127.0.0.1:9"]
    from meshd.proxy.rpc_protocols import ADAPTERS
    adapter = ADAPTERS[protocol]
    pool = host.pools[protocol] = MuxPool(host, cluster, adapter)
    up = MuxConnection(pool)
    up_t = FakeTransport()
    up.connection_made(up_t)
    pool.conns.append(up)
    from meshd.proxy.rpc import RpcDownstream
    down = RpcDownstream(ctx, adapter)
    down_t = FakeTransport()
    down.connection_made(down_t)
    request = bytearray(_request(protocol))
    reply = bytearray(dubbo.encode_response(0, "hello bench") if protocol == "dubbo" else
                      bolt.encode_response(0, "hello bench"))
    patch = adapter.patch_id
    per_request = []
    for _ in range(rounds):
        t0 = time.process_time()
        for i in range(n // batch):
            frames = []
            for j in range(batch):
                patch(request, i * batch + j + 1)
                frames.append(bytes(request))
            down.data_received(b"".join(frames))
            # the provider answers the ids meshd assigned, in one read
            replies = []
            for uid in list(up.inflight):
                patch(reply, uid)
                replies.append(bytes(reply))
            up.data_received(b"".join(replies))
        per_request.append((time.process_time() - t0) / n * 1e6)
        assert not up.inflight and down_t.out, "every request answered"
        down_t.out.clear()
        up_t.out.clear()
    await app.stop()
    return {"protocol": protocol, "governance": governance, "batch": batch,
            "us_per_request": round(statistics.median(per_request), 2), "rounds": [round(x, 2) for x in per_request]}


if __name__ == "__main__":
    proto = next((a for a in sys.argv[1:] if a in ("dubbo", "bolt")), "dubbo")
    print(json.dumps(uvloop.run(measure(proto, "--governance" in sys.argv))))
