"""SOFARegistry data (pure): SOFARPC data ids, provider strings as SofaRegistryHelper writes and reads them, zones."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from discovery.sofaregistry.data import (DataError, Service, parse_provider, provider_string, zone_endpoints)

# SofaRegistryHelper#convertProviderToUrls for a bolt provider with a timeout (sofa-rpc 5.x), as a Java
# provider publishes it
JAVA = ("10.0.0.5:12200?rpcVer=50900&serialization=hessian2&weight=100&timeout=3000&appName=calc&p=1&v=4.0"
        "&_SERIALIZETYPE=hessian2&_WEIGHT=100&_TIMEOUT=3000&app_name=calc&startTime=1700000000000")


@pytest.mark.parametrize("name, data_id, fields", [
    ("com.example.Calc", "com.example.Calc:1.0@DEFAULT", ("com.example.Calc", "1.0", "")),
    ("com.example.Calc:2.0", "com.example.Calc:2.0@DEFAULT", ("com.example.Calc", "2.0", "")),
    ("com.example.Calc:1.0:blue", "com.example.Calc:1.0:blue@DEFAULT", ("com.example.Calc", "1.0", "blue")),
])
def test_data_ids_are_built_as_sofarpc_builds_them(name, data_id, fields):
    service = Service.parse(name)
    assert service.data_id == data_id and (service.interface, service.version, service.unique_id) == fields
    assert Service.from_data_id(data_id) == service
    assert Service.parse(name, "h2c").data_id == data_id.replace("@DEFAULT", "@h2c")
    assert Service.from_data_id(data_id.replace("@DEFAULT", "@h2c")).protocol == "h2c"


@pytest.mark.parametrize("name", ["", "com.x.A:", "com.x.A:1.0:", "1com.x:1.0", "com.x.A:1:2:3", "com.x.A:1.0@x",
                                  "com.x.A:a b"])
def test_bad_service_names_are_named(name):
    with pytest.raises(DataError, match="service"):
        Service.parse(name)


def test_a_java_provider_string_becomes_a_typed_endpoint_with_every_parameter():
    provider = parse_provider(JAVA)
    assert (provider.address, provider.protocol) == ("10.0.0.5:12200", "bolt")
    (spec,), warming, errors = zone_endpoints(Service.parse("com.example.Calc:1.0:blue"), {"zone-a": [JAVA]},
                                             "zone-a", "dc1", now_ms=1_800_000_000_000)
    assert not warming and not errors
    assert (spec.weight, spec.zone, spec.priority, spec.version, spec.group) == (100, "zone-a", 0, "1.0", "blue")
    md = spec.metadata
    assert md["_TIMEOUT"] == "3000" and md["app_name"] == "calc" and md["rpcVer"] == "50900"
    assert (md["interface"], md["protocol"], md["uniqueId"], md["data_center"]) == ("com.example.Calc", "bolt",
                                                                                   "blue", "dc1")


@pytest.mark.parametrize("text, address, protocol, weight, serialization", [
    ("bolt://10.0.0.1:12200?weight=30", "10.0.0.1:12200", "bolt", 30, ""),
    ("10.0.0.1:12200?p=13&_WEIGHT=40&_SERIALIZETYPE=4", "10.0.0.1:12200", "tr", 40, "hessian2"),
    ("10.0.0.1?_SERIALIZETYPE=11", "10.0.0.1:12200", "bolt", 100, "protobuf"),   # no port: SOFARPC's bolt port
    ("10.0.0.1:8080/ctx/path?flag", "10.0.0.1:8080", "bolt", 100, ""),
    ("h2c://[::1]:12300", "[::1]:12300", "h2c", 100, ""),
])
def test_provider_string_forms(text, address, protocol, weight, serialization):
    (spec,), _, errors = zone_endpoints(Service.parse("a.B"), {"z": [text]}, "z", "", now_ms=0)
    assert not errors and (spec.address, spec.metadata["protocol"], spec.weight) == (address, protocol, weight)
    assert spec.metadata.get("serialization", "") == serialization
    if text.endswith("flag"):
        assert spec.metadata["flag"] == "flag"            # a key without "=" is its own value, as in Java


def test_warmup_weight_until_start_plus_warmup_time():
    text = "10.0.0.1:1?weight=100&warmupTime=60000&warmupWeight=5&startTime=1000"
    (spec,), warming, _ = zone_endpoints(Service.parse("a.B"), {"z": [text]}, "z", "", now_ms=30_000)
    assert (spec.weight, warming) == (5, True)
    (spec,), warming, _ = zone_endpoints(Service.parse("a.B"), {"z": [text]}, "z", "", now_ms=61_001)
    assert (spec.weight, warming) == (100, False)


def test_zones_local_first_other_zones_fall_back_and_bad_entries_are_named():
    zones = {"zone-b": ["10.0.1.1:1", "10.0.0.1:1"], "zone-a": ["10.0.0.1:1", "not a host:x", "10.0.0.2:1?weight=w"]}
    specs, _, errors = zone_endpoints(Service.parse("a.B"), zones, "zone-a", "", now_ms=0)
    by_address = {s.address: (s.zone, s.priority) for s in specs}
    assert by_address == {"10.0.0.1:1": ("zone-a", 0), "10.0.1.1:1": ("zone-b", 1)}   # listed twice: local wins
    assert len(errors) == 2 and "'not a host:x'" in errors[0] and "weight='w' is not an integer" in errors[1]


def test_provider_string_is_what_sofarpc_writes_and_reads_back():
    text = provider_string("10.0.0.5:12200", Service.parse("com.example.Calc"), app="calc", weight=100,
                           serialization="hessian2", timeout=3000, start_ms=1700000000000, rpc_version="50900")
    assert text == JAVA
    custom = provider_string("10.0.0.5:12200", Service.parse("a.B"), app="x", weight=7, serialization="protobuf",
                             timeout=None, start_ms=5, rpc_version="1", parameters={"zone": "z1", "weight": "9"})
    params = parse_provider(custom).params
    assert params["zone"] == "z1" and params["weight"] == "9" and params["_WEIGHT"] == "7" and "timeout" not in params
    assert custom.endswith("&startTime=5")


@given(st.text(max_size=80))
def test_any_string_is_an_endpoint_or_a_named_error(text):
    specs, _, errors = zone_endpoints(Service.parse("a.B"), {"z": [text]}, "z", "", now_ms=0)
    assert len(specs) + len(errors) == 1
