"""The test ADS control plane on ``grpc.aio``: SotW and Delta streams over one snapshot, with a log and waits.

Contract:
- :class:`AdsServer` lives on one asyncio event loop (the one that calls :meth:`start`); every method must
  be called on that loop. From another thread use :class:`~integration.xds.threaded.AdsServerThread`.
- It serves ``envoy.service.discovery.v3.AggregatedDiscoveryService`` (``StreamAggregatedResources`` and
  ``DeltaAggregatedResources``) on ``127.0.0.1:<port>`` (port 0 = a free one, kept across restarts) and, if
  given, on a unix socket path. :attr:`address` / :attr:`unix_uri` are what a bootstrap's ``server_uri`` takes.
- Snapshot API (synchronous on the loop; pushes happen before it returns, by queueing responses on every
  stream, in make-before-break order: CDS, EDS, LDS, RDS, then the removal of dropped clusters):
  :meth:`upsert`, :meth:`replace`, :meth:`remove`, :meth:`bump`, :meth:`apply`. Each returns
  ``{type_url: new_version}`` of the types that changed.
- :meth:`stop` ends every stream and the server (what clients see when a control plane dies);
  :meth:`start` again binds the same port and socket with the same snapshot (a restarted control plane);
  :meth:`restart` does both. Log and snapshot survive restarts; stream ids keep counting.
- :attr:`log` is the :class:`~integration.xds.log.ExchangeLog`; :meth:`wait_ack`, :meth:`wait_nack`,
  :meth:`wait_request` wait (bounded) for a matching record and return it.
- Stream logic is in :mod:`integration.xds.streams` (no I/O); this module
  only moves messages between those and gRPC.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any, AsyncIterator, Callable, Iterable, Mapping, Union

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from google.protobuf.message import Message

from integration.ports import LOOPBACK
from integration.xds.streams import DeltaStream, SotwStream
from integration.xds.log import ExchangeLog, RequestRecord
from integration.xds.snapshot import CLUSTER, Snapshot, resource_name, type_url

Stream = Union[SotwStream, DeltaStream]
_CLOSE = object()


class _Session:
    """A live stream: its protocol state and its outbox of responses (``_CLOSE`` ends it)."""

    def __init__(self, logic: Stream) -> None:
        self.logic = logic
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()

    def send_all(self, responses: Iterable[Message]) -> None:
        for resp in responses:
            self.outbox.put_nowait(resp)


class AdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """An ADS server for tests; see the module docstring."""

    def __init__(self, host: str = LOOPBACK, port: int = 0, unix_path: str | os.PathLike[str] | None = None,
                 credentials: grpc.ServerCredentials | None = None) -> None:
        if host not in (LOOPBACK, "localhost", "::1"):
            raise ValueError(f"the test control plane binds loopback only, not {host!r}")
        self.host = host
        self.port = port
        self.unix_path = os.fspath(unix_path) if unix_path is not None else None
        self.credentials = credentials        # TLS (grpc.ssl_server_credentials) on the TCP port; plaintext when None
        self.snapshot = Snapshot()
        self.log = ExchangeLog()
        self.sessions: dict[int, _Session] = {}
        self._ids = itertools.count(1)
        self._server: grpc.aio.Server | None = None

    def __repr__(self) -> str:
        versions = {url.rsplit(".", 1)[-1]: self.snapshot.version(url) for url in self.snapshot.types()}
        return (f"<AdsServer {self.address} running={self._server is not None} streams={len(self.sessions)} "
                f"versions={versions}>")

    # ------------------------------------------------------------------------------------ lifecycle
    @property
    def address(self) -> str:
        """``host:port`` for a bootstrap's ``server_uri`` (valid after the first :meth:`start`)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def unix_uri(self) -> str | None:
        return f"unix://{self.unix_path}" if self.unix_path else None

    async def start(self) -> "AdsServer":
        if self._server is not None:
            return self
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(self, server)
        bound = server.add_secure_port(self.address, self.credentials) if self.credentials is not None else \
            server.add_insecure_port(self.address)
        if bound == 0:
            raise OSError(f"xDS server could not bind {self.address}")
        self.port = bound
        if self.unix_path:
            if os.path.exists(self.unix_path):
                os.unlink(self.unix_path)
            server.add_insecure_port(f"unix:{self.unix_path}")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        """End every stream (clients see the control plane go away) and stop serving."""
        server, self._server = self._server, None
        for session in list(self.sessions.values()):
            session.outbox.put_nowait(_CLOSE)
        if server is not None:
            await server.stop(grace=None)
        self.sessions.clear()
        self.log.notify()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # ---------------------------------------------------------------------------------- snapshot API
    def apply(self, *, upsert: Iterable[Message] = (), replace: Mapping[str, Iterable[Message]] | None = None,
              remove: Mapping[str, Iterable[str]] | None = None, bump: Iterable[str] = ()) -> dict[str, str]:
        """One snapshot transaction (see :meth:`Snapshot.apply`), then pushes to every stream.

        Make-before-break: when the transaction drops clusters *and* changes other types, it is applied in
        two steps, so that clients get the new clusters, endpoints, listeners and routes while the old
        clusters still exist, and only then a CDS update without them (CDS gets two versions)."""
        upsert, bump = list(upsert), list(bump)
        replace = {type_url(u): list(m) for u, m in (replace or {}).items()}
        remove = {type_url(u): list(n) for u, n in (remove or {}).items()}
        dropped = list(remove.pop(CLUSTER, []))
        if CLUSTER in replace:
            new = replace.pop(CLUSTER)
            upsert = new + upsert
            kept = {resource_name(m) for m in new}
            dropped += [n for n in self.snapshot.names(CLUSTER) if n not in kept]
        others = bool(replace or remove or bump) or any(type_url(m) != CLUSTER for m in upsert)
        if dropped and not others:
            remove[CLUSTER] = dropped
            dropped = []
        changed = self._push(self.snapshot.apply(upsert=upsert, replace=replace, remove=remove, bump=bump))
        if dropped:
            changed.update(self._push(self.snapshot.apply(remove={CLUSTER: dropped})))
        return changed

    def _push(self, changed: dict[str, str]) -> dict[str, str]:
        for url in changed:
            for session in self.sessions.values():
                session.send_all(session.logic.on_change(url))
        return changed

    def upsert(self, *messages: Message) -> dict[str, str]:
        """Add or replace resources (type and name taken from each message)."""
        return self.apply(upsert=messages)

    def replace(self, url: str, messages: Iterable[Message]) -> dict[str, str]:
        """Make ``messages`` the whole set of resources of type ``url`` (alias ``"cds"``, ``"eds"``, ...)."""
        return self.apply(replace={url: list(messages)})

    def remove(self, url: str, *names: str) -> dict[str, str]:
        return self.apply(remove={url: names})

    def bump(self, *urls: str) -> dict[str, str]:
        """New versions for these types, resending everything subscribed (content unchanged)."""
        return self.apply(bump=urls)

    def version(self, url: str) -> str:
        return self.snapshot.version(url)

    # -------------------------------------------------------------------------------------- waiting
    async def wait_request(self, match: Callable[[RequestRecord], bool], timeout: float = 10.0,
                           what: str = "matching request", since: int = 0) -> RequestRecord:
        """The first logged request (from index ``since`` on) for which ``match`` is true."""
        def find() -> RequestRecord | None:
            return next((r for r in self.log.requests[since:] if match(r)), None)
        return await self.log.wait_for(find, timeout, what)

    async def wait_ack(self, url: str, version: str, timeout: float = 10.0, node_id: str | None = None,
                       variant: str | None = None) -> RequestRecord:
        """Wait until a client ACKed ``version`` of type ``url``."""
        url = type_url(url)
        return await self.wait_request(
            lambda r: r.kind == "ack" and r.type_url == url and r.version == version
            and (node_id is None or r.node_id == node_id) and (variant is None or r.variant == variant),
            timeout, f"ACK of {url} version {version!r}")

    async def wait_nack(self, url: str, timeout: float = 10.0, since: int = 0) -> RequestRecord:
        url = type_url(url)
        return await self.wait_request(lambda r: r.kind == "nack" and r.type_url == url, timeout,
                                       f"NACK of {url}", since)

    # ------------------------------------------------------------------------------------ streaming
    async def StreamAggregatedResources(self, request_iterator: AsyncIterator[Any],
                                        context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for resp in self._serve(SotwStream(next(self._ids), self.snapshot, self.log.add), request_iterator):
            yield resp

    async def DeltaAggregatedResources(self, request_iterator: AsyncIterator[Any],
                                       context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for resp in self._serve(DeltaStream(next(self._ids), self.snapshot, self.log.add), request_iterator):
            yield resp

    async def _serve(self, logic: Stream, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        session = _Session(logic)
        self.sessions[logic.stream_id] = session
        self.log.notify()
        reader = asyncio.ensure_future(self._read(session, requests))
        try:
            while True:
                item = await session.outbox.get()
                if item is _CLOSE:
                    return
                yield item
        finally:
            reader.cancel()
            self.sessions.pop(logic.stream_id, None)
            self.log.notify()

    @staticmethod
    async def _read(session: _Session, requests: AsyncIterator[Any]) -> None:
        try:
            async for req in requests:
                session.send_all(session.logic.on_request(req))  # type: ignore[arg-type]
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        finally:
            session.outbox.put_nowait(_CLOSE)

