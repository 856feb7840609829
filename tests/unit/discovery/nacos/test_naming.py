"""Transcripts of the pure Nacos mapping: service names, instance → endpoint, push rules."""

from discovery.model import Health
from discovery.nacos.naming import (DubboName, ServiceView, cluster_endpoints, instance_endpoint,
                                    parse_service_name, render_service_name)

HOST = {"instanceId": "10.0.0.1#20880#DEFAULT#G@@s", "ip": "10.0.0.1", "port": 20880, "weight": 1.5,
        "healthy": True, "enabled": True, "ephemeral": True, "clusterName": "east", "serviceName": "G@@s",
        "metadata": {"zone": "z1", "k": "v"}}


def test_dubbo_service_names_round_trip():
    assert parse_service_name("providers:org.x.Svc:1.0.0:") == DubboName("providers", "org.x.Svc", "1.0.0", "")
    assert parse_service_name("providers:org.x.Svc") == DubboName("providers", "org.x.Svc")
    assert parse_service_name("user-service") is None
    assert render_service_name("org.x.Svc", "2.0", "g") == "providers:org.x.Svc:2.0:g"


def test_plain_instance_keeps_every_field_and_scales_weight():
    spec, warming = instance_endpoint("s", HOST)
    assert (spec.address, spec.weight, spec.zone, spec.health, warming) == ("10.0.0.1:20880", 150, "z1",
                                                                           Health.HEALTHY, False)
    assert spec.metadata["nacos.cluster"] == "east" and spec.metadata["k"] == "v"
    assert spec.metadata["nacos.instanceId"] == HOST["instanceId"] and spec.metadata["nacos.weight"] == "1.5"
    off, _ = instance_endpoint("s", {**HOST, "enabled": False, "healthy": False})
    assert (off.enabled, off.health) == (False, Health.UNHEALTHY)


def test_dubbo_instance_takes_version_group_and_url_parameters():
    host = {**HOST, "metadata": {"weight": "40", "disabled": "false", "side": "provider", "timestamp": "1000",
                                 "warmup": "10000"}}
    spec, warming = instance_endpoint("providers:org.x.Svc:1.0.0:g1", host, naming="dubbo", now_ms=6000)
    assert (spec.version, spec.group, spec.weight, warming) == ("1.0.0", "g1", 20, True)
    spec, warming = instance_endpoint("providers:org.x.Svc:1.0.0:g1", host, naming="dubbo", now_ms=20000)
    assert (spec.weight, warming) == (40, False)


def test_bad_instances_are_left_out_with_an_error():
    view = ServiceView("s", 1, [HOST, {"ip": "10.0.0.2", "weight": 1.0}, {"ip": "", "port": 1}], True)
    specs, _, errors = cluster_endpoints([view], naming="plain")
    assert [s.address for s in specs] == ["10.0.0.1:20880"] and len(errors) == 2
    specs, _, _ = cluster_endpoints([view], naming="plain", clusters=["west"])
    assert specs == []


def test_push_rules_last_ref_time_and_empty_protection():
    view = ServiceView("s")
    assert view.offer([HOST], 10) == "applied"
    assert view.offer([], 9) == "old"
    assert view.offer([HOST, HOST], 10) == "old"
    assert view.offer([], 11) == "empty-kept" and view.hosts == [HOST] and view.empty_kept
    assert view.offer([{**HOST, "port": 1}], 12) == "applied" and not view.empty_kept
    assert ServiceView.from_json("s", view.to_json()).hosts == view.hosts
