"""The xDS resource decoders (discovery.xds.resources) on Istio-shaped and hand-built resources.

Every decoded ``settings`` / route ``config`` is also validated with meshd's own models, so that what a
control plane sends is what the daemon accepts.
"""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, extension_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2, range_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from discovery.model import Health
from discovery.xds import resources as res
from discovery.xds.resources import ResourceError
from integration.xds import istio
from meshd import config as meshd_config

REVIEWS = "reviews.default.svc.cluster.local"
V1 = istio.cluster_name("outbound", 9080, "v1", REVIEWS)
V2 = istio.cluster_name("outbound", 9080, "v2", REVIEWS)
DEFAULT = istio.cluster_name("outbound", 9080, "", REVIEWS)


# -- helpers ---------------------------------------------------------------------------------------------
def pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def u32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def validate_routes(routes: res.XdsRoutes):
    """meshd's RouteConfiguration accepts the decoded config."""
    return meshd_config.RouteConfiguration.model_validate(_thaw(routes.config))


def validate_settings(cluster: res.XdsCluster):
    settings = meshd_config.ClusterSettings.model_validate(dict(cluster.settings))
    meshd_config.ClusterConfig.model_validate({**cluster.settings, "name": cluster.name})
    return settings


def _thaw(value):
    if hasattr(value, "items"):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@pytest.fixture(autouse=True)
def _every_decoded_value_validates(monkeypatch):
    """Whatever a test decodes successfully must also pass meshd's own models."""
    checks = {"decode_cluster": validate_settings, "decode_route_configuration": validate_routes,
              "decode_listener": lambda lis: lis.inline_routes is not None and validate_routes(lis.inline_routes)}
    for name, check in checks.items():
        def checked(any_, _decode=getattr(res, name), _check=check):
            value = _decode(any_)
            _check(value)
            return value
        monkeypatch.setattr(res, name, checked)


def error_of(decoder, message) -> str:
    with pytest.raises(ResourceError) as info:
        decoder(pack(message))
    return str(info.value)


# -- Istio names -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, want", [
    (V1, {"direction": "outbound", "port": "9080", "subset": "v1", "host": REVIEWS}),
    (DEFAULT, {"direction": "outbound", "port": "9080", "subset": "", "host": REVIEWS}),
    ("inbound|9080||", {"direction": "inbound", "port": "9080", "subset": "", "host": ""}),
    (f"outbound_.9080_.v1_.{REVIEWS}", {"direction": "outbound", "port": "9080", "subset": "v1", "host": REVIEWS}),
    (f"outbound_.9080_._.{REVIEWS}", {"direction": "outbound", "port": "9080", "subset": "", "host": REVIEWS}),
    ("org.example.DemoService", None), ("a|b|c|d", None), ("outbound|http|v1|h", None), ("outbound|9080|v1", None),
    ("outbound||v1|host", None), ("outbound|9080|v1|", None),
])
def test_istio_cluster_names(name, want):
    assert res.parse_istio_cluster_name(name) == want


def test_istio_workload():
    assert res.parse_istio_workload("reviews-v1;default;reviews;v1;Kubernetes") == {
        "istio.workload_name": "reviews-v1", "istio.namespace": "default", "app": "reviews", "version": "v1",
        "istio.cluster_id": "Kubernetes"}
    assert res.parse_istio_workload("w;ns;svc;;") == {"istio.workload_name": "w", "istio.namespace": "ns", "app": "svc"}
    assert res.parse_istio_workload("garbage") == {}


# -- the Any itself --------------------------------------------------------------------------------------
@pytest.mark.parametrize("decoder, kind", [(res.decode_cluster, "cluster"),
                                           (res.decode_assignment, "cluster load assignment"),
                                           (res.decode_route_configuration, "route configuration"),
                                           (res.decode_listener, "listener")])
def test_wrong_type_and_garbage(decoder, kind):
    wrong = pack(istio.route_config("r"))
    if kind == "route configuration":
        wrong = pack(istio.eds_cluster("c"))
    with pytest.raises(ResourceError, match=f"^{kind}: type_url .* is not"):
        decoder(wrong)
    garbage = any_pb2.Any(type_url=next(t for t, d in res.DECODERS.items() if d is decoder), value=b"\xff\xff\xff")
    with pytest.raises(ResourceError, match=f"^{kind}: an Any of type .* that does not decode"):
        decoder(garbage)
    with pytest.raises(ResourceError, match="expected a google.protobuf.Any"):
        decoder(b"bytes")


def test_corrupted_resources_only_ever_raise_resource_error():
    import random
    rng = random.Random(7)
    routes = istio.service_route_config(REVIEWS, 9080, [istio.route(weighted={V1: 80, V2: 20}, headers={"a": "b"})])
    cla = istio.load_assignment(V1, istio.locality([istio.lb_endpoint("10.0.0.1", 1, workload="w;n;s;r;c")]))
    samples = [(res.decode_cluster, istio.eds_cluster(V1)), (res.decode_assignment, cla),
               (res.decode_route_configuration, routes), (res.decode_listener, istio.api_listener(REVIEWS, 9080))]
    outcomes = {"ok": 0, "error": 0}
    for decoder, message in samples:
        packed = pack(message)
        for _ in range(300):
            data = bytearray(packed.value)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                decoder(any_pb2.Any(type_url=packed.type_url, value=bytes(data)))
                outcomes["ok"] += 1
            except ResourceError:
                outcomes["error"] += 1
    assert outcomes["ok"] and outcomes["error"]


def test_resource_wrapper_is_unwrapped():
    wrapped = pack(discovery_pb2.Resource(name=V1, resource=pack(istio.eds_cluster(V1))))
    assert res.decode_cluster(wrapped).name == V1


# -- clusters --------------------------------------------------------------------------------------------
def test_istio_eds_cluster():
    c = res.decode_cluster(pack(istio.eds_cluster(V1, connect_timeout=0.25)))
    assert (c.name, c.discovery, c.eds_service_name, c.endpoints) == (V1, "EDS", V1, None)
    assert dict(c.settings) == {"lb_policy": "round_robin", "connect_timeout": "250ms"}
    assert dict(c.metadata) == {"direction": "outbound", "port": "9080", "subset": "v1", "host": REVIEWS}
    assert validate_settings(c).connect_timeout == 0.25
    with pytest.raises(TypeError):
        c.settings["lb_policy"] = "random"  # type: ignore[index]


def test_eds_service_name_defaults_to_cluster_name_and_needs_ads():
    cluster = istio.eds_cluster("plain")
    cluster.eds_cluster_config.service_name = ""
    c = res.decode_cluster(pack(cluster))
    assert c.eds_service_name == "plain" and dict(c.metadata) == {}
    cluster.eds_cluster_config.eds_config.CopyFrom(config_source_pb2.ConfigSource(path="/etc/eds.yaml"))
    assert error_of(res.decode_cluster, cluster) == (
        'cluster "plain": eds_cluster_config.eds_config: config source path is not supported (only ads or self)')
    cluster.eds_cluster_config.eds_config.CopyFrom(config_source_pb2.ConfigSource(
        self=config_source_pb2.SelfConfigSource()))
    assert res.decode_cluster(pack(cluster)).discovery == "EDS"


@pytest.mark.parametrize("policy, want", [(cluster_pb2.Cluster.ROUND_ROBIN, "round_robin"),
                                          (cluster_pb2.Cluster.LEAST_REQUEST, "least_request"),
                                          (cluster_pb2.Cluster.RANDOM, "random")])
def test_lb_policies_accepted(policy, want):
    c = res.decode_cluster(pack(istio.eds_cluster(V1, lb_policy=policy)))
    assert c.settings["lb_policy"] == want
    validate_settings(c)


@pytest.mark.parametrize("policy", ["RING_HASH", "MAGLEV", "CLUSTER_PROVIDED"])
def test_lb_policies_refused(policy):
    cluster = istio.eds_cluster(DEFAULT, lb_policy=cluster_pb2.Cluster.LbPolicy.Value(policy))
    assert error_of(res.decode_cluster, cluster) == (
        f'cluster "{DEFAULT}": lb_policy: {policy} is not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM)')


def _typed_policy(name, message):
    return cluster_pb2.LoadBalancingPolicy.Policy(typed_extension_config=extension_pb2.TypedExtensionConfig(
        name=name, typed_config=pack(message)))


def test_load_balancing_policy_extension():
    cluster = istio.eds_cluster(V1, lb_policy=cluster_pb2.Cluster.MAGLEV)   # ignored when the extension is set
    cluster.load_balancing_policy.policies.extend([
        _typed_policy("envoy.load_balancing_policies.ring_hash", ring_hash_pb2.RingHash()),
        _typed_policy("envoy.load_balancing_policies.least_request", least_request_pb2.LeastRequest())])
    c = res.decode_cluster(pack(cluster))
    assert c.settings["lb_policy"] == "least_request"
    del cluster.load_balancing_policy.policies[1]
    assert "load_balancing_policy: none of the policies ['envoy.load_balancing_policies.ring_hash'] is supported" \
        in error_of(res.decode_cluster, cluster)


@pytest.mark.parametrize("kind, message", [
    ("LOGICAL_DNS", "type: LOGICAL_DNS is not supported (EDS, STATIC, STRICT_DNS)"),
    ("ORIGINAL_DST", "type: ORIGINAL_DST is not supported (EDS, STATIC, STRICT_DNS)")])
def test_discovery_types_refused(kind, message):
    cluster = cluster_pb2.Cluster(name="x", type=cluster_pb2.Cluster.DiscoveryType.Value(kind))
    assert error_of(res.decode_cluster, cluster) == f'cluster "x": {message}'
    custom = cluster_pb2.Cluster(name="agg", cluster_type=cluster_pb2.Cluster.CustomClusterType(
        name="envoy.clusters.aggregate"))
    assert "cluster_type: custom cluster type 'envoy.clusters.aggregate' is not supported" in error_of(
        res.decode_cluster, custom)


def test_static_and_strict_dns_clusters():
    la = istio.load_assignment("", istio.locality([istio.lb_endpoint("10.0.0.1", 80, weight=3),
                                                   istio.lb_endpoint("::1", 81)], region="r1", zone="z1"))
    static = res.decode_cluster(pack(cluster_pb2.Cluster(name="static", type=cluster_pb2.Cluster.STATIC,
                                                          load_assignment=la)))
    assert static.discovery == "STATIC" and static.eds_service_name == ""
    assert [(e.address, e.weight, e.zone) for e in static.endpoints] == [("10.0.0.1:80", 3, "r1/z1"),
                                                                         ("[::1]:81", 1, "r1/z1")]
    dns_la = istio.load_assignment("", istio.locality([istio.lb_endpoint("reviews.example", 9080)]))
    dns = res.decode_cluster(pack(cluster_pb2.Cluster(name="dns", type=cluster_pb2.Cluster.STRICT_DNS,
                                                       load_assignment=dns_la)))
    assert dns.discovery == "STRICT_DNS" and dns.endpoints[0].address == "reviews.example:9080"
    bad = cluster_pb2.Cluster(name="static", type=cluster_pb2.Cluster.STATIC, load_assignment=dns_la)
    assert error_of(res.decode_cluster, bad) == (
        'cluster "static": load_assignment.endpoints[0].lb_endpoints[0].endpoint.address: socket_address.address: '
        "'reviews.example' is not an IP address (a STATIC cluster needs one)")
    empty = res.decode_cluster(pack(cluster_pb2.Cluster(name="empty", type=cluster_pb2.Cluster.STATIC)))
    assert empty.endpoints == ()


def test_circuit_breakers_default_priority():
    cluster = istio.eds_cluster(V1)
    cluster.circuit_breakers.thresholds.extend([
        circuit_breaker_pb2.CircuitBreakers.Thresholds(priority=base_pb2.HIGH, max_connections=u32(1)),
        circuit_breaker_pb2.CircuitBreakers.Thresholds(
            max_connections=u32(100), max_pending_requests=u32(0), max_requests=u32(4294967295), max_retries=u32(7),
            retry_budget=circuit_breaker_pb2.CircuitBreakers.Thresholds.RetryBudget(
                budget_percent=percent_pb2.Percent(value=25.0), min_retry_concurrency=u32(2)))])
    c = res.decode_cluster(pack(cluster))
    assert _thaw(c.settings["circuit_breakers"]) == {
        "max_connections": 100, "max_pending_requests": 0, "max_requests": 4294967295, "max_retries": 7,
        "retry_budget": {"budget_percent": 25.0, "min_retry_concurrency": 2}}
    assert validate_settings(c).circuit_breakers.max_retries == 7
    cluster.circuit_breakers.thresholds[1].max_requests.value = 0
    assert "circuit_breakers: thresholds(DEFAULT).max_requests: 0 is not supported (meshd needs at least 1)" in \
        error_of(res.decode_cluster, cluster)


def test_outlier_detection_fields():
    cluster = istio.eds_cluster(V1)
    cluster.outlier_detection.CopyFrom(outlier_detection_pb2.OutlierDetection(
        consecutive_5xx=u32(3), consecutive_gateway_failure=u32(2), enforcing_consecutive_gateway_failure=u32(100),
        consecutive_local_origin_failure=u32(4), interval=dur(2), base_ejection_time=dur(0.5),
        max_ejection_time=dur(60), max_ejection_percent=u32(50), split_external_local_origin_errors=True,
        enforcing_success_rate=u32(100)))
    c = res.decode_cluster(pack(cluster))
    assert dict(c.settings["outlier_detection"]) == {
        "consecutive_5xx": 3, "consecutive_gateway_failure": 2, "consecutive_local_origin_failure": 4,
        "interval": "2s", "base_ejection_time": "500ms", "max_ejection_time": "60s", "max_ejection_percent": 50,
        "split_external_local_origin_errors": True}
    od = validate_settings(c).outlier_detection
    assert (od.consecutive_5xx, od.base_ejection_time, od.max_ejection_percent) == (3, 0.5, 50)


def test_outlier_detection_disabled_detectors():
    # Istio's shape: consecutive_5xx and its enforcement; gateway failures not enforced (Envoy's default)
    cluster = istio.eds_cluster(V1)
    cluster.outlier_detection.consecutive_5xx.value = 0
    cluster.outlier_detection.enforcing_consecutive_5xx.value = 0
    cluster.outlier_detection.enforcing_consecutive_local_origin_failure.value = 0
    c = res.decode_cluster(pack(cluster))
    assert dict(c.settings["outlier_detection"]) == {
        "consecutive_5xx": res.DISABLED, "consecutive_gateway_failure": res.DISABLED,
        "consecutive_local_origin_failure": res.DISABLED}
    validate_settings(c)
    cluster.outlier_detection.enforcing_failure_percentage.value = 100
    assert "outlier_detection: enforcing_failure_percentage: failure-percentage ejection is not supported" in \
        error_of(res.decode_cluster, cluster)
    cluster.outlier_detection.ClearField("enforcing_failure_percentage")
    cluster.outlier_detection.max_ejection_percent.value = 101
    assert "max_ejection_percent: 101 is not supported (meshd needs between 0 and 100)" in \
        error_of(res.decode_cluster, cluster)


def _health_check(**kwargs) -> health_check_pb2.HealthCheck:
    return health_check_pb2.HealthCheck(timeout=dur(1), interval=dur(5), healthy_threshold=u32(2),
                                        unhealthy_threshold=u32(3), **kwargs)


def test_health_checks():
    cluster = istio.eds_cluster(V1)
    cluster.health_checks.append(_health_check(
        interval_jitter=dur(0.1),
        http_health_check=health_check_pb2.HealthCheck.HttpHealthCheck(
            path="/health", host="reviews", expected_statuses=[range_pb2.Int64Range(start=200, end=203),
                                                               range_pb2.Int64Range(start=204, end=205)])))
    c = res.decode_cluster(pack(cluster))
    assert _thaw(c.settings["health_checks"]) == [{
        "type": "http", "http": {"path": "/health", "host": "reviews", "expected_statuses": [200, 201, 202, 204]},
        "timeout": "1s", "interval": "5s", "interval_jitter": "100ms", "healthy_threshold": 2,
        "unhealthy_threshold": 3}]
    assert validate_settings(c).health_checks[0].http.expected_statuses == [200, 201, 202, 204]
    cluster.health_checks[0].tcp_health_check.SetInParent()
    c = res.decode_cluster(pack(cluster))
    assert c.settings["health_checks"][0]["type"] == "tcp"
    validate_settings(c)
    cluster.health_checks[0].grpc_health_check.service_name = "x"
    assert error_of(res.decode_cluster, cluster) == (
        f'cluster "{V1}": health_checks[0]: grpc_health_check: grpc health checks are not supported (tcp, http)')
    cluster.health_checks[0].tcp_health_check.send.text = "50494E47"
    assert "tcp_health_check: send/receive payloads are not supported" in error_of(res.decode_cluster, cluster)
    cluster.health_checks[0].tcp_health_check.ClearField("send")
    cluster.health_checks.append(_health_check(tcp_health_check=health_check_pb2.HealthCheck.TcpHealthCheck()))
    assert "health_checks: 2 checks; meshd runs one per cluster" in error_of(res.decode_cluster, cluster)


def test_subset_config_and_common_lb():
    cluster = istio.eds_cluster("org.example.DemoService")
    sub = cluster.lb_subset_config
    sub.fallback_policy = cluster_pb2.Cluster.LbSubsetConfig.DEFAULT_SUBSET
    sub.default_subset.update({"version": "1.0.0"})
    Selector = cluster_pb2.Cluster.LbSubsetConfig.LbSubsetSelector
    sub.subset_selectors.extend([Selector(keys=["version"]),
                                 Selector(keys=["version", "group"], fallback_policy=Selector.KEYS_SUBSET,
                                          fallback_keys_subset=["version"])])
    cluster.common_lb_config.healthy_panic_threshold.value = 40.0
    cluster.common_lb_config.zone_aware_lb_config.min_cluster_size.value = 3
    c = res.decode_cluster(pack(cluster))
    assert _thaw(c.settings["subset"]) == {
        "selectors": [{"keys": ["version"]}, {"keys": ["version", "group"], "fallback_policy": "keys_subset",
                                              "fallback_keys_subset": ["version"]}],
        "fallback_policy": "default_subset", "default_subset": {"version": "1.0.0"}}
    assert c.settings["panic_threshold"] == 40.0 and dict(c.settings["zone_aware"]) == {}
    settings = validate_settings(c)
    assert settings.subset.fallback_policy == "default_subset" and settings.zone_aware is not None
    cluster.common_lb_config.zone_aware_lb_config.routing_enabled.value = 0
    assert "zone_aware" not in res.decode_cluster(pack(cluster)).settings
    sub.list_as_any = True
    assert "lb_subset_config: list_as_any: is not supported" in error_of(res.decode_cluster, cluster)


def test_http_protocol_options():
    cluster = istio.eds_cluster(V1)
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.common_http_protocol_options.idle_timeout.CopyFrom(dur(30))
    options.common_http_protocol_options.max_requests_per_connection.value = 100
    options.explicit_http_config.http_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].CopyFrom(
        pack(options))
    c = res.decode_cluster(pack(cluster))
    assert (c.settings["idle_timeout"], c.settings["max_requests_per_connection"]) == ("30s", 100)
    validate_settings(c)


# -- endpoints -------------------------------------------------------------------------------------------
def test_istio_assignment_every_locality_kept():
    cla = istio.load_assignment(
        V1,
        istio.locality([istio.lb_endpoint("10.0.0.1", 9080, workload="reviews-v1;default;reviews;v1;Kubernetes",
                                          tls_mode="istio")], region="us-east", zone="us-east-1a", sub_zone="rack1"),
        istio.locality([istio.lb_endpoint("10.0.1.1", 9080, weight=5)], region="us-west", zone="us-west-1b"),
        istio.locality([istio.lb_endpoint("10.0.2.1", 9080)], region="eu", priority=1))
    a = res.decode_assignment(pack(cla))
    assert a.cluster_name == V1
    assert [(e.address, e.zone, e.priority, e.weight) for e in a.endpoints] == [
        ("10.0.0.1:9080", "us-east/us-east-1a/rack1", 0, 1), ("10.0.1.1:9080", "us-west/us-west-1b", 0, 5),
        ("10.0.2.1:9080", "eu", 1, 1)]
    first = a.endpoints[0]
    assert dict(first.metadata) == {
        "region": "us-east", "zone": "us-east-1a", "sub_zone": "rack1", "app": "reviews", "version": "v1",
        "istio.namespace": "default", "istio.workload_name": "reviews-v1", "istio.cluster_id": "Kubernetes",
        "istio.workload": "reviews-v1;default;reviews;v1;Kubernetes", "envoy.transport_socket_match.tlsMode": "istio"}
    assert (first.version, first.group) == ("v1", "")
    assert dict(a.endpoints[2].metadata) == {"region": "eu"}


@pytest.mark.parametrize("status, health", [
    (health_check_pb2.HEALTHY, Health.HEALTHY), (health_check_pb2.UNKNOWN, Health.UNKNOWN),
    (health_check_pb2.UNHEALTHY, Health.UNHEALTHY), (health_check_pb2.DRAINING, Health.DRAINING),
    (health_check_pb2.TIMEOUT, Health.UNHEALTHY), (health_check_pb2.DEGRADED, Health.UNHEALTHY)])
def test_health_statuses(status, health):
    a = res.decode_assignment(pack(istio.load_assignment(V1, istio.locality([istio.lb_endpoint("10.0.0.1", 1,
                                                                                               health=status)]))))
    assert a.endpoints[0].health is health and a.endpoints[0].enabled


def test_metadata_flattening_and_typed_fields():
    ep = istio.lb_endpoint("10.0.0.1", 20880, lb_labels={"version": "1.0.0", "group": "g1"})
    extra = ep.metadata.filter_metadata["com.example"]
    extra.update({"n": 3, "f": 1.5, "b": True, "none": None, "list": [1, "a"], "obj": {"k": "v"}, "s": "x"})
    ep.metadata.filter_metadata["envoy.lb"].update({"canary": False})
    a = res.decode_assignment(pack(istio.load_assignment("dubbo", istio.locality([ep]))))
    e = a.endpoints[0]
    assert dict(e.metadata) == {
        "version": "1.0.0", "group": "g1", "canary": "false", "com.example.n": "3", "com.example.f": "1.5",
        "com.example.b": "true", "com.example.none": "null", "com.example.list": '[1,"a"]',
        "com.example.obj": '{"k":"v"}', "com.example.s": "x"}
    assert (e.group, e.version) == ("g1", "1.0.0")


def test_envoy_lb_wins_over_istio_derived_keys():
    ep = istio.lb_endpoint("10.0.0.1", 9080, workload="w;ns;reviews;v1;c", lb_labels={"version": "v9"})
    e = res.decode_assignment(pack(istio.load_assignment(V1, istio.locality([ep])))).endpoints[0]
    assert (e.metadata["version"], e.version, e.metadata["app"]) == ("v9", "v9", "reviews")


def test_shared_address_and_duplicates():
    eps = [istio.lb_endpoint("10.0.0.1", 20880, lb_labels={"version": "1.0.0"}),
           istio.lb_endpoint("10.0.0.1", 20880, lb_labels={"version": "2.0.0"})]
    a = res.decode_assignment(pack(istio.load_assignment("svc", istio.locality(eps))))
    assert [e.key for e in a.endpoints] == ["10.0.0.1:20880#/1.0.0", "10.0.0.1:20880#/2.0.0"]
    dup = istio.load_assignment("svc", istio.locality([istio.lb_endpoint("10.0.0.1", 80)], zone="a"),
                                istio.locality([istio.lb_endpoint("10.0.0.1", 80)], zone="b"))
    assert error_of(res.decode_assignment, dup) == (
        "cluster load assignment \"svc\": endpoints: endpoint 10.0.0.1:80 is listed twice with group '' and "
        "version ''")


def test_endpoint_addresses_refused():
    def cla_with(address: address_pb2.Address) -> endpoint_pb2.ClusterLoadAssignment:
        ep = endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(address=address))
        return istio.load_assignment("c", istio.locality([ep]))

    named = cla_with(address_pb2.Address(socket_address=address_pb2.SocketAddress(address="10.0.0.1",
                                                                                  named_port="http")))
    assert error_of(res.decode_assignment, named) == (
        'cluster load assignment "c": endpoints[0].lb_endpoints[0].endpoint.address: socket_address.named_port: '
        "named port 'http' is not supported")
    pipe = cla_with(address_pb2.Address(pipe=address_pb2.Pipe(path="/tmp/s")))
    assert "endpoint.address: pipe: a pipe address is not supported (only socket_address)" in error_of(
        res.decode_assignment, pipe)
    udp = cla_with(address_pb2.Address(socket_address=address_pb2.SocketAddress(
        address="10.0.0.1", port_value=53, protocol=address_pb2.SocketAddress.UDP)))
    assert "socket_address.protocol: UDP is not supported" in error_of(res.decode_assignment, udp)
    zero = cla_with(address_pb2.Address(socket_address=address_pb2.SocketAddress(address="10.0.0.1")))
    assert "socket_address.port_value: 0 is not a valid port" in error_of(res.decode_assignment, zero)
    weight0 = istio.load_assignment("c", istio.locality([istio.lb_endpoint("10.0.0.1", 1, weight=0)]))
    assert "lb_endpoints[0]: load_balancing_weight: must be at least 1" in error_of(res.decode_assignment, weight0)
    named_ref = istio.load_assignment("c", istio.locality([endpoint_components_pb2.LbEndpoint(endpoint_name="e1")]))
    assert "endpoint_name: a named endpoint reference is not supported" in error_of(res.decode_assignment, named_ref)
    assert error_of(res.decode_assignment, endpoint_pb2.ClusterLoadAssignment()) == (
        'cluster load assignment "": cluster_name: must not be empty')


def test_drop_overloads_refused():
    cla = istio.load_assignment("c")
    cla.policy.drop_overloads.add(category="throttle").drop_percentage.numerator = 5
    assert "policy.drop_overloads: dropping requests ('throttle') is not supported" in error_of(
        res.decode_assignment, cla)


# -- routes ----------------------------------------------------------------------------------------------
def _hm(name, **kwargs):
    return rc.HeaderMatcher(name=name, **kwargs)


def _sm(**kwargs):
    return string_pb2.StringMatcher(**kwargs)


def _regex(pattern):
    return regex_pb2.RegexMatcher(regex=pattern)


def test_istio_service_route_config():
    routes = istio.service_route_config(REVIEWS, 9080, [
        istio.route(weighted={V1: 80, V2: 20, DEFAULT: 0}, headers={"x-canary": "1"}, max_stream_duration=3),
        istio.route(cluster=DEFAULT, name="default")])
    r = res.decode_route_configuration(pack(routes))
    assert r.name == DEFAULT and r.clusters == {V1, V2, DEFAULT}   # Istio's builder skipped the weight-0 entry
    assert _thaw(r.config) == {"name": DEFAULT, "virtual_hosts": [{
        "name": f"{REVIEWS}:9080", "domains": [f"{REVIEWS}:9080", REVIEWS], "routes": [
            {"match": {"prefix": "/", "headers": [{"name": "x-canary", "exact": "1"}]},
             "route": {"weighted_clusters": [{"cluster": V1, "weight": 80}, {"cluster": V2, "weight": 20}],
                       "timeout": "3s"}},
            {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": DEFAULT}}]}]}
    validate_routes(r)


def test_route_config_with_plain_names_validates_fully():
    routes = istio.route_config("8080", istio.virtual_host("demo", ["*"], [
        istio.route(weighted={"a": 1, "b": 0}, prefix="/api"), istio.route(cluster="c")]))
    r = res.decode_route_configuration(pack(routes))
    assert r.clusters == {"a", "c"}
    parsed = validate_routes(r)
    assert parsed is not None and parsed.virtual_hosts[0].routes[0].route.weighted_clusters[0].cluster == "a"


def test_weight_zero_entries_kept():
    action = rc.RouteAction(weighted_clusters=rc.WeightedCluster(clusters=[
        rc.WeightedCluster.ClusterWeight(name="a", weight=u32(100)),
        rc.WeightedCluster.ClusterWeight(name="b", weight=u32(0))]))
    routes = istio.route_config("r", istio.virtual_host("vh", ["*"], [rc.Route(match=rc.RouteMatch(prefix="/"),
                                                                               route=action)]))
    r = res.decode_route_configuration(pack(routes))
    assert r.clusters == {"a", "b"}
    assert [dict(w) for w in r.config["virtual_hosts"][0]["routes"][0]["route"]["weighted_clusters"]] == [
        {"cluster": "a", "weight": 100}, {"cluster": "b", "weight": 0}]
    validate_routes(r)
    action.weighted_clusters.clusters[0].weight.value = 0
    routes.virtual_hosts[0].routes[0].route.CopyFrom(action)
    assert error_of(res.decode_route_configuration, routes) == (
        'route configuration "r": virtual_hosts[0](vh).routes[0].route.weighted_clusters: clusters: '
        "the weights add up to 0")


def _one_route(route: rc.Route, name: str = "r") -> res.XdsRoutes:
    return res.decode_route_configuration(pack(istio.route_config(name, istio.virtual_host("vh", ["*"], [route]))))


def _route(match: rc.RouteMatch, **action) -> rc.Route:
    return rc.Route(match=match, route=rc.RouteAction(cluster="c", **action))


def test_every_matcher():
    match = rc.RouteMatch(safe_regex=_regex("/api/v[0-9]+/.*"), case_sensitive=wrappers_pb2.BoolValue(value=False),
                          headers=[
                              _hm("x-exact", string_match=_sm(exact="a")),
                              _hm("x-prefix", string_match=_sm(prefix="p")),
                              _hm("x-suffix", string_match=_sm(suffix="s")),
                              _hm("x-regex", string_match=_sm(safe_regex=_regex("a+b"))),
                              _hm("x-contains", string_match=_sm(contains="mid")),
                              _hm("x-icase", string_match=_sm(exact="A.b", ignore_case=True)),
                              _hm("x-present", present_match=True),
                              _hm("x-absent", present_match=False),
                              _hm("x-not", string_match=_sm(exact="no"), invert_match=True),
                              _hm("x-legacy-exact", exact_match="e"),
                              _hm("x-legacy-prefix", prefix_match="lp"),
                              _hm("x-legacy-suffix", suffix_match="ls"),
                              _hm("x-legacy-regex", safe_regex_match=_regex("r.*")),
                              _hm("x-legacy-contains", contains_match="c.c"),
                              _hm("x-bare"),
                              _hm(":authority", string_match=_sm(exact="reviews:9080"))],
                          query_parameters=[
                              rc.QueryParameterMatcher(name="q-exact", string_match=_sm(exact="1")),
                              rc.QueryParameterMatcher(name="q-prefix", string_match=_sm(prefix="p")),
                              rc.QueryParameterMatcher(name="q-suffix", string_match=_sm(suffix="s")),
                              rc.QueryParameterMatcher(name="q-regex", string_match=_sm(safe_regex=_regex("[0-9]+"))),
                              rc.QueryParameterMatcher(name="q-present", present_match=True)])
    match.grpc.SetInParent()
    r = _one_route(_route(match))
    m = _thaw(r.config["virtual_hosts"][0]["routes"][0]["match"])
    assert m == {
        "regex": "/api/v[0-9]+/.*", "case_sensitive": False,
        "headers": [
            {"name": "content-type", "prefix": "application/grpc"},
            {"name": "x-exact", "exact": "a"}, {"name": "x-prefix", "prefix": "p"}, {"name": "x-suffix", "suffix": "s"},
            {"name": "x-regex", "regex": "a+b"}, {"name": "x-contains", "regex": "(?s).*mid.*"},
            {"name": "x-icase", "regex": r"(?si)A\.b"}, {"name": "x-present", "present": True},
            {"name": "x-absent", "present": False}, {"name": "x-not", "exact": "no", "invert": True},
            {"name": "x-legacy-exact", "exact": "e"}, {"name": "x-legacy-prefix", "prefix": "lp"},
            {"name": "x-legacy-suffix", "suffix": "ls"}, {"name": "x-legacy-regex", "regex": "r.*"},
            {"name": "x-legacy-contains", "regex": r"(?s).*c\.c.*"}, {"name": "x-bare", "present": True},
            {"name": "host", "exact": "reviews:9080"}],
        "query_parameters": [
            {"name": "q-exact", "exact": "1"}, {"name": "q-prefix", "prefix": "p"}, {"name": "q-suffix", "suffix": "s"},
            {"name": "q-regex", "regex": "[0-9]+"}, {"name": "q-present", "present": True}]}
    validate_routes(r)
    for kind, value in (("path", "/exact"), ("prefix", "/p")):
        r = _one_route(_route(rc.RouteMatch(**{kind: value})))
        assert dict(r.config["virtual_hosts"][0]["routes"][0]["match"]) == {kind: value}
        validate_routes(r)


def test_meshd_matchers_behave_like_envoy_on_the_converted_regexes():
    from meshd.routing.table import compile_matcher
    r = _one_route(_route(rc.RouteMatch(prefix="/", headers=[
        _hm("a", string_match=_sm(contains="mid")), _hm("b", string_match=_sm(prefix="Pre", ignore_case=True))])))
    a, b = (meshd_config.HeaderMatcher.model_validate(dict(h))
            for h in r.config["virtual_hosts"][0]["routes"][0]["match"]["headers"])
    assert compile_matcher(a)("a mid b") and not compile_matcher(a)("nothing")
    assert compile_matcher(b)("prefix-x") and not compile_matcher(b)("x-pre")


@pytest.mark.parametrize("header, message", [
    (_hm(":method", string_match=_sm(exact="GET")), "name: pseudo-header ':method' is not supported (only :authority)"),
    (_hm("x", range_match=range_pb2.Int64Range(start=1, end=2)), "range_match: is not supported"),
    (_hm("x", safe_regex_match=_regex("(?<=a)b(?P<x")), "does not compile as a Python regular expression"),
])
def test_header_matchers_refused(header, message):
    routes = istio.route_config("r", istio.virtual_host("vh", ["*"], [_route(rc.RouteMatch(prefix="/",
                                                                                             headers=[header]))]))
    err = error_of(res.decode_route_configuration, routes)
    assert err.startswith('route configuration "r": virtual_hosts[0](vh).routes[0].match.headers[0]') and message in err


def test_retry_policy():
    policy = rc.RetryPolicy(
        retry_on="connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", num_retries=u32(2),
        per_try_timeout=dur(0.5), retriable_status_codes=[503, 429], host_selection_retry_max_attempts=5,
        retry_host_predicate=[rc.RetryPolicy.RetryHostPredicate(
            name="envoy.retry_host_predicates.previous_hosts",
            typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate()))],
        retry_back_off=rc.RetryPolicy.RetryBackOff(base_interval=dur(0.025), max_interval=dur(0.25)))
    r = _one_route(_route(rc.RouteMatch(prefix="/"), retry_policy=policy, timeout=dur(0)))
    action = _thaw(r.config["virtual_hosts"][0]["routes"][0]["route"])
    assert action == {"cluster": "c", "retry_policy": {
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", "num_retries": 2,
        "per_try_timeout": "500ms", "retriable_status_codes": [503, 429], "retry_host_predicate": "previous_hosts",
        "host_selection_retry_max_attempts": 5, "retry_back_off": {"base_interval": "25ms", "max_interval": "250ms"}}}
    validate_routes(r)
    plain = rc.RetryPolicy(retry_on="5xx,connect-failure", num_retries=u32(3))
    r = _one_route(_route(rc.RouteMatch(prefix="/"), retry_policy=plain))
    retry = dict(r.config["virtual_hosts"][0]["routes"][0]["route"]["retry_policy"])
    assert retry == {"retry_on": "5xx,connect-failure", "num_retries": 3, "retry_host_predicate": "none"}
    assert validate_routes(r).virtual_hosts[0].routes[0].route.retry_policy.num_retries == 3
    plain.num_retries.value = 11
    routes = istio.route_config("r", istio.virtual_host("vh", ["*"], [_route(rc.RouteMatch(prefix="/"),
                                                                             retry_policy=plain)]))
    assert "route.retry_policy: num_retries: 11 is not supported (meshd needs between 0 and 10)" in error_of(
        res.decode_route_configuration, routes)


def test_virtual_host_retry_policy_applies_to_routes_without_one():
    vh = istio.virtual_host("vh", ["*"], [_route(rc.RouteMatch(prefix="/a")),
                                          _route(rc.RouteMatch(prefix="/b"),
                                                 retry_policy=rc.RetryPolicy(retry_on="reset"))])
    vh.retry_policy.retry_on = "5xx"
    r = res.decode_route_configuration(pack(istio.route_config("r", vh)))
    routes = r.config["virtual_hosts"][0]["routes"]
    assert [rt["route"]["retry_policy"]["retry_on"] for rt in routes] == ["5xx", "reset"]


def test_timeouts():
    def timeout_of(**kwargs):
        r = _one_route(_route(rc.RouteMatch(prefix="/"), **kwargs))
        return r.config["virtual_hosts"][0]["routes"][0]["route"].get("timeout")

    msd = rc.RouteAction.MaxStreamDuration(max_stream_duration=dur(2))
    assert timeout_of(timeout=dur(1.5)) == "1500ms"
    assert timeout_of(timeout=dur(0)) is None
    assert timeout_of() is None
    assert timeout_of(max_stream_duration=msd) == "2s"
    assert timeout_of(timeout=dur(0), max_stream_duration=msd) == "2s"
    assert timeout_of(timeout=dur(5), max_stream_duration=msd) == "5s"


def test_metadata_match_headers_and_direct_response():
    md = base_pb2.Metadata()
    md.filter_metadata["envoy.lb"].update({"version": "1.0.0", "n": 2})
    md.filter_metadata["other"].update({"ignored": "x"})
    route = _route(rc.RouteMatch(prefix="/"), metadata_match=md, prefix_rewrite="/v2", host_rewrite_literal="h")
    route.request_headers_to_add.extend([
        base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key="x-a", value="1")),
        base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key="x-b", value="2"),
                                   append=wrappers_pb2.BoolValue(value=False)),
        base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key="x-c", raw_value=b"3"),
                                   append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)])
    route.response_headers_to_add.append(base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key="x-r", value="r")))
    route.request_headers_to_remove.append("x-drop")
    route.response_headers_to_remove.append("server")
    direct = rc.Route(name="teapot", match=rc.RouteMatch(path="/tea"),
                      direct_response=rc.DirectResponseAction(status=418))
    direct.direct_response.body.inline_string = "short and stout"
    r = res.decode_route_configuration(pack(istio.route_config("r", istio.virtual_host("vh", ["*"], [route, direct]))))
    first, second = _thaw(r.config["virtual_hosts"][0]["routes"])
    assert first["route"] == {"cluster": "c", "metadata_match": {"n": "2", "version": "1.0.0"},
                              "prefix_rewrite": "/v2", "host_rewrite": "h"}
    assert first["request_headers_to_add"] == [{"header": {"key": "x-a", "value": "1"}, "append": True},
                                               {"header": {"key": "x-b", "value": "2"}, "append": False},
                                               {"header": {"key": "x-c", "value": "3"}, "append": False}]
    assert first["response_headers_to_add"] == [{"header": {"key": "x-r", "value": "r"}, "append": True}]
    assert (first["request_headers_to_remove"], first["response_headers_to_remove"]) == (["x-drop"], ["server"])
    assert second == {"name": "teapot", "match": {"path": "/tea"},
                      "direct_response": {"status": 418, "body": "short and stout"}}
    assert r.clusters == {"c"}
    validate_routes(r)
    route.request_headers_to_add.append(base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key="x-d", value="4"), append_action=base_pb2.HeaderValueOption.ADD_IF_ABSENT))
    assert "request_headers_to_add[3](x-d): append_action: ADD_IF_ABSENT is not supported" in error_of(
        res.decode_route_configuration, istio.route_config("r", istio.virtual_host("vh", ["*"], [route])))


@pytest.mark.parametrize("route, message", [
    (rc.Route(name="moved", match=rc.RouteMatch(prefix="/"), redirect=rc.RedirectAction(host_redirect="x")),
     "routes[0](moved): redirect: a redirect route is not supported (route, direct_response)"),
    (rc.Route(match=rc.RouteMatch(prefix="/"), non_forwarding_action=rc.NonForwardingAction()),
     "routes[0]: non_forwarding_action: a non_forwarding_action route is not supported"),
    (rc.Route(match=rc.RouteMatch(prefix="/"), route=rc.RouteAction(cluster_header="x-cluster")),
     "routes[0].route: cluster_header: is not supported (cluster, weighted_clusters)"),
    (rc.Route(match=rc.RouteMatch(prefix="/"), route=rc.RouteAction(
        cluster="c", request_mirror_policies=[rc.RouteAction.RequestMirrorPolicy(cluster="m")])),
     "routes[0].route: request_mirror_policies: is not supported"),
    (rc.Route(match=rc.RouteMatch(path_separated_prefix="/p"), route=rc.RouteAction(cluster="c")),
     "routes[0].match: path_separated_prefix: is not supported (prefix, path, safe_regex)"),
])
def test_route_actions_refused(route, message):
    err = error_of(res.decode_route_configuration, istio.route_config("r", istio.virtual_host("vh", ["*"], [route])))
    assert message in err and err.startswith('route configuration "r": virtual_hosts[0](vh).')


def test_virtual_host_checks():
    assert "virtual_hosts[0](vh): domains: must not be empty" in error_of(
        res.decode_route_configuration, istio.route_config("r", istio.virtual_host("vh", [], [])))
    vh = istio.virtual_host("vh", ["*"], [])
    vh.request_headers_to_add.append(base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key="k", value="v")))
    assert "virtual_hosts[0](vh): request_headers_to_add: is not supported" in error_of(
        res.decode_route_configuration, istio.route_config("r", vh))


def test_meshd_takes_istio_names_and_grpc_retry_conditions():
    routes = istio.service_route_config(REVIEWS, 9080, [istio.route(cluster=V1)])
    routes.virtual_hosts[0].routes[0].route.retry_policy.retry_on = "unavailable,cancelled"
    r = res.decode_route_configuration(pack(routes))
    meshd_config.RouteConfiguration.model_validate(_thaw(r.config))
    meshd_config.ClusterConfig.model_validate({**res.decode_cluster(pack(istio.eds_cluster(V1))).settings, "name": V1})


# -- listeners -------------------------------------------------------------------------------------------
def _hcm(**kwargs) -> hcm_pb2.HttpConnectionManager:
    kwargs.setdefault("http_filters", [hcm_pb2.HttpFilter(name=istio.ROUTER_FILTER,
                                                          typed_config=pack(router_pb2.Router()))])
    return hcm_pb2.HttpConnectionManager(stat_prefix="s", **kwargs)


def _socket_listener(*chains: listener_components_pb2.FilterChain, name: str = "0.0.0.0_9080") -> listener_pb2.Listener:
    return listener_pb2.Listener(name=name, address=address_pb2.Address(socket_address=address_pb2.SocketAddress(
        address="0.0.0.0", port_value=9080)), filter_chains=list(chains))


def _chain(message, name: str = "envoy.filters.network.http_connection_manager", chain: str = ""):
    return listener_components_pb2.FilterChain(name=chain, filters=[listener_components_pb2.Filter(
        name=name, typed_config=pack(message))])


def test_istio_api_listener():
    lis = res.decode_listener(pack(istio.api_listener(REVIEWS, 9080)))
    assert (lis.name, lis.address, lis.route_config_name, lis.inline_routes) == (
        f"{REVIEWS}:9080", "", DEFAULT, None)


def test_socket_listener_with_rds_and_inline_routes():
    rds = _hcm(rds=hcm_pb2.Rds(config_source=config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource()), route_config_name="9080"))
    lis = res.decode_listener(pack(_socket_listener(_chain(rds), _chain(rds))))
    assert (lis.address, lis.route_config_name) == ("0.0.0.0:9080", "9080")
    inline = _hcm(route_config=istio.route_config("inline", istio.virtual_host("vh", ["*"], [
        istio.route(cluster="c")])))
    lis = res.decode_listener(pack(_socket_listener(_chain(inline))))
    assert lis.route_config_name is None and lis.inline_routes.name == "inline"
    assert lis.inline_routes.clusters == {"c"}
    validate_routes(lis.inline_routes)
    assert "filter_chains[1]: its HttpConnectionManager names other routes" in error_of(
        res.decode_listener, _socket_listener(_chain(rds), _chain(inline)))


def test_listener_refusals():
    from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
    tcp = _socket_listener(_chain(tcp_proxy_pb2.TcpProxy(stat_prefix="t", cluster="c"),
                                  name="envoy.filters.network.tcp_proxy", chain="passthrough"))
    assert error_of(res.decode_listener, tcp) == (
        'listener "0.0.0.0_9080": filter_chains[0](passthrough): no envoy.filters.network.http_connection_manager '
        "filter (filters ['envoy.filters.network.tcp_proxy']): not an HTTP filter chain")
    no_filters = istio.api_listener(REVIEWS, 9080)
    manager = _hcm(rds=hcm_pb2.Rds(route_config_name="x", config_source=config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource())), http_filters=[])
    no_filters.api_listener.api_listener.CopyFrom(pack(manager))
    assert error_of(res.decode_listener, no_filters) == (
        f'listener "{REVIEWS}:9080": api_listener.api_listener: http_filters: expected at least one HTTP filter')
    manager.http_filters.append(hcm_pb2.HttpFilter(name="envoy.filters.http.fault"))
    no_filters.api_listener.api_listener.CopyFrom(pack(manager))
    assert "http_filters: the last filter is 'envoy.filters.http.fault', not envoy.filters.http.router" in error_of(
        res.decode_listener, no_filters)
    manager.http_filters.append(hcm_pb2.HttpFilter(name=istio.ROUTER_FILTER))
    manager.rds.config_source.CopyFrom(config_source_pb2.ConfigSource(path="/x"))
    no_filters.api_listener.api_listener.CopyFrom(pack(manager))
    assert "api_listener.api_listener.rds.config_source: config source path is not supported" in error_of(
        res.decode_listener, no_filters)
    bad_inline = _socket_listener(_chain(_hcm(route_config=istio.route_config(""))))
    assert 'typed_config: route_config: route configuration "": name: must not be empty' in error_of(
        res.decode_listener, bad_inline)
