"""An anthunder (PyPI 0.8.1) Bolt provider that publishes through the SOFA mesh API, as an anthunder app does.

    python anthunder_provider.py --port P [--interface com.example.pb.GreeterPb:1.0] [--app anthunder-provider]
                                 [--zone Z] [--data-center DC] [--server-id ID] [--verbose]

Runs with the ``anthunder`` peer's interpreter (``integration.peers.start_python("anthunder", ...)``).
anthunder's own code does the talking, on its fixed mesh address: ``AioListener`` posts
``/configs/application`` to 127.0.0.1:13330 when it is built, ``publish()`` posts ``/services/publish``
with ``providerMetaInfo.protocol: "1"``, ``unpublish()`` posts ``/services/unpublish``. The service answers
``hello`` (protobuf ``HelloRequest`` -> ``HelloResult``, see ``anthunder_pb.py``) with its ``--server-id``.

JSON lines on stdout: ``{"event": "listening", "port": P}`` once Bolt is served, then ``{"event":
"published", "interface": ...}``; with ``--verbose`` ``{"event": "request", "name", "n"}`` per call. Commands on
stdin, one per line: ``unpublish`` and ``publish`` (answered by ``unpublished`` / ``published``) and ``exit``
(also at end of input). A failure prints ``{"event": "error", "error": ...}`` and exits 1: anthunder swallows a
failed ``/configs/application`` (its publish then does nothing), which is reported here instead.
"""

import argparse
import itertools
import json
import logging
import os
import socket
import sys
import time

from anthunder import AioListener, BaseService
from anthunder.command.heartbeat import HeartbeatRequest

from anthunder_pb import INTERFACE, HelloRequest, HelloResult


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def fail(message: str) -> None:
    emit("error", error=message)
    os._exit(1)


def greeter(server_id: str, verbose: bool) -> type:
    class Greeter(BaseService):
        def hello(self, body: bytes) -> bytes:
            request = HelloRequest()
            request.ParseFromString(body)
            if verbose:
                emit("request", name=request.name, n=request.n)
            return HelloResult(result=f"hello {request.name}", server=server_id, n=request.n).SerializeToString()
    return Greeter


def wait_listening(port: int, timeout: float = 10.0) -> None:
    """Until the listener answers a Bolt heartbeat (anthunder's own), as its tests probe it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as probe:
                probe.sendall(HeartbeatRequest.new_request().to_stream())
                if probe.recv(1024):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    fail(f"the anthunder listener did not answer a heartbeat on 127.0.0.1:{port} within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default=INTERFACE)
    parser.add_argument("--app", default="anthunder-provider")
    parser.add_argument("--zone", default="")
    parser.add_argument("--data-center", default="")
    parser.add_argument("--server-id", default="anthunder")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    listener = AioListener(("127.0.0.1", args.port), args.app, data_center=args.data_center, zone=args.zone)
    if listener._mesh_client is None:     # anthunder logged "Fail to startup mesh client" and carries on
        fail("anthunder could not post /configs/application to the mesh at 127.0.0.1:13330")
    listener.handler.register_interface(args.interface, greeter(args.server_id, args.verbose))
    listener.run_threading()
    wait_listening(args.port)
    emit("listening", port=args.port)
    commands = {"publish": listener.publish, "unpublish": listener.unpublish}
    for command in itertools.chain(["publish"], sys.stdin):   # stdin read line by line, as commands come
        command = command.strip()
        if command == "exit":
            break
        if command not in commands:
            emit("error", error=f"unknown command {command!r} (publish, unpublish, exit)")
            continue
        try:
            commands[command]()
        except Exception as exc:  # noqa: BLE001 - what anthunder raised is the answer
            fail(f"{command}: {type(exc).__name__}: {exc}")
        emit(command + "ed", interface=args.interface)
    listener.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
