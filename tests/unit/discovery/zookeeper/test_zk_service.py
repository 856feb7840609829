"""Provider nodes → endpoints for both layouts: metadata kept, typed fields, rules, warm-up, readiness."""

import pytest

from discovery.zookeeper.layouts import get_layout
from discovery.zookeeper.service import ServiceState
from discovery.zookeeper.urls import java_urlencode

IFACE = "org.example.DemoService"
NOW = 1_700_000_000_000
DUBBO_URL = (f"dubbo://10.0.0.5:20880/{IFACE}?anyhost=true&application=demo&deprecated=false&dubbo=2.0.2"
             f"&dynamic=true&generic=false&group=g1&interface={IFACE}&methods=sayHello,sayBye&pid=4242"
             f"&release=2.7.23&revision=1.0.0&side=provider&timestamp=1700000000000&version=1.0.0&weight=100"
             f"&zone=z1&serialization=hessian2&tag=gray")


def dubbo_state(*urls, rules=()):
    state = ServiceState(IFACE, get_layout("dubbo"))
    errors = state.set_providers([java_urlencode(u) for u in urls])
    errors += state.set_overrides([java_urlencode(r) for r in rules])
    return state, errors


def only(state, now=NOW + 10**9, warmup=None):
    specs, _ = state.endpoints(now, warmup)
    assert len(specs) == 1, specs
    return specs[0]


def test_dubbo_provider_keeps_every_parameter_and_types_the_important_ones():
    state, errors = dubbo_state(DUBBO_URL)
    spec = only(state)
    assert errors == [] and state.ready
    assert (spec.address, spec.weight, spec.group, spec.version, spec.zone, spec.enabled) == \
        ("10.0.0.5:20880", 100, "g1", "1.0.0", "z1", True)
    for key in ("application", "methods", "serialization", "tag", "timestamp", "release", "revision", "anyhost"):
        assert key in spec.metadata
    assert spec.metadata["methods"] == "sayHello,sayBye" and spec.metadata["protocol"] == "dubbo"


def test_pathless_urls_and_interface_fallbacks():
    spec = only(dubbo_state(f"dubbo://192.0.2.2:20880?interface={IFACE}&version=1.0.0")[0])
    assert spec.address == "192.0.2.2:20880" and spec.metadata["interface"] == IFACE
    spec = only(dubbo_state("dubbo://192.0.2.3:20880?version=1.0.0")[0])       # borrowed from the znode
    assert spec.metadata["interface"] == IFACE
    spec = only(dubbo_state("dubbo://192.0.2.4/org.example.DemoService?x=1")[0])  # no port: Dubbo's default
    assert spec.address == "192.0.2.4:20880"


@pytest.mark.parametrize("url, why", [
    ("dubbo://10.0.0.1:1/org.other.Service?interface=org.other.Service", "listed under"),
    (f"dubbo://10.0.0.1:1/{IFACE}?weight=heavy", "weight='heavy' is not an integer"),
    (f"dubbo://10.0.0.1:1/{IFACE}?timestamp=yesterday", "timestamp"),
    (f"weird://10.0.0.1/{IFACE}", "no default port"),
    (f"consumer://10.0.0.1/{IFACE}?side=consumer", "not a provider URL"),
    ("dubbo://:1/x", "no host"),
])
def test_bad_provider_nodes_are_reported_and_skipped(url, why):
    state, errors = dubbo_state(url, f"dubbo://10.0.0.9:20880/{IFACE}")
    assert len(errors) == 1 and why in errors[0]
    assert only(state).address == "10.0.0.9:20880"
    assert list(state.errors.values()) == errors


def test_undecodable_node_name_is_reported():
    state = ServiceState(IFACE, get_layout("dubbo"))
    assert state.set_providers(["dubbo%3A%2F%2F%FF"]) and state.endpoints(NOW)[0] == []


def test_empty_marker_is_ignored_and_empty_directory_means_no_endpoints():
    state, errors = dubbo_state(f"empty://10.0.0.1/{IFACE}?category=providers")
    assert errors == [] and state.endpoints(NOW) == ([], False) and state.ready
    state.set_providers(None)
    assert not state.providers_exist and state.endpoints(NOW) == ([], False)


def test_disabled_enabled_and_dubbo26_default_prefix():
    assert not only(dubbo_state(f"dubbo://h:1/{IFACE}?disabled=true")[0]).enabled
    assert only(dubbo_state(f"dubbo://h:1/{IFACE}?disabled=false&enabled=false")[0]).enabled
    assert not only(dubbo_state(f"dubbo://h:1/{IFACE}?enabled=false")[0]).enabled
    spec = only(dubbo_state(f"dubbo://h:1/{IFACE}?default.weight=7&default.version=2.0&default.group=gg")[0])
    assert (spec.weight, spec.version, spec.group) == (7, "2.0", "gg")


def test_configurators_change_weight_and_disable_then_go_away():
    state, _ = dubbo_state(DUBBO_URL, f"dubbo://10.0.0.6:20880/{IFACE}?weight=100",
                           rules=["override://0.0.0.0/S?category=configurators&weight=200",
                                  "override://10.0.0.5:20880/S?category=configurators&disabled=true"])
    specs = {s.address: s for s in state.endpoints(NOW + 10**9)[0]}
    assert specs["10.0.0.6:20880"].weight == 200 and specs["10.0.0.6:20880"].enabled
    assert specs["10.0.0.5:20880"].weight == 200 and not specs["10.0.0.5:20880"].enabled
    state.set_overrides([])
    specs = {s.address: s for s in state.endpoints(NOW + 10**9)[0]}
    assert specs["10.0.0.5:20880"].enabled and specs["10.0.0.5:20880"].weight == 100


def test_readiness_waits_for_configurators():
    state = ServiceState(IFACE, get_layout("dubbo"))
    state.set_providers([java_urlencode(DUBBO_URL)])
    assert not state.ready
    state.set_overrides([])
    assert state.ready


def test_dubbo_warmup_ramps_with_time_and_optional_default():
    url = f"dubbo://h:1/{IFACE}?timestamp={NOW}&warmup=100000&weight=100"
    state, _ = dubbo_state(url)
    assert state.endpoints(NOW + 25_000) [0][0].weight == 25 and state.endpoints(NOW + 25_000)[1]
    assert state.endpoints(NOW + 100_000) == ([state.endpoints(NOW + 100_000)[0][0]], False)
    assert state.endpoints(NOW + 100_000)[0][0].weight == 100
    plain, _ = dubbo_state(f"dubbo://h:1/{IFACE}?timestamp={NOW}")
    assert plain.endpoints(NOW + 60_000)[0][0].weight == 100                    # no warmup parameter
    assert plain.endpoints(NOW + 60_000, 600_000)[0][0].weight == 10            # Dubbo's default when asked


def test_overrides_can_set_warmup():
    state, _ = dubbo_state(f"dubbo://h:1/{IFACE}?timestamp={NOW}", rules=["override://0.0.0.0/S?warmup=10000"])
    assert state.endpoints(NOW + 5_000)[0][0].weight == 50


def test_one_address_exporting_several_versions_keeps_each_version():
    state, _ = dubbo_state(f"dubbo://h:1/{IFACE}?version=1.0.0&disabled=true",
                           f"dubbo://h:1/{IFACE}?version=2.0.0&weight=50",
                           f"dubbo://h:1/{IFACE}?version=3.0.0&weight=80&group=g")
    specs = {s.key: s for s in state.endpoints(NOW + 10**9)[0]}
    assert sorted(specs) == ["h:1#/1.0.0", "h:1#/2.0.0", "h:1#g/3.0.0"]
    assert not specs["h:1#/1.0.0"].enabled and specs["h:1#g/3.0.0"].weight == 80
    assert state.shared_addresses == 0


def test_duplicate_urls_for_one_address_group_and_version_keep_the_best():
    state, _ = dubbo_state(f"dubbo://h:1/{IFACE}?version=1.0.0&disabled=true",
                           f"dubbo://h:1/{IFACE}?version=1.0.0&weight=50",
                           f"dubbo://h:1/{IFACE}?version=1.0.0&weight=80&pid=2")
    spec = only(state)
    assert (spec.key, spec.weight, spec.enabled) == ("h:1", 80, True) and state.shared_addresses == 2


def sofa_state(*nodes):
    state = ServiceState("com.x.Svc", get_layout("sofarpc"))
    names = {java_urlencode(url): data for url, data in nodes}
    state.set_providers(names)
    assert not state.ready or not names
    for name, data in names.items():
        state.set_data(name, data)
    return state


def test_sofa_online_byte_and_field_mapping():
    state = sofa_state(
        ("bolt://10.0.0.1:12200?version=1.0&uniqueId=blue&interface=com.x.Svc&_WEIGHT=30&appName=a&zone=z", b"\x01"),
        ("bolt://10.0.0.2:12200?interface=com.x.Svc&weight=40&protocol=", b""),
        ("bolt://10.0.0.3:12200?interface=com.x.Svc", b"\x00"),
    )
    specs = {s.address: s for s in state.endpoints(NOW)[0]}
    one, two, three = specs["10.0.0.1:12200"], specs["10.0.0.2:12200"], specs["10.0.0.3:12200"]
    assert (one.group, one.version, one.weight, one.zone, one.enabled) == ("blue", "1.0", 30, "z", True)
    assert (two.weight, two.enabled, two.version, two.metadata["protocol"]) == (40, True, "1.0", "bolt")
    assert not three.enabled
    assert state.ready


def test_sofa_provider_without_data_is_not_published_yet():
    state = ServiceState("com.x.Svc", get_layout("sofarpc"))
    name = java_urlencode("bolt://10.0.0.1?interface=com.x.Svc")
    state.set_providers([name])
    assert not state.ready and state.needs_data() == [name] and state.endpoints(NOW)[0] == []
    state.set_data(name, b"\x01")
    assert state.ready and state.endpoints(NOW)[0][0].address == "10.0.0.1:12200"
    state.set_data(name, None)                     # unreadable (deleted meanwhile): not published
    assert state.endpoints(NOW)[0] == []


def test_sofa_warmup():
    state = sofa_state((f"bolt://h:1?interface=com.x.Svc&startTime={NOW}&warmupTime=1000&warmupWeight=5", b"\x01"))
    assert state.endpoints(NOW + 10) [0][0].weight == 5 and state.endpoints(NOW + 10)[1]
    assert state.endpoints(NOW + 1000)[0][0].weight == 100


def test_snapshot_json_round_trip_rebuilds_the_same_endpoints():
    state, _ = dubbo_state(DUBBO_URL, rules=["override://0.0.0.0/S?weight=3"])
    copy, errors = ServiceState.from_json(IFACE, get_layout("dubbo"), state.to_json())
    assert errors == [] and copy.ready and copy.endpoints(NOW) == state.endpoints(NOW)
    sofa = sofa_state(("bolt://10.0.0.3:12200?interface=com.x.Svc", b"\x00"))
    sofa_copy, _ = ServiceState.from_json("com.x.Svc", get_layout("sofarpc"), sofa.to_json())
    assert sofa_copy.endpoints(NOW) == sofa.endpoints(NOW) and not sofa_copy.endpoints(NOW)[0][0].enabled
    with pytest.raises(ValueError, match="not an object"):
        ServiceState.from_json(IFACE, get_layout("dubbo"), {"providers": ["x"]})


def test_unknown_layout_is_named():
    with pytest.raises(ValueError, match="'zk' is not one of"):
        get_layout("zk")
