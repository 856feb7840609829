"""SofaRegistrySource: a SOFARegistry client (session-server protocol over Bolt) → the cluster model; registrations.

Reading. One connection to one session server of ``servers`` (in order; a failed connect or a lost connection
moves to the next). Every wanted data id has a subscriber (``SubscriberRegister``: group ``SOFA``, the instance id,
zone, app, scope, a register id of its own and a version), sent one at a time and answered by a
``RegisterResponse`` that must say success for the same register id. The server pushes ``ReceivedData`` (one
segment — data center — of one data id, per zone) to the register ids; every push is answered with
``Result{success}`` as the Java client does, and applied only when its version is newer than the last one applied
for that segment. A push's providers become endpoints (:mod:`.data`): the cluster is the interface.

Faults. Connection lost → the source is marked stale and keeps its endpoints; it connects to the next server
and re-sends every subscriber and publisher (same register ids and versions, as ``ClientConnection#resetRegister``);
once all are answered the stale mark goes. Nothing reachable for ``sync_timeout`` at start → the snapshot serves
(stale). Garbage from the server (an unknown class, an unreadable frame, a push for a register id never
subscribed, a push that breaks the model) is logged, counted and answered as the Java client would; nothing known
is lost; a stream that cannot be framed costs the connection only.

Writing (:class:`~discovery.registration.Registry`). :meth:`publish` sends a ``PublisherRegister`` whose ``DataBox``
is what SOFARPC writes (:func:`.data.provider_string`), kept across reconnects, withdrawn by :meth:`unpublish` and
at shutdown. :meth:`subscribe_consumer` subscribes the service's data id (reference-counted).

Threading: everything runs on the event loop that called :meth:`start`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from discovery.model import ClusterModel, EndpointSpec, assign_instances, split_address
from discovery.registration import Registration, RegistrationError, Registry, wait_event
from discovery.snapshot import SnapshotError, SnapshotWriter, read_json_snapshot, write_json_atomic
from discovery.sofa_params import SOFA_RPC_VERSION
from discovery.sofaregistry.connection import STATUS_NO_PROCESSOR, STATUS_SERVER_DESERIAL_EXCEPTION, SessionConnection
from discovery.sofaregistry.data import DataError, Service, provider_string, zone_endpoints
from discovery.sofaregistry.model import (
    DEFAULT_INSTANCE_ID, RECEIVED_DATA, REGISTER, SCOPES, SOFA_GROUP, UNREGISTER, MessageError, Push, Register,
    data_info_id, push_result, read_push, register_answer,
)
from discovery.source import Source
from discovery.wire import BoltMessage, BoltWire

log = logging.getLogger("discovery.sofaregistry")
SNAPSHOT_FORMAT = "meshd.sofaregistry.snapshot/1"


class _Subscription:
    """One subscribed data id: its register, who wants it, and the last applied push per segment."""

    __slots__ = ("service", "register", "pinned", "refs", "segments", "acked", "inflight")

    def __init__(self, service: Service, register: Register, pinned: bool) -> None:
        self.service, self.register, self.pinned = service, register, pinned
        self.refs = 0
        self.segments: dict[str, Push] = {}
        self.acked = self.inflight = False


class _Publication:
    __slots__ = ("registration", "register", "acked", "inflight")

    def __init__(self, registration: Registration, register: Register) -> None:
        self.registration, self.register = registration, register
        self.acked = self.inflight = False


class SofaRegistrySource(Source, Registry):
    """See the module docstring. Constructor arguments mirror the ``discovery: - type: sofaregistry`` config."""

    kind = "sofaregistry"

    def __init__(self, name: str, servers: str, wire: BoltWire, *, app: str, zone: str = "DEFAULT_ZONE",
                 data_center: str = "DefaultDataCenter", scope: str = "zone", services: Sequence[str] = (),
                 instance_id: str = DEFAULT_INSTANCE_ID, snapshot_path: str | None = None, sync_timeout: float = 5.0,
                 invoke_timeout: float = 3.0, connect_timeout: float = 3.0, reconnect_delay: float = 1.0,
                 recheck_interval: float = 0.5, heartbeat_interval: float = 15.0, heartbeat_misses: int = 3,
                 snapshot_delay: float = 1.0, max_frame_size: int = 8 << 20,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name)
        self.servers = [s.strip() for s in servers.split(",") if s.strip()]
        if not self.servers:
            raise ValueError("servers: no session server address")
        for server in self.servers:
            split_address(server)
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        for key, value in (("sync_timeout", sync_timeout), ("invoke_timeout", invoke_timeout),
                           ("connect_timeout", connect_timeout), ("reconnect_delay", reconnect_delay),
                           ("recheck_interval", recheck_interval), ("heartbeat_interval", heartbeat_interval)):
            if not value > 0:
                raise ValueError(f"{key} must be positive, not {value!r}")
        if not app:
            raise ValueError("app: the application name is required (SOFARegistry keys registers by it)")
        self.wire, self.app, self.zone, self.data_center, self.scope = wire, app, zone, data_center, scope
        self.instance_id, self.snapshot_path, self.sync_timeout = instance_id, snapshot_path, sync_timeout
        self.invoke_timeout, self.connect_timeout, self.reconnect_delay = invoke_timeout, connect_timeout, reconnect_delay
        self.recheck_interval, self.heartbeat = recheck_interval, (heartbeat_interval, heartbeat_misses)
        self.max_frame_size, self._clock = max_frame_size, clock
        self.services = tuple(Service.parse(s) for s in dict.fromkeys(services))
        self.connection = "stopped"          # connecting | connected | disconnected | stopped
        self.server = ""                     # the session server of the current (or last) connection
        self.connections = 0
        self.counters = {"pushes": 0, "applied": 0, "old_versions": 0, "unknown_subscriber": 0, "garbage": 0}
        self.snapshot_loaded = 0
        self.conn: SessionConnection | None = None
        self._subs: dict[str, _Subscription] = {}        # data id → subscription
        self._by_regist: dict[str, _Subscription] = {}
        self._by_cluster: dict[str, dict[str, _Subscription]] = {}   # interface → data id → subscription
        self._awaited: set[str] = set()        # configured data ids without data yet (the first sync waits)
        self._pubs: dict[str, _Publication] = {}          # Registration.path → publication
        self._consumers: dict[str, tuple[Registration, _Subscription]] = {}   # Registration.path → its subscription
        self._ready: dict[str, asyncio.Event] = {}
        self._wake = asyncio.Event()
        self._warm: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._stopping = False
        self._live = False
        self._ip = ""
        self.snapshot = SnapshotWriter(snapshot_path, snapshot_delay, self._snapshot_doc,
                                        lambda path, doc: write_json_atomic(path, doc, SNAPSHOT_FORMAT), self._error,
                                        self._spawn)

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self, model: ClusterModel) -> None:
        if self.model is not None:
            raise RuntimeError(f"source {self.name} already started")
        self.model = model
        for service in self.services:
            self._subscription(service, pinned=True)
        self.connection = "connecting"
        self._deadline = asyncio.get_running_loop().call_later(self.sync_timeout, self._on_sync_deadline)
        self._spawn(self._run())

    async def stop(self) -> None:
        """Withdraw every publication, write a last snapshot, close; endpoints stay, stale."""
        if self._stopping or self.model is None:
            return
        await self.shutdown()
        self._stopping = True
        for handle in (self._deadline, self._warm):
            if handle is not None:
                handle.cancel()
        if self.conn is not None:
            self.conn.close("source stopped")
        await self._cancel_tasks()
        await self.snapshot.flush()
        self.connection = "stopped"
        self.model.set_stale(self.name, True)

    async def _run(self) -> None:
        index = 0
        while not self._stopping:
            server = self.servers[index % len(self.servers)]
            index += 1
            conn = await self._connect(server)
            if conn is None:
                if index % len(self.servers) == 0:
                    await asyncio.sleep(self.reconnect_delay)
                continue
            self.conn, self.server, self.connection = conn, server, "connected"
            self.connections += 1
            log.info("%s: connected to session server %s", self.name, server)
            for item in [*self._pubs.values(), *self._subs.values()]:
                if item.register.event_type == UNREGISTER:
                    self._forget(item)        # the server dropped it with the old connection
                item.acked = False            # a new connection knows none of them (resetRegister)
            self._wake.set()
            sync = asyncio.ensure_future(self._sync(conn))
            reason = await conn.closed
            sync.cancel()
            await asyncio.gather(sync, return_exceptions=True)
            self.conn = None
            if self._stopping:
                return
            self.connection = "disconnected"
            self._error(f"session server {server}: {reason}; keeping the last known endpoints (stale)")
            self.model.set_stale(self.name, True)

    async def _connect(self, server: str) -> SessionConnection | None:
        host, port = split_address(server)
        loop = asyncio.get_running_loop()

        def factory() -> SessionConnection:
            interval, misses = self.heartbeat
            return SessionConnection(self.wire, self._on_request, max_frame_size=self.max_frame_size,
                                     heartbeat_interval=interval, heartbeat_misses=misses,
                                     label=f"{self.name} {server}")
        try:
            transport, conn = await asyncio.wait_for(loop.create_connection(factory, host, port),
                                                     self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            self._error(f"connecting to session server {server}: {exc or type(exc).__name__}")
            return None
        self._ip = (transport.get_extra_info("sockname") or ("",))[0]
        return conn

    async def _sync(self, conn: SessionConnection) -> None:
        """Send every register the server has not acknowledged, one at a time (the Java client's worker); once
        all are, the endpoints are fresh again."""
        fresh = False
        while conn.open:
            self._wake.clear()
            for item in [*self._pubs.values(), *self._subs.values()]:
                if not (item.acked or item.inflight) and conn.open:
                    await self._send(conn, item)
            if not fresh and all(i.acked for i in [*self._pubs.values(), *self._subs.values()]):
                fresh = True
                self.model.set_stale(self.name, False)
                self._maybe_synced()
            try:
                await asyncio.wait_for(self._wake.wait(), self.recheck_interval)
            except asyncio.TimeoutError:
                pass

    async def _send(self, conn: SessionConnection, item: _Subscription | _Publication) -> str:
        """One register sent and answered; "" when the server took it, else why not (logged)."""
        register = item.register
        what = f"{'subscriber' if register.kind == 'subscriber' else 'publisher'} {register.data_id}"
        if not register.ip and self._ip:
            register = item.register = replace(register, ip=self._ip)
        item.inflight = True
        try:
            message = await conn.call(register.encode(self.wire), self.invoke_timeout)
            if message.error:
                raise MessageError(message.error)
            answer = register_answer(self.wire, message.value)
        except (MessageError, ConnectionError, asyncio.TimeoutError) as exc:
            problem = f"registering {what}: {exc or type(exc).__name__}"
            self._error(problem)
            return problem
        finally:
            item.inflight = False
        if not answer.success or answer.refused:
            problem = f"session server {self.server} {'refused' if answer.refused else 'failed'} {what}: " \
                      f"{answer.message or 'no message'}"
            self._error(problem)
            return problem
        if answer.regist_id != register.regist_id:
            problem = f"answer to {what} names register {answer.regist_id!r}, not {register.regist_id!r}"
            self._error(problem)
            return problem
        if item.register.version <= register.version:
            item.acked = True                  # (a newer version sent meanwhile waits for its own answer)
            if register.event_type == UNREGISTER:
                self._forget(item)
        return ""

    def _forget(self, item: _Subscription | _Publication) -> None:
        """Drop an unregistered register (unless it was registered again meanwhile)."""
        if item.register.event_type != UNREGISTER:
            return
        if isinstance(item, _Publication):
            if self._pubs.get(item.registration.path) is item:
                del self._pubs[item.registration.path]
        elif self._subs.get(item.service.data_id) is item:
            del self._subs[item.service.data_id]
            self._by_regist.pop(item.register.regist_id, None)
            self._by_cluster.get(item.service.interface, {}).pop(item.service.data_id, None)

    def _on_sync_deadline(self) -> None:
        self._deadline = None
        if self.synced:
            return
        self._error(f"no session server of {', '.join(self.servers)} synced after {self.sync_timeout}s; "
                    f"using the snapshot (stale)")
        self.model.set_stale(self.name, True)
        self._load_snapshot()
        self.mark_synced()

    def _maybe_synced(self) -> None:
        if self.synced or self._awaited:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        log.info("%s: synced %d data ids from session server %s", self.name, len(self._subs), self.server)
        self.mark_synced()

    # -- subscriptions --------------------------------------------------------------------------------
    def _subscription(self, service: Service, pinned: bool = False) -> _Subscription:
        """The subscription of ``service``'s data id: new, or the existing one (registered again if it was
        being unsubscribed)."""
        sub = self._subs.get(service.data_id)
        if sub is None:
            register = Register("subscriber", str(uuid.uuid4()), service.data_id, version=1, timestamp=self._now_ms(),
                                app=self.app, zone=self.zone, ip=self._ip, instance_id=self.instance_id,
                                scope=self.scope)
            sub = self._subs[service.data_id] = _Subscription(service, register, False)
            self._by_regist[register.regist_id] = sub
            self._by_cluster.setdefault(service.interface, {})[service.data_id] = sub
            self._wake.set()
        elif sub.register.event_type == UNREGISTER:
            sub.register = replace(sub.register, event_type=REGISTER, version=sub.register.version + 1)
            sub.acked = False
            self._wake.set()
        if pinned and not sub.pinned:
            sub.pinned = True
            if not sub.segments:
                self._awaited.add(service.data_id)
        return sub

    def _on_request(self, message: BoltMessage) -> tuple[Any, int]:
        """A request from the server: a ``ReceivedData`` push, or garbage (see the module docstring)."""
        if message.error:
            self.counters["garbage"] += 1
            self._error(f"session server {self.server}: unreadable request ignored: {message.error}")
            return None, STATUS_SERVER_DESERIAL_EXCEPTION
        if message.class_name != RECEIVED_DATA:
            self.counters["garbage"] += 1
            self._error(f"session server {self.server}: request of class {message.class_name or '(none)'} ignored")
            return None, STATUS_NO_PROCESSOR
        self.counters["pushes"] += 1
        try:
            push = read_push(self.wire, message.value)
        except MessageError as exc:
            self.counters["garbage"] += 1
            self._error(f"session server {self.server}: push ignored: {exc}")
            return push_result(self.wire, False, str(exc)), 0
        for regist_id in push.regist_ids:
            sub = self._by_regist.get(regist_id)
            if sub is None or sub.service.data_id != push.data_id:
                self.counters["unknown_subscriber"] += 1
                self._error(f"push of {push.data_id} version {push.version} for register {regist_id}, which this "
                            f"client never subscribed to that data id: ignored")
                continue
            self._offer(sub, push)
        return push_result(self.wire), 0

    def _offer(self, sub: _Subscription, push: Push) -> None:
        last = sub.segments.get(push.segment)
        if last is not None and push.version <= last.version:
            self.counters["old_versions"] += 1
            log.info("%s: push of %s segment %s version %d ignored: not newer than %d", self.name, push.data_id,
                     push.segment or "-", push.version, last.version)
            return
        sub.segments[push.segment] = push
        self._awaited.discard(push.data_id)
        self.counters["applied"] += 1
        self._live = True
        self._apply(sub.service.interface)
        self._maybe_synced()

    def _apply(self, cluster: str) -> None:
        if self.model is None:
            return
        specs: list[EndpointSpec] = []
        warming, received = False, False
        now = self._now_ms()
        for sub in self._by_cluster.get(cluster, {}).values():
            if not sub.segments:
                continue
            received = True
            for segment, push in sorted(sub.segments.items()):
                found, warm, errors = zone_endpoints(sub.service, push.zones, self.zone, segment, now)
                for message in errors:
                    self._error(message)
                specs += found
                warming = warming or warm
        if not received:
            return
        try:
            specs = assign_instances(_unique(specs))
        except ValueError as exc:
            self._error(f"cluster {cluster}: {exc}")
            return
        diff = self.model.apply(self.name, cluster, specs)
        self._ready.setdefault(cluster, asyncio.Event()).set()
        if warming and self._warm is None:
            self._warm = asyncio.get_running_loop().call_later(1.0, self._rewarm)
        if not diff.empty and self._live:
            self.snapshot.schedule()

    def _rewarm(self) -> None:
        self._warm = None
        for cluster in list(self._by_cluster):
            self._apply(cluster)

    # -- snapshot -------------------------------------------------------------------------------------
    def _snapshot_doc(self) -> dict:
        data = {d: {seg: {"version": p.version, "local_zone": p.local_zone, "zones": {z: list(v) for z, v in
                                                                                      p.zones.items()}}
                    for seg, p in s.segments.items()} for d, s in self._subs.items() if s.segments}
        return {"source": self.name, "zone": self.zone, "saved_at_ms": self._now_ms(), "data": data}

    def _load_snapshot(self) -> None:
        if not self.snapshot_path:
            self._error("no session server reachable and no snapshot_path configured: no endpoints until one answers")
            return
        try:
            doc = read_json_snapshot(self.snapshot_path, SNAPSHOT_FORMAT)
            data = doc.get("data")
            if not isinstance(data, dict):
                raise SnapshotError(f"snapshot {self.snapshot_path}: 'data' is not an object")
        except SnapshotError as exc:
            self._error(str(exc))
            return
        clusters = set()
        for data_id, segments in data.items():
            sub = self._subs.get(data_id)
            if sub is None or sub.segments or not isinstance(segments, dict):
                continue
            try:
                for segment, item in segments.items():
                    zones = {str(z): tuple(str(x) for x in v) for z, v in dict(item["zones"]).items()}
                    sub.segments[str(segment)] = Push(data_id, SOFA_GROUP, self.instance_id, str(segment), self.scope,
                                                      int(item["version"]), str(item.get("local_zone", "")), (), zones)
            except (KeyError, TypeError, ValueError) as exc:
                sub.segments.clear()
                self._error(f"snapshot {self.snapshot_path}: data id {data_id}: {exc!r}")
                continue
            clusters.add(sub.service.interface)
            self.snapshot_loaded += 1
        for cluster in clusters:
            self._apply(cluster)
        log.info("%s: loaded %d data ids from snapshot %s", self.name, self.snapshot_loaded, self.snapshot_path)

    # -- registration API -----------------------------------------------------------------------------
    async def _register_now(self, item: _Subscription | _Publication) -> None:
        conn = self.conn
        if conn is None or not conn.open or self._stopping:
            raise RegistrationError(f"{self.name}: not connected to a session server ({self.last_error or 'starting'})")
        problem = await self._send(conn, item)
        if problem:
            raise RegistrationError(f"{self.name}: {problem}")

    async def publish(self, interface: str, address: str, *, application: str = "", group: str = "",
                      version: str = "", methods: Sequence[str] = (), weight: int | None = None,
                      protocol: str = "", serialization: str = "", timeout: int | None = None,
                      parameters: Mapping[str, str] | None = None) -> Registration:
        """Publish the app's provider of ``interface`` at ``address`` (see the module docstring)."""
        try:
            service = Service.parse(f"{interface}:{version or '1.0'}" + (f":{group}" if group else ""),
                                    protocol or "bolt")
        except DataError as exc:
            raise ValueError(str(exc)) from None
        split_address(address)
        if weight is not None and weight < 0:
            raise ValueError(f"weight {weight} is negative")
        text = provider_string(address, service, app=application or self.app,
                               weight=100 if weight is None else weight, serialization=serialization or "hessian2",
                               timeout=timeout, start_ms=self._now_ms(), rpc_version=SOFA_RPC_VERSION,
                               parameters=dict(parameters or {}))
        path = f"{data_info_id(service.data_id, self.instance_id)}/{address}"
        reg = Registration("provider", interface, address, service.unique_id, service.version,
                           f"{service.protocol}://{text}", path)
        existing = self._pubs.get(path)
        if existing is not None and _same_data(existing.register.data, text):
            return existing.registration
        if existing is not None:
            register = replace(existing.register, data=(text,), version=existing.register.version + 1,
                             timestamp=self._now_ms())
        else:
            register = Register("publisher", str(uuid.uuid4()), service.data_id, version=1, timestamp=self._now_ms(),
                                app=application or self.app, zone=self.zone, ip=self._ip,
                                instance_id=self.instance_id, data=(text,))
        item = _Publication(reg, register)
        self._pubs[path] = item
        try:
            await self._register_now(item)
        except RegistrationError:
            if existing is not None:
                self._pubs[path] = existing
            else:
                self._pubs.pop(path, None)
            raise
        return reg

    async def unpublish(self, registration: Registration) -> None:
        item = self._pubs.get(registration.path)
        if item is None:
            raise RegistrationError(f"{self.name}: {registration.path} is not published")
        item.register = replace(item.register, event_type=UNREGISTER, version=item.register.version + 1, data=())
        item.acked = False
        conn = self.conn
        if conn is None or not conn.open:
            self._pubs.pop(registration.path, None)   # the server dropped it with the connection
            return
        problem = await self._send(conn, item)
        self._pubs.pop(registration.path, None)
        if problem:
            raise RegistrationError(f"{self.name}: {problem} (it goes with the connection)")

    async def subscribe_consumer(self, interface: str, host: str, *, application: str = "", group: str = "",
                                 version: str = "", methods: Sequence[str] = (), protocol: str = "",
                                 serialization: str = "", timeout: int | None = None,
                                 parameters: Mapping[str, str] | None = None) -> Registration:
        """Subscribe the service's data id (SOFARegistry keeps no consumer entry besides the subscriber)."""
        try:
            service = Service.parse(f"{interface}:{version or '1.0'}" + (f":{group}" if group else ""),
                                    protocol or "bolt")
        except DataError as exc:
            raise ValueError(str(exc)) from None
        path = f"{data_info_id(service.data_id, self.instance_id)}/consumer/{host}"
        if path in self._consumers:
            return self._consumers[path][0]
        sub = self._subscription(service)
        sub.refs += 1
        if not sub.acked:
            try:
                await self._register_now(sub)
            except RegistrationError:
                self.unwatch(sub)
                raise
        reg = Registration("consumer", interface, host, service.unique_id, service.version,
                           f"{service.protocol}://{host}/{service.data_id}", path)
        self._consumers[path] = (reg, sub)
        return reg

    def unwatch(self, sub: _Subscription) -> None:
        """One reference fewer; the last one of an unpinned subscription unsubscribes it."""
        sub.refs = max(sub.refs - 1, 0)
        if sub.refs or sub.pinned or sub.register.event_type == UNREGISTER:
            return
        sub.register = replace(sub.register, event_type=UNREGISTER, version=sub.register.version + 1)
        sub.acked = False
        if self.conn is None:
            self._forget(sub)                # the server has no subscriber without a connection
        self._wake.set()
        if self.model is not None and not any(s.register.event_type == REGISTER
                                              for s in self._by_cluster.get(sub.service.interface, {}).values()):
            self.model.withdraw(self.name, sub.service.interface)

    async def unsubscribe_consumer(self, registration: Registration) -> None:
        entry = self._consumers.pop(registration.path, None)
        if entry is not None:
            self.unwatch(entry[1])

    def registrations(self, kind: str | None = None, interface: str | None = None) -> tuple[Registration, ...]:
        regs = [p.registration for p in self._pubs.values() if p.register.event_type == REGISTER]
        regs += [reg for reg, _ in self._consumers.values()]
        return tuple(r for r in regs if kind in (None, r.kind) and interface in (None, r.interface))

    def registered(self, registration: Registration) -> bool:
        return registration.path in self._pubs or registration.path in self._consumers

    async def shutdown(self) -> None:
        for item in list(self._pubs.values()):
            try:
                await asyncio.wait_for(self.unpublish(item.registration), self.invoke_timeout + 1)
            except (RegistrationError, asyncio.TimeoutError) as exc:
                self._error(f"withdrawing {item.registration.path}: {exc} (it goes with the connection)")

    async def wait_service(self, interface: str, timeout: float) -> bool:
        return await wait_event(self._ready.setdefault(interface, asyncio.Event()), timeout)

    # -- status ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        status = super().status()
        status.update({
            "connection": self.connection, "server": self.server, "servers": self.servers,
            "connections": self.connections, "app": self.app, "zone": self.zone, "data_center": self.data_center,
            "scope": self.scope, "counters": dict(self.counters),
            "subscriptions": [{"data_id": d, "regist_id": s.register.regist_id, "acked": s.acked,
                               "versions": {seg: p.version for seg, p in s.segments.items()}}
                              for d, s in sorted(self._subs.items())],
            "publications": [{**p.registration.to_json(), "regist_id": p.register.regist_id, "acked": p.acked,
                              "version": p.register.version} for p in self._pubs.values()],
            "snapshot": self.snapshot.status(self.snapshot_loaded),
        })
        return status

    def config_dump(self) -> dict[str, Any]:
        return {"servers": self.servers, "app": self.app, "zone": self.zone, "data_center": self.data_center,
                "scope": self.scope, "services": [s.unique_name for s in self.services]}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def __repr__(self) -> str:
        return (f"<SofaRegistrySource {self.name} {self.server or self.servers[0]} {self.connection} "
                f"subscriptions={len(self._subs)} publications={len(self._pubs)}>")


def _same_data(data: Sequence[str], text: str) -> bool:
    """The same provider string but for its start time (a republish of the same service changes nothing)."""
    strip = lambda s: "&".join(p for p in s.split("&") if not p.startswith("startTime="))
    return len(data) == 1 and strip(data[0]) == strip(text)


def _unique(specs: list[EndpointSpec]) -> list[EndpointSpec]:
    """One endpoint per (address, group, version): a provider listed by two segments counts once."""
    seen: dict[tuple[str, str, str], EndpointSpec] = {}
    for spec in specs:
        seen.setdefault((spec.address, spec.group, spec.version), spec)
    return list(seen.values())
