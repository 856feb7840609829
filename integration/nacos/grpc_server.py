"""The Nacos 2.x gRPC front end (port = HTTP port + 1000) of the test server.

Wire behaviour (``alibaba/nacos:core/remote/grpc``, as nacos-sdk-python 3.2 exercises it):

- Connection ids are per TCP connection (gRPC peer ``ipv4:127.0.0.1:PORT``): the unary ``ServerCheckRequest``
  answers ``ServerCheckResponse{connectionId, supportAbilityNegotiation}``; the client then opens
  ``BiRequestStream/requestBiStream`` on the same channel and sends ``ConnectionSetupRequest``, which registers
  the connection (and, with ability negotiation on, the server answers ``SetupAckRequest{abilityTable}`` on
  the stream). Unary requests from an unregistered connection get ``ErrorResponse{errorCode: 301}``
  (except ``ServerCheckRequest``), which makes clients reconnect.
- Server pushes (``NotifySubscriberRequest``, ``ConfigChangeNotifyRequest``, ``ClientDetectionRequest``, raw
  garbage) go down the bi-stream with a fresh ``requestId``; the client's ``*Response`` on the stream with
  that ``requestId`` is the ack. Every push is recorded in :attr:`GrpcFrontend.pushes` with its ack.
- When the stream ends (client closed, channel dropped, server stopping), the connection is unregistered:
  its ephemeral instances are removed (subscribers are pushed the change), its subscriptions and config
  listeners are forgotten.

Request handling lives in :mod:`integration.nacos.handlers`; this module is transport only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator

import grpc

from integration.nacos import proto
from integration.nacos.handlers import handle_request

if TYPE_CHECKING:
    from integration.nacos.core import Core

log = logging.getLogger("integration.nacos.grpc")
#: What a 3.x server advertises in ``SetupAckRequest`` (``api/.../ability/ServerAbilities``).
SERVER_ABILITIES = {"supportPersistentInstanceByGrpc": True, "fuzzyWatch": False, "lock": False, "mcp": False}


@dataclass
class PushRecord:
    """One server push: ``acked`` is None while waiting, then True (ack seen) or False (timed out)."""

    connection_id: str
    type: str
    request_id: str
    body: dict[str, Any] | str
    acked: bool | None = None
    ack_type: str = ""
    at: float = field(default_factory=time.monotonic)


@dataclass
class GrpcConnection:
    id: str
    peer: str
    labels: dict[str, str] = field(default_factory=dict)
    client_version: str = ""
    tenant: str = ""
    outbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    waiting: dict[str, asyncio.Future[proto.Message]] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return self.labels.get("module", "")


class GrpcFrontend:
    """A ``grpc.aio`` server with generic handlers for ``Request`` and ``BiRequestStream``."""

    def __init__(self, core: "Core", *, ability_negotiation: bool = True, push_timeout: float = 3.0) -> None:
        self.core = core
        self.ability_negotiation = ability_negotiation
        self.push_timeout = push_timeout
        self.connections: dict[str, GrpcConnection] = {}
        self.pushes: list[PushRecord] = []
        self._peer_ids: dict[str, str] = {}
        self._server: grpc.aio.Server | None = None
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, port: int) -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((_Handlers(self),))
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        if bound != port:
            await server.stop(None)
            raise OSError(f"gRPC port 127.0.0.1:{port} is not free")
        await server.start()
        self._server = server

    async def stop(self, grace: float | None = 0.2) -> None:
        """Close every connection (their ephemeral instances go) and stop listening. Streams are cancelled,
        not completed: a client sees a broken stream (as when a real server dies) and reconnects — a clean
        end of the stream makes nacos-sdk-python 3.2 sit on a dead connection until its health check."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        for conn_id in list(self.connections):
            self._unregister(conn_id)
        for task in list(self._tasks):
            task.cancel()
        self._peer_ids.clear()

    # ------------------------------------------------------------------ connection ids
    def connection_id_for(self, peer: str) -> str:
        """A Nacos-style id (``<ms>_<ip>_<port>``) fixed for the life of one TCP connection."""
        if peer not in self._peer_ids:
            host_port = peer.split(":", 1)[-1]
            ip, _, port = host_port.rpartition(":")
            self._peer_ids[peer] = f"{int(time.time() * 1000)}_{ip}_{port}"
        return self._peer_ids[peer]

    def _unregister(self, conn_id: str) -> None:
        conn = self.connections.pop(conn_id, None)
        if conn is None:
            return
        for fut in conn.waiting.values():
            if not fut.done():
                fut.cancel()
        self._peer_ids = {p: i for p, i in self._peer_ids.items() if i != conn_id}
        self.core.connection_closed(f"grpc:{conn_id}")

    # ------------------------------------------------------------------ unary
    async def unary(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            msg = proto.decode(data)
        except proto.PayloadError as exc:
            return _error(500, str(exc))
        conn_id = self.connection_id_for(context.peer())
        if msg.type == "ServerCheckRequest":
            body = {"resultCode": 200, "errorCode": 0, "message": "", "requestId": msg.body.get("requestId", ""),
                    "connectionId": conn_id, "supportAbilityNegotiation": self.ability_negotiation}
            return proto.encode("ServerCheckResponse", body)
        conn = self.connections.get(conn_id)
        if conn is None:
            return _error(301, f"Connection is unregistered: {conn_id}", msg.body.get("requestId", ""))
        self.core.record_request("grpc", msg.type, msg.body, conn_id)
        resp_type, resp_body = handle_request(self.core, conn, msg)
        resp_body.setdefault("resultCode", 200)
        resp_body.setdefault("errorCode", 0)
        resp_body.setdefault("message", "")
        resp_body["requestId"] = msg.body.get("requestId", "")
        return proto.encode(resp_type, resp_body)

    # ------------------------------------------------------------------ bi-stream
    async def bi_stream(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        conn = GrpcConnection(self.connection_id_for(context.peer()), context.peer())
        reader = asyncio.ensure_future(self._read_stream(conn, requests))
        reader.add_done_callback(lambda _: conn.outbox.put_nowait(None))
        try:
            while True:
                item = await conn.outbox.get()
                if item is None:
                    break
                yield item
        finally:
            reader.cancel()
            self._unregister(conn.id)

    async def _read_stream(self, conn: GrpcConnection, requests: AsyncIterator[bytes]) -> None:
        async for data in requests:
            try:
                msg = proto.decode(data)
            except proto.PayloadError as exc:
                log.warning("bad payload on stream %s: %s", conn.id, exc)
                continue
            if msg.type == "ConnectionSetupRequest":
                conn.labels = {str(k): str(v) for k, v in (msg.body.get("labels") or {}).items()}
                conn.client_version = str(msg.body.get("clientVersion", ""))
                conn.tenant = str(msg.body.get("tenant") or "")
                self.connections[conn.id] = conn
                self.core.record_request("grpc", msg.type, msg.body, conn.id)
                if self.ability_negotiation:
                    self.send(conn.id, "SetupAckRequest", {"abilityTable": SERVER_ABILITIES, "module": "internal"},
                              expect_ack=False)
                continue
            fut = conn.waiting.pop(str(msg.body.get("requestId", "")), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            else:
                log.info("unsolicited %s on stream %s", msg.type, conn.id)

    # ------------------------------------------------------------------ pushes
    def send(self, conn_id: str, type_name: str, body: dict[str, Any] | str, *,
             expect_ack: bool = True) -> PushRecord | None:
        """Queue a push (``body`` as str = raw, possibly broken, JSON); returns its record, None if no such
        connection. The ack is awaited in the background."""
        conn = self.connections.get(conn_id)
        if conn is None:
            return None
        request_id = str(next(self._ids))
        if isinstance(body, dict):
            body = {**body, "requestId": request_id}
        record = PushRecord(conn_id, type_name, request_id, body)
        self.pushes.append(record)
        if expect_ack:
            fut: asyncio.Future[proto.Message] = asyncio.get_running_loop().create_future()
            conn.waiting[request_id] = fut
            task = asyncio.ensure_future(self._await_ack(record, fut))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        conn.outbox.put_nowait(proto.encode(type_name, body))
        return record

    async def _await_ack(self, record: PushRecord, fut: asyncio.Future[proto.Message]) -> None:
        try:
            msg = await asyncio.wait_for(fut, self.push_timeout)
            record.acked, record.ack_type = True, msg.type
        except (asyncio.TimeoutError, asyncio.CancelledError):
            record.acked = False
            conn = self.connections.get(record.connection_id)
            if conn is not None:
                conn.waiting.pop(record.request_id, None)

    def push_service(self, conn_id: str, namespace: str, service_info: dict[str, Any]) -> PushRecord | None:
        body = {"namespace": namespace, "serviceName": service_info["name"], "groupName": service_info["groupName"],
                "serviceInfo": service_info, "module": "naming", "headers": {}}
        return self.send(conn_id, "NotifySubscriberRequest", body)

    def push_config(self, conn_id: str, data_id: str, group: str, tenant: str) -> PushRecord | None:
        body = {"dataId": data_id, "group": group, "tenant": tenant, "module": "config", "headers": {}}
        return self.send(conn_id, "ConfigChangeNotifyRequest", body)


def _error(code: int, message: str, request_id: str = "") -> bytes:
    return proto.encode("ErrorResponse", {"resultCode": 500, "errorCode": code, "message": message,
                                          "requestId": request_id})


class _Handlers(grpc.GenericRpcHandler):
    def __init__(self, frontend: GrpcFrontend) -> None:
        self._unary = grpc.unary_unary_rpc_method_handler(frontend.unary)
        self._bidi = grpc.stream_stream_rpc_method_handler(frontend.bi_stream)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method  # type: ignore[attr-defined]
        if method == proto.REQUEST_METHOD:
            return self._unary
        if method == proto.BI_STREAM_METHOD:
            return self._bidi
        return None
