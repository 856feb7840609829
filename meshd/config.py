"""Typed, frozen configuration (pydantic v2) and ``meshd validate``.

The key names of the canonical configuration (``docs/configuration.md``) are a contract. Every model is
frozen and forbids unknown keys (:class:`configkit.Model`); every default states its reason. Errors name
the path and the bad value: ``listeners[1].address: '127.0.0.1:99999' is not a valid port``.

Route and cluster sections are shared by HTTP and RPC; keys that only make sense for one protocol say
so in their comment. The ``discovery:`` list is the union of the config models that the source types of
:mod:`discovery.catalog` declare, told apart by their ``type``.
"""

from __future__ import annotations

import json
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic import Discriminator, Tag
from pydantic_core import PydanticCustomError

from configkit import (ByteSize, Duration, EndpointAddress, ListenAddress, Model, Name, Regex, is_loopback,
                       split_host_port)
from config_center.catalog import SOURCE_TYPES as RULE_SOURCE_TYPES
from discovery.catalog import SOURCE_TYPES
from discovery.registration import Registry
from governance import DIALECTS, RULE_KINDS, RuleError, Sentinel
from meshd.sentinel_dashboard.config import SentinelDashboardConfig


# --------------------------------------------------------------------------------------------- matchers
class StringMatcher(Model):
    """Exactly one of exact / prefix / suffix / regex / present. A bare string in YAML means ``exact``."""

    exact: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    regex: Regex | None = None
    present: bool | None = None
    invert: bool = False

    @model_validator(mode="before")
    @classmethod
    def _bare_string(cls, value: Any) -> Any:
        return {"exact": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> "StringMatcher":
        kinds = [k for k in ("exact", "prefix", "suffix", "regex", "present") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise PydanticCustomError("matcher", "a matcher needs exactly one of exact, prefix, suffix, regex, present "
                                      "(got {kinds})", {"kinds": kinds or "none"})
        return self


class HeaderMatcher(StringMatcher):
    """A header (HTTP), attachment (Dubbo) or header-map entry (Bolt) matcher."""

    name: str

    @model_validator(mode="before")
    @classmethod
    def _bare_string(cls, value: Any) -> Any:
        return value


class QueryParameterMatcher(HeaderMatcher):
    """An HTTP query parameter matcher (Envoy's ``query_parameters``); ``present`` tests for the name alone."""


# ----------------------------------------------------------------------------------------------- routes
class HeaderValue(Model):
    key: str = Field(min_length=1)
    value: str


class HeaderValueOption(Model):
    """Envoy's shape: ``{header: {key, value}, append: true}``; ``append: false`` replaces existing values."""

    header: HeaderValue
    append: bool = True


class RouteMatch(Model):
    """What a request must look like. All given conditions must hold; ``{}`` matches every request.

    HTTP: ``prefix`` / ``path`` / ``regex`` on the path (at most one), ``headers``, ``query_parameters``.
    RPC (Dubbo, Bolt): ``service`` (interface), ``method``, ``version``, ``group``, and ``headers`` over the
    attachments (Dubbo) or the header map (Bolt).
    """

    prefix: str | None = None
    path: str | None = None
    regex: Regex | None = None
    case_sensitive: bool = True
    headers: list[HeaderMatcher] = []
    query_parameters: list[QueryParameterMatcher] = []   # HTTP only
    service: StringMatcher | None = None
    method: StringMatcher | None = None
    version: StringMatcher | None = None
    group: StringMatcher | None = None

    @model_validator(mode="after")
    def _one_path_kind(self) -> "RouteMatch":
        kinds = [k for k in ("prefix", "path", "regex") if getattr(self, k) is not None]
        if len(kinds) > 1:
            raise PydanticCustomError("match", "give at most one of prefix, path, regex (got {kinds})",
                                      {"kinds": kinds})
        return self


class RetryBackOff(Model):
    base_interval: Duration = 0.025          # Envoy's default
    max_interval: Duration | None = None     # default 10 × base_interval, as Envoy


RETRY_CONDITIONS = frozenset({
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
    "retriable-status-codes", "timeout", "overloaded", "upstream-error", "app-error", "envoy-ratelimited",
    # Envoy's HTTP/2 and gRPC conditions, accepted so that control planes' routes validate (Istio's default
    # retry_on names refused-stream, unavailable and cancelled); meshd's HTTP/1.1 and RPC paths never see an
    # HTTP/2 refused stream or a gRPC status, so these never trigger a retry.
    "refused-stream", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
})


class RetryPolicy(Model):
    """Envoy-style retries. RPC conditions: ``overloaded`` (Dubbo 100 / Bolt 4), ``upstream-error``
    (Dubbo 70/80, Bolt error statuses), ``app-error`` (exception results)."""

    retry_on: str = "connect-failure,reset"
    num_retries: int = Field(default=1, ge=0, le=10)
    per_try_timeout: Duration | None = None
    retry_back_off: RetryBackOff = RetryBackOff()
    retriable_status_codes: list[Annotated[int, Field(ge=100, le=599)]] = []
    retry_host_predicate: Literal["previous_hosts", "none"] = "previous_hosts"   # a retry avoids hosts it tried
    host_selection_retry_max_attempts: int = Field(default=3, ge=1)
    retry_non_idempotent: bool = False       # POST/PATCH/... are not retried unless the route says so

    @field_validator("retry_on")
    @classmethod
    def _known_conditions(cls, value: str) -> str:
        unknown = [c.strip() for c in value.split(",") if c.strip() and c.strip() not in RETRY_CONDITIONS]
        if unknown:
            raise PydanticCustomError("retry_on", "unknown retry condition(s) {unknown} in {value}; known: {known}",
                                      {"unknown": unknown, "value": repr(value),
                                       "known": ", ".join(sorted(RETRY_CONDITIONS))})
        return value

    @cached_property
    def conditions(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.retry_on.split(",") if c.strip())

    @cached_property
    def status_codes(self) -> frozenset[int]:
        return frozenset(self.retriable_status_codes)


class WeightedCluster(Model):
    cluster: Name
    weight: int = Field(ge=0)
    metadata_match: dict[str, str] = {}


class RouteAction(Model):
    cluster: Name | None = None
    weighted_clusters: list[WeightedCluster] | None = None
    metadata_match: dict[str, str] = {}      # subset selection (endpoint metadata key → value)
    timeout: Duration | None = None          # whole request incl. retries; default: the listener's route_timeout
    retry_policy: RetryPolicy | None = None
    prefix_rewrite: str | None = None        # HTTP only
    host_rewrite: str | None = None          # HTTP only

    @model_validator(mode="after")
    def _one_target(self) -> "RouteAction":
        if (self.cluster is None) == (self.weighted_clusters is None):
            raise PydanticCustomError("route", "a route needs exactly one of cluster, weighted_clusters", {})
        if self.weighted_clusters is not None and sum(w.weight for w in self.weighted_clusters) <= 0:
            raise PydanticCustomError("route", "weighted_clusters weights must add up to more than 0", {})
        return self


class DirectResponse(Model):
    status: int = Field(ge=100, le=599)
    body: str = ""


class Route(Model):
    name: str | None = None
    match: RouteMatch = RouteMatch()
    route: RouteAction | None = None
    direct_response: DirectResponse | None = None
    request_headers_to_add: list[HeaderValueOption] = []
    request_headers_to_remove: list[str] = []
    response_headers_to_add: list[HeaderValueOption] = []
    response_headers_to_remove: list[str] = []

    @model_validator(mode="after")
    def _one_action(self) -> "Route":
        if (self.route is None) == (self.direct_response is None):
            raise PydanticCustomError("route", "a route needs exactly one of route, direct_response", {})
        return self


class VirtualHost(Model):
    name: Name
    domains: list[str] = Field(min_length=1)
    routes: list[Route] = []


class RouteConfiguration(Model):
    name: Name
    virtual_hosts: list[VirtualHost] = []


# --------------------------------------------------------------------------------------------- clusters
class EndpointConfig(Model):
    address: EndpointAddress
    weight: int = Field(default=100, ge=0)   # 100 like Dubbo and SOFARPC, so static and registry weights compare
    metadata: dict[str, str] = {}
    zone: str = ""
    priority: int = Field(default=0, ge=0)


class SubsetSelector(Model):
    keys: list[str] = Field(min_length=1)
    fallback_policy: Literal["not_defined", "no_fallback", "any_endpoint", "default_subset", "keys_subset"] = "not_defined"
    fallback_keys_subset: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, value: Any) -> Any:
        return {"keys": value} if isinstance(value, list) else value


class SubsetConfig(Model):
    selectors: list[SubsetSelector] = []
    fallback_policy: Literal["no_fallback", "any_endpoint", "default_subset"] = "no_fallback"   # Envoy's default
    default_subset: dict[str, str] = {}
    request_metadata: bool = True            # RPC version/group/attachments also select (see the routing docs)


class HttpHealthCheck(Model):
    path: str = "/healthz"
    host: str | None = None
    expected_statuses: list[Annotated[int, Field(ge=100, le=599)]] = [200]


class HealthCheck(Model):
    type: Literal["tcp", "http", "dubbo", "bolt"]
    interval: Duration = 5.0
    interval_jitter: Duration = 0.5
    timeout: Duration = 1.0
    healthy_threshold: int = Field(default=2, ge=1)
    unhealthy_threshold: int = Field(default=3, ge=1)
    http: HttpHealthCheck = HttpHealthCheck()


class OutlierDetection(Model):
    consecutive_5xx: int = Field(default=5, ge=1)
    consecutive_gateway_failure: int = Field(default=5, ge=1)
    consecutive_local_origin_failure: int = Field(default=5, ge=1)
    interval: Duration = 10.0
    base_ejection_time: Duration = 30.0
    max_ejection_time: Duration = 300.0
    max_ejection_percent: int = Field(default=10, ge=0, le=100)
    split_external_local_origin_errors: bool = False   # count connect errors / timeouts apart from 5xx


class RetryBudget(Model):
    budget_percent: float = Field(default=20.0, ge=0, le=100)
    min_retry_concurrency: int = Field(default=3, ge=0)


class CircuitBreakers(Model):
    """Envoy's cluster thresholds; overflow is answered in the caller's protocol and counted."""

    max_connections: int = Field(default=1024, ge=1)
    max_pending_requests: int = Field(default=1024, ge=0)
    max_requests: int = Field(default=1024, ge=1)
    max_retries: int = Field(default=3, ge=0)
    retry_budget: RetryBudget | None = None


# ------------------------------------------------------------------------------------------------------ TLS
def _san_patterns(value: str | list[str] | None) -> list[str]:
    from meshd.tls.san import check_pattern
    items = [value] if isinstance(value, str) else list(value or [])
    return [check_pattern(p) for p in items]


class TlsCertificate(Model):
    cert: str = Field(min_length=1)          # PEM certificate chain (leaf first); paths relative to the config
    key: str = Field(min_length=1)


class DownstreamTls(Model):
    """Downstream TLS (docs/configuration.md, "TLS"): certificates chosen by SNI, mTLS, rotation by file watch.
    The admin API's ``tls``; a listener's adds ``plaintext`` (:class:`ListenerTls`)."""

    certificates: list[TlsCertificate] = Field(min_length=1)   # exact names, then "*.example.com", then the first
    client_ca: str | None = None             # mTLS: verify client certificates against this CA bundle
    require_client_cert: bool = False
    allowed_sans: list[str] = []             # verified clients must carry one (SPIFFE ids: "*" = one segment)
    min_version: Literal["1.2", "1.3"] = "1.2"
    alpn: list[str] = []
    handshake_timeout: Duration = 10.0

    @field_validator("allowed_sans")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return _san_patterns(value)

    @model_validator(mode="after")
    def _client_ca_needed(self) -> "DownstreamTls":
        if (self.require_client_cert or self.allowed_sans) and not self.client_ca:
            raise PydanticCustomError("tls", "require_client_cert and allowed_sans need a client_ca", {})
        return self


class ListenerTls(DownstreamTls):
    """A listener's downstream TLS."""

    plaintext: Literal["allow", "deny"] = "deny"   # auto listeners only: also accept plaintext (migration)


class ClusterTls(Model):
    """Upstream TLS towards a cluster's endpoints."""

    ca: str | None = None                    # verify servers against this bundle (default: the system's CAs)
    cert: str | None = None                  # mTLS: the client certificate and key meshd presents
    key: str | None = None
    sni: str | None = None
    verify_san: list[str] = []               # the server must carry one of these SANs (then the SNI is not checked)
    min_version: Literal["1.2", "1.3"] = "1.2"
    alpn: list[str] = []
    # all: every endpoint is dialled with TLS; marked: only those whose metadata has every pair of ``marker``
    # (by default Dubbo's ssl-enabled=true; Istio's tlsMode=istio from xDS), the others in plaintext (a migration)
    endpoints: Literal["all", "marked"] = "all"
    marker: dict[str, str] = {"ssl-enabled": "true"}

    @field_validator("verify_san", mode="before")
    @classmethod
    def _patterns(cls, value: str | list[str] | None) -> list[str]:
        return _san_patterns(value)

    @model_validator(mode="after")
    def _pair(self) -> "ClusterTls":
        if bool(self.cert) != bool(self.key):
            raise PydanticCustomError("tls", "cert and key go together", {})
        return self


class ZoneAware(Model):
    local_zone: str | None = None            # default: MESHD_ZONE from the environment
    min_healthy_percent: float = Field(default=70.0, ge=0, le=100)


class ClusterSettings(Model):
    """Everything about a cluster except its name and static endpoints (also ``cluster_defaults``)."""

    lb_policy: Literal["round_robin", "random", "weighted_round_robin", "least_request"] = "round_robin"
    connect_timeout: Duration = 1.0          # a sidecar dials on a LAN: fail fast, retry elsewhere
    idle_timeout: Duration = 60.0            # close upstream connections idle this long
    max_requests_per_connection: int | None = Field(default=None, ge=1)
    max_connections_per_endpoint: int = Field(default=1024, ge=1)      # HTTP keep-alive pool size
    connections_per_endpoint: int = Field(default=1, ge=1, le=64)      # RPC: multiplexed connections
    # RPC: the requests of one read (a pipelining caller's) that share a route take one balancer pick per this
    # many, so that they leave in one write to one provider; 1 picks per request. least_request always does.
    requests_per_pick: int = Field(default=16, ge=1, le=1024)
    heartbeat_interval: Duration = 15.0      # RPC: idle heartbeat (Bolt's client default)
    heartbeat_misses: int = Field(default=3, ge=1)
    subset: SubsetConfig = SubsetConfig()
    health_checks: list[HealthCheck] = Field(default=[], max_length=1)   # one active check per cluster
    outlier_detection: OutlierDetection | None = None
    circuit_breakers: CircuitBreakers = CircuitBreakers()
    # Envoy's healthy_panic_threshold, off by default: an SDK never calls a provider it knows is unhealthy,
    # so neither does meshd unless asked (50 gives Envoy's behaviour).
    panic_threshold: float = Field(default=0.0, ge=0, le=100)
    zone_aware: ZoneAware | None = None
    tls: ClusterTls | None = None            # dial the endpoints with TLS (cluster_defaults: discovered clusters too)


class ClusterConfig(ClusterSettings):
    name: Name
    endpoints: list[EndpointConfig] = []

    @model_validator(mode="after")
    def _distinct_endpoints(self) -> "ClusterConfig":
        seen: set[tuple] = set()
        for e in self.endpoints:
            key = (e.address, e.metadata.get("group", ""), e.metadata.get("version", ""))
            if key in seen:
                raise PydanticCustomError("unique", "cluster {name}: endpoint {address} is listed twice with the "
                                          "same group and version", {"name": repr(self.name),
                                                                     "address": e.address})
            seen.add(key)
        return self


# -------------------------------------------------------------------------------------------- listeners
class DiscoveredRoutes(Model):
    """A route configuration a discovery source serves: ``{xds: istio, name: "9080"}`` (an RDS name)."""

    xds: Name                                # the discovery source (a type that serves routes, e.g. xds)
    name: str = Field(min_length=1)

    def __str__(self) -> str:
        return f"{self.xds}:{self.name}"


class ListenerConfig(Model):
    name: Name
    address: ListenAddress
    protocol: Literal["http", "dubbo", "bolt", "auto", "tcp"] = "http"
    # required for http (a name of route_configs, or routes a discovery source serves); RPC routes fall back to
    # the interface cluster
    route_config: Name | DiscoveredRoutes | None = None
    cluster: Name | None = None              # tcp: the cluster every connection goes to
    route_timeout: Duration = 15.0           # Envoy's default route timeout when a route sets none
    max_frame_size: ByteSize = 8 * 1024 * 1024          # Dubbo's payload default
    # HTTP limits (docs/configuration.md, "Limits"): each answered with its status and `connection: close`
    max_request_headers_size: ByteSize = 64 * 1024      # request line and header block; more: 431
    max_request_headers_count: int = Field(default=100, ge=1)   # Envoy's default; more: 431
    max_request_line_size: ByteSize = 16 * 1024         # twice nginx's 8 KiB (Envoy has none); longer: 414
    request_headers_timeout: Duration = 10.0  # first byte of a request head to its end (0s: none); then 408
    # open connections (any protocol); over it a connection is accepted and closed at once, and counted
    # (meshd_listener_connections_overflow_total); null: no limit
    max_connections: int | None = Field(default=10000, ge=1)
    # downstream connections idle this long are closed: between requests, mid-body when the client stops
    # sending, tcp: no byte either way
    idle_timeout: Duration = 300.0
    sniff_timeout: Duration = 5.0            # auto: a client that sends no recognisable prefix is closed
    # request header (HTTP), attachment (Dubbo) or header-map entry (Bolt) → subset metadata key
    header_to_metadata: dict[str, str] = {}
    tls: ListenerTls | None = None           # terminate TLS (auto: sniffed first; plaintext per tls.plaintext)

    @field_validator("header_to_metadata")
    @classmethod
    def _lower_names(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _protocol_needs(self) -> "ListenerConfig":
        if self.protocol == "http" and self.route_config is None:
            raise PydanticCustomError("listener", "an http listener needs a route_config", {})
        if self.protocol == "tcp" and self.cluster is None:
            raise PydanticCustomError("listener", "a tcp listener needs a cluster", {})
        if self.tls is not None and self.tls.plaintext == "allow" and self.protocol != "auto":
            raise PydanticCustomError("listener", "tls.plaintext: allow needs protocol auto (TLS is sniffed there)",
                                      {})
        return self


#: What a bearer token may hold (visible ASCII, no white space: it travels in an HTTP header).
TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")
TOKEN_RULE = "a token is visible ASCII characters without white space (it travels in an Authorization header)"


class AdminConfig(Model):
    """The admin API (meshd/admin.py). With a token every mutating request (any method but GET/HEAD/OPTIONS)
    must carry ``Authorization: Bearer <token>``, and so must reads from peers off loopback; a non-loopback
    ``address`` needs one (see :meth:`Config._tokens_where_needed`)."""

    address: ListenAddress = "127.0.0.1:15000"   # loopback: admin is not for the network
    token: SecretStr | None = None           # redacted in /config_dump, never logged
    token_file: str | None = Field(default=None, min_length=1)   # or in a file (relative to the config; read at start)
    tls: DownstreamTls | None = None         # serve the admin API over TLS (mTLS: the client's identity is audited)


class AccessLogConfig(Model):
    path: str | None = "-"                   # "-" = stdout, a file path, or null for no access log


# -------------------------------------------------------------------------------------------- discovery
def _source_tag(value: Any) -> str | None:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


SOURCE_TYPE_NAMES = tuple(t.name for t in SOURCE_TYPES)
#: The source types whose sources can register SDK-less apps (``registry_api.*.registry``).
REGISTRY_SOURCE_TYPES = tuple(t.name for t in SOURCE_TYPES if issubclass(t.source, Registry))
#: The source types that serve route configurations (a listener's ``route_config: {xds: <source>, name: ...}``).
ROUTE_SOURCE_TYPES = tuple(t.name for t in SOURCE_TYPES if t.routes)

DiscoverySource = Annotated[
    Union[tuple(Annotated[t.config, Tag(t.name)] for t in SOURCE_TYPES)],  # type: ignore[misc]
    Discriminator(_source_tag, custom_error_type="source_type",
                  custom_error_message=f"unknown discovery source type; known: {', '.join(SOURCE_TYPE_NAMES)}"),
]


# ------------------------------------------------------------------------------------ registry APIs etc
class SofaRegistryApi(Model):
    address: ListenAddress = "127.0.0.1:13330"   # sofa-rpc registry-mesh's MeshConstants
    registry: Name
    # its own bearer token for POSTs (not admin.token: SDK clients send none, so only apps that can send it
    # may use a token); none: open, which only a loopback address allows
    token: SecretStr | None = None
    token_file: str | None = Field(default=None, min_length=1)
    bolt_address: ListenAddress = "127.0.0.1:12220"   # SOFARPC's mesh client sends Bolt here
    subscribe_timeout: Duration = 3.0
    # where the app serves what it publishes (SOFARPC's default bolt port); a publish's `port` replaces the
    # port, its `host` the host. Set the host to the pod's IP when consumers live on other hosts.
    app_address: EndpointAddress = "127.0.0.1:12200"


class DubboRegistryApi(Model):
    address: ListenAddress = "127.0.0.1:22222"   # MOSN's dubbo_registry api_port
    registry: Name
    token: SecretStr | None = None           # as registry_api.sofa.token
    token_file: str | None = Field(default=None, min_length=1)
    listener: Name | None = None             # the dubbo/auto listener apps call; default: the first one
    subscribe_timeout: Duration = 3.0        # /sub waits this long for the first registry data
    # where the app serves what it publishes (Dubbo's default port); /pub's service.port replaces the port
    app_address: EndpointAddress = "127.0.0.1:20880"


class RegistryApiConfig(Model):
    sofa: SofaRegistryApi | None = None
    dubbo: DubboRegistryApi | None = None


class MetricLogConfig(Model):
    path: str                                # Sentinel metric log file (rolled by size)
    max_bytes: ByteSize = 50 * 1024 * 1024
    backups: int = Field(default=8, ge=1)


class GovernanceConfig(Model):
    dialect: Literal[DIALECTS] = "go"  # type: ignore[valid-type]
    flow: list[dict[str, Any]] = []
    circuit_breaker: list[dict[str, Any]] = []
    isolation: list[dict[str, Any]] = []
    hotspot: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    http_resource: str = "{method}:{host}{route}"   # {method} {host} {route} (the route's prefix/path) {path}
    http_origin_header: str = "x-meshd-caller"
    block_status: int = Field(default=429, ge=400, le=599)
    block_body: str = "meshd: request blocked by governance rule\n"
    metric_log: MetricLogConfig | None = None

    @model_validator(mode="after")
    def _rules_valid(self) -> "GovernanceConfig":
        errors = []
        engine = Sentinel()
        for kind in RULE_KINDS:
            rules = getattr(self, kind)
            if not rules:
                continue
            try:
                validation = engine.validate_rules(kind, rules, dialect=self.dialect)
            except RuleError as exc:
                errors += [f"{kind}: {m}" for m in exc.messages]
                continue
            errors += [f"{kind}: {m}" for m in validation.errors]
        if errors:
            raise PydanticCustomError("rules", "invalid {dialect} dialect rules: {errors}",
                                      {"dialect": self.dialect, "errors": "; ".join(errors)})
        return self


# ------------------------------------------------------------------------------------- runtime rules
class RouteOverride(Model):
    """A runtime override of one named route's action (rule kind ``routes``); given keys replace the route's."""

    timeout: Duration | None = None
    retry_policy: RetryPolicy | None = None
    weighted_clusters: dict[Name, Annotated[int, Field(ge=0)]] | None = None   # cluster → weight
    metadata_match: dict[str, str] | None = None


class ClusterOverride(Model):
    """A runtime override of one cluster's settings (rule kind ``clusters``); given keys replace the settings'."""

    lb_policy: Literal["round_robin", "random", "weighted_round_robin", "least_request"] | None = None
    outlier_detection: OutlierDetection | None = None
    circuit_breakers: CircuitBreakers | None = None
    panic_threshold: float | None = Field(default=None, ge=0, le=100)


def _rule_source_tag(value: Any) -> str | None:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


RULE_SOURCE_TYPE_NAMES = tuple(t.name for t in RULE_SOURCE_TYPES)

RuleSourceConfig = Annotated[
    Union[tuple(Annotated[t.config, Tag(t.name)] for t in RULE_SOURCE_TYPES)],  # type: ignore[misc]
    Discriminator(_rule_source_tag, custom_error_type="source_type",
                  custom_error_message=f"unknown rule source type; known: {', '.join(RULE_SOURCE_TYPE_NAMES)}"),
]


class ConfigCenterConfig(Model):
    """Where runtime rules come from (``config_center.sources``) and where the store keeps them."""

    state_dir: str = ".meshd/rules"          # relative to the config file; the rules in force survive restarts
    sources: list[RuleSourceConfig] = Field(default=[{"type": "http"}],   # PUT /rules/{kind} on the admin API
                                            validate_default=True)

    @model_validator(mode="after")
    def _one_owner_per_kind(self) -> "ConfigCenterConfig":
        _unique("config_center.sources", [s.name for s in self.sources])
        owners: dict[str, str] = {}
        for source in self.sources:
            for kind in source.owned_kinds:
                if kind in owners and owners[kind] != source.name:
                    raise PydanticCustomError(
                        "reference", "config_center.sources: rule kind {kind} is given to two sources, {a} and {b}; "
                        "a kind has one owner", {"kind": repr(kind), "a": repr(owners[kind]), "b": repr(source.name)})
                owners[kind] = source.name
        return self


class Config(Model):
    admin: AdminConfig = AdminConfig()
    listeners: list[ListenerConfig] = []
    route_configs: list[RouteConfiguration] = []
    clusters: list[ClusterConfig] = []
    cluster_defaults: ClusterSettings = ClusterSettings()   # for clusters that discovery creates
    discovery: list[DiscoverySource] = []
    registry_api: RegistryApiConfig = RegistryApiConfig()
    governance: GovernanceConfig = GovernanceConfig()
    config_center: ConfigCenterConfig = Field(default_factory=ConfigCenterConfig)
    sentinel_dashboard: SentinelDashboardConfig | None = None   # Sentinel's command center (port 8719); off
    access_log: AccessLogConfig = AccessLogConfig()
    drain_timeout: Duration = 10.0           # SIGTERM: in-flight requests get this long to finish
    loop_lag_interval: Duration = 0.1        # how often the event-loop lag probe runs (meshd_event_loop_lag_*)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _references(self) -> "Config":
        _unique("listeners", [x.name for x in self.listeners])
        _unique("route_configs", [x.name for x in self.route_configs])
        _unique("clusters", [x.name for x in self.clusters])
        _unique("discovery", [x.name for x in self.discovery])
        routes = {r.name for r in self.route_configs}
        sources = {s.name: s for s in self.discovery}
        for i, listener in enumerate(self.listeners):
            ref = listener.route_config
            if isinstance(ref, DiscoveredRoutes):
                source = sources.get(ref.xds)
                if source is None or source.type not in ROUTE_SOURCE_TYPES:
                    raise PydanticCustomError("reference", "listeners[{i}].route_config.xds: {name} is not a discovery "
                                              "source that serves routes ({types})",
                                              {"i": i, "name": repr(ref.xds),
                                               "types": ", ".join(ROUTE_SOURCE_TYPES) or "none is configured"})
            elif ref is not None and ref not in routes:
                raise PydanticCustomError("reference", "listeners[{i}].route_config: no route configuration named "
                                          "{name}", {"i": i, "name": repr(listener.route_config)})
        for api_name in ("sofa", "dubbo"):
            api = getattr(self.registry_api, api_name)
            if api is None:
                continue
            source = sources.get(api.registry)
            if source is None or source.type not in REGISTRY_SOURCE_TYPES:
                raise PydanticCustomError("reference", "registry_api.{api}.registry: {name} is not a {types} "
                                          "discovery source", {"api": api_name, "name": repr(api.registry),
                                                               "types": _one_of(REGISTRY_SOURCE_TYPES)})
        dubbo_api = self.registry_api.dubbo
        if dubbo_api is not None:
            rpc_listeners = [x.name for x in self.listeners if x.protocol in ("dubbo", "auto")]
            if not rpc_listeners or dubbo_api.listener not in (None, *rpc_listeners):
                raise PydanticCustomError(
                    "reference", "registry_api.dubbo.listener: apps subscribed through the Dubbo API call a dubbo or "
                    "auto listener; {detail}", {"detail": f"{dubbo_api.listener!r} is not one (have {rpc_listeners})"
                                                if rpc_listeners else "none is configured"})
        return self

    @model_validator(mode="after")
    def _tokens_where_needed(self) -> "Config":
        """An HTTP API that changes meshd or the registries (admin, registry APIs) bound off loopback needs a
        token: without one anyone who reaches it could push rules, drain meshd or publish services."""
        for path, section, harm in (("admin", self.admin, "push rules and drain meshd"),
                                    ("registry_api.sofa", self.registry_api.sofa, "publish and subscribe services"),
                                    ("registry_api.dubbo", self.registry_api.dubbo, "publish and subscribe services")):
            if section is None:
                continue
            if section.token is not None and section.token_file is not None:
                raise PydanticCustomError("auth", "{path}.token and {path}.token_file are both set; give one",
                                          {"path": path})
            if section.token is not None and not TOKEN_TEXT.fullmatch(section.token.get_secret_value()):
                raise PydanticCustomError("auth", "{path}.token: {rule}", {"path": path, "rule": TOKEN_RULE})
            host = split_host_port(section.address)[0]
            if section.token is None and section.token_file is None and not is_loopback(host):
                raise PydanticCustomError(
                    "auth", "{path}.address {address} is not loopback: set {path}.token or {path}.token_file "
                    "(without a token anyone who reaches it could {harm})",
                    {"path": path, "address": section.address, "harm": harm})
        return self

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def resolve_path(self, path: str) -> Path:
        p = Path(os.path.expanduser(path))
        return p if p.is_absolute() else self._base_dir / p

    def cluster(self, name: str) -> ClusterConfig | None:
        return next((c for c in self.clusters if c.name == name), None)


def _unique(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PydanticCustomError("unique", "{section}: the name {name} is used twice",
                                      {"section": section, "name": repr(name)})
        seen.add(name)


# ------------------------------------------------------------------------------------------ loading
class ConfigError(Exception):
    """A config document that does not validate; ``errors`` holds one ``path: message`` line each."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


def parse_document(text: str, origin: str = "<config>") -> Any:
    """YAML or JSON (JSON is tried first for ``.json`` files and for documents starting with ``{``/``[``)."""
    stripped = text.lstrip()
    if origin.endswith(".json") or stripped.startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if origin.endswith(".json"):
                raise ConfigError([f"{origin}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"])
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{origin}: invalid YAML{where}: {getattr(exc, 'problem', None) or exc}"]) from None


def build_config(data: Any, base_dir: Path | None = None) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"<root>: expected a mapping of sections, got {type(data).__name__}"])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc)) from None
    if base_dir is not None:
        config._base_dir = base_dir
    return config


def load_config(path: str | os.PathLike) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror}"]) from None
    return build_config(parse_document(text, str(p)), base_dir=p.resolve().parent)


def error_path(loc: tuple) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in SOURCE_TYPE_NAMES + RULE_SOURCE_TYPE_NAMES and i > 0 and isinstance(loc[i - 1], int):
            continue                          # the discriminator tag pydantic inserts
        elif isinstance(part, str) and "[" not in part and part != "function-after":
            out += f".{part}" if out else part
    return out or "<root>"


def format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        path = error_path(err["loc"])
        msg = err["msg"]
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = f"unknown key {err['loc'][-1]!r}"
            path = error_path(err["loc"][:-1])
        elif kind == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        elif kind not in ("address", "duration", "size", "regex", "name", "matcher", "match", "route", "listener",
                          "unique", "reference", "retry_on", "source_type", "rules", "auth"):
            msg = f"{msg[0].lower()}{msg[1:]} (got {err.get('input')!r})"
        if kind == "source_type" and isinstance(err.get("input"), dict):
            msg = f"{msg} (got type {err['input'].get('type')!r})"
        if kind in ("unique", "reference", "auth"):
            lines.append(msg)
        else:
            lines.append(f"{path}: {msg}")
    return lines


def summary(config: Config) -> str:
    routes = sum(len(vh.routes) for rc in config.route_configs for vh in rc.virtual_hosts)
    lines = [
        f"admin {config.admin.address}" + "".join(
            f", {what}" for what, on in (("token", config.admin.token or config.admin.token_file),
                                         ("tls", config.admin.tls)) if on),
        *(f"listener {x.name} {x.protocol} {x.address}" + (f" -> routes {x.route_config}" if x.route_config else "")
          for x in config.listeners),
        f"{len(config.route_configs)} route configuration(s), {routes} route(s)",
        *(f"cluster {c.name} {c.lb_policy} {len(c.endpoints)} endpoint(s)" for c in config.clusters),
        *(f"discovery {s.name} ({s.type})" for s in config.discovery),
        *(f"rule source {s.name} ({s.type}) kinds: "
          + ", ".join(s.owned_kinds or ["any kind no other source owns"])
          for s in config.config_center.sources),
        f"known discovery source types: {', '.join(SOURCE_TYPE_NAMES)} "
        f"(registries for registry_api: {', '.join(REGISTRY_SOURCE_TYPES)})",
    ]
    return "\n".join(lines)


def validate_command(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{path}: invalid configuration", flush=True)
        for line in exc.errors:
            print(f"  {line}")
        return 1
    print(f"{path}: ok")
    print(summary(config))
    return 0


def _one_of(names: tuple[str, ...]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return " or ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} or {names[-1]}"
