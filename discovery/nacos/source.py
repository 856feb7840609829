"""NacosSource: Nacos naming (gRPC, nacos-sdk-python 3.x ``v2.nacos``) → the cluster model; registrations.

Reading. Subscriptions through ``NacosNamingService.subscribe`` (server pushes, never polling of instances).
``naming: plain``: each configured service is subscribed and is a cluster. ``naming: dubbo``: the configured
interfaces' ``providers:{iface}:{version}:{group}`` services (found with ``list_services``) all feed the
cluster ``{iface}``. With ``services: all`` every listed service is followed. The service list is re-read
every ``list_interval`` (default 10 s) to follow new services / new Dubbo versions; that list is the only
periodic request. Pushes go through :class:`~discovery.nacos.naming.ServiceView` (lastRefTime ordering,
empty-push protection) and :func:`~discovery.nacos.naming.cluster_endpoints`.

Faults. The client emits no event when its connection drops (``v2/nacos/transport/rpc_client.py``: a
``DISCONNECTED`` event comes only when a *new* connection replaces the old one), so meshd watches the client's
state itself (``rpc_client.is_running()`` and the connection id, every ``connection_check`` = 0.2 s) and also
listens with ``rpc_client.register_connection_listener`` for an immediate reaction. Disconnected → the source
is marked stale and keeps its endpoints. New connection → resync.

Workaround (client gap): after a reconnect nacos-sdk-python 3.2 re-registers instances and re-subscribes only
on its redo cycle — ``v2/nacos/redo/abstract_redo_service.py#_execute_redo_task`` waits up to 30 s on a
queue that ``on_connected`` never feeds. meshd therefore, as soon as it sees a new connection, re-sends every
registration it made (``register_instance``) and every subscription (``NamingGRPCClientProxy.do_subscribe``,
whose reply is fed through the client's own cache, ``ServiceInfoCache.process_service``), then clears the
stale mark. The client's later redo finds them done.

Nacos unreachable for ``sync_timeout`` at start → the snapshot (raw hosts per service) is loaded (stale) and
the source counts as synced; it converges once Nacos answers. The snapshot is rewritten (atomically,
debounced by ``snapshot_delay``) after changes.

Writing (the :class:`~discovery.registration.Registry` methods): :meth:`publish` registers an ephemeral
instance held by the gRPC connection, as Dubbo's ``NacosRegistry`` does (``naming: dubbo``: service
``providers:{iface}:{version}:{group}``, every provider URL parameter as metadata; ``naming: plain``: the
service ``interface`` with the given metadata). :meth:`subscribe_consumer` watches the interface; Dubbo 3's
``NacosRegistry`` registers no consumer entry unless ``register-consumer-url=true``, so meshd writes a
``consumers:...`` instance only with ``register_consumers=True``.

Threading: everything runs on the event loop that called :meth:`start` (the client is asyncio too).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Callable, Mapping, Sequence

from discovery.dubbo_params import dubbo_params
from discovery.model import ClusterModel, split_address
from discovery.nacos.naming import (CONSUMERS, ServiceView, cluster_endpoints, cluster_of, render_service_name)
from discovery.registration import Registration, RegistrationError, Registry, ServiceInfo, wait_event
from discovery.snapshot import SnapshotError, SnapshotWriter, read_json_snapshot, write_json_atomic
from discovery.source import Source

log = logging.getLogger("discovery.nacos")
SNAPSHOT_FORMAT = "meshd.nacos.snapshot/1"
VOLATILE = frozenset({"timestamp", "pid"})


class NacosSource(Source, Registry):
    """See the module docstring. Constructor arguments mirror the ``discovery: - type: nacos`` config."""

    kind = "nacos"

    def __init__(self, name: str = "nacos", server_addresses: str = "127.0.0.1:8848", *, namespace: str = "public",
                 group: str = "DEFAULT_GROUP", services: Sequence[str] | str = (), naming: str = "dubbo",
                 clusters: Sequence[str] = (), username: str | None = None, password: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, snapshot_path: str | None = None,
                 sync_timeout: float = 5.0, list_interval: float = 10.0, snapshot_delay: float = 1.0,
                 connection_check: float = 0.2, cache_dir: str | None = None, register_consumers: bool = False,
                 default_warmup_ms: int | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name)
        if naming not in ("dubbo", "plain"):
            raise ValueError(f"naming must be 'dubbo' or 'plain', not {naming!r}")
        for item in [s.strip() for s in server_addresses.split(",") if s.strip()] or [""]:
            split_address(item.split("://")[-1])
        self.server_addresses, self.namespace, self.group, self.naming = server_addresses, namespace, group, naming
        self.watch_all = services == "all"
        if isinstance(services, str) and not self.watch_all:
            raise ValueError(f"services must be a list or 'all', not {services!r}")
        self.services = () if self.watch_all else tuple(dict.fromkeys(services))
        self.clusters = tuple(clusters)
        self.credentials = (username, password, access_key, secret_key)
        for key, value in (("sync_timeout", sync_timeout), ("list_interval", list_interval),
                           ("snapshot_delay", snapshot_delay), ("connection_check", connection_check)):
            if not value > 0:
                raise ValueError(f"{key} must be positive, not {value!r}")
        self.sync_timeout, self.list_interval, self.snapshot_delay = sync_timeout, list_interval, snapshot_delay
        self.connection_check, self.snapshot_path, self.cache_dir = connection_check, snapshot_path, cache_dir
        self.register_consumers, self.default_warmup_ms, self._clock = register_consumers, default_warmup_ms, clock
        self.connection = "stopped"        # connecting | connected | disconnected | stopped
        self.connections = 0               # connections seen (1 + reconnects)
        self.resyncs = 0                   # resubscribe/re-register rounds after a reconnect
        self.last_resync_s: float | None = None
        self.snapshot_loaded = 0
        self.client: Any = None            # the NacosNamingService (diagnostics and tests only)
        self._views: dict[str, ServiceView] = {}
        self._subscribed: set[str] = set()
        self._refs: dict[str, int] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._regs: dict[str, tuple[Registration, Any]] = {}
        self._conn_id: str | None = None
        self._live = False
        self._stopping = False
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.snapshot = SnapshotWriter(snapshot_path, snapshot_delay, self._snapshot_doc,
                                        lambda path, doc: write_json_atomic(path, doc, SNAPSHOT_FORMAT), self._error,
                                        self._spawn)
        self._lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self, model: ClusterModel) -> None:
        if self.model is not None:
            raise RuntimeError(f"source {self.name} already started")
        self.model = model
        self.connection = "connecting"
        loop = asyncio.get_running_loop()
        self._timers["deadline"] = loop.call_later(self.sync_timeout, self._on_sync_deadline)
        self._spawn(self._run())

    async def stop(self) -> None:
        """Deregister everything, write a last snapshot, close the client; endpoints stay, stale."""
        if self._stopping or self.model is None:
            return
        await self.shutdown()
        self._stopping = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        await self._cancel_tasks()
        await self.snapshot.flush()
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.shutdown(), 5)
            except Exception as exc:   # noqa: BLE001 - closing must not fail the daemon's shutdown
                log.warning("%s: closing the Nacos client: %s", self.name, exc)
        self.connection = "stopped"
        self.model.set_stale(self.name, True)

    def _client_config(self) -> Any:
        from v2.nacos import ClientConfigBuilder
        username, password, access_key, secret_key = self.credentials
        base = self.cache_dir or os.path.join(os.path.dirname(self.snapshot_path or ".meshd/x"), f"{self.name}-nacos")
        builder = (ClientConfigBuilder().server_address(self.server_addresses).namespace_id(self.namespace)
                   .cache_dir(os.path.join(base, "cache")).log_dir(os.path.join(base, "log")).log_level("WARNING")
                   .load_cache_at_start(False))
        if username:
            builder = builder.username(username).password(password or "")
        if access_key:
            builder = builder.access_key(access_key).secret_key(secret_key or "")
        cfg = builder.build()
        cfg.update_cache_when_empty = True   # meshd applies the empty-push protection itself (naming.py)
        return cfg

    async def _run(self) -> None:
        from v2.nacos import NacosNamingService
        from v2.nacos.transport.connection_event_listener import ConnectionEventListener
        source = self

        class _Listener(ConnectionEventListener):
            async def on_connected(self) -> None:
                source._check_connection()

            async def on_disconnect(self) -> None:
                source._check_connection()
        self.client = await NacosNamingService.create_naming_service(self._client_config())
        await self.client.grpc_client_proxy.rpc_client.register_connection_listener(_Listener())
        self._spawn(self._list_loop())
        while not self._stopping:
            self._check_connection()
            await asyncio.sleep(self.connection_check)

    def _rpc(self) -> Any:
        return self.client.grpc_client_proxy.rpc_client if self.client is not None else None

    def _check_connection(self) -> None:
        rpc = self._rpc()
        if rpc is None or self._stopping:
            return
        running = rpc.is_running() and rpc.current_connection is not None
        conn_id = rpc.current_connection.get_connection_id() if running else None
        if not running:
            if self.connection == "connected":
                log.warning("%s: Nacos connection lost; keeping the last known endpoints (stale)", self.name)
                self.connection = "disconnected"
                self.model.set_stale(self.name, True)
            return
        if conn_id == self._conn_id:
            return
        first = self._conn_id is None
        self._conn_id, self.connection = conn_id, "connected"
        self.connections += 1
        self._spawn(self._refresh() if first else self._resync())

    def _on_sync_deadline(self) -> None:
        self._timers.pop("deadline", None)
        if self.synced:
            return
        log.warning("%s: Nacos %s not synced after %ss; using the snapshot (stale)", self.name,
                    self.server_addresses, self.sync_timeout)
        self.model.set_stale(self.name, True)
        self._load_snapshot()
        self.mark_synced()

    # -- services -------------------------------------------------------------------------------------
    def _wanted(self, cluster: str | None) -> bool:
        return cluster is not None and (self.watch_all or cluster in self.services or self._refs.get(cluster, 0) > 0)

    async def _list(self) -> list[str]:
        from v2.nacos import ListServiceParam
        names, page = [], 1
        while True:
            listed = await self.client.list_services(ListServiceParam(
                namespace_id=self.namespace, group_name=self.group, page_no=page, page_size=500))
            names += list(listed.services or [])
            if not listed.services or len(names) >= (listed.count or 0):
                return names
            page += 1

    async def _refresh(self) -> None:
        """Subscribe every wanted service not subscribed yet (listing services when needed); first sync."""
        async with self._lock:
            try:
                if self.naming == "plain" and not self.watch_all:
                    names = list(self.services) + [c for c, n in self._refs.items() if n > 0]
                else:
                    names = await self._list()
                for name in names:
                    if name not in self._subscribed and self._wanted(cluster_of(name, self.naming)):
                        await self._subscribe(name)
            except Exception as exc:   # noqa: BLE001 - any client/server failure: logged, retried next round
                self._error(f"listing/subscribing: {type(exc).__name__}: {exc}")
                return
        if self.connection == "connected":
            self._synced_now()

    def _synced_now(self) -> None:
        self.model.set_stale(self.name, False)
        handle = self._timers.pop("deadline", None)
        if handle:
            handle.cancel()
        if not self.synced:
            log.info("%s: synced %d services from Nacos %s", self.name, len(self._subscribed), self.server_addresses)
            self.mark_synced()

    async def _subscribe(self, name: str) -> None:
        from v2.nacos import SubscribeServiceParam

        async def on_change(_instances: Any) -> None:
            self._on_push(name)
        self._views.setdefault(name, ServiceView(name))
        await self.client.subscribe(SubscribeServiceParam(service_name=name, group_name=self.group,
                                                          subscribe_callback=on_change))
        self._subscribed.add(name)
        self._on_push(name)     # the reply of the first subscription (already in the client's cache)

    def _on_push(self, name: str) -> None:
        """A push or reply for ``name`` reached the client's cache: offer it to the view (ordering, empty)."""
        if self.client is None or self._stopping:
            return
        service = self.client.service_info_holder.service_info_map.get(f"{self.group}@@{name}")
        if service is None:
            return
        self._live = True
        hosts = [h.model_dump() for h in service.hosts]
        outcome = self._views.setdefault(name, ServiceView(name)).offer(hosts, int(service.lastRefTime or 0))
        if outcome == "empty-kept":
            log.warning("%s: empty instance list for %s ignored; keeping its last %d hosts", self.name, name,
                        len(self._views[name].hosts))
        elif outcome == "applied":
            self._apply(cluster_of(name, self.naming))

    def _apply(self, cluster: str | None) -> None:
        if cluster is None or self.model is None:
            return
        views = [v for n, v in self._views.items() if v.received and cluster_of(n, self.naming) == cluster]
        specs, warming, errors = cluster_endpoints(views, naming=self.naming, clusters=self.clusters,
                                                   now_ms=self._now_ms(), default_warmup_ms=self.default_warmup_ms)
        for message in errors:
            self._error(message)
        diff = self.model.apply(self.name, cluster, specs)
        self._ready.setdefault(cluster, asyncio.Event()).set()
        if warming and "warmup" not in self._timers:
            self._timers["warmup"] = asyncio.get_running_loop().call_later(1.0, self._rewarm, cluster)
        if not diff.empty:
            self._schedule_snapshot()

    def _rewarm(self, cluster: str) -> None:
        self._timers.pop("warmup", None)
        self._apply(cluster)

    async def _list_loop(self) -> None:
        """Follow new services / Dubbo versions: the one periodic request (``list_interval``)."""
        while not self._stopping:
            await asyncio.sleep(self.list_interval)
            if self.connection == "connected" and (self.watch_all or self.naming == "dubbo"):
                await self._refresh()

    async def _resync(self) -> None:
        """The redo workaround (module docstring): re-register and re-subscribe now, not in 30 s."""
        started = time.monotonic()
        proxy = self.client.grpc_client_proxy
        for reg, param in list(self._regs.values()):
            try:
                await self.client.register_instance(param.model_copy())
            except Exception as exc:   # noqa: BLE001
                self._error(f"re-registering {reg.path}: {exc}")
        for name in sorted(self._subscribed):
            try:
                info = await proxy.do_subscribe(name, self.group, "")
                if info is not None:
                    await self.client.service_info_holder.process_service(info)
                self._on_push(name)
            except Exception as exc:   # noqa: BLE001
                self._error(f"re-subscribing {name}: {exc}")
        self.resyncs += 1
        self.last_resync_s = round(time.monotonic() - started, 3)
        log.info("%s: reconnected; %d registrations and %d subscriptions redone in %.3fs", self.name,
                 len(self._regs), len(self._subscribed), self.last_resync_s)
        await self._refresh()

    # -- snapshot -------------------------------------------------------------------------------------
    def _schedule_snapshot(self) -> None:
        if self._live and not self._stopping:
            self.snapshot.schedule()

    def _snapshot_doc(self) -> dict:
        return {"source": self.name, "namespace": self.namespace, "group": self.group, "naming": self.naming,
                "saved_at_ms": self._now_ms(),
                "services": {n: v.to_json() for n, v in self._views.items() if v.received}}

    def _load_snapshot(self) -> None:
        if not self.snapshot_path:
            self._error("Nacos unreachable and no snapshot_path configured: no endpoints until it answers")
            return
        try:
            doc = read_json_snapshot(self.snapshot_path, SNAPSHOT_FORMAT)
            if (doc.get("namespace"), doc.get("group"), doc.get("naming")) != (self.namespace, self.group, self.naming):
                raise SnapshotError(f"snapshot {self.snapshot_path}: written for another namespace/group/naming")
            services = doc.get("services")
            if not isinstance(services, dict):
                raise SnapshotError(f"snapshot {self.snapshot_path}: 'services' is not an object")
        except SnapshotError as exc:
            self._error(str(exc))
            return
        clusters = set()
        for name, item in services.items():
            if name in self._views and self._views[name].received:
                continue
            cluster = cluster_of(name, self.naming)
            if not self._wanted(cluster) or not isinstance(item, dict):
                continue
            try:
                self._views[name] = ServiceView.from_json(name, item)
            except ValueError as exc:
                self._error(f"snapshot {self.snapshot_path}: service {name}: {exc}")
                continue
            clusters.add(cluster)
            self.snapshot_loaded += 1
        for cluster in clusters:
            self._apply(cluster)
        log.info("%s: loaded %d services from snapshot %s", self.name, self.snapshot_loaded, self.snapshot_path)

    # -- registration API -----------------------------------------------------------------------------
    def _instance(self, kind: str, interface: str, address: str, info: ServiceInfo | None,
                  parameters: Mapping[str, str]) -> tuple[Registration, Any]:
        from v2.nacos import RegisterInstanceParam
        host, port = split_address(address) if kind == "provider" else (address, 0)
        if self.naming == "dubbo":
            assert info is not None
            side = "provider" if kind == "provider" else "consumer"
            metadata = dubbo_params(side, info, pid=os.getpid(), timestamp_ms=self._now_ms())
            protocol = info.protocol or ("dubbo" if kind == "provider" else "consumer")
            metadata.setdefault("protocol", protocol)
            metadata.setdefault("path", interface)
            service = render_service_name(interface, info.version, info.group,
                                          "providers" if kind == "provider" else CONSUMERS)
        else:
            if not interface or any(c in interface for c in "@ /"):
                raise ValueError(f"service {interface!r} is not a Nacos service name")
            metadata, protocol, service = dict(parameters), parameters.get("protocol", "nacos"), interface
        weight = (info.weight if info and info.weight is not None else 100) / 100
        query = "&".join(f"{k}={metadata[k]}" for k in sorted(metadata))
        url = f"{protocol}://{address}/{interface}?{query}"
        version = info.version if info else metadata.get("version", "")
        group = info.group if info else metadata.get("group", "")
        reg = Registration(kind, interface, address, group, version, url,
                           f"{self.namespace}/{self.group}@@{service}/{host}:{port}")
        param = RegisterInstanceParam(service_name=service, group_name=self.group, ip=host, port=port or 1,
                                      weight=weight, metadata=metadata, ephemeral=True)
        return reg, param

    async def _register(self, reg: Registration, param: Any) -> Registration:
        if self.client is None or self._stopping:
            raise RegistrationError(f"{self.name}: source is not running")
        existing = self._regs.get(reg.path)
        strip = lambda p: {k: v for k, v in p.metadata.items() if k not in VOLATILE}
        if existing and strip(existing[1]) == strip(param) and existing[1].weight == param.weight:
            return existing[0]
        try:
            ok = await self.client.register_instance(param)
        except Exception as exc:   # noqa: BLE001 - the client raises NacosException and transport errors
            raise RegistrationError(f"{self.name}: registering {reg.path}: {exc}") from exc
        if not ok:
            raise RegistrationError(f"{self.name}: Nacos refused {reg.path}")
        self._regs[reg.path] = (reg, param)
        return reg

    async def _deregister(self, reg: Registration) -> None:
        from v2.nacos import DeregisterInstanceParam
        entry = self._regs.pop(reg.path, None)
        if entry is None:
            raise RegistrationError(f"{self.name}: {reg.path} is not registered")
        param = entry[1]
        try:
            await self.client.deregister_instance(DeregisterInstanceParam(
                service_name=param.service_name, group_name=param.group_name, ip=param.ip, port=param.port))
        except Exception as exc:   # noqa: BLE001
            raise RegistrationError(f"{self.name}: deregistering {reg.path}: {exc}") from exc

    def _info(self, interface: str, **kw: Any) -> ServiceInfo | None:
        if self.naming != "dubbo":
            return None
        kw["methods"] = tuple(kw.get("methods") or ())
        kw["parameters"] = dict(kw.get("parameters") or {})
        return ServiceInfo(interface, **kw)

    async def publish(self, interface: str, address: str, *, application: str = "", group: str = "",
                      version: str = "", methods: Sequence[str] = (), weight: int | None = None,
                      protocol: str = "", serialization: str = "", timeout: int | None = None,
                      parameters: Mapping[str, str] | None = None) -> Registration:
        """Register an ephemeral provider instance (see the module docstring); kept across reconnects."""
        info = self._info(interface, application=application, group=group, version=version, methods=methods,
                          weight=weight, protocol=protocol, serialization=serialization, timeout=timeout,
                          parameters=parameters)
        reg, param = self._instance("provider", interface, address, info, dict(parameters or {}))
        return await self._register(reg, param)

    async def unpublish(self, registration: Registration) -> None:
        await self._deregister(registration)

    async def subscribe_consumer(self, interface: str, host: str, *, application: str = "", group: str = "",
                                 version: str = "", methods: Sequence[str] = (), protocol: str = "",
                                 serialization: str = "", timeout: int | None = None,
                                 parameters: Mapping[str, str] | None = None) -> Registration:
        """Watch ``interface``'s providers (plus a ``consumers:`` instance with ``register_consumers``)."""
        info = self._info(interface, application=application, group=group, version=version, methods=methods,
                          protocol=protocol, serialization=serialization, timeout=timeout, parameters=parameters)
        reg, param = self._instance("consumer", interface, host, info, dict(parameters or {}))
        if self.register_consumers:
            reg = await self._register(reg, param)
        await self.watch_service(interface, timeout=0)
        return reg

    async def unsubscribe_consumer(self, registration: Registration) -> None:
        if registration.path in self._regs:
            await self._deregister(registration)
        self.unwatch_service(registration.interface)

    def registrations(self, kind: str | None = None, interface: str | None = None) -> tuple[Registration, ...]:
        return tuple(r for r, _ in self._regs.values()
                     if (kind is None or r.kind == kind) and (interface is None or r.interface == interface))

    def registered(self, registration: Registration) -> bool:
        return registration.path in self._regs

    async def shutdown(self) -> None:
        for reg, _ in list(self._regs.values()):
            try:
                await asyncio.wait_for(self._deregister(reg), 5)
            except (RegistrationError, asyncio.TimeoutError) as exc:
                self._error(f"withdrawing {reg.path}: {exc} (it goes with the connection)")

    async def watch_service(self, cluster: str, timeout: float | None = None) -> bool:
        """Watch one more cluster (reference-counted) and wait up to ``timeout`` for it to be in the model."""
        if self.model is None or self._stopping:
            raise RuntimeError(f"source {self.name} is not running")
        self._refs[cluster] = self._refs.get(cluster, 0) + 1
        if self.connection == "connected":
            self._spawn(self._refresh())
        return await self.wait_service(cluster, self.sync_timeout if timeout is None else timeout)

    def unwatch_service(self, cluster: str) -> bool:
        if self._refs.get(cluster, 0) == 0:
            return False
        self._refs[cluster] -= 1
        return True

    async def wait_service(self, interface: str, timeout: float) -> bool:
        return await wait_event(self._ready.setdefault(interface, asyncio.Event()), timeout)

    # -- status ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        status = super().status()
        status.update({
            "connection": self.connection, "connection_id": self._conn_id, "connections": self.connections,
            "server_addresses": self.server_addresses, "namespace": self.namespace, "group": self.group,
            "naming": self.naming, "services": "all" if self.watch_all else list(self.services),
            "subscriptions": sorted(self._subscribed),
            "clusters": sorted({c for n in self._subscribed if (c := cluster_of(n, self.naming))}),
            "empty_kept": sorted(n for n, v in self._views.items() if v.empty_kept),
            "registrations": [r.to_json() for r, _ in self._regs.values()],
            "resyncs": self.resyncs, "last_resync_s": self.last_resync_s,
            "snapshot": self.snapshot.status(self.snapshot_loaded),
        })
        return status

    # -- helpers --------------------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def __repr__(self) -> str:
        return (f"<NacosSource {self.name} {self.naming} {self.server_addresses} {self.connection} "
                f"subscriptions={len(self._subscribed)} registrations={len(self._regs)}>")
