"""A SOFARegistry session server for tests: the client protocol of ``sofastack/sofa-registry``'s session server.

No SOFARegistry can be installed here (Java, not packaged), so this speaks what its session server speaks, with
the same classes and field names (``com.alipay.sofa.registry.core.model.*``), over Bolt v1 + hessian2 (draft
grammar, as sofa-hessian writes): :mod:`integration.sofaregistry.messages` builds the objects.

Behaviour (``server/server/session``: ``SubscriberHandler`` / ``PublisherHandler`` and their strategies,
``PushDataGenerator``, ``ReceivedDataConverter``):

- ``SubscriberRegister`` / ``PublisherRegister`` requests are answered with ``RegisterResponse{success, registId,
  version (the request's), refused=false, message}``; a register without ``dataId``, ``registId`` or
  ``version`` is answered ``success=false`` with the reason; ``UNREGISTER`` removes it. Zone and instance id
  default to ``DEFAULT_ZONE`` / ``DEFAULT_INSTANCE_ID``.
- Data is kept per data info id (``dataId#@#instanceId#@#group``) and zone in a :class:`DataStore` (what the
  data servers are to a session server; several session servers sharing one are a registry cluster). Every change
  (a publisher added, replaced or removed; a connection closed) gives the datum a new version from a clock that
  only goes up (also across :meth:`SessionServer.restart`) and pushes ``ReceivedData`` to every subscriber of it
  on every server of the store (and a new subscriber gets the current data at once): segment = the data center, the
  subscriber's register id, the zones its scope sees (``zone``: its own; ``dataCenter`` / ``global``: all), the
  version, ``localZone`` = the server's zone, ``dataCount`` per zone. An empty datum is pushed with an empty
  ``data`` map. Every push's ``Result`` is recorded.
- A closed connection takes its publishers and subscribers with it; a server going down leaves its connections'
  publishers in the store for the store's lease (their clients re-register, here or on another server).
- Test controls: publishers that belong to no connection (:meth:`add_publisher` — other zones, bulk data),
  :meth:`push_old` (a push with an older version and other data), :meth:`send_raw` / :meth:`send_object`
  (garbage, unknown classes), :meth:`restart` (every connection dropped; the store stays),
  :meth:`go_away` (closed for a while) and the logs of registers and push answers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from integration.ports import LOOPBACK
from integration.sofaregistry import messages as m
from meshd.codec import bolt
from meshd.codec.base import CodecError
from meshd.codec.hessian2 import DraftReader, JavaObject

log = logging.getLogger("integration.sofaregistry")

STATUS_NO_PROCESSOR = 0x0006
STATUS_SERVER_DESERIAL_EXCEPTION = 0x0012


class DataStore:
    """What sofa-registry's data servers keep for the session servers in front of them: the data per data info id,
    the datum version clock (increasing, time-based like ``DatumVersionUtil``: ms << 12 | counter), and the
    session servers to notify of a change. Session servers that share a store are one registry cluster (a client
    may fail over between them and see the same data). When a session server goes down, the publishers of its
    connections stay for ``lease`` seconds (the data servers keep a dead session's data until its lease ends),
    so that their clients can re-register elsewhere, or on the server when it is back, without a gap."""

    def __init__(self, lease: float = 5.0) -> None:
        self.lease = lease
        self.last = 0
        self.data: dict[str, Datum] = {}
        self.servers: list["SessionServer"] = []

    def next_version(self) -> int:
        self.last = max(self.last + 1, int(time.time() * 1000) << 12)
        return self.last

    def datum(self, data_id: str, instance_id: str, group: str) -> "Datum":
        info_id = m.data_info_id(data_id, instance_id, group)
        return self.data.setdefault(info_id, Datum(info_id, data_id, group, instance_id))

    def changed(self, datum: "Datum") -> None:
        datum.version = self.next_version()
        for server in self.servers:
            server.push_all(datum)

    def orphan(self, session: "_Session") -> None:
        """``session``'s server went down: its publishers stay for the lease, then go (unless re-registered)."""
        for datum in self.data.values():
            for pub in datum.publishers.values():
                if pub.conn is session:
                    pub.conn = None
                    pub.orphaned = True
                    asyncio.get_running_loop().call_later(self.lease, self._expire, datum, pub)

    def _expire(self, datum: "Datum", pub: "Publisher") -> None:
        if datum.publishers.get(pub.regist_id) is pub:
            del datum.publishers[pub.regist_id]
            self.changed(datum)


@dataclass
class Publisher:
    regist_id: str
    data_id: str
    zone: str
    data: list[str]
    version: int
    app: str = ""
    conn: "_Session | None" = None
    orphaned: bool = False        # its session server went down; kept for the store's lease


@dataclass
class Subscriber:
    regist_id: str
    data_id: str
    zone: str
    scope: str
    version: int
    conn: "_Session"


@dataclass
class Datum:
    info_id: str
    data_id: str
    group: str
    instance_id: str
    version: int = 0
    publishers: dict[str, Publisher] = field(default_factory=dict)

    def zones(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for pub in self.publishers.values():
            out.setdefault(pub.zone, []).extend(pub.data)
        return out


class _Session(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: "SessionServer") -> None:
        self.server = server
        self.decoder = bolt.BoltDecoder()
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, asyncio.Future] = {}
        self.ids = itertools.count(1)
        self.peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.server.sessions.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.decoder.receive_data(data)
            while True:
                event = self.decoder.next_event()
                if not isinstance(event, (bolt.BoltRequest, bolt.BoltResponse, bolt.BoltHeartbeat,
                                          bolt.BoltHeartbeatAck)):
                    return
                self._event(event)
        except CodecError as exc:
            log.warning("session server: closing %s: %s", self.peer, exc)
            self.transport.close()

    def _event(self, event: Any) -> None:
        if isinstance(event, bolt.BoltHeartbeat):
            self.write(bolt.encode_heartbeat_ack(event.request_id))
        elif isinstance(event, (bolt.BoltResponse, bolt.BoltHeartbeatAck)):
            future = self.pending.pop(event.request_id, None)
            if future is not None and not future.done():
                future.set_result(event)
        else:
            self.write(self.server.handle(self, event))

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def call(self, value: JavaObject, timeout: float = 3.0) -> Any:
        rid = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        self.write(bolt.encode_object(rid, value, request=True, timeout=int(timeout * 1000)))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self.pending.pop(rid, None)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("closed"))
        self.server.session_closed(self)


class SessionServer:
    """See the module docstring. ``zone`` is the server's own zone (``localZone`` of its pushes)."""

    def __init__(self, host: str = LOOPBACK, port: int = 0, *, zone: str = m.DEFAULT_ZONE,
                 data_center: str = m.DEFAULT_DATA_CENTER, store: DataStore | None = None) -> None:
        self.host, self.port, self.zone, self.data_center = host, port, zone, data_center
        self.store = store or DataStore()
        self.store.servers.append(self)
        self.sessions: set[_Session] = set()
        self.data = self.store.data
        self.subscribers: dict[str, Subscriber] = {}
        self.registers: list[dict[str, Any]] = []            # every register received: class, fields
        self.push_results: list[tuple[str, int, Any]] = []   # (regist id, version, the client's answer)
        self.server: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> "SessionServer":
        self.server = await asyncio.get_running_loop().create_server(lambda: _Session(self), self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Listener and connections closed; their subscribers are gone, their publishers stay for the store's
        lease."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for session in list(self.sessions):
            self.store.orphan(session)
            session.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for _ in range(100):                  # connection_lost runs on a later iteration
            if not self.sessions:
                break
            await asyncio.sleep(0.01)

    async def restart(self) -> None:
        """Down and up again on the same port: connections and their subscribers are gone, the store is not."""
        await self.go_away(0)

    async def go_away(self, seconds: float) -> None:
        """Closed (listener and connections) for ``seconds``, then back on the same port."""
        await self.stop()
        await asyncio.sleep(seconds)
        await self.start()

    # -- the protocol ---------------------------------------------------------------------------------
    def handle(self, session: _Session, event: Any) -> bytes:
        """A client's request → the response frame."""
        try:
            name = event.class_name() or ""
            value = DraftReader(event.content()).read()
        except CodecError as exc:
            log.warning("session server: undecodable request from %s: %s", session.peer, exc)
            return bolt.encode_status_response(event.request_id, STATUS_SERVER_DESERIAL_EXCEPTION)
        if name not in (m.SUBSCRIBER_REGISTER, m.PUBLISHER_REGISTER) or not isinstance(value, JavaObject):
            return bolt.encode_status_response(event.request_id, STATUS_NO_PROCESSOR)
        self.registers.append({"class": name, **value})
        answer = self._register(session, name, value)
        return bolt.encode_object(event.request_id, answer, request=False)

    def _register(self, session: _Session, name: str, value: dict[str, Any]) -> JavaObject:
        regist_id, data_id, version = value.get("registId"), value.get("dataId"), value.get("version")
        for key in ("dataId", "registId", "version"):
            if value.get(key) is None:
                return m.register_response(False, regist_id, version or 0, f"{key} is null")
        zone = value.get("zone") or m.DEFAULT_ZONE
        datum = self.store.datum(data_id, value.get("instanceId") or m.DEFAULT_INSTANCE_ID,
                                 value.get("group") or m.DEFAULT_GROUP)
        info_id = datum.info_id
        unregister = value.get("eventType") == m.UNREGISTER
        if name == m.SUBSCRIBER_REGISTER:
            if unregister:
                self.subscribers.pop(regist_id, None)
            else:
                sub = Subscriber(regist_id, info_id, zone, value.get("scope") or "zone", version, session)
                self.subscribers[regist_id] = sub
                self._spawn(self._push_to(sub, datum))
            return m.register_response(True, regist_id, version, "Subscriber register success!")
        if unregister:
            if datum.publishers.pop(regist_id, None) is not None:
                self.store.changed(datum)
        else:
            boxes = value.get("dataList") or []
            data = [b.get("data") for b in boxes]
            old = datum.publishers.get(regist_id)
            datum.publishers[regist_id] = Publisher(regist_id, info_id, zone, data, version,
                                                    value.get("appName") or "", session)
            if old is None or (old.data, old.zone) != (data, zone):
                self.store.changed(datum)     # (a re-registration after a failover changes nothing)
        return m.register_response(True, regist_id, version, "Publisher register success!")

    def session_closed(self, session: _Session) -> None:
        """A client's connection closed: its subscribers and publishers go (those of a server that went down were
        orphaned before, see :meth:`stop`)."""
        self.sessions.discard(session)
        for rid in [rid for rid, s in self.subscribers.items() if s.conn is session]:
            del self.subscribers[rid]
        for datum in self.data.values():
            gone = [rid for rid, p in datum.publishers.items() if p.conn is session]
            for rid in gone:
                del datum.publishers[rid]
            if gone:
                self.store.changed(datum)

    def push_all(self, datum: Datum) -> None:
        """Push ``datum`` to every subscriber of it on this server."""
        if self.server is None:
            return
        for sub in list(self.subscribers.values()):
            if sub.data_id == datum.info_id:
                self._spawn(self._push_to(sub, datum))

    def _received_data(self, sub: Subscriber, datum: Datum, version: int, zones: dict[str, list[str]]) -> JavaObject:
        if sub.scope == "zone":
            zones = {z: v for z, v in zones.items() if z == sub.zone}
        return m.received_data(datum.data_id, datum.group, datum.instance_id, self.data_center, sub.scope,
                               [sub.regist_id], zones, version, self.zone, publishers=bool(datum.publishers))

    async def _push_to(self, sub: Subscriber, datum: Datum, version: int | None = None,
                       zones: dict[str, list[str]] | None = None) -> Any:
        if not datum.version:
            datum.version = self.store.next_version()
        version = datum.version if version is None else version
        value = self._received_data(sub, datum, version, datum.zones() if zones is None else zones)
        try:
            answer = await sub.conn.call(value)
        except (ConnectionError, asyncio.TimeoutError) as exc:
            answer = exc
        else:
            answer = DraftReader(answer.content()).read() if answer.status == 0 and answer.frame else answer.status
        self.push_results.append((sub.regist_id, version, answer))
        return answer

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- test controls --------------------------------------------------------------------------------
    def datum(self, data_id: str, instance_id: str = m.DEFAULT_INSTANCE_ID, group: str = m.SOFA_GROUP) -> Datum:
        return self.store.datum(data_id, instance_id, group)

    def add_publisher(self, data_id: str, data: Iterable[str], *, zone: str | None = None, regist_id: str = "",
                      group: str = m.SOFA_GROUP) -> str:
        """A publisher of no connection (another zone, another machine); returns its register id."""
        datum = self.datum(data_id, group=group)
        regist_id = regist_id or f"test-{next(_ids)}"
        datum.publishers[regist_id] = Publisher(regist_id, datum.info_id, zone or self.zone, list(data), 1)
        self.store.changed(datum)
        return regist_id

    def remove_publisher(self, data_id: str, regist_id: str, group: str = m.SOFA_GROUP) -> None:
        datum = self.datum(data_id, group=group)
        if datum.publishers.pop(regist_id, None) is not None:
            self.store.changed(datum)

    async def push_old(self, data_id: str, data: dict[str, list[str]], group: str = m.SOFA_GROUP) -> list[Any]:
        """Push ``data`` with a version older than the datum's to every subscriber; their answers."""
        datum = self.datum(data_id, group=group)
        subs = [s for s in self.subscribers.values() if s.data_id == datum.info_id]
        return list(await asyncio.gather(*(self._push_to(s, datum, datum.version - 1, data) for s in subs)))

    def send_raw(self, data: bytes) -> None:
        for session in self.sessions:
            session.write(data)

    async def send_object(self, value: JavaObject) -> list[Any]:
        """``value`` as a request to every connection; the answers (response events, or the exception)."""
        async def one(session: _Session) -> Any:
            try:
                return await session.call(value)
            except (ConnectionError, asyncio.TimeoutError) as exc:
                return exc
        return list(await asyncio.gather(*(one(s) for s in list(self.sessions))))

    def publishers(self, data_id: str, group: str = m.SOFA_GROUP) -> list[Publisher]:
        return list(self.datum(data_id, group=group).publishers.values())

    def __repr__(self) -> str:
        return f"<SessionServer {self.address} zone={self.zone} sessions={len(self.sessions)} data={len(self.data)}>"


_ids = itertools.count(1)


class BlockingSessionServer:
    """A :class:`SessionServer` on a background loop thread (:class:`integration.process.LoopThread`); its
    coroutine methods run to completion there, blocking the caller; ``call(fn)`` runs ``fn(server)`` there."""

    def __init__(self, loop_thread: Any = None, **kwargs: Any) -> None:
        from integration.process import LoopThread
        self._own_loop = loop_thread is None
        self.loop_thread = loop_thread or LoopThread()
        self.server = SessionServer(**kwargs)
        self._closed = False

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return self.loop_thread.run(coro, timeout)

    def call(self, fn: Any, timeout: float = 10.0) -> Any:
        return self.loop_thread.call(lambda: fn(self.server), timeout)

    def start(self) -> "BlockingSessionServer":
        self.run(self.server.start())
        return self

    def close(self) -> None:
        """Stop the server for good (and its loop thread, if it owns one); a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.run(self.server.stop())
        finally:
            if self._own_loop:
                self.loop_thread.close()

    @property
    def address(self) -> str:
        return self.server.address

    def stop(self) -> None:
        """Down (listener and connections) until :meth:`start`."""
        self.run(self.server.stop())

    def restart(self) -> None:
        self.run(self.server.restart())

    def go_away(self, seconds: float) -> None:
        self.run(self.server.go_away(seconds), seconds + 10)

    def add_publisher(self, data_id: str, data: Iterable[str], **kwargs: Any) -> str:
        return self.call(lambda s: s.add_publisher(data_id, list(data), **kwargs))

    def remove_publisher(self, data_id: str, regist_id: str) -> None:
        self.call(lambda s: s.remove_publisher(data_id, regist_id))

    def push_old(self, data_id: str, data: dict[str, list[str]]) -> list[Any]:
        """Blocks until the clients answered: call it from a thread other than a client's loop."""
        return self.run(self.server.push_old(data_id, data))

    def send_raw(self, data: bytes) -> None:
        self.call(lambda s: s.send_raw(data))

    def send_object(self, value: JavaObject) -> list[Any]:
        return self.run(self.server.send_object(value))

    def publishers(self, data_id: str) -> list[Publisher]:
        return self.call(lambda s: s.publishers(data_id))

    def registers(self) -> list[dict[str, Any]]:
        return self.call(lambda s: list(s.registers))

    def push_results(self) -> list[tuple[str, int, Any]]:
        return self.call(lambda s: list(s.push_results))

    def subscribers(self) -> list[Subscriber]:
        return self.call(lambda s: list(s.subscribers.values()))
