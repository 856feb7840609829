"""Python cost of one proxied Dubbo (or Bolt) request without sockets: the real RpcDownstream, routing,
balancing, MuxConnection and response path on fake transports, BATCH requests per read (pipelining).
Reports µs per request (median of rounds) and how many requests took the common path (a plan).
``python -m bench.microbench_rpc [dubbo|bolt] [--governance] [--access-log] [--java]``: ``--access-log`` writes
the access log to a file (the shipped default writes it to stdout), ``--java`` sends a Dubbo body shaped as a
Java Dubbo 2.7 consumer sends it (``timeout``, ``remote.application`` and ``traceparent`` attachments), or
for Bolt the header map a Java SOFARPC caller sends, with a ``sofaTraceId`` unique per request.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import uvloop

from bench.rpc_scenario import IFACE, _request
from integration.transport import FakeTransport
from meshd import writebatch
from meshd.codec import bolt, dubbo
from meshd.config import build_config


def _java_request() -> bytes:
    return dubbo.encode_request(1, IFACE, "sayHello", ["world", 7], param_types=["java.lang.String", "int"],
                                version="1.0.0", attachments={
                                    "application": "bench", "remote.application": "bench", "timeout": "3000",
                                    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})


async def measure(protocol: str = "dubbo", governance: bool = False, n: int = 20000, rounds: int = 5,
                  batch: int = 8, access_log: str | None = None, java: bool = False) -> dict:
    from meshd.app import Meshd
    from meshd.upstream.mux import MuxConnection, MuxPool
    config = {
        "admin": {"address": "127.0.0.1:0"}, "access_log": {"path": access_log},
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
    if java and protocol == "bolt":           # the Java SOFARPC header map, a unique sofaTraceId per request
        from bench.rpc_scenario import TRACE, _production_request
        request = bytearray(_production_request("bolt"))
        trace_at = request.index(TRACE.encode())
    else:
        request = bytearray(_java_request() if java and protocol == "dubbo" else _request(protocol))
        trace_at = -1
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
                if trace_at >= 0:
                    request[trace_at:trace_at + 24] = b"%024d" % (i * batch + j)
                frames.append(bytes(request))
            down.data_received(b"".join(frames))
            writebatch.flush()                # the end of the loop iteration (writebatch.defer)
            # the provider answers the ids meshd assigned, in one read
            replies = []
            for uid in list(up.inflight):
                patch(reply, uid)
                replies.append(bytes(reply))
            up.data_received(b"".join(replies))
            writebatch.flush()
        per_request.append((time.process_time() - t0) / n * 1e6)
        assert not up.inflight and down_t.out, "every request answered"
        down_t.out.clear()
        up_t.out.clear()
    common, other = ctx.rpc_paths
    await app.stop()
    return {"protocol": protocol, "governance": governance, "access_log": access_log is not None,
            "java_shape": java, "batch": batch,
            "us_per_request": round(statistics.median(per_request), 2), "rounds": [round(x, 2) for x in per_request],
            "paths": {"common": common, "other": other}}


if __name__ == "__main__":
    import tempfile
    proto = next((a for a in sys.argv[1:] if a in ("dubbo", "bolt")), "dubbo")
    with tempfile.TemporaryDirectory() as tmp:
        log_path = f"{tmp}/access.log" if "--access-log" in sys.argv else None
        print(json.dumps(uvloop.run(measure(proto, "--governance" in sys.argv, access_log=log_path,
                                            java="--java" in sys.argv))))
