"""The trivial test service of the xDS tests, both sides: real backends, and the grpcio client process.

Contract:
- The service has one generic unary method, :data:`METHOD` (``/meshd.xds.test.Echo/Who``): raw bytes in
  (ignored), the answering backend's name (UTF-8) out. No protobuf schema is needed, so grpcio and grpc-js
  call it with identity (de)serializers, and a response says which backend the client's LB picked.
- :class:`NameBackend` serves it with ``grpc.aio`` on ``127.0.0.1:<free port>``; :attr:`NameBackend.calls`
  counts the calls it answered. :func:`start_backends` / :func:`stop_backends` run several on a
  :class:`~integration.process.LoopThread`; backends live on the loop they were started on.
- ``python -m integration.xds.echo xds:///<listener>`` is the proxyless-xDS **grpcio** client process
  (``GRPC_XDS_BOOTSTRAP(_CONFIG)`` in its environment: process-wide in grpc, hence a process of its own),
  scripted over stdin/stdout JSON lines exactly like ``integration/peers/xds_client.js`` and driven by
  :mod:`integration.xds.clients`:

  - on start it opens one channel and prints ``{"event": "ready", "client": "grpcio", "version": ...}``;
  - ``{"id": I, "cmd": "call", "n": N, "timeout": S, "metadata": {k: v}}`` makes N sequential calls (each
    with its own S-second deadline) and prints ``{"id": I, "event": "calls", "counts": {backend: n},
    "errors": {STATUS: n}, "error": first message}``;
  - ``{"cmd": "exit"}`` (or end of input) closes the channel and exits 0.

  The channel lives as long as the process, so config pushes are observed by one xDS client.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

import grpc

from integration.ports import LOOPBACK
from integration.process import LoopThread

SERVICE = "meshd.xds.test.Echo"
METHOD = f"/{SERVICE}/Who"


class NameBackend:
    """A gRPC server answering :data:`METHOD` with ``name``; see the module docstring."""

    def __init__(self, name: str, host: str = LOOPBACK) -> None:
        self.name = name
        self.host = host
        self.port = 0
        self.calls = 0
        self._server: grpc.aio.Server | None = None

    def __repr__(self) -> str:
        return f"<NameBackend {self.name} {self.host}:{self.port} calls={self.calls}>"

    async def _who(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        return self.name.encode()

    async def start(self) -> "NameBackend":
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "Who": grpc.unary_unary_rpc_method_handler(self._who)})  # raw bytes in and out
        server.add_generic_rpc_handlers((handler,))
        self.port = server.add_insecure_port(f"{self.host}:0")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=None)


def start_backends(loop: LoopThread, names: Iterable[str]) -> dict[str, NameBackend]:
    """Start one backend per name on ``loop``; ``{name: backend}``."""
    backends = {name: NameBackend(name) for name in names}
    for backend in backends.values():
        loop.run(backend.start(), timeout=10)
    return backends


def stop_backends(loop: LoopThread, backends: Iterable[Any]) -> None:
    for backend in backends:
        loop.run(backend.stop(), timeout=10)


# ----------------------------------------------------------------------- the grpcio client process
def _calls(stub: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    errors: dict[str, int] = {}
    first_error = ""
    metadata = tuple((k, str(v)) for k, v in (cmd.get("metadata") or {}).items())
    for _ in range(int(cmd.get("n", 1))):
        try:
            name = stub(b"", timeout=float(cmd.get("timeout", 2.0)), metadata=metadata).decode()
            counts[name] = counts.get(name, 0) + 1
        except grpc.RpcError as exc:
            code = exc.code().name if exc.code() else "UNKNOWN"
            errors[code] = errors.get(code, 0) + 1
            first_error = first_error or f"{code}: {exc.details()}"
    return {"id": cmd.get("id"), "event": "calls", "counts": counts, "errors": errors, "error": first_error}


def main(argv: list[str]) -> int:
    target = argv[1]
    channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])  # loopback only
    stub = channel.unary_unary(METHOD)
    print(json.dumps({"event": "ready", "client": "grpcio", "version": grpc.__version__}), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd.get("cmd") == "exit":
                break
            if cmd.get("cmd") == "call":
                print(json.dumps(_calls(stub, cmd)), flush=True)
            else:
                print(json.dumps({"id": cmd.get("id"), "event": "error", "error": f"unknown command {cmd!r}"}),
                      flush=True)
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
