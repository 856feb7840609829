"""ZooKeeperSource: Dubbo / SOFARPC providers in ZooKeeper → the cluster model; registrations for the local app.

Reading. One cluster per interface (named by the interface; group, version, uniqueId are endpoint metadata).
The source watches ``providers/`` (and Dubbo ``configurators/``; SOFARPC node data) of every configured
interface — or, with ``services="all"``, of every child of the root, watching the root for new ones — through
:mod:`~discovery.zookeeper.watches` (watches, not polling). Each change re-reads one directory and applies that
service's new endpoint list with :meth:`ClusterModel.apply`; providers warming up are re-applied every
``warmup_interval`` until warm.

Faults. Connection lost (SUSPENDED) → the source is marked stale (:meth:`ClusterModel.set_stale`) and keeps its
endpoints. Reconnected → every watched path is read again; when that round completes the stale mark is
cleared. A new session (the old one expired: LOST) → every registration is re-created first. ZooKeeper
unreachable for ``sync_timeout`` at start → the on-disk snapshot is loaded (stale) and the source counts as
synced; it converges once ZooKeeper answers. Nothing is ever emptied because a session dropped. The snapshot
is rewritten (atomically, debounced by ``snapshot_delay``) after changes.

Writing. :meth:`ZooKeeperSource.publish` / :meth:`subscribe_consumer` create ephemeral provider / consumer nodes
exactly as the Dubbo or SOFARPC SDK would (:mod:`~discovery.zookeeper.registration`) and return a
:class:`Registration` handle for :meth:`unpublish` / :meth:`unsubscribe_consumer`; failures raise
:class:`RegistrationError` and leave nothing behind. These are the :class:`~discovery.registration.Registry`
methods, through which the registry APIs register SDK-less apps. :meth:`watch_service` / :meth:`unwatch_service` add and
release (reference-counted) interfaces at runtime.

Threading: every method runs on the event loop that called :meth:`start`; kazoo's threads only post onto it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from discovery.model import ClusterModel, split_address
from discovery.registration import INTERFACE, Registration, RegistrationError, Registry, ServiceInfo
from discovery.source import Source
from discovery.zookeeper.bridge import KazooBridge
from discovery.zookeeper.layouts import get_layout
from discovery.zookeeper.registrar import Registrar
from discovery.zookeeper.registration import NodeRegistration, build_consumer, build_provider
from discovery.zookeeper.service import ServiceState
from discovery.snapshot import SnapshotWriter
from discovery.zookeeper.snapshot import SnapshotError, read_snapshot, write_snapshot
from discovery.zookeeper.urls import decode_name
from discovery.zookeeper.watches import Kind, Watch, Watches

log = logging.getLogger("discovery.zookeeper")
ZNODE_PATH = re.compile(r"(/[^/\s]+)+")


@dataclass(eq=False)
class _Service:
    """One watched interface: its registry state and why it is watched."""

    interface: str
    state: ServiceState
    configured: bool = False        # listed in `services`
    discovered: bool = False        # a child of the root (services: all)
    refs: int = 0                   # watch_service / subscribe_consumer references
    published: bool = False         # reported to the model
    watches: list[Watch] = field(default_factory=list)
    data_watches: dict[str, Watch] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def wanted(self) -> bool:
        return self.configured or self.discovered or self.refs > 0

    @property
    def publishable(self) -> bool:
        """Ready, and either asked for explicitly or (discovered only) with a providers/ directory."""
        return self.state.ready and (self.configured or self.refs > 0 or self.state.providers_exist)


class ZooKeeperSource(Source, Registry):
    """See the module docstring. Constructor arguments mirror the ``discovery: - type: zookeeper`` config."""

    kind = "zookeeper"

    def __init__(self, name: str = "zookeeper", servers: str = "127.0.0.1:2181", *, chroot: str = "",
                 session_timeout: float = 30.0, auth: str | None = None, layout: str = "dubbo",
                 services: Sequence[str] | str = (), root: str | None = None, snapshot_path: str | None = None,
                 sync_timeout: float = 5.0, request_timeout: float = 10.0, default_warmup_ms: int | None = None,
                 warmup_interval: float = 1.0, snapshot_delay: float = 1.0, reconnect_max_delay: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name)
        self.layout = get_layout(layout)
        servers, slash, inline_chroot = (servers or "").partition("/")
        if slash and chroot:
            raise ValueError(f"chroot given twice: in servers (/{inline_chroot}) and as chroot ({chroot})")
        self.servers = _check_servers(servers)
        self.chroot = _check_path("chroot", f"/{inline_chroot}" if slash else chroot, allow_empty=True)
        self.root = _check_path("root", root if root is not None else self.layout.default_root)
        self.watch_all = services == "all"
        self.services = () if self.watch_all else _check_services(services)
        if auth is not None and (":" not in auth or not auth.partition(":")[0]):
            raise ValueError("auth must be 'user:password' (ZooKeeper digest)")
        for key, value in (("session_timeout", session_timeout), ("sync_timeout", sync_timeout),
                           ("request_timeout", request_timeout), ("warmup_interval", warmup_interval),
                           ("snapshot_delay", snapshot_delay), ("reconnect_max_delay", reconnect_max_delay)):
            if not value > 0:
                raise ValueError(f"{key} must be positive, not {value!r}")
        if default_warmup_ms is not None and default_warmup_ms < 0:
            raise ValueError(f"default_warmup_ms must be >= 0, not {default_warmup_ms!r}")
        self.auth, self.session_timeout, self.sync_timeout = auth, session_timeout, sync_timeout
        self.request_timeout, self.default_warmup_ms = request_timeout, default_warmup_ms
        self.warmup_interval, self.snapshot_delay = warmup_interval, snapshot_delay
        self.reconnect_max_delay, self.snapshot_path, self._clock = reconnect_max_delay, snapshot_path, clock
        self.connection = "stopped"           # connecting | connected | suspended | lost | stopped
        self.sessions = 0                     # sessions established (1 + expiries survived)
        self.snapshot_loaded = 0              # services loaded from the snapshot at start-up
        self._services: dict[str, _Service] = {}
        self._warming: set[str] = set()
        self._config_ids = itertools.count()
        self._bridge: KazooBridge | None = None
        self._watches: Watches | None = None
        self._registrar: Registrar | None = None
        self._session_id: int | None = None
        self._live = False                    # applied data read from ZooKeeper (not only the snapshot)
        self._stopping = False
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.snapshot = SnapshotWriter(snapshot_path, snapshot_delay, self._snapshot_doc, write_snapshot, self._error,
                                        self._spawn)

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self, model: ClusterModel) -> None:
        if self._bridge is not None:
            raise RuntimeError(f"source {self.name} already started")
        self.model = model
        loop = asyncio.get_running_loop()
        self._bridge = KazooBridge(loop, self.servers + self.chroot, session_timeout=self.session_timeout,
                                   auth=self.auth, reconnect_max_delay=self.reconnect_max_delay,
                                   on_state=self._on_state)
        self._watches = Watches(self._bridge, self)
        self._registrar = Registrar(self._bridge, self.name, self.request_timeout)
        if self.watch_all:
            self._watches.add(Kind.ROOT, self.root)
        for interface in self.services:
            self._acquire(interface, configured=True)
        self.connection = "connecting"
        self._bridge.start()
        self._timers["deadline"] = loop.call_later(self.sync_timeout, self._on_sync_deadline)

    async def stop(self) -> None:
        """Remove every registration, write a last snapshot, close the session. The model keeps the
        endpoints, marked stale (nobody watches them any more)."""
        if self._bridge is None or self._stopping:
            return
        self._stopping = True                 # no publish, no re-creation from here on
        await self.shutdown()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        await self._cancel_tasks()
        await self.snapshot.flush()
        await self._bridge.close()
        self.connection = "stopped"
        self._set_stale(True)

    @property
    def client(self):
        """The kazoo client (None before :meth:`start`), for diagnostics and fault-injection tests only:
        calling it directly bypasses the loop marshalling."""
        return self._bridge.client if self._bridge else None

    # -- connection state (posted by the bridge) ------------------------------------------------------
    def _on_state(self, state: str) -> None:
        if self._stopping:
            return
        if state == "CONNECTED":
            self._on_connected()
        elif state in ("SUSPENDED", "LOST"):
            log.warning("%s: ZooKeeper %s; keeping the last known endpoints (stale)", self.name,
                        "connection lost" if state == "SUSPENDED" else "session lost")
            self.connection = state.lower()
            self._set_stale(True)

    def _on_connected(self) -> None:
        session = self._bridge.session_id
        if session is None:
            return  # already disconnected again: the SUSPENDED / LOST that follows says so
        self.connection = "connected"
        if session != self._session_id:
            self.sessions += 1
            if self._session_id is not None:
                log.warning("%s: new ZooKeeper session %#x (the previous one expired); re-registering",
                            self.name, session or 0)
        self._session_id = session
        if len(self._registrar) or self._registrar.orphans:
            # Re-create our nodes before reading the tree again, so that our own providers do not flap out
            # of the model after a session expiry (the read would otherwise race the re-creation).
            self._spawn(self._restore_registrations(resync=True))
        else:
            self._watches.resync()

    async def _restore_registrations(self, resync: bool = False) -> None:
        ok = False
        try:
            ok = await self._registrar.recreate()
            await self._registrar.delete_orphans()
        finally:
            if resync and self._bridge.connected and not self._stopping:
                self._watches.resync()
        if not ok:
            self._error(self._registrar.last_error)
            if self._bridge.connected and not self._stopping:
                self._timers["restore"] = asyncio.get_running_loop().call_later(
                    1.0, lambda: self._spawn(self._restore_registrations()))

    def _on_sync_deadline(self) -> None:
        self._timers.pop("deadline", None)
        if self.synced or self._bridge.connected:
            return  # synced, or connected and still reading: the first round will finish
        log.warning("%s: ZooKeeper %s not reachable after %ss; using the snapshot (stale)", self.name,
                    self.servers, self.sync_timeout)
        self._set_stale(True)
        self._load_snapshot()
        self.mark_synced()

    def _set_stale(self, stale: bool) -> None:
        if self.model is not None:
            self.model.set_stale(self.name, stale)

    # -- watch results (called by Watches) ------------------------------------------------------------
    def on_result(self, watch: Watch, value: Any) -> None:
        self._live = True
        if watch.kind is Kind.ROOT:
            self._on_root(value or ())
            return
        svc = self._services.get(watch.interface)
        if svc is None:
            return
        if watch.kind is Kind.PROVIDERS:
            self._errors_found(svc.state.set_providers(value))
            self._sync_data_watches(svc)
        elif watch.kind is Kind.RULES:
            self._errors_found(svc.state.set_overrides(value or ()))
        elif not svc.state.set_data(watch.name, value) and svc.published:
            return
        self._apply(svc)

    def on_error(self, watch: Watch, exc: BaseException) -> None:
        self._error(f"reading {watch.path}: {type(exc).__name__} {exc}".rstrip())

    def on_synced(self) -> None:
        if not self._bridge.connected or self._stopping:
            return
        handle = self._timers.pop("deadline", None)
        if handle:
            handle.cancel()
        self._set_stale(False)
        published = {i for i, s in self._services.items() if s.published}
        for cluster in self.model.source_clusters(self.name):
            if cluster not in published:
                self.model.withdraw(self.name, cluster)
        if not self.synced:
            log.info("%s: synced %d services from ZooKeeper %s", self.name, len(published), self.servers)
            self.mark_synced()
        self._schedule_snapshot()

    def _on_root(self, names) -> None:
        present = set()
        for name in names:
            try:
                present.add(decode_name(name))
            except UnicodeDecodeError:
                self._error(f"{self.root}/{name}: not a URL-encoded interface name")
        for interface in present:
            self._acquire(interface, discovered=True)
        for svc in list(self._services.values()):
            if svc.discovered and svc.interface not in present:
                svc.discovered = False
                self._release_if_unwanted(svc)

    # -- services -------------------------------------------------------------------------------------
    def _acquire(self, interface: str, *, configured: bool = False, discovered: bool = False,
                 ref: bool = False) -> _Service:
        svc = self._services.get(interface)
        if svc is None:
            svc = self._services[interface] = _Service(interface, ServiceState(interface, self.layout))
            svc.watches.append(self._watches.add(
                Kind.PROVIDERS, self.layout.providers_path(self.root, interface), interface))
            rules = self.layout.configurators_path(self.root, interface)
            if rules:
                svc.watches.append(self._watches.add(Kind.RULES, rules, interface))
        svc.configured |= configured
        svc.discovered |= discovered
        svc.refs += ref
        if (configured or ref) and svc.state.ready and not svc.published:
            self._apply(svc)   # e.g. an existing providers-less service that is now asked for explicitly
        return svc

    def _release_if_unwanted(self, svc: _Service) -> None:
        if svc.wanted:
            return
        for watch in svc.watches + list(svc.data_watches.values()):
            self._watches.remove(watch)
        del self._services[svc.interface]
        self._warming.discard(svc.interface)
        if svc.published:
            self.model.withdraw(self.name, svc.interface)
            self._schedule_snapshot()

    def _sync_data_watches(self, svc: _Service) -> None:
        if not self.layout.reads_data:
            return
        wanted = {name for name, node in svc.state.providers.items() if node is not None}
        for name in set(svc.data_watches) - wanted:
            self._watches.remove(svc.data_watches.pop(name))
        directory = self.layout.providers_path(self.root, svc.interface)
        for name in wanted - set(svc.data_watches):
            svc.data_watches[name] = self._watches.add(Kind.DATA, f"{directory}/{name}", svc.interface, name)

    def _apply(self, svc: _Service) -> None:
        if not svc.publishable:
            if svc.published and svc.state.ready:   # a discovered service lost its providers/ directory
                svc.published = False
                self._warming.discard(svc.interface)
                self.model.withdraw(self.name, svc.interface)
                self._schedule_snapshot()
            return
        specs, warming = svc.state.endpoints(self._now_ms(), self.default_warmup_ms)
        diff = self.model.apply(self.name, svc.interface, specs)
        svc.published = True
        svc.ready.set()
        if warming:
            self._warming.add(svc.interface)
            self._arm_warmup()
        else:
            self._warming.discard(svc.interface)
        if not diff.empty:
            self._schedule_snapshot()

    # -- warm-up --------------------------------------------------------------------------------------
    def refresh_warmup(self) -> int:
        """Re-apply every service with providers still warming up (at the clock's time); returns how many."""
        warming = [self._services[i] for i in list(self._warming) if i in self._services]
        for svc in warming:
            self._apply(svc)
        return len(warming)

    def _arm_warmup(self) -> None:
        if "warmup" not in self._timers and self._warming and not self._stopping:
            self._timers["warmup"] = asyncio.get_running_loop().call_later(self.warmup_interval, self._warmup_tick)

    def _warmup_tick(self) -> None:
        self._timers.pop("warmup", None)
        self.refresh_warmup()
        self._arm_warmup()

    # -- snapshot -------------------------------------------------------------------------------------
    def _schedule_snapshot(self) -> None:
        if self._live and not self._stopping:
            self.snapshot.schedule()

    def _snapshot_doc(self) -> dict:
        return {"source": self.name, "layout": self.layout.name, "root": self.root, "saved_at_ms": self._now_ms(),
                "services": {i: s.state.to_json() for i, s in self._services.items() if s.published}}

    def _load_snapshot(self) -> None:
        if not self.snapshot_path:
            self._error("ZooKeeper unreachable and no snapshot_path configured: no endpoints until it answers")
            return
        try:
            services = read_snapshot(self.snapshot_path, layout=self.layout.name, root=self.root)
        except SnapshotError as exc:
            self._error(str(exc))
            return
        for interface, doc in services.items():
            known = interface in self._services
            if not (self.watch_all or known) or (known and self._services[interface].state.listed):
                continue
            try:
                state, errors = ServiceState.from_json(interface, self.layout, doc)
            except (ValueError, TypeError, AttributeError) as exc:
                self._error(f"snapshot {self.snapshot_path}: service {interface}: {exc}")
                continue
            self._errors_found(errors)
            svc = self._acquire(interface, discovered=not known)
            svc.state = state
            self._apply(svc)
            self.snapshot_loaded += 1
        log.info("%s: loaded %d services from snapshot %s", self.name, self.snapshot_loaded, self.snapshot_path)

    # -- registration API -----------------------------------------------------------------------------
    async def publish(self, interface: str, address: str, *, application: str = "", group: str = "",
                      version: str = "", methods: Sequence[str] = (), weight: int | None = None,
                      protocol: str = "", serialization: str = "", timeout: int | None = None,
                      parameters: Mapping[str, str] | None = None) -> Registration:
        """Register the local app as a provider of ``interface`` at ``address`` (``host:port``).

        Writes the ephemeral provider node the Dubbo / SOFARPC SDK would write for this layout and keeps it
        (re-created after a session expiry) until :meth:`unpublish` or :meth:`stop`. Publishing the same
        service (interface, address, group, version, protocol) again returns the existing registration, or
        replaces its node when other parameters changed. Raises ``ValueError`` for bad arguments and
        :class:`RegistrationError` when ZooKeeper refuses or cannot be reached (nothing is left behind).
        """
        info = ServiceInfo(interface, application, group, version, tuple(methods), weight, protocol,
                           serialization, timeout, dict(parameters or {}))
        reg = build_provider(self.layout, self.root, address, info, pid=os.getpid(), timestamp_ms=self._now_ms(),
                             config_id=self._config_id())
        return await self._register(reg)

    async def unpublish(self, registration: Registration) -> None:
        """Delete a provider node registered by :meth:`publish` (RegistrationError if it is not registered)."""
        await self._require_registrar().remove(registration)

    async def subscribe_consumer(self, interface: str, host: str, *, application: str = "", group: str = "",
                                 version: str = "", methods: Sequence[str] = (), protocol: str = "",
                                 serialization: str = "", timeout: int | None = None,
                                 parameters: Mapping[str, str] | None = None) -> Registration:
        """Register the local app (at ``host``) as a consumer of ``interface`` and watch its providers.

        Writes the ephemeral ``consumer://`` (Dubbo) / consumers (SOFARPC) node and takes a
        :meth:`watch_service` reference, released by :meth:`unsubscribe_consumer`. Errors as :meth:`publish`.
        """
        info = ServiceInfo(interface, application, group, version, tuple(methods), None, protocol,
                           serialization, timeout, dict(parameters or {}))
        reg = build_consumer(self.layout, self.root, host, info, pid=os.getpid(), timestamp_ms=self._now_ms(),
                             config_id=self._config_id())
        known = any(r.key == reg.key for r in self._require_registrar().all())
        reg = await self._register(reg)
        if not known:   # one watch reference per consumer, however often it is subscribed again
            try:
                await self.watch_service(interface, timeout=0)
            except BaseException:
                await self._require_registrar().remove(reg)   # nothing half-subscribed is left behind
                raise
        return reg

    async def unsubscribe_consumer(self, registration: Registration) -> None:
        """Delete a consumer node of :meth:`subscribe_consumer` (if it is still registered) and release its
        watch reference."""
        registrar = self._require_registrar()
        if registrar.get(registration.path) is not None:
            await registrar.remove(registration)
        self.unwatch_service(registration.interface)

    async def shutdown(self) -> None:
        """Delete every node meshd registered (while connected; otherwise they expire with the session)."""
        if self._registrar is None or self._bridge is None or not self._bridge.connected or not len(self._registrar):
            return
        try:
            await asyncio.wait_for(self._registrar.clear(), self.request_timeout)
        except asyncio.TimeoutError:
            self._error("removing the registrations timed out (they expire with the session)")

    def registrations(self, kind: str | None = None, interface: str | None = None) -> tuple[Registration, ...]:
        """The live registrations, optionally only of one kind ("provider"/"consumer") or interface."""
        return tuple(r for r in self._require_registrar().all()
                     if (kind is None or r.kind == kind) and (interface is None or r.interface == interface))

    async def _register(self, reg: NodeRegistration) -> NodeRegistration:
        registrar = self._require_registrar()
        existing = [r for r in registrar.all() if r.key == reg.key]
        if existing and existing[0].same_content(reg):
            return existing[0]
        added = await registrar.add(reg)
        for old in existing:
            if old.path != added.path:
                await registrar.remove(old)
        return added

    def _require_registrar(self) -> Registrar:
        if self._registrar is None or self._stopping:
            raise RegistrationError(f"{self.name}: source is not running")
        return self._registrar

    # -- runtime watches ------------------------------------------------------------------------------
    async def watch_service(self, interface: str, timeout: float | None = None) -> bool:
        """Watch ``interface`` (one more reference) and wait up to ``timeout`` (default ``sync_timeout``; 0: do
        not wait) until its endpoints are in the model; returns whether they are."""
        _check_services([interface])
        if self._watches is None or self._stopping:
            raise RuntimeError(f"source {self.name} is not running")
        self._acquire(interface, ref=True)
        return await self.wait_service(interface, self.sync_timeout if timeout is None else timeout)

    async def wait_service(self, interface: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until a watched ``interface`` is in the model."""
        svc = self._services.get(interface)
        if svc is None:
            return False
        if not svc.published and timeout > 0:
            try:
                await asyncio.wait_for(svc.ready.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return svc.published

    def unwatch_service(self, interface: str) -> bool:
        """Release one :meth:`watch_service` reference; the cluster is withdrawn when nothing wants it."""
        svc = self._services.get(interface)
        if svc is None or svc.refs == 0:
            return False
        svc.refs -= 1
        self._release_if_unwanted(svc)
        return True

    # -- status ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        status = super().status()
        registrar = self._registrar
        status.update({
            "connection": self.connection, "servers": self.servers, "chroot": self.chroot,
            "layout": self.layout.name, "root": self.root,
            "session_id": f"{self._session_id:#x}" if self._session_id else None, "sessions": self.sessions,
            "services": "all" if self.watch_all else list(self.services),
            "watched_services": len(self._services),
            "clusters": sum(1 for s in self._services.values() if s.published),
            "watches": len(self._watches) if self._watches else 0, "warming": sorted(self._warming),
            "invalid_nodes": sum(len(s.state.errors) for s in self._services.values()),
            "shared_addresses": sum(s.state.shared_addresses for s in self._services.values()),
            "registrations": [r.to_json() for r in registrar.all()] if registrar else [],
            "pending_deletes": sorted(registrar.orphans) if registrar else [],
            "snapshot": self.snapshot.status(self.snapshot_loaded),
        })
        return status

    # -- helpers --------------------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _config_id(self) -> str:
        return f"rpc-cfg-{next(self._config_ids)}"


    def _errors_found(self, errors: list[str]) -> None:
        for message in errors:
            self._error(message)

    def __repr__(self) -> str:
        return (f"<ZooKeeperSource {self.name} {self.layout.name} {self.servers}{self.chroot}{self.root} "
                f"{self.connection} services={len(self._services)} registrations="
                f"{len(self._registrar) if self._registrar else 0}>")


def _check_servers(servers: str) -> str:
    items = [s.strip() for s in (servers or "").split(",") if s.strip()]
    if not items:
        raise ValueError("servers must list at least one host:port")
    for item in items:
        split_address(item)
    return ",".join(items)


def _check_path(key: str, path: str, allow_empty: bool = False) -> str:
    if allow_empty and path == "":
        return path
    if not ZNODE_PATH.fullmatch(path or ""):
        raise ValueError(f"{key} {path!r} must be an absolute znode path like /dubbo (no trailing slash)")
    return path


def _check_services(services: Sequence[str]) -> tuple[str, ...]:
    if isinstance(services, str):
        raise ValueError(f"services must be a list of interfaces or 'all', not {services!r}")
    for interface in services:
        if not isinstance(interface, str) or not INTERFACE.fullmatch(interface):
            raise ValueError(f"service {interface!r} is not a Java interface name")
    return tuple(dict.fromkeys(services))
