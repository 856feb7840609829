"""The nodes meshd writes: byte-for-byte the URLs the SDKs write (discovery/zookeeper/registration.py), readable by our own side."""

from urllib.parse import unquote_plus

import pytest

from discovery.zookeeper.layouts import get_layout
from discovery.zookeeper.registration import ServiceInfo, build_consumer, build_provider
from discovery.zookeeper.service import ServiceState
from discovery.zookeeper.urls import parse_url

DUBBO, SOFA = get_layout("dubbo"), get_layout("sofarpc")
IFACE = "org.example.DemoService"
# The provider URL the Dubbo SDK writes (ServiceConfig + URL.toFullString).
DUBBO_EXAMPLE = ("dubbo://10.0.0.5:20880/org.example.DemoService?anyhost=true&application=demo&deprecated=false"
                 "&dubbo=2.0.2&dynamic=true&generic=false&group=g1&interface=org.example.DemoService"
                 "&methods=sayHello,sayBye&pid=4242&release=2.7.23&revision=1.0.0&side=provider"
                 "&timestamp=1700000000000&version=1.0.0&weight=100")


def dubbo_provider(**overrides):
    info = ServiceInfo(IFACE, application="demo", group="g1", version="1.0.0", methods=("sayHello", "sayBye"),
                       weight=100, **overrides)
    return build_provider(DUBBO, "/dubbo", "10.0.0.5:20880", info, pid=4242, timestamp_ms=1700000000000,
                          config_id="rpc-cfg-0")


def test_dubbo_provider_url_is_exactly_the_sdk_one():
    reg = dubbo_provider()
    assert reg.url == DUBBO_EXAMPLE
    assert reg.path.startswith("/dubbo/org.example.DemoService/providers/dubbo%3A%2F%2F10.0.0.5%3A20880%2F")
    assert unquote_plus(reg.path.rsplit("/", 1)[1]) == DUBBO_EXAMPLE
    assert "%2C" in reg.path and reg.data == b"" and reg.kind == "provider"


def test_dubbo_provider_defaults_and_caller_parameters_win():
    info = ServiceInfo(IFACE, parameters={"anyhost": "false", "token": "t"})
    reg = build_provider(DUBBO, "/dubbo", "10.0.0.5:20880", info, pid=1, timestamp_ms=2, config_id="x")
    params = parse_url(reg.url).params
    assert params["methods"] == "*" and params["anyhost"] == "false" and params["token"] == "t"
    assert "version" not in params and "group" not in params and "weight" not in params and "revision" not in params
    assert list(params) == sorted(params)
    assert "methods%3D*" in reg.path        # Java's URLEncoder keeps '*'


def test_dubbo_consumer_url():
    info = ServiceInfo(IFACE, application="web", version="1.0.0")
    reg = build_consumer(DUBBO, "/dubbo", "10.0.0.9", info, pid=7, timestamp_ms=5, config_id="x")
    assert reg.url.startswith("consumer://10.0.0.9/org.example.DemoService?application=web&category=consumers"
                              "&check=false&dubbo=2.0.2&interface=org.example.DemoService&methods=*&pid=7")
    assert "side=consumer" in reg.url and reg.path.startswith("/dubbo/org.example.DemoService/consumers/consumer%3A")


def test_sofa_provider_url_has_the_sdk_parameter_order_and_online_byte():
    info = ServiceInfo("com.x.Svc", application="app", parameters={"zone": "z1"})
    reg = build_provider(SOFA, "/sofa-rpc", "10.0.0.5:12200", info, pid=99, timestamp_ms=123, config_id="rpc-cfg-0")
    # sofa-rpc RegistryUtils.convertProviderToUrls: bolt://ip:12200?version=1.0&uniqueId=..&interface=..&timeout=..&delay=-1&id=rpc-cfg-0&dynamic=true
    #   &weight=100&accepts=100000&startTime=..&appName=..&serialization=hessian2&protocol=bolt&language=java&pid=..&rpcVer=..
    assert reg.url == ("bolt://10.0.0.5:12200?version=1.0&uniqueId=&interface=com.x.Svc&timeout=0&delay=-1"
                       "&id=rpc-cfg-0&dynamic=true&weight=100&accepts=100000&startTime=123&appName=app"
                       "&serialization=hessian2&protocol=bolt&zone=z1&language=java&pid=99&rpcVer=50707")
    assert reg.data == b"\x01" and reg.path.startswith("/sofa-rpc/com.x.Svc/providers/bolt%3A%2F%2F10.0.0.5%3A12200%3F")


def test_sofa_consumer_url_repeats_pid_like_java():
    info = ServiceInfo("com.x.Svc", group="blue")
    reg = build_consumer(SOFA, "/sofa-rpc", "10.0.0.9", info, pid=5, timestamp_ms=1, config_id="rpc-cfg-3")
    assert reg.url == ("bolt://10.0.0.9?version=1.0&uniqueId=blue&pid=5&timeout=3000&id=rpc-cfg-3&generic=false"
                       "&interface=com.x.Svc&serialization=hessian2&startTime=1&language=java&pid=5&rpcVer=50707")
    assert reg.path.startswith("/sofa-rpc/com.x.Svc/consumers/") and reg.data == b""


@pytest.mark.parametrize("layout, address", [(DUBBO, "10.0.0.5:20880"), (SOFA, "10.0.0.5:12200")])
def test_what_we_write_reads_back_as_the_same_endpoint(layout, address):
    info = ServiceInfo(IFACE, application="a", group="g", version="2.0", weight=30)
    reg = build_provider(layout, layout.default_root, address, info, pid=1, timestamp_ms=1, config_id="c")
    state = ServiceState(IFACE, layout)
    state.set_providers([reg.path.rsplit("/", 1)[1]])
    state.set_overrides([])
    state.set_data(reg.path.rsplit("/", 1)[1], reg.data)
    (spec,), _ = state.endpoints(10**13)
    assert (spec.address, spec.group, spec.version, spec.weight, spec.enabled) == (address, "g", "2.0", 30, True)


def test_identity_and_same_content():
    a, b = dubbo_provider(), build_provider(
        DUBBO, "/dubbo", "10.0.0.5:20880",
        ServiceInfo(IFACE, application="demo", group="g1", version="1.0.0", methods=("sayHello", "sayBye"), weight=100),
        pid=1, timestamp_ms=99, config_id="other")
    assert a.key == b.key and a.same_content(b) and a.path != b.path
    c = dubbo_provider(parameters={"weight": "5"})
    assert c.key == a.key and not c.same_content(a)


@pytest.mark.parametrize("kwargs, why", [
    (dict(interface="not an interface"), "not a Java interface name"),
    (dict(interface=IFACE, weight=-1), "non-negative"),
    (dict(interface=IFACE, methods=("a b",)), "method name"),
    (dict(interface=IFACE, parameters={"x": "a&b"}), "cannot contain '&'"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, why):
    with pytest.raises(ValueError, match=why):
        build_provider(DUBBO, "/dubbo", "10.0.0.5:20880", ServiceInfo(**kwargs), pid=1, timestamp_ms=1,
                       config_id="c")


@pytest.mark.parametrize("address", ["10.0.0.5", "10.0.0.5:0", "a/b:1"])
def test_bad_addresses_are_rejected(address):
    with pytest.raises(ValueError):
        build_provider(DUBBO, "/dubbo", address, ServiceInfo(IFACE), pid=1, timestamp_ms=1, config_id="c")
