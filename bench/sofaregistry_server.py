"""The session server of the ``sofaregistry`` scenario, in a process of its own (so that its CPU is not meshd's
and meshd's RSS is meshd's alone): ``python -m bench.sofaregistry_server SERVICES PUBLISHERS``.

It starts :class:`integration.sofaregistry.server.BlockingSessionServer` on 127.0.0.1 and a free port, holding
``SERVICES`` data ids × ``PUBLISHERS`` publishers of no connection (what other machines published), each with the
provider string SOFARPC writes (:func:`discovery.sofaregistry.data.provider_string`) and an address of its own,
then prints one JSON line ``{"port", "data_ids", "publishers", "setup_s"}``.

Then it reads one JSON command a line on stdin and answers one JSON line on stdout:

- ``{"op": "add", "i": service, "regist_id": id, "address": "ip:port"}`` → ``{"t": monotonic}``: a publisher
  added to the ``i``-th data id (and pushed to its subscribers);
- ``{"op": "remove", "i": service, "regist_id": id}`` → ``{"t": monotonic}``;
- ``{"op": "stats"}`` → subscribers, pushes sent, pushes not answered ``Result{success=true}``, the process's
  CPU seconds.

``t`` is ``time.monotonic()`` on the server's loop just before the change (CLOCK_MONOTONIC: one clock for every
process of the machine), so the bench times a change from the server's change, not from its own command. EOF on
stdin closes the server.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from discovery.sofa_params import SOFA_RPC_VERSION
from discovery.sofaregistry.data import Service, provider_string

APP = "bench-provider"
START_MS = 1_700_000_000_000


def interface(i: int) -> str:
    return f"com.example.bench.Service{i:04d}"


def unique_name(i: int) -> str:
    return f"{interface(i)}:1.0"


def data_id(i: int) -> str:
    return Service.parse(unique_name(i)).data_id


def address(n: int, port: int = 12200) -> str:
    """The ``n``-th distinct provider address (10.0.0.0/8)."""
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}:{port}"


def regist_id(i: int, j: int) -> str:
    return f"bench-{i}-{j}"


def initial_address(i: int, j: int, publishers: int) -> str:
    return address(1 + i * publishers + j)


def provider(i: int, addr: str) -> str:
    """What SOFARPC's ``SofaRegistryHelper#convertProviderToUrls`` writes for a bolt provider of service ``i``."""
    return provider_string(addr, Service.parse(unique_name(i)), app=APP, weight=100, serialization="hessian2",
                           timeout=3000, start_ms=START_MS, rpc_version=SOFA_RPC_VERSION,
                           parameters={"pid": "4242", "language": "java", "host": addr.split(":")[0]})


def _cpu_seconds() -> float:
    import os
    t = os.times()
    return t.user + t.system


def _command(server: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    op = cmd.get("op")
    if op == "add":
        i, rid, addr = int(cmd["i"]), str(cmd["regist_id"]), str(cmd["address"])
        text = provider(i, addr)

        def add(s: Any) -> float:
            t = time.monotonic()
            s.add_publisher(data_id(i), [text], regist_id=rid)
            return t
        return {"t": server.call(add)}
    if op == "remove":
        i, rid = int(cmd["i"]), str(cmd["regist_id"])

        def remove(s: Any) -> float:
            t = time.monotonic()
            s.remove_publisher(data_id(i), rid)
            return t
        return {"t": server.call(remove)}
    if op == "stats":
        def stats(s: Any) -> dict[str, Any]:
            failed = sum(1 for _, _, a in s.push_results if not (hasattr(a, "get") and a.get("success")))
            return {"subscribers": len(s.subscribers), "pushes": len(s.push_results), "failed_pushes": failed}
        return {**server.call(stats), "cpu_s": round(_cpu_seconds(), 2)}
    return {"error": f"unknown op {op!r}"}


def main(argv: list[str]) -> int:
    from integration.sofaregistry.server import BlockingSessionServer
    services, publishers = int(argv[0]), int(argv[1])
    t0 = time.monotonic()
    server = BlockingSessionServer().start()

    def populate(s: Any) -> int:
        for i in range(services):
            for j in range(publishers):
                s.add_publisher(data_id(i), [provider(i, initial_address(i, j, publishers))],
                                regist_id=regist_id(i, j))
        return len(s.data)
    try:
        count = server.call(populate, timeout=300)
        print(json.dumps({"port": server.server.port, "data_ids": count, "publishers": publishers,
                          "setup_s": round(time.monotonic() - t0, 2)}), flush=True)
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(_command(server, json.loads(line))), flush=True)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
