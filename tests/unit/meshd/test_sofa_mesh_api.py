"""The SOFA mesh registry API's request decoding: every real client's bodies, SOFA's numeric protocol codes.

The bodies are what each client's source builds (cited per body); the API must take them as they are, and
refuse anything else with an error that names the field and the value.
"""

from __future__ import annotations

import json

import pytest

from meshd.registry_api.api import BadRequest, Body
from meshd.registry_api.sofa import (
    PublishRequest, SubscribeRequest, application_info, protocol_field, serialization_field,
)

APP = {"appName": "calc-app", "zone": "zone-a"}
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 12200

# sofa-rpc registry/registry-mesh/.../MeshRegistry.java buildPublishServiceRequest + MeshApiClient.publishService:
# fastjson's JSON.toJSONString (fields sorted, nulls left out) of a PublishServiceRequest for the provider of
# MeshRegistryTest.testAll (bolt server, hessian2, app test-server, parameters {sofa.group: SOFA_TEST}).
SOFARPC_PUBLISH = ('{"group":"SOFA_TEST","onlyPublishInCloud":false,"protocolType":"bolt","providerMetaInfo":'
                   '{"appName":"test-server","properties":{"sofa.group":"SOFA_TEST"},"protocol":"bolt",'
                   '"serializeType":"hessian2","version":"4.0"},'
                   '"serviceName":"com.alipay.xxx.TestService:1.0:unique123Id"}')
# MeshRegistry.buildSubscribeServiceRequest (SubscribeServiceRequest: booleans always written).
SOFARPC_SUBSCRIBE = ('{"group":"SOFA_TEST","localCloudFirst":false,"properties":{"sofa.group":"SOFA_TEST"},'
                     '"protocolType":"bolt","serviceName":"com.alipay.xxx.TestService:1.0:unique123Id",'
                     '"vipEnforce":false,"vipOnly":false}')
# ApplicationInfoRequest.toJson: the parameters map plus appName.
SOFARPC_APPLICATION = '{"appName":"test-server"}'

# anthunder 0.8.1 (PyPI): anthunder/listener/base_listener.py BaseListener.publish posts
# attr.asdict(PublishServiceRequest(...)) from anthunder/mesh/mesh_client.py through requests' json=; the
# protocol is the hard-coded "1". anthunder 0.9 (sofastack/sofa-bolt-python master,
# anthunder/discovery/mosn/__init__.py + anthunder/model/service.py ProviderMetaInfo) sends the same fields.
ANTHUNDER_PUBLISH = {"serviceName": "com.alipay.rpc.common.service.facade.pb.SampleServicePb:1.0",
                     "providerMetaInfo": {"protocol": "1", "version": "4.0", "serializeType": "protobuf",
                                          "appName": "test_app"},
                     "port": "12200", "protocolType": "DEFAULT", "onlyPublishInCloud": False}
# MeshClient.subscribe / unsubscribe / unpublish: dict(serviceName=...).
ANTHUNDER_SUBSCRIBE = {"serviceName": "com.alipay.rpc.common.service.facade.pb.SampleServicePb:1.0"}
# MeshClient.startup: attr.asdict(ApplicationInfo(...), filter=lambda a, v: v) (falsy fields dropped).
ANTHUNDER_APPLICATION = {"appName": "pybolt_test_app", "dataCenter": "dc1", "zone": "zone-a",
                         "registryEndPoint": "http://127.0.0.1:9603", "antShareCloud": True}

# MOSN's model: mosn/mosn@ce65f6051^ pkg/upstream/servicediscovery/confreg/json_test.go (its own test body) and
# models.go; registryendpoint.go assemblePublishData wrote providerMetaInfo.protocol verbatim as the data's p=.
MOSN_PUBLISH = ('{"providerMetaInfo":{"appName":"testApp","protocol":"bolt","serializeType":"hessian2",'
                '"version":"4.0"},"serviceName":"aa"}')
MOSN_PUBLISH_CODE = {"serviceName": "com.example.Calc:1.0",
                     "providerMetaInfo": {"appName": "testApp", "protocol": "1", "serializeType": "hessian2",
                                          "version": "4.0"}}
MOSN_APPLICATION = {"antShareCloud": False, "dataCenter": "dc1", "appName": "testApp", "zone": "zone-a",
                    "registryEndpoint": "confreg.example:9600", "accessKey": "ak", "secretKey": "sk"}


def body(raw: str | dict) -> Body:
    return Body.parse(raw.encode() if isinstance(raw, str) else json.dumps(raw).encode())


def publish(raw: str | dict, application: dict | None = None) -> PublishRequest:
    return PublishRequest.decode(body(raw), APP if application is None else application, DEFAULT_HOST, DEFAULT_PORT)


def refused(fn, *args) -> str:
    with pytest.raises(BadRequest) as info:
        fn(*args)
    return str(info.value)


# ------------------------------------------------------------------------------------------ protocols
@pytest.mark.parametrize("value, name", [
    ("1", "bolt"), ("13", "tr"), (1, "bolt"), (13, "tr"),                     # SOFA's RemotingConstants codes
    ("bolt", "bolt"), ("BOLT", "bolt"), ("Bolt", "bolt"), ("tr", "tr"), ("TR", "tr"), ("h2c", "h2c"),
    ("DEFAULT", ""), ("default", ""), ("", ""), (None, ""),                   # no protocol named: the caller's default
])
def test_protocol_names_and_sofa_codes(value, name):
    assert protocol_field(Body({"protocol": value}, "providerMetaInfo"), "protocol") == name


@pytest.mark.parametrize("value, message", [
    ("2", "providerMetaInfo.protocol: '2' is not a SOFA protocol code (1 = bolt, 13 = tr)"),
    ("01", "providerMetaInfo.protocol: '01' is not a SOFA protocol code (1 = bolt, 13 = tr)"),
    (11, "providerMetaInfo.protocol: '11' is not a SOFA protocol code (1 = bolt, 13 = tr)"),
    ("bo lt", "providerMetaInfo.protocol: 'bo lt' is not a protocol name or a SOFA protocol code (1 = bolt, 13 = tr)"),
    ("-1", "providerMetaInfo.protocol: '-1' is not a protocol name or a SOFA protocol code (1 = bolt, 13 = tr)"),
    ("1.0", "providerMetaInfo.protocol: '1.0' is not a protocol name or a SOFA protocol code (1 = bolt, 13 = tr)"),
    (True, "providerMetaInfo.protocol: expected a string, got a boolean"),
    (["bolt"], "providerMetaInfo.protocol: expected a string, got an array"),
])
def test_bad_protocols_name_the_field_and_the_value(value, message):
    assert refused(protocol_field, Body({"protocol": value}, "providerMetaInfo"), "protocol") == message


@pytest.mark.parametrize("value, name", [
    ("1", "hessian"), ("2", "java"), ("4", "hessian2"), ("11", "protobuf"), ("12", "json"),
    ("hessian2", "hessian2"), ("protobuf", "protobuf"), ("", ""),
])
def test_serialization_names_and_sofa_codes(value, name):
    assert serialization_field(Body({"serializeType": value}), "serializeType") == name


def test_unknown_serialization_code_is_refused():
    assert refused(serialization_field, Body({"serializeType": "3"}, "providerMetaInfo"), "serializeType") == (
        "providerMetaInfo.serializeType: '3' is not a SOFA serialization code "
        "(1 = hessian, 2 = java, 4 = hessian2, 11 = protobuf, 12 = json)")


def test_protocol_type_decides_when_the_meta_names_none_and_the_meta_wins_otherwise():
    base = {"serviceName": "com.example.Calc:1.0"}
    assert publish({**base, "protocolType": "13"}).protocol == "tr"
    assert publish({**base, "protocolType": "DEFAULT", "providerMetaInfo": {"protocol": "13"}}).protocol == "tr"
    assert publish({**base, "protocolType": "tr", "providerMetaInfo": {"protocol": "DEFAULT"}}).protocol == "tr"
    assert publish({**base, "protocolType": "DEFAULT"}).protocol == "bolt"
    assert publish(base).protocol == "bolt"
    assert refused(publish, {**base, "protocolType": "7"}) == "protocolType: '7' is not a SOFA protocol code " \
                                                              "(1 = bolt, 13 = tr)"


# ------------------------------------------------------------------------------------- real bodies
def test_sofarpc_publish_body():
    req = publish(SOFARPC_PUBLISH, application={"appName": "test-server"})
    assert (str(req.name), req.name.interface, req.name.version, req.name.unique_id) == (
        "com.alipay.xxx.TestService:1.0:unique123Id", "com.alipay.xxx.TestService", "1.0", "unique123Id")
    assert (req.protocol, req.serialization, req.application) == ("bolt", "hessian2", "test-server")
    assert (req.host, req.port) == (DEFAULT_HOST, DEFAULT_PORT)          # SOFARPC sends no port
    assert req.parameters == {"v": "4.0", "sofa.group": "SOFA_TEST"}


def test_anthunder_publish_body_with_numeric_protocol():
    req = publish(ANTHUNDER_PUBLISH)
    assert str(req.name) == "com.alipay.rpc.common.service.facade.pb.SampleServicePb:1.0"
    assert (req.protocol, req.serialization, req.application) == ("bolt", "protobuf", "test_app")
    assert (req.host, req.port) == (DEFAULT_HOST, 12200)
    assert req.parameters == {"zone": "zone-a", "v": "4.0"}
    other_port = publish({**ANTHUNDER_PUBLISH, "port": "31337"})
    assert other_port.port == 31337


def test_mosn_model_publish_bodies():
    req = publish(MOSN_PUBLISH, application={"appName": "testApp", "zone": "zone-b"})
    assert (str(req.name), req.protocol, req.serialization, req.application) == ("aa:1.0", "bolt", "hessian2",
                                                                                 "testApp")
    assert req.parameters == {"zone": "zone-b", "v": "4.0"}
    assert publish(MOSN_PUBLISH_CODE).protocol == "bolt"


def test_the_same_provider_through_any_client_shape_publishes_the_same():
    name, meta = "com.example.Calc:1.0", {"appName": "calc-app", "serializeType": "hessian2", "version": "4.0"}
    shapes = [
        {"serviceName": name, "protocolType": "bolt", "onlyPublishInCloud": False,
         "providerMetaInfo": {**meta, "protocol": "bolt", "properties": {}}},                        # SOFARPC
        {"serviceName": name, "providerMetaInfo": {**meta, "protocol": "1"}, "port": "12200",
         "protocolType": "DEFAULT", "onlyPublishInCloud": False},                                   # anthunder
        {"serviceName": name, "providerMetaInfo": {**meta, "protocol": "BOLT"}},                   # MOSN's model
    ]
    first, *others = [publish(shape) for shape in shapes]
    assert first.protocol == "bolt" and others == [first, first]


def test_subscribe_bodies():
    sofarpc = SubscribeRequest.decode(body(SOFARPC_SUBSCRIBE))
    assert (str(sofarpc.name), sofarpc.protocol, sofarpc.parameters) == (
        "com.alipay.xxx.TestService:1.0:unique123Id", "bolt", {"sofa.group": "SOFA_TEST"})
    anthunder = SubscribeRequest.decode(body(ANTHUNDER_SUBSCRIBE))
    assert (str(anthunder.name), anthunder.protocol, anthunder.parameters) == (
        "com.alipay.rpc.common.service.facade.pb.SampleServicePb:1.0", "bolt", {})
    assert SubscribeRequest.decode(body({**ANTHUNDER_SUBSCRIBE, "protocolType": "13"})).protocol == "tr"
    assert refused(SubscribeRequest.decode, body({**ANTHUNDER_SUBSCRIBE, "protocolType": "x y"})).startswith(
        "protocolType: 'x y' is not a protocol name")


def test_application_bodies():
    assert application_info(body(SOFARPC_APPLICATION)) == {"appName": "test-server"}
    assert application_info(body(ANTHUNDER_APPLICATION)) == {
        "appName": "pybolt_test_app", "dataCenter": "dc1", "zone": "zone-a",
        "registryEndPoint": "http://127.0.0.1:9603", "antShareCloud": "true"}
    assert application_info(body(MOSN_APPLICATION)) == {
        "antShareCloud": "false", "dataCenter": "dc1", "appName": "testApp", "zone": "zone-a",
        "registryEndpoint": "confreg.example:9600", "accessKey": "ak", "secretKey": "sk"}
    assert refused(application_info, body({"appName": "my app"})).startswith("appName: 'my app' is not a name")


@pytest.mark.parametrize("raw, message", [
    ({"serviceName": "com.example.Calc:1.0", "providerMetaInfo": {"protocol": "7"}},
     "providerMetaInfo.protocol: '7' is not a SOFA protocol code (1 = bolt, 13 = tr)"),
    ({"serviceName": "com.example.Calc:1.0", "providerMetaInfo": {"serializeType": "99"}},
     "providerMetaInfo.serializeType: '99' is not a SOFA serialization code"),
    ({"serviceName": "com.example.Calc:1.0", "port": "0"}, "port: '0' is not a port number in 1..65535"),
    ({"providerMetaInfo": {"protocol": "1"}}, "serviceName: required"),
])
def test_bad_publish_bodies(raw, message):
    assert refused(publish, raw).startswith(message)
