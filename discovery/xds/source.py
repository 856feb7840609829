"""XdsSource: an xDS control plane (Istio, or any ADS server) → the cluster model and the daemon's routes.

Subscriptions. CDS by wildcard; EDS by exactly the service names of the accepted EDS clusters; RDS by the
names the daemon's listeners take from this source (``route_config: {xds: <name>, name: "9080"}``) and
those the accepted LDS listeners reference (with ``listeners`` in ``resources``: LDS by wildcard). Every
change of an accepted set re-subscribes (:mod:`discovery.xds.transport` does the wire protocol).

Listeners (with ``listeners`` in ``resources``). An LDS listener with a socket address and an HTTP
connection manager becomes a meshd HTTP listener ``<source>:<name>`` at its port, on 127.0.0.1 unless
``listener_addresses: any``, taking its routes by RDS name or inline (published under the listener's
name); one the control plane drops stops accepting. ``api_listener`` resources (gRPC's) only name routes.

Decode, validate, then apply. Each response is decoded whole (:mod:`discovery.xds.resources`); any
resource that fails is a NACK of the response, naming the resource and the field, and nothing of it is
applied. Route configurations are validated once more by the daemon (its config model) before the
response is ACKed. Accepted clusters feed the model: one model cluster per xDS cluster, named as the
control plane names it, with the cluster's settings as source-provided settings and its endpoints from
EDS (or the cluster's own ``load_assignment`` for STATIC and STRICT_DNS). A cluster removed from the CDS
state leaves the model.

Dual mode (``merge: service``). An xDS cluster without a subset whose host names the same service as a
cluster another source feeds (a Dubbo interface from ZooKeeper, compared case-insensitively, as Istio's
ServiceEntry hosts are lower-case) also feeds that cluster: a consumer calling the interface reaches
providers found in the registry and in the control plane alike, each endpoint attributed to its source,
the first configured source winning where both report one address. Registry clusters that appear later
are matched when they appear.

Faults. Control plane away → the source is marked stale and nothing is emptied; when the stream is back
the control plane re-sends (or, in Delta, confirms) the state and the stale mark is cleared. ``synced``
once the first CDS response and the assignments and routes it implies were seen (or found missing), or
after ``initial_fetch_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Mapping

from discovery.model import ClusterDiff, ClusterModel, EndpointSpec
from discovery.source import ListenerPublisher, RoutePublisher, Source
from discovery.xds import resources as res
from discovery.xds.transport import CLUSTER, ENDPOINT, LISTENER, ROUTE, WILDCARD, AdsClient, Update

log = logging.getLogger("discovery.xds")
TYPE_NAMES = {CLUSTER: "cds", ENDPOINT: "eds", ROUTE: "rds", LISTENER: "lds"}


class XdsSource(Source):
    """See the module docstring. Constructor arguments mirror the ``discovery: - type: xds`` config."""

    kind = "xds"

    def __init__(self, name: str, server: str, *, node_id: str, node_cluster: str = "",
                 locality: tuple[str, str, str] = ("", "", ""), metadata: Mapping[str, Any] | None = None,
                 delta: bool = False, resources: tuple[str, ...] = ("clusters", "endpoints", "routes"),
                 merge: str = "service", initial_fetch_timeout: float = 15.0,
                 tls: tuple[bytes | None, bytes | None, bytes | None] | None = None,
                 route_names: frozenset[str] = frozenset(), publish_routes: RoutePublisher | None = None,
                 publish_listeners: ListenerPublisher | None = None, listener_addresses: str = "loopback",
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name)
        self.server = server
        self.node_id, self.node_cluster, self.locality = node_id, node_cluster, locality
        self.node_metadata = dict(metadata or {})
        self.delta, self.resources, self.merge = delta, resources, merge
        self.initial_fetch_timeout = self.sync_timeout = initial_fetch_timeout
        self.tls = tls
        self.route_names = frozenset(route_names)
        self.publish_routes: RoutePublisher = publish_routes or (lambda source, configs: None)
        self.publish_listeners: ListenerPublisher = publish_listeners or (lambda source, specs: None)
        self.listener_addresses = listener_addresses
        self._clock = clock
        self.client: AdsClient | None = None
        self.clusters: dict[str, res.XdsCluster] = {}
        self.assignments: dict[str, res.XdsAssignment] = {}        # by EDS service name
        self.routes: dict[str, res.XdsRoutes] = {}
        self.listeners: dict[str, res.XdsListener] = {}
        self.merged: dict[str, str] = {}                          # xDS cluster → the registry cluster it feeds
        self.versions: dict[str, dict[str, str]] = {t: {} for t in TYPE_NAMES}   # type → name → version seen
        self.counts: dict[tuple[str, str], int] = {}
        self.last_accepted: dict[str, float] = {}
        self.last_nack: dict[str, dict[str, Any]] = {}
        self.connected = False
        self._missing: set[tuple[str, str]] = set()
        self._seen_cds = False
        self._raw: dict[str, dict[str, bytes]] = {}                # type → name → accepted resource bytes
        self._decoded: dict[str, dict[str, Any]] = {}              # type → name → its decoded value
        self._pending_cache: tuple = (None, {}, set())
        self._unsubscribe_model: Callable[[], None] | None = None
        self._sync_timer: asyncio.TimerHandle | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self, model: ClusterModel) -> None:
        self.model = model
        self.client = AdsClient(self.server, self._node(), on_update=self._on_update, on_missing=self._on_missing,
                                on_connection=self._on_connection, delta=self.delta,
                                credentials=self._credentials(), initial_fetch_timeout=self.initial_fetch_timeout)
        self.client.subscribe(CLUSTER, [WILDCARD])
        if "listeners" in self.resources:
            self.client.subscribe(LISTENER, [WILDCARD])
        self._subscribe_routes()
        if self.merge == "service":
            self._unsubscribe_model = model.subscribe(self._on_model_diff)
        loop = asyncio.get_running_loop()
        self._sync_timer = loop.call_later(self.initial_fetch_timeout, self.mark_synced)
        await self.client.start()

    async def stop(self) -> None:
        if self._sync_timer is not None:
            self._sync_timer.cancel()
        if self._unsubscribe_model is not None:
            self._unsubscribe_model()
        if self.client is not None:
            await self.client.stop()
        if self.model is not None:
            self.model.set_stale(self.name, True)

    def _node(self) -> Any:
        from envoy.config.core.v3 import base_pb2
        from google.protobuf import struct_pb2
        metadata = struct_pb2.Struct()
        metadata.update(self.node_metadata)
        region, zone, sub_zone = self.locality
        return base_pb2.Node(id=self.node_id, cluster=self.node_cluster, metadata=metadata,
                             locality=base_pb2.Locality(region=region, zone=zone, sub_zone=sub_zone),
                             user_agent_name="meshd")

    def _credentials(self) -> Any:
        if self.tls is None:
            return None
        import grpc
        ca, key, cert = self.tls
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    # -- responses ------------------------------------------------------------------------------------
    def _on_update(self, update: Update) -> str | None:
        """Decode, validate, apply one response; a string is the NACK's error_detail (nothing applied)."""
        kind = TYPE_NAMES.get(update.type_url, update.type_url)
        try:
            error = {CLUSTER: self._clusters, ENDPOINT: self._assignments, ROUTE: self._routes,
                     LISTENER: self._listeners}[update.type_url](update)
        except KeyError:
            error = f"type {update.type_url} is not served by meshd"
        if error is not None:
            self.counts[(kind, "nack")] = self.counts.get((kind, "nack"), 0) + 1
            self.last_nack[kind] = {"version": update.version, "nonce": update.nonce, "error": error,
                                    "time": self._clock()}
            self.last_error = f"{kind} v{update.version} rejected: {error}"
            log.warning("xds %s: NACK %s version %s: %s", self.name, kind, update.version, error)
            return error
        self._commit_cache()
        self.counts[(kind, "ack")] = self.counts.get((kind, "ack"), 0) + 1
        self.last_accepted[kind] = self._clock()
        known = self.versions[update.type_url]
        for name in update.resources:
            known[name] = update.version
        for name in update.removed:
            known.pop(name, None)
        self._check_synced()
        return None

    def _decode_all(self, update: Update, decode: Callable[[Any], Any]) -> tuple[dict[str, Any], set[str], list[str]]:
        """Every resource of the response decoded, the names whose bytes changed since accepted, the errors.

        A SotW server may send every resource of a type on each change (5,000 assignments for one moved
        endpoint): a resource whose bytes are those already accepted is not decoded again."""
        raw, cache = self._raw.setdefault(update.type_url, {}), self._decoded.setdefault(update.type_url, {})
        out: dict[str, Any] = {}
        changed: set[str] = set()
        errors: list[str] = []
        for name, any_ in update.resources.items():
            if raw.get(name) == any_.value:
                out[name] = cache[name]
                continue
            try:
                out[name] = decode(any_)
                changed.add(name)
            except res.ResourceError as exc:
                errors.append(str(exc))
        if not errors:
            self._pending_cache = (update, out, changed)
        return out, changed, errors

    def _commit_cache(self) -> None:
        """The response was accepted: remember its resources' bytes and decoded values."""
        update, out, changed = self._pending_cache
        raw, cache = self._raw[update.type_url], self._decoded[update.type_url]
        for name in changed:
            raw[name], cache[name] = update.resources[name].value, out[name]
        for name in update.removed:
            raw.pop(name, None)
            cache.pop(name, None)

    def _next_state(self, current: dict[str, Any], update: Update, decoded: dict[str, Any],
                    full_state: bool) -> dict[str, Any]:
        if full_state and not self.delta:
            return decoded
        state = {**current, **decoded}
        for name in update.removed:
            state.pop(name, None)
        return state

    def _clusters(self, update: Update) -> str | None:
        decoded, changed, errors = self._decode_all(update, res.decode_cluster)
        if errors:
            return "; ".join(errors)
        state = self._next_state(self.clusters, update, decoded, full_state=True)
        previous, self.clusters = self.clusters, state
        self._seen_cds = True
        for name in set(previous) - set(state):
            self.model.withdraw(self.name, name)
            target = self.merged.pop(name, None)
            if target is not None:
                self.model.withdraw(self.name, target)
        for name in changed:                  # a full-state response repeats the unchanged ones
            if previous.get(name) != decoded[name]:
                self._apply_cluster(name)
        self._subscribe_endpoints()
        return None

    def _apply_cluster(self, name: str) -> None:
        cluster = self.clusters[name]
        self.model.apply(self.name, name, self._endpoints_of(cluster), dict(cluster.settings))
        self._merge(name)

    def _endpoints_of(self, cluster: res.XdsCluster) -> tuple[EndpointSpec, ...]:
        if cluster.endpoints is not None:
            return cluster.endpoints
        assignment = self.assignments.get(cluster.eds_service_name)
        return assignment.endpoints if assignment is not None else ()

    def _assignments(self, update: Update) -> str | None:
        decoded, changed, errors = self._decode_all(update, res.decode_assignment)
        if errors:
            return "; ".join(errors)
        self.assignments = self._next_state(self.assignments, update, decoded, full_state=False)
        by_service: dict[str, list[str]] = {}
        for name, cluster in self.clusters.items():
            if cluster.endpoints is None:
                by_service.setdefault(cluster.eds_service_name, []).append(name)
        for service in changed | set(update.removed):
            self._missing.discard((ENDPOINT, service))
            for name in by_service.get(service, ()):
                self._apply_cluster(name)
        return None

    def _routes(self, update: Update) -> str | None:
        decoded, changed, errors = self._decode_all(update, res.decode_route_configuration)
        if errors:
            return "; ".join(errors)
        configs: dict[str, Any] = {name: decoded[name].config for name in changed}
        configs.update({name: None for name in update.removed if name in self.routes})
        problem = self.publish_routes(self.name, configs)
        if problem is not None:
            return problem
        self.routes = self._next_state(self.routes, update, decoded, full_state=False)
        for name in decoded:
            self._missing.discard((ROUTE, name))
        return None

    def _listeners(self, update: Update) -> str | None:
        decoded, changed, errors = self._decode_all(update, res.decode_listener)
        if errors:
            return "; ".join(errors)
        state = self._next_state(self.listeners, update, decoded, full_state=True)
        inline = {name: decoded[name].inline_routes.config for name in changed
                  if decoded[name].inline_routes is not None}
        inline.update({name: None for name, lst in self.listeners.items()
                       if name not in state and lst.inline_routes is not None})
        if inline:
            problem = self.publish_routes(self.name, inline)
            if problem is not None:
                return problem
        specs = {f"{self.name}:{name}": self._listener_spec(decoded[name]) for name in changed
                 if decoded[name].address}
        specs.update({f"{self.name}:{name}": None for name, lst in self.listeners.items()
                      if name not in state and lst.address})
        if specs:
            problem = self.publish_listeners(self.name, specs)
            if problem is not None:
                return problem
        self.listeners = state
        self._subscribe_routes()
        return None

    def _listener_spec(self, listener: res.XdsListener) -> dict[str, Any]:
        """The meshd HTTP listener an LDS listener becomes: on loopback, at its port, unless allowed more."""
        host, _, port = listener.address.rpartition(":")
        if self.listener_addresses == "loopback" and host.strip("[]") not in ("127.0.0.1", "::1", "localhost"):
            host = "127.0.0.1"
        routes = listener.route_config_name if listener.route_config_name else listener.name
        return {"name": f"{self.name}:{listener.name}", "address": f"{host}:{port}", "protocol": "http",
                "route_config": {"xds": self.name, "name": routes}}

    # -- subscriptions --------------------------------------------------------------------------------
    def _subscribe_endpoints(self) -> None:
        names = sorted({c.eds_service_name for c in self.clusters.values() if c.endpoints is None and c.eds_service_name})
        if "endpoints" in self.resources or names:
            self.client.subscribe(ENDPOINT, names)
        for service in list(self.assignments):
            if service not in names:
                del self.assignments[service]

    def _subscribe_routes(self) -> None:
        names = set(self.route_names)
        names |= {lst.route_config_name for lst in self.listeners.values() if lst.route_config_name}
        if "routes" in self.resources and self.client is not None and (names or self.routes):
            self.client.subscribe(ROUTE, sorted(names))

    def _on_missing(self, type_url: str, name: str) -> None:
        log.warning("xds %s: %s %s does not exist (not served within %.1fs)", self.name, TYPE_NAMES.get(type_url),
                    name, self.initial_fetch_timeout)
        self._missing.add((type_url, name))
        self._check_synced()

    def _on_connection(self, connected: bool) -> None:
        self.connected = connected
        if self.model is not None:
            self.model.set_stale(self.name, not connected)
        if not connected:
            self.last_error = f"control plane {self.server} unreachable; serving the last accepted configuration"

    def _check_synced(self) -> None:
        if self.synced or not self._seen_cds:
            return
        waiting = [c.eds_service_name for c in self.clusters.values() if c.endpoints is None
                   and c.eds_service_name not in self.assignments and (ENDPOINT, c.eds_service_name) not in self._missing]
        waiting += [n for n in self.route_names if n not in self.routes and (ROUTE, n) not in self._missing]
        if not waiting:
            self.mark_synced()

    # -- dual mode ------------------------------------------------------------------------------------
    def _merge(self, name: str) -> None:
        """Feed the registry cluster of the same service too (``merge: service``)."""
        if self.merge != "service":
            return
        cluster = self.clusters[name]
        host = cluster.metadata.get("host", "").lower()
        if not host or cluster.metadata.get("subset"):
            return
        target = self.merged.get(name) or self._registry_cluster(host, exclude=name)
        if target is None:
            return
        self.merged[name] = target
        self.model.apply(self.name, target, self._endpoints_of(cluster))

    def _registry_cluster(self, host: str, exclude: str) -> str | None:
        for other, c in self.model.clusters().items():
            if other != exclude and other.lower() == host and any(s != self.name for s in c.sources):
                return other
        return None

    def _on_model_diff(self, diff: ClusterDiff) -> None:
        if diff.deleted or diff.cluster in self.clusters or diff.cluster in self.merged.values():
            return
        lowered = diff.cluster.lower()
        pending = [n for n, c in self.clusters.items() if n not in self.merged and c.metadata.get("host", "").lower()
                   == lowered and not c.metadata.get("subset")]
        if pending:   # a registry cluster of a service xDS also serves appeared: feed it (after this diff)
            asyncio.get_running_loop().call_soon(lambda: [self._merge(n) for n in pending if n in self.clusters])

    # -- views ----------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        status = super().status()
        status.update({
            "server": self.server, "delta": self.delta, "connected": self.connected,
            "clusters": len(self.clusters), "assignments": len(self.assignments), "routes": sorted(self.routes),
            "listeners": sorted(self.listeners), "merged": dict(self.merged),
            "last_nack": self.last_nack, "transport": self.client.status() if self.client is not None else None,
        })
        return status

    def config_dump(self) -> dict[str, Any]:
        """Every accepted resource with the version it came in (clusters with the metadata their Istio name
        carries: direction, port, subset, host), and the last NACK per type."""
        dump: dict[str, Any] = {TYPE_NAMES[t]: dict(sorted(names.items())) for t, names in self.versions.items()}
        dump["cds"] = {name: {"version": version, "metadata": dict(self.clusters[name].metadata)
                              if name in self.clusters else {}} for name, version in dump["cds"].items()}
        dump["merged"] = dict(self.merged)
        dump["last_nack"] = self.last_nack
        dump["accepted_versions"] = {TYPE_NAMES[t]: self.client.accepted_version(t)
                                     for t in TYPE_NAMES} if self.client else {}
        return dump

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        updates = CounterMetricFamily("meshd_xds_updates", "xDS responses accepted (ack) and rejected (nack)",
                                      labels=["source", "type", "result"])
        for (kind, result), n in sorted(self.counts.items()):
            updates.add_metric([self.name, kind, result], n)
        connected = GaugeMetricFamily("meshd_xds_connected", "Whether the ADS stream is up", labels=["source"])
        connected.add_metric([self.name], 1.0 if self.connected else 0.0)
        age = GaugeMetricFamily("meshd_xds_last_update_age_seconds", "Time since the last accepted response",
                                labels=["source", "type"])
        now = self._clock()
        for kind, at in sorted(self.last_accepted.items()):
            age.add_metric([self.name, kind], now - at)
        return [updates, connected, age]

    def describe(self) -> list:
        return []

    def __repr__(self) -> str:
        return (f"<XdsSource {self.name} {self.server} {'delta' if self.delta else 'sotw'} "
                f"{'connected' if self.connected else 'disconnected'} clusters={len(self.clusters)}>")
