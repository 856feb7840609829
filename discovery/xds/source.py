"""XdsSource: an xDS control plane (Istio, or any ADS server) → the cluster model and the daemon's routes.

Subscriptions. CDS by wildcard; EDS by exactly the service names of the accepted EDS clusters; RDS by the
names the daemon's listeners take from this source (``route_config: {xds: <name>, name: "9080"}``) and
those the accepted LDS listeners reference (with ``listeners`` in ``resources``: LDS by wildcard). Every
change of an accepted set re-subscribes (:mod:`discovery.xds.transport` does the wire protocol).

Listeners (with ``listeners`` in ``resources``). An LDS listener with a socket address and an HTTP
connection manager becomes a meshd HTTP listener ``<source>:<name>`` at its port, on 127.0.0.1 unless
``listener_addresses: any``, taking its routes by RDS name or inline (published under the listener's
name); one the control plane drops stops accepting. ``api_listener`` resources (gRPC's) only name routes.

TLS and SDS. A cluster's ``transport_socket`` / ``transport_socket_matches`` and a listener's filter-chain
``DownstreamTlsContext`` become their ``tls`` settings (:mod:`discovery.xds.tls`). The SDS Secrets they name
are subscribed on the same ADS stream, exactly the names the accepted clusters and listeners (and the
versions of them in force) reference. Every PEM that comes as bytes, in a Secret or inline in a resource, is
written atomically to the source's private directory (``secrets_dir``, 0700, files 0600,
:mod:`discovery.xds.secrets`) and the settings name those paths (a ``filename`` is named as it is); a Secret
update rewrites its files in place, and the daemon's file watcher puts them in force. Warming, as Envoy: a
cluster or listener whose secrets have not all arrived is not published until they have — a version already
in force stays so meanwhile, taking new endpoints — and ``status()`` / ``config_dump()`` list what is warming
and on which secrets. A Secret that does not decode, whose type is not what a referencing resource needs
(a ``validation_context`` named for a certificate), or whose PEMs are not usable, is NACKed naming it; so is
a resource referring to an accepted secret of the wrong type, or to a ``filename`` that cannot be read as
the PEM it should be. A Secret removed (Delta) leaves its files in force while anything references it.
Private keys are never logged, and ``config_dump()`` shows paths only.

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
are matched when they appear. A cluster with TLS does not feed one: its endpoints need its TLS, which the
registry cluster's settings do not carry.

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
from discovery.xds import tls
from discovery.xds.decoding import Problem
from discovery.xds.secrets import SecretFiles, inline_stem, secret_stem
from discovery.xds.transport import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, WILDCARD, AdsClient, Update

log = logging.getLogger("discovery.xds")
TYPE_NAMES = {CLUSTER: "cds", ENDPOINT: "eds", ROUTE: "rds", LISTENER: "lds", SECRET: "sds"}


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
                 secrets_dir: str | None = None, clock: Callable[[], float] = time.time) -> None:
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
        self.secrets: dict[str, res.XdsSecret] = {}
        self.files = SecretFiles(secrets_dir)                    # None: a temporary directory
        self._clusters_in_force: dict[str, res.XdsCluster] = {}   # the version whose settings are in the model
        self._listeners_in_force: dict[str, res.XdsListener] = {}
        self._listener_specs: dict[str, dict[str, Any]] = {}      # LDS name → the listener spec published
        self._secrets_subscribed = False
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
        self.files.open()
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
        self.files.close()

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
                     LISTENER: self._listeners, SECRET: self._secrets}[update.type_url](update)
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
        errors = errors or self._tls_problems("cluster", {n: decoded[n].settings.get("tls") for n in sorted(changed)})
        if errors:
            return "; ".join(errors)
        state = self._next_state(self.clusters, update, decoded, full_state=True)
        previous, self.clusters = self.clusters, state
        self._seen_cds = True
        for name in set(previous) - set(state):
            self.model.withdraw(self.name, name)
            self._clusters_in_force.pop(name, None)
            target = self.merged.pop(name, None)
            if target is not None:
                self.model.withdraw(self.name, target)
        for name in changed:                  # a full-state response repeats the unchanged ones
            if previous.get(name) != decoded[name]:
                self._apply_cluster(name)
        self._subscribe_endpoints()
        self._subscribe_secrets()
        return None

    def _apply_cluster(self, name: str) -> None:
        """Put the accepted cluster in the model once its secrets are all there (else the version in force
        stays, with the new endpoints; a cluster never in force is not in the model yet)."""
        cluster = self.clusters[name]
        if not self._missing_secrets(cluster.settings.get("tls")):
            if "tls" in cluster.settings:
                self._write_inline("cds", name, cluster.settings["tls"])
            self._clusters_in_force[name] = cluster
        current = self._clusters_in_force.get(name)
        if current is None:
            return
        settings = dict(current.settings)
        if "tls" in settings:
            settings["tls"] = self._resolved("cds", name, settings["tls"])
        self.model.apply(self.name, name, self._endpoints_of(cluster), settings)
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
        errors = errors or self._tls_problems("listener", {n: decoded[n].tls for n in sorted(changed)})
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
        previous, self.listeners = self.listeners, state
        problem = self._publish_listener_specs()
        if problem is not None:
            self.listeners = previous
            return problem
        self._subscribe_routes()
        self._subscribe_secrets()
        return None

    def _publish_listener_specs(self) -> str | None:
        """Publish every socket listener whose spec changed and whose secrets are all there (a warming one
        keeps the version in force), withdraw those gone; then write their inline PEMs (the daemon binds them
        after this handler returns)."""
        specs: dict[str, dict[str, Any] | None] = {}
        ready: dict[str, tuple[res.XdsListener, dict[str, Any]]] = {}
        for name, lst in self.listeners.items():
            if not lst.address or self._missing_secrets(lst.tls):
                continue
            spec = self._listener_spec(lst)
            ready[name] = (lst, spec)
            if self._listener_specs.get(name) != spec:
                specs[f"{self.name}:{name}"] = spec
        gone = [n for n in self._listener_specs if n not in self.listeners or not self.listeners[n].address]
        specs.update({f"{self.name}:{name}": None for name in gone})
        if specs:
            problem = self.publish_listeners(self.name, specs)
            if problem is not None:
                return problem
        for name, (lst, spec) in ready.items():
            if lst.tls is not None:
                self._write_inline("lds", name, lst.tls)
            self._listeners_in_force[name], self._listener_specs[name] = lst, spec
        for name in gone:
            self._listeners_in_force.pop(name, None)
            self._listener_specs.pop(name, None)
        return None

    def _secrets(self, update: Update) -> str | None:
        """SDS: check each secret against what references it, stage its files, publish the listeners it
        completes (the daemon validates them), then put the files in place and the clusters in force."""
        decoded, changed, errors = self._decode_all(update, res.decode_secret)
        if errors:
            return "; ".join(errors)
        problems = [p for name in sorted(changed) for p in self._secret_problems(decoded[name])]
        if problems:
            return "; ".join(problems)
        staged = [self.files.stage(secret_stem(name, part), pem.data) for name in sorted(changed)
                  for part, pem in decoded[name].parts.items()
                  if pem.kind == tls.INLINE and not self.files.unchanged(secret_stem(name, part), pem.data)]
        previous = self.secrets
        self.secrets = {**previous, **{name: decoded[name] for name in changed}}
        try:
            problem = self._publish_listener_specs()
        except BaseException:
            self.secrets = previous
            self.files.discard(staged)
            raise
        if problem is not None:
            self.secrets = previous
            self.files.discard(staged)
            return problem
        self.files.commit(staged)
        for name in changed:
            self._missing.discard((SECRET, name))
        for name, cluster in list(self.clusters.items()):
            in_force = self._clusters_in_force.get(name)
            if cluster.secret_names & changed or (in_force is not None and in_force.secret_names & changed):
                self._apply_cluster(name)
        # what a version that went in force no longer needs is unsubscribed after this response's ACK (so that
        # the request carries the version just accepted)
        asyncio.get_running_loop().call_soon(self._subscribe_secrets)
        return None

    def _listener_spec(self, listener: res.XdsListener) -> dict[str, Any]:
        """The meshd HTTP listener an LDS listener becomes: on loopback, at its port, unless allowed more."""
        host, _, port = listener.address.rpartition(":")
        if self.listener_addresses == "loopback" and host.strip("[]") not in ("127.0.0.1", "::1", "localhost"):
            host = "127.0.0.1"
        routes = listener.route_config_name if listener.route_config_name else listener.name
        spec = {"name": f"{self.name}:{listener.name}", "address": f"{host}:{port}", "protocol": "http",
                "route_config": {"xds": self.name, "name": routes}}
        if listener.tls is not None:
            spec["tls"] = self._resolved("lds", listener.name, listener.tls)
        return spec

    # -- TLS material ---------------------------------------------------------------------------------
    def _missing_secrets(self, value: Any) -> list[str]:
        """The SDS secrets ``value`` (a ``tls`` mapping) names that have not arrived."""
        return sorted(n for n in tls.secret_names(value) if n not in self.secrets)

    def _inline_stems(self, kind: str, resource: str, value: Any) -> dict[tls.Pem, str]:
        inline = [p for p in tls.pems(value) if p.kind == tls.INLINE]
        return {pem: inline_stem(kind, resource, i, pem.part) for i, pem in enumerate(inline)}

    def _resolved(self, kind: str, resource: str, value: Any) -> dict[str, Any]:
        """A ``tls`` mapping with paths for its Pems (its secrets must all be there)."""
        stems = self._inline_stems(kind, resource, value)

        def path_of(pem: tls.Pem) -> str:
            if pem.kind == tls.FILE:
                return pem.ref
            if pem.kind == tls.INLINE:
                return self.files.path(stems[pem])
            part = self.secrets[pem.ref].parts[pem.part]
            return part.ref if part.kind == tls.FILE else self.files.path(secret_stem(pem.ref, pem.part))
        return tls.resolve(value, path_of)

    def _write_inline(self, kind: str, resource: str, value: Any) -> None:
        for pem, stem in self._inline_stems(kind, resource, value).items():
            self.files.write(stem, pem.data)

    def _tls_values(self) -> list[tuple[str, str, Any]]:
        """(kind, name, tls) of every accepted cluster and listener, and of the versions in force."""
        out = []
        for kind, latest, in_force in (("cluster", {n: c.settings.get("tls") for n, c in self.clusters.items()},
                                        {n: c.settings.get("tls") for n, c in self._clusters_in_force.items()}),
                                       ("listener", {n: lst.tls for n, lst in self.listeners.items()},
                                        {n: lst.tls for n, lst in self._listeners_in_force.items()})):
            for values in (latest, in_force):
                out.extend((kind, name, value) for name, value in values.items() if value is not None)
        return out

    def _tls_problems(self, kind: str, values: Mapping[str, Any]) -> list[str]:
        """What is wrong with the files of new ``tls`` values: accepted secrets of the wrong type, unusable
        ``filename`` PEMs."""
        problems = []
        for name, value in values.items():
            for pem in tls.pems(value):
                where = f'{kind} "{name}": tls'
                if pem.kind == tls.SDS and pem.ref in self.secrets:
                    secret, needed = self.secrets[pem.ref], tls.SECRET_TYPE_OF_PART[pem.part]
                    if secret.type != needed:
                        problems.append(f'{where}: secret "{pem.ref}" is a {secret.type}, not the {needed} its '
                                        f'{pem.part} needs')
                elif pem.kind == tls.FILE:
                    problems.extend(self._file_problems(where, pem))
        return problems

    def _secret_problems(self, secret: res.XdsSecret) -> list[str]:
        problems = []
        for kind, name, value in self._tls_values():
            for pem in tls.pems(value):
                if pem.kind == tls.SDS and pem.ref == secret.name and tls.SECRET_TYPE_OF_PART[pem.part] != secret.type:
                    problems.append(f'secret "{secret.name}": a {secret.type}, but {kind} "{name}" needs a '
                                    f'{tls.SECRET_TYPE_OF_PART[pem.part]} for its {pem.part}')
                    break
        for part, pem in secret.parts.items():
            if pem.kind == tls.FILE:
                problems.extend(self._file_problems(f'secret "{secret.name}"', pem))
        return sorted(set(problems))

    @staticmethod
    def _file_problems(where: str, pem: tls.Pem) -> list[str]:
        """A ``filename`` the control plane names must hold the PEM it stands for (read now; the daemon
        watches it afterwards)."""
        try:
            with open(pem.ref, "rb") as f:
                data = f.read()
        except OSError as exc:
            return [f"{where}: {pem.ref}: unreadable ({exc.strerror or exc})"]
        try:
            tls.check_pem(pem.part, data)
        except Problem as problem:
            return [f"{where}: {pem.ref}: {problem}"]
        return []

    def _prune_files(self) -> None:
        """Remove the files no accepted secret and no resource in force needs any more."""
        keep = {self.files.path(secret_stem(name, part)) for name, secret in self.secrets.items()
                for part, pem in secret.parts.items() if pem.kind == tls.INLINE}
        for kind, resources in (("cds", self._clusters_in_force), ("lds", self._listeners_in_force)):
            for name, resource in resources.items():
                value = resource.settings.get("tls") if kind == "cds" else resource.tls
                keep |= {self.files.path(stem) for stem in self._inline_stems(kind, name, value).values()}
        self.files.prune(keep)

    def _warming(self) -> dict[str, dict[str, list[str]]]:
        """Clusters and listeners waiting for secrets: name → the secrets still missing."""
        out: dict[str, dict[str, list[str]]] = {}
        for kind, values in (("clusters", {n: c.settings.get("tls") for n, c in self.clusters.items()}),
                             ("listeners", {n: lst.tls for n, lst in self.listeners.items()})):
            waiting = {name: missing for name, value in values.items() if (missing := self._missing_secrets(value))}
            if waiting:
                out[kind] = waiting
        return out

    # -- subscriptions --------------------------------------------------------------------------------
    def _subscribe_endpoints(self) -> None:
        names = sorted({c.eds_service_name for c in self.clusters.values() if c.endpoints is None and c.eds_service_name})
        if "endpoints" in self.resources or names:
            self.client.subscribe(ENDPOINT, names)
        for service in list(self.assignments):
            if service not in names:
                del self.assignments[service]

    def _subscribe_secrets(self) -> None:
        """SDS: exactly the secrets the accepted resources and the versions in force name."""
        names = set()
        for _, _, value in self._tls_values():
            names |= tls.secret_names(value)
        if names or self._secrets_subscribed:
            self._secrets_subscribed = True
            self.client.subscribe(SECRET, sorted(names))
        for name in [n for n in self.secrets if n not in names]:
            del self.secrets[name]
        self._prune_files()

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
        waiting += [n for w in self._warming().values() for names in w.values() for n in names
                    if (SECRET, n) not in self._missing]
        if not waiting:
            self.mark_synced()

    # -- dual mode ------------------------------------------------------------------------------------
    def _merge(self, name: str) -> None:
        """Feed the registry cluster of the same service too (``merge: service``)."""
        if self.merge != "service":
            return
        cluster = self.clusters[name]
        host = cluster.metadata.get("host", "").lower()
        if not host or cluster.metadata.get("subset") or "tls" in cluster.settings:
            return     # (a TLS cluster's endpoints need its TLS, which the registry cluster does not carry)
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
            "secrets": sorted(self.secrets), "warming": self._warming(),
            "last_nack": self.last_nack, "transport": self.client.status() if self.client is not None else None,
        })
        return status

    def config_dump(self) -> dict[str, Any]:
        """Every accepted resource with the version it came in (clusters with the metadata their Istio name
        carries: direction, port, subset, host; secrets with their type and the paths of their files, never
        their contents), what is warming on which secrets, and the last NACK per type."""
        dump: dict[str, Any] = {TYPE_NAMES[t]: dict(sorted(names.items())) for t, names in self.versions.items()}
        dump["cds"] = {name: {"version": version, "metadata": dict(self.clusters[name].metadata)
                              if name in self.clusters else {}} for name, version in dump["cds"].items()}
        dump["sds"] = {name: {"version": version, "type": self.secrets[name].type if name in self.secrets else "",
                              "files": self._secret_files(name)} for name, version in dump["sds"].items()}
        dump["warming"] = self._warming()
        dump["merged"] = dict(self.merged)
        dump["last_nack"] = self.last_nack
        dump["accepted_versions"] = {TYPE_NAMES[t]: self.client.accepted_version(t)
                                     for t in TYPE_NAMES} if self.client else {}
        return dump

    def _secret_files(self, name: str) -> dict[str, str]:
        """Part → the path the settings name for it (paths only: never the material)."""
        secret = self.secrets.get(name)
        if secret is None:
            return {}
        return {part: pem.ref if pem.kind == tls.FILE else self.files.path(secret_stem(name, part))
                for part, pem in secret.parts.items()}

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
