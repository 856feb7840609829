"""An anthunder (PyPI 0.8.1) Bolt consumer that subscribes through the SOFA mesh API and calls through the mesh.

    python anthunder_consumer.py [--interface com.example.pb.GreeterPb:1.0] [--app anthunder-consumer]
                                 [--name anthunder] [--count 5] [--timeout-ms 3000] [--unsubscribe]

Runs with the ``anthunder`` peer's interpreter (``integration.peers.run_python("anthunder", ...)``).
anthunder's own code does the talking: ``AioClient`` posts ``/configs/application`` to 127.0.0.1:13330 when
it is built, ``subscribe()`` posts ``/services/subscribe``, and every ``invoke_sync`` goes to the mesh's Bolt
port 127.0.0.1:12220 (``_BaseClient.mesh_service_address``) with a protobuf body (codec 11) and Java-shaped
SOFA headers (``service``, ``sofa_head_target_service``, ``sofa_head_method_name``, ``rpc_trace_context.*``).
Call ``i`` sends ``HelloRequest(name=f"{name}-{i}", n=i)``.

JSON lines on stdout: ``{"event": "subscribed"}``, one ``{"event": "result", "i", "ok", "value" | "error"}`` per
call (``value``: the ``HelloResult`` fields), ``{"event": "unsubscribed"}`` with ``--unsubscribe``, and last
``{"event": "summary", "count", "ok", "errors"}``. anthunder only logs a failed subscribe or call; its log
lines are collected and a failure is reported with them. Exit status 0 when the script ran (calls may
have failed), 1 when the mesh refused the application or the subscription.
"""

import argparse
import json
import logging
import os
import sys

import anthunder
from anthunder import AioClient
from mytracer import SpanContext

from anthunder_pb import INTERFACE, METHOD, HelloRequest, HelloResult


class Collect(logging.Handler):
    """anthunder's warnings and errors, the only place it reports a refused subscription or call."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")

    def since(self, mark: int) -> str:
        return " | ".join(self.messages[mark:])[-1500:]


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def fail(message: str) -> None:
    emit("error", error=message)
    os._exit(1)


def call(client: AioClient, args: argparse.Namespace, i: int, log: Collect) -> dict:
    mark = len(log.messages)
    body = HelloRequest(name=f"{args.name}-{i}", n=i).SerializeToString()
    try:
        content = client.invoke_sync(args.interface, METHOD, body, spanctx=SpanContext(), timeout_ms=args.timeout_ms)
    except Exception as exc:  # noqa: BLE001 - anthunder raises whatever its loop left behind
        return {"i": i, "ok": False, "error": f"{type(exc).__name__}: {exc}; logged: {log.since(mark)}"}
    result = HelloResult()
    result.ParseFromString(content)
    return {"i": i, "ok": True, "value": {"result": result.result, "server": result.server, "n": result.n}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interface", default=INTERFACE)
    parser.add_argument("--app", default="anthunder-consumer")
    parser.add_argument("--name", default="anthunder")
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--timeout-ms", type=int, default=3000)
    parser.add_argument("--unsubscribe", action="store_true")
    args = parser.parse_args()
    log = Collect()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger().addHandler(log)

    client = AioClient(args.app)
    if client._mesh_client is None:      # anthunder logged "Fail to startup mesh client" and carries on
        fail(f"anthunder could not post /configs/application to the mesh at 127.0.0.1:13330: {log.since(0)}")
    mark = len(log.messages)
    client.subscribe(args.interface)
    if args.interface not in anthunder.SERVICE_MAP:   # set only when the mesh answered success
        fail(f"subscribe {args.interface} failed: {log.since(mark)}")
    emit("subscribed", interface=args.interface, address=list(anthunder.SERVICE_MAP[args.interface]))
    ok = 0
    for i in range(args.count):
        result = call(client, args, i, log)
        ok += result["ok"]
        emit("result", **result)
    if args.unsubscribe:
        mark = len(log.messages)
        client.unsubscribe(args.interface)
        if args.interface in anthunder.SERVICE_MAP:
            fail(f"unsubscribe {args.interface} failed: {log.since(mark)}")
        emit("unsubscribed", interface=args.interface)
    emit("summary", count=args.count, ok=ok, errors=args.count - ok)
    os._exit(0)


if __name__ == "__main__":
    main()
